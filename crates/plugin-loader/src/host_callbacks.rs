//! The callbacks the host lends every plugin: its log events land in the host's `tracing`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use plugin_abi::__private::abi_stable::prefix_type::PrefixTypeTrait;
use plugin_abi::__private::RStr;
use plugin_abi::{HostCallbacks, HostCallbacksRef, LogLevel};
use tracing::level_filters::LevelFilter;

/// The host's callback table, built once and shared by every plugin.
pub fn host_callbacks() -> HostCallbacksRef {
    static TABLE: OnceLock<HostCallbacksRef> = OnceLock::new();
    *TABLE.get_or_init(|| {
        HostCallbacks {
            max_level,
            log,
            now_us,
        }
        .leak_into_prefix()
    })
}

extern "C" fn max_level() -> LogLevel {
    match LevelFilter::current() {
        LevelFilter::OFF => LogLevel::OFF,
        LevelFilter::ERROR => LogLevel::ERROR,
        LevelFilter::WARN => LogLevel::WARN,
        LevelFilter::INFO => LogLevel::INFO,
        LevelFilter::DEBUG => LogLevel::DEBUG,
        _ => LogLevel::TRACE,
    }
}

/// Re-emits a plugin's event under the target `vcon_plugin`, with the plugin's own module path
/// as a field (a `tracing` target must be `'static`).
extern "C" fn log(level: LogLevel, target: RStr<'_>, message: RStr<'_>, fields: RStr<'_>) {
    // An unwinding panic cannot leave an `extern "C"` function; a logging bug must not abort.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let (target, message, fields) = (target.as_str(), message.as_str(), fields.as_str());
        macro_rules! emit {
            ($level:expr) => {
                if fields.is_empty() {
                    tracing::event!(target: "vcon_plugin", $level, plugin_target = target, "{message}")
                } else {
                    tracing::event!(target: "vcon_plugin", $level, plugin_target = target, fields, "{message}")
                }
            };
        }
        match level {
            LogLevel::ERROR => emit!(tracing::Level::ERROR),
            LogLevel::WARN => emit!(tracing::Level::WARN),
            LogLevel::INFO => emit!(tracing::Level::INFO),
            LogLevel::DEBUG => emit!(tracing::Level::DEBUG),
            LogLevel::OFF => {}
            _ => emit!(tracing::Level::TRACE),
        }
    }));
}

extern "C" fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
