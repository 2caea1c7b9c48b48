//! Where the built plugins are, and a log capture for the tests that need one.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

fn dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")).join(default),
        PathBuf::from,
    )
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask test` (or `cargo xtask build-plugins`) first",
        path.display()
    );
    path
}

/// A first-party plugin file.
pub(crate) fn plugin(name: &str) -> PathBuf {
    existing(dir("VCON_PLUGIN_DIR", "plugins").join(format!("libvcon_storage_{name}.so")))
}

/// A test fixture plugin file (`misbehaving`, `foreign_abi_v2`, ...).
pub(crate) fn test_plugin(name: &str) -> PathBuf {
    existing(dir("VCON_TEST_PLUGIN_DIR", "test-plugins").join(format!("libtest_plugin_{name}.so")))
}

/// Everything logged through `tracing` in this test binary.
pub(crate) fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&buffer));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
}

/// Installs the capturing subscriber (idempotent).
pub(crate) fn capture_logs() {
    let _ = log_buffer();
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
