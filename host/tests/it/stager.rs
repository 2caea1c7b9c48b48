//! The API's document stager against a real embedded broker whose staging panics on cue: the
//! panic costs that one document its head start, never the thread, so the next large `POST`
//! is still staged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use vcon_host::api::stager::Stager;
use vcon_host::broker::Broker;

use crate::faulty_broker::{PanicsOnPoison, POISONED_DOCUMENT};

/// A document large enough to be staged (the broker keeps smaller ones in their rows).
fn large_document(marker: &[u8]) -> Bytes {
    let mut json = b"{\"note\":\"".to_vec();
    json.extend_from_slice(marker);
    json.extend_from_slice(b"\",\"pad\":\"");
    json.extend(std::iter::repeat_n(b'x', 100 << 10));
    json.extend_from_slice(b"\"}");
    Bytes::from(json)
}

#[test]
fn a_staging_write_that_panics_leaves_the_document_to_its_ingest_and_the_stager_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let broker: Arc<dyn Broker> = Arc::new(PanicsOnPoison::open(&dir.path().join("broker.sqlite")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Polling between documents and sleeping between them: both ways back to the queue must
    // survive the panic.
    for spin in [Duration::from_millis(50), Duration::ZERO] {
        let stager = Stager::start(Arc::clone(&broker), spin).unwrap();
        runtime.block_on(async {
            let answered = |doc| {
                let staging = stager.stage(doc, false);
                async move {
                    tokio::time::timeout(Duration::from_secs(10), staging)
                        .await
                        .expect("the stager never answered: its thread died with the panic")
                        .and_then(|staging| staging.staged)
                }
            };
            assert!(
                answered(large_document(b"fine")).await.is_some(),
                "a document before the panic is staged"
            );
            assert!(
                answered(large_document(POISONED_DOCUMENT)).await.is_none(),
                "a staging that panicked answers `None`: the ingest writes the document itself"
            );
            assert!(
                answered(large_document(b"fine again")).await.is_some(),
                "the document after the panic is staged: the thread went on"
            );
        });
        // Dropping joins the thread: a thread that had died would fail the join, which Drop
        // logs; the broker is released either way.
        drop(stager);
    }
    assert_eq!(
        Arc::strong_count(&broker),
        1,
        "every stager let go of the broker"
    );
}
