//! What every command needs from a config file: the loaded config, the plugin search path and
//! the broker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use host_config::{BrokerUrl, Config};
use plugin_loader::SearchPath;

use crate::broker::{Broker, RedisBroker, SqliteBroker};

/// The config file used when `--config` is not given: `CONSERVER_CONFIG_FILE` (the Python
/// server's variable), else `./config.yml`.
pub fn default_config_path() -> PathBuf {
    std::env::var_os("CONSERVER_CONFIG_FILE")
        .map_or_else(|| PathBuf::from("config.yml"), PathBuf::from)
}

/// Loads and validates a config, printing its warnings to stderr.
pub fn load_config(path: &Path) -> Result<Config> {
    match host_config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
                eprintln!("warning: {warning}");
            }
            Ok(loaded.config)
        }
        Err(errors) => Err(anyhow!("{errors}")),
    }
}

/// The plugin search path: `--plugin-dir`, then `host.plugin_dirs`, then `VCON_PLUGIN_PATH`,
/// then the build output beside the binary.
pub fn search_path(cli_dirs: &[PathBuf], config: &Config) -> SearchPath {
    let mut dirs = cli_dirs.to_vec();
    dirs.extend(config.host.plugin_dirs.iter().cloned());
    crate::plugin_paths::search_path(&dirs)
}

/// Opens the broker the config names, as a client (not the run lock).
pub fn open_broker(config: &Config) -> Result<Arc<dyn Broker>> {
    open_broker_with(config, false)
}

/// Opens the broker; `run` takes the embedded broker's exclusive run lock, or starts the Redis
/// broker's heartbeat (the sign other hosts read before taking back this host's claims).
pub fn open_broker_with(config: &Config, run: bool) -> Result<Arc<dyn Broker>> {
    match &config.host.broker {
        BrokerUrl::Sqlite(path) => {
            let broker = if run {
                SqliteBroker::open_for_run(path)
            } else {
                SqliteBroker::open(path)
            }
            .with_context(|| format!("opening the embedded broker {}", path.display()))?;
            Ok(Arc::new(broker))
        }
        BrokerUrl::Redis(url) => {
            let broker = if run {
                RedisBroker::open_for_run(url)
            } else {
                RedisBroker::open(url)
            }
            // The config's Display of the broker hides the URL's password.
            .with_context(|| format!("opening the Redis broker {}", config.host.broker))?;
            Ok(Arc::new(broker))
        }
    }
}
