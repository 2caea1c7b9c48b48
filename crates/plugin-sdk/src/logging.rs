//! Forwards the plugin's `tracing` events to the host's log.
//!
//! A `cdylib` has its own copy of `tracing` and so its own global dispatcher: without a
//! subscriber installed inside the plugin, every `tracing::info!` in it goes nowhere. The SDK
//! installs [`HostLogSubscriber`] the first time a storage is opened; plugin authors just use
//! `tracing` as usual. Spans are not forwarded (only events), which keeps the bridge small.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use plugin_abi::{HostCallbacksRef, LogLevel};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

static HOST: OnceLock<HostCallbacksRef> = OnceLock::new();

/// Installs the forwarding subscriber as this plugin's global default (once per library).
pub(crate) fn install(host: HostCallbacksRef) {
    if HOST.set(host).is_ok() {
        // Fails only if the plugin installed its own global subscriber first; then it keeps it.
        let _ = tracing::subscriber::set_global_default(HostLogSubscriber::default());
    }
}

/// A `tracing` subscriber that hands every enabled event to the host's log callback.
#[derive(Debug, Default)]
pub struct HostLogSubscriber {
    next_span: AtomicU64,
}

fn to_host_level(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::ERROR,
        Level::WARN => LogLevel::WARN,
        Level::INFO => LogLevel::INFO,
        Level::DEBUG => LogLevel::DEBUG,
        Level::TRACE => LogLevel::TRACE,
    }
}

impl Subscriber for HostLogSubscriber {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The host's level may change at run time, so ask on every event (a cheap call).
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match HOST.get() {
            Some(host) => to_host_level(metadata.level()) <= (host.max_level())(),
            None => false,
        }
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(host) = HOST.get() else { return };
        let mut visitor = FieldsToJson::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        let fields = if visitor.fields.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(visitor.fields).to_string()
        };
        (host.log())(
            to_host_level(metadata.level()),
            metadata.target().into(),
            visitor.message.as_str().into(),
            fields.as_str().into(),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct FieldsToJson {
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for FieldsToJson {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .insert(field.name().to_owned(), format!("{value:?}").into());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.insert(field.name().to_owned(), value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_owned(), value.into());
    }
}
