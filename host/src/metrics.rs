//! The process's Prometheus metrics, served by `GET /metrics`.
//!
//! One registry for the process, reached through [`global`]: workers, the storage layer and the
//! API record into it without threading a handle through every call (the `metrics` facade and
//! `tracing` make the same choice). Label values are bounded sets (routes as templates, chain and
//! storage names from the config, list names): never a uuid, so the series count stays small —
//! the Python server labels link counters with `vcon.uuid`.
//!
//! List depths and dead-letter counts are read from the broker when scraped, not tracked, so they
//! are right even when other processes (`vcon-host ingest`, other hosts on one Redis) move work.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/vcon/{uuid}`), not the path, so uuids do not become series.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The status answered.
    pub status: u16,
}

/// Labels naming a chain.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabels {
    /// The chain's name.
    pub chain: String,
    /// `stored`, `dropped` (a link dropped it) or `dead_letter`.
    pub outcome: &'static str,
}

/// Labels of a storage call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    /// The storage's name.
    pub storage: String,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels naming a list.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabels {
    /// The list's name.
    pub list: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~6.5 s: an in-process storage answers in microseconds, a remote one in
    // milliseconds, a struggling one in seconds.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric the host exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// API requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// vCons a chain finished, by outcome.
    pub vcons: Family<ChainLabels, Counter>,
    /// vCons written (or not) per storage.
    pub storage_writes: Family<StorageLabels, Counter>,
    /// How long one storage call (a whole batch) took.
    pub storage_seconds: Family<StorageLabels, Histogram, fn() -> Histogram>,
    /// Items per list (ingress, egress, dead letters), read when scraped.
    pub list_depth: Family<ListLabels, Gauge>,
    /// Items per dead-letter list, read when scraped.
    pub dead_letters: Family<ListLabels, Gauge>,
    /// vCons per broker commit of the API's group commit: above 1 when concurrent `POST
    /// /vcon`s shared a transaction.
    pub ingest_batch: Histogram,
    /// Posted vCons validated on the blocking pool rather than the API thread (large bodies
    /// while other ingests were in flight): says whether the second core takes that work.
    pub validated_off_thread: Counter,
    /// Posted vCons whose document the broker wrote while they were validated (large bodies
    /// posted alone, embedded broker): says whether that overlap happens.
    pub documents_staged: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("vcon_host");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "API requests by route template, method and status",
            requests.clone(),
        );
        let vcons = Family::<ChainLabels, Counter>::default();
        registry.register(
            "vcons_processed",
            "vCons a chain finished, by chain and outcome",
            vcons.clone(),
        );
        let storage_writes = Family::<StorageLabels, Counter>::default();
        registry.register(
            "storage_writes",
            "vCons written to a storage, by storage and outcome",
            storage_writes.clone(),
        );
        let storage_seconds =
            Family::<StorageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "storage_call_seconds",
            "Time of one storage write call (a batch, retries included)",
            storage_seconds.clone(),
        );
        let list_depth = Family::<ListLabels, Gauge>::default();
        registry.register(
            "list_depth",
            "Items waiting in each broker list",
            list_depth.clone(),
        );
        let dead_letters = Family::<ListLabels, Gauge>::default();
        registry.register(
            "dead_letters",
            "Items in each dead-letter list",
            dead_letters.clone(),
        );
        // 1 .. 256 (the most one commit takes).
        let ingest_batch = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "api_ingest_batch_vcons",
            "vCons per broker commit of POST /vcon's group commit",
            ingest_batch.clone(),
        );
        let validated_off_thread = Counter::default();
        registry.register(
            "api_validated_off_thread",
            "Posted vCons validated on the blocking pool (large bodies while other ingests were in flight)",
            validated_off_thread.clone(),
        );
        let documents_staged = Counter::default();
        registry.register(
            "api_documents_staged",
            "Posted vCons whose document the broker wrote while they were validated (large bodies posted alone)",
            documents_staged.clone(),
        );
        Self {
            registry,
            requests,
            vcons,
            storage_writes,
            storage_seconds,
            list_depth,
            dead_letters,
            ingest_batch,
            validated_off_thread,
            documents_staged,
        }
    }

    /// Records one storage batch call.
    pub fn storage_call(&self, storage: &str, elapsed: Duration, ok: usize, failed: usize) {
        let labels = |outcome| StorageLabels {
            storage: storage.to_owned(),
            outcome,
        };
        let outcome = if failed == 0 { "ok" } else { "error" };
        self.storage_seconds
            .get_or_create(&labels(outcome))
            .observe(elapsed.as_secs_f64());
        if ok > 0 {
            self.storage_writes
                .get_or_create(&labels("ok"))
                .inc_by(ok as u64);
        }
        if failed > 0 {
            self.storage_writes
                .get_or_create(&labels("error"))
                .inc_by(failed as u64);
        }
    }

    /// Counts vCons a chain finished.
    pub fn chain_finished(&self, chain: &str, outcome: &'static str, count: usize) {
        if count > 0 {
            self.vcons
                .get_or_create(&ChainLabels {
                    chain: chain.to_owned(),
                    outcome,
                })
                .inc_by(count as u64);
        }
    }

    /// Replaces the list gauges with the broker's current lists.
    pub fn set_lists(&self, lists: &[(String, u64)]) {
        self.list_depth.clear();
        self.dead_letters.clear();
        for (list, len) in lists {
            let labels = ListLabels { list: list.clone() };
            let len = i64::try_from(*len).unwrap_or(i64::MAX);
            self.list_depth.get_or_create(&labels).set(len);
            if list.starts_with("DLQ:") {
                self.dead_letters.get_or_create(&labels).set(len);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}
