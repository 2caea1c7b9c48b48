//! Services the host lends to a plugin: logging and the clock.

use abi_stable::std_types::RStr;
use abi_stable::StableAbi;

/// A log level, as an open `u8` so a newer host may add levels.
///
/// The numbering follows `tracing` (lower is more severe) so the SDK's bridge is a table lookup.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Nothing is logged: the plugin may skip formatting entirely.
    pub const OFF: Self = Self(0);
    /// Something failed.
    pub const ERROR: Self = Self(1);
    /// Something looks wrong but work goes on.
    pub const WARN: Self = Self(2);
    /// Lifecycle events an operator wants by default.
    pub const INFO: Self = Self(3);
    /// Detail for diagnosing a problem.
    pub const DEBUG: Self = Self(4);
    /// Everything, including per-call detail.
    pub const TRACE: Self = Self(5);
}

/// The table of host callbacks a plugin receives in `open`.
///
/// Each plugin links its own copy of std and `tracing`, so without this its log events would go
/// to its own (empty) global dispatcher and vanish. The SDK installs a `tracing` subscriber in the
/// plugin that forwards every event through [`HostCallbacks::log`].
///
/// A prefix type: a newer host may append callbacks and an older plugin simply does not see
/// them; a newer plugin must check a callback is present before using it.
#[repr(C)]
#[derive(StableAbi, Debug)]
#[sabi(kind(Prefix(prefix_ref = HostCallbacksRef)))]
#[sabi(missing_field(panic))]
pub struct HostCallbacks {
    /// The most verbose level the host will record, so a plugin can skip building events nobody
    /// reads.
    pub max_level: extern "C" fn() -> LogLevel,
    /// Records one event: `target` is the plugin's module path, `fields_json` a JSON object of the
    /// event's structured fields (may be empty). Must not unwind.
    pub log:
        extern "C" fn(level: LogLevel, target: RStr<'_>, message: RStr<'_>, fields_json: RStr<'_>),
    /// The host's wall clock in microseconds since the Unix epoch (tests may freeze it).
    #[sabi(last_prefix_field)]
    pub now_us: extern "C" fn() -> i64,
}

impl std::fmt::Debug for HostCallbacksRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCallbacksRef").finish_non_exhaustive()
    }
}
