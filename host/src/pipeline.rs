//! A config compiled into what workers run: opened storages, built links, enabled chains.
//!
//! Built once at start and again on SIGHUP; workers pick up the new one between batches.

use std::sync::Arc;
use std::time::Duration;

use host_config::Config;
use plugin_loader::SearchPath;

use crate::links::{self, Link};
use crate::storages::{StorageHandle, Storages};

/// One enabled chain, ready to run.
#[derive(Debug)]
pub struct Chain {
    /// The chain's name in the config.
    pub name: String,
    /// Its links, in order, with their config names.
    pub links: Vec<(String, Box<dyn Link>)>,
    /// Its storages, written in parallel.
    pub storages: Vec<Arc<StorageHandle>>,
    /// The lists it takes work from.
    pub ingress_lists: Vec<String>,
    /// The lists it pushes finished uuids to.
    pub egress_lists: Vec<String>,
    /// The limit on each storage call.
    pub timeout: Option<Duration>,
}

/// Everything the workers need from a config.
#[derive(Debug)]
pub struct Pipeline {
    /// The config it was built from.
    pub config: Arc<Config>,
    /// Every configured storage, opened (also those no chain uses: reads fall back to them).
    pub storages: Storages,
    /// The enabled chains.
    pub chains: Vec<Chain>,
}

impl Pipeline {
    /// Opens every storage and builds every link of an enabled chain. Answers all problems at
    /// once, each naming the config line.
    pub fn build(config: Config, search: &SearchPath) -> Result<Self, Vec<String>> {
        let config = Arc::new(config);
        let storages = Storages::open(&config, search)?;
        let mut errors = Vec::new();
        let mut chains = Vec::new();
        for chain in config.chains.iter().filter(|c| c.enabled) {
            let mut built_links = Vec::new();
            for name in &chain.links {
                let Some(link) = config.links.iter().find(|l| &l.name == name) else {
                    errors.push(format!("chains.{}: link {name} is not defined", chain.name));
                    continue;
                };
                match links::build(link) {
                    Ok(built) => built_links.push((name.clone(), built)),
                    Err(err) => errors.push(format!(
                        "{}:{}: links.{name}: {err}",
                        config.file.display(),
                        link.line
                    )),
                }
            }
            let chain_storages = chain
                .storages
                .iter()
                .filter_map(|name| storages.get(name).cloned())
                .collect();
            chains.push(Chain {
                name: chain.name.clone(),
                links: built_links,
                storages: chain_storages,
                ingress_lists: chain.ingress_lists.clone(),
                egress_lists: chain.egress_lists.clone(),
                timeout: chain.timeout,
            });
        }
        if errors.is_empty() {
            Ok(Self {
                config,
                storages,
                chains,
            })
        } else {
            Err(errors)
        }
    }

    /// Every ingress list of the enabled chains, in config order (earlier lists first, as the
    /// Python server's BLPOP key order gives them priority).
    pub fn ingress_lists(&self) -> Vec<String> {
        self.chains
            .iter()
            .flat_map(|c| c.ingress_lists.iter().cloned())
            .collect()
    }

    /// The chain that takes work from `list`.
    pub fn chain_for(&self, list: &str) -> Option<&Chain> {
        self.chains
            .iter()
            .find(|c| c.ingress_lists.iter().any(|l| l == list))
    }

    /// The storages to read a vCon back from, in the order the Python server does: every
    /// configured storage that can read, in config order.
    pub fn readable_storages(&self) -> impl Iterator<Item = &Arc<StorageHandle>> {
        self.storages.iter().filter(|s| {
            s.instance()
                .capabilities()
                .contains(plugin_loader::Capabilities::GET)
        })
    }
}
