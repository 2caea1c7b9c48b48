//! The Redis broker (being written: opening one reports that it is not available yet).

use crate::BrokerError;

/// The Redis broker.
#[derive(Debug)]
pub struct RedisBroker {
    _private: (),
}

impl RedisBroker {
    /// Not available yet.
    pub fn open_for_run(url: &str) -> Result<Self, BrokerError> {
        Self::open(url)
    }

    /// Not available yet.
    pub fn open(url: &str) -> Result<Self, BrokerError> {
        Err(BrokerError::RedisData {
            url: url.to_owned(),
            key: String::new(),
            problem: "the Redis broker is not available in this build yet".into(),
        })
    }
}

fn unavailable<T>() -> Result<T, BrokerError> {
    RedisBroker::open("redis://").map(|_| unreachable!())
}

#[allow(unused_variables)]
impl crate::Broker for RedisBroker {
    fn ingest(&self, vcons: &[crate::HotVcon], lists: &[String], ttl: Option<std::time::Duration>) -> Result<(), BrokerError> { unavailable() }
    fn put_vcon(&self, vcon: &crate::HotVcon) -> Result<(), BrokerError> { unavailable() }
    fn get_vcons(&self, uuids: &[&str]) -> Result<Vec<Option<crate::HotVcon>>, BrokerError> { unavailable() }
    fn delete_vcon(&self, uuid: &str) -> Result<bool, BrokerError> { unavailable() }
    fn forget(&self, uuid: &str) -> Result<bool, BrokerError> { unavailable() }
    fn list_uuids(&self, page: &crate::ListingPage) -> Result<Vec<String>, BrokerError> { unavailable() }
    fn search(&self, keys: &[String]) -> Result<Vec<String>, BrokerError> { unavailable() }
    fn expire_vcon(&self, uuid: &str, ttl: Option<std::time::Duration>) -> Result<bool, BrokerError> { unavailable() }
    fn push(&self, list: &str, uuids: &[&str]) -> Result<(), BrokerError> { unavailable() }
    fn claim(&self, lists: &[String], owner: &str, max: usize) -> Result<Option<crate::Claim>, BrokerError> { unavailable() }
    fn finish(&self, items: &[crate::ItemId], finish: &crate::Finish) -> Result<(), BrokerError> { unavailable() }
    fn requeue_abandoned(&self) -> Result<u64, BrokerError> { unavailable() }
    fn pop_back(&self, list: &str, count: usize) -> Result<Vec<String>, BrokerError> { unavailable() }
    fn len(&self, list: &str) -> Result<u64, BrokerError> { unavailable() }
    fn entries(&self, list: &str, limit: usize) -> Result<Vec<crate::ListEntry>, BrokerError> { unavailable() }
    fn remove_entry(&self, id: &crate::ItemId) -> Result<bool, BrokerError> { unavailable() }
    fn lists(&self) -> Result<Vec<(String, u64)>, BrokerError> { unavailable() }
    fn purge_expired(&self) -> Result<u64, BrokerError> { unavailable() }
}
