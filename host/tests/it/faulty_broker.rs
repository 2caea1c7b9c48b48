//! A real embedded broker with faults put in where a test asks for them: what the API does when
//! the broker panics mid-call, which no real database can be made to do on cue.

use std::sync::{mpsc, Mutex};
use std::time::Duration;

use vcon_host::broker::{Broker, HotVcon, SqliteBroker};

/// The embedded broker with faults put in: a batch holding [`POISON`] panics before it is
/// written, and one holding [`GATE`] says so on `entered` and waits for `release` (so the test
/// can queue the requests behind it, and the next leader takes them all in one batch); staging
/// a document that holds [`POISONED_DOCUMENT`] panics before anything is written.
#[derive(Debug)]
pub(crate) struct PanicsOnPoison {
    pub(crate) inner: SqliteBroker,
    pub(crate) entered: Mutex<mpsc::Sender<()>>,
    pub(crate) release: Mutex<mpsc::Receiver<()>>,
}

impl PanicsOnPoison {
    /// The broker at `path` with the faults, and no test waiting at the gate.
    pub(crate) fn open(path: &std::path::Path) -> Self {
        Self {
            inner: SqliteBroker::open_for_run(path).unwrap(),
            entered: Mutex::new(mpsc::channel().0),
            release: Mutex::new(mpsc::channel().1),
        }
    }
}

/// The vCon whose batch holds the write open until released.
pub(crate) const GATE: usize = 1;
/// The vCon whose batch panics.
pub(crate) const POISON: usize = 10;
/// Bytes that make staging a document panic.
pub(crate) const POISONED_DOCUMENT: &[u8] = b"poisoned-document";

fn holds(batches: &[vcon_host::broker::IngestBatch<'_>], i: usize) -> bool {
    let uuid = format!("00000000-0000-4000-8000-{i:012}");
    batches
        .iter()
        .any(|b| b.vcons.iter().any(|v| v.uuid == uuid))
}

impl Broker for PanicsOnPoison {
    fn ingest_batches(
        &self,
        batches: &[vcon_host::broker::IngestBatch<'_>],
    ) -> Result<(), vcon_host::broker::BrokerError> {
        assert!(!holds(batches, POISON), "the poisoned vCon");
        if holds(batches, GATE) {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30))
                .expect("the test never released the gate");
        }
        self.inner.ingest_batches(batches)
    }
    fn ingest(
        &self,
        vcons: &[HotVcon],
        lists: &[String],
        ttl: Option<Duration>,
    ) -> Result<(), vcon_host::broker::BrokerError> {
        self.ingest_batches(&[vcon_host::broker::IngestBatch { vcons, lists, ttl }])
    }
    fn is_local(&self) -> bool {
        true
    }
    fn stage_document(
        &self,
        json: &[u8],
    ) -> Result<Option<vcon_host::broker::StagedDocument>, vcon_host::broker::BrokerError> {
        assert!(
            !json
                .windows(POISONED_DOCUMENT.len())
                .any(|w| w == POISONED_DOCUMENT),
            "the poisoned document"
        );
        self.inner.stage_document(json)
    }
    fn put_vcon(&self, v: &HotVcon) -> Result<(), vcon_host::broker::BrokerError> {
        self.inner.put_vcon(v)
    }
    fn get_vcons(
        &self,
        u: &[&str],
    ) -> Result<Vec<Option<HotVcon>>, vcon_host::broker::BrokerError> {
        self.inner.get_vcons(u)
    }
    fn delete_vcon(&self, u: &str) -> Result<bool, vcon_host::broker::BrokerError> {
        self.inner.delete_vcon(u)
    }
    fn forget(&self, u: &str) -> Result<bool, vcon_host::broker::BrokerError> {
        self.inner.forget(u)
    }
    fn list_uuids(
        &self,
        p: &vcon_host::broker::ListingPage,
    ) -> Result<Vec<String>, vcon_host::broker::BrokerError> {
        self.inner.list_uuids(p)
    }
    fn search(&self, k: &[String]) -> Result<Vec<String>, vcon_host::broker::BrokerError> {
        self.inner.search(k)
    }
    fn expire_vcon(
        &self,
        u: &str,
        t: Option<Duration>,
    ) -> Result<bool, vcon_host::broker::BrokerError> {
        self.inner.expire_vcon(u, t)
    }
    fn push(&self, l: &str, u: &[&str]) -> Result<(), vcon_host::broker::BrokerError> {
        self.inner.push(l, u)
    }
    fn claim(
        &self,
        l: &[String],
        o: &str,
        m: usize,
    ) -> Result<Option<vcon_host::broker::Claim>, vcon_host::broker::BrokerError> {
        self.inner.claim(l, o, m)
    }
    fn finish(
        &self,
        i: &[vcon_host::broker::ItemId],
        f: &vcon_host::broker::Finish,
    ) -> Result<(), vcon_host::broker::BrokerError> {
        self.inner.finish(i, f)
    }
    fn requeue_abandoned(&self) -> Result<u64, vcon_host::broker::BrokerError> {
        self.inner.requeue_abandoned()
    }
    fn pop_back(&self, l: &str, c: usize) -> Result<Vec<String>, vcon_host::broker::BrokerError> {
        self.inner.pop_back(l, c)
    }
    fn len(&self, l: &str) -> Result<u64, vcon_host::broker::BrokerError> {
        self.inner.len(l)
    }
    fn entries(
        &self,
        l: &str,
        n: usize,
    ) -> Result<Vec<vcon_host::broker::ListEntry>, vcon_host::broker::BrokerError> {
        self.inner.entries(l, n)
    }
    fn remove_entry(
        &self,
        i: &vcon_host::broker::ItemId,
    ) -> Result<bool, vcon_host::broker::BrokerError> {
        self.inner.remove_entry(i)
    }
    fn lists(&self) -> Result<Vec<(String, u64)>, vcon_host::broker::BrokerError> {
        self.inner.lists()
    }
    fn purge_expired(&self) -> Result<u64, vcon_host::broker::BrokerError> {
        self.inner.purge_expired()
    }
}
