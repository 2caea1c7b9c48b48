//! `vcon-host get` and `vcon-host delete`: one vCon, by uuid, from the hot store and the
//! storages (or one storage).

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::broker::Broker;
use crate::pipeline::Pipeline;

/// Refuses anything that is not a UUID before it reaches a path, a key or a query.
pub fn canonical_uuid(text: &str) -> Result<String> {
    let parsed =
        uuid::Uuid::try_parse(text).map_err(|err| anyhow!("`{text}` is not a UUID: {err}"))?;
    Ok(parsed.hyphenated().to_string())
}

/// Prints a vCon's JSON: from `storage` only, or from the hot store, then every storage that
/// can read, in config order. Answers whether it was found.
pub fn get(
    broker: &dyn Broker,
    pipeline: &Pipeline,
    uuid: &str,
    storage: Option<&str>,
    out: &mut dyn Write,
) -> Result<bool> {
    let uuid = canonical_uuid(uuid)?;
    let found = match storage {
        Some(name) => {
            let handle = pipeline
                .storages
                .get(name)
                .ok_or_else(|| unknown_storage(pipeline, name))?;
            handle
                .with_permit(|s| s.get(&uuid))
                .map_err(|e| anyhow!("storage {name}: {e}"))?
        }
        None => match broker.get_vcons(&[&uuid])?.pop().flatten() {
            Some(hot) => Some(hot.json.to_vec()),
            None => pipeline
                .readable_storages()
                .find_map(|s| s.with_permit(|i| i.get(&uuid)).ok().flatten()),
        },
    };
    match found {
        Some(bytes) => {
            out.write_all(&bytes)?;
            writeln!(out)?;
            Ok(true)
        }
        None => {
            eprintln!(
                "vCon {uuid} not found {}",
                storage.map_or("in the hot store or any storage".to_owned(), |s| format!(
                    "in storage {s}"
                ))
            );
            Ok(false)
        }
    }
}

/// Deletes a vCon from the hot store and every storage that can delete (or from `storage`
/// only). Answers whether anything was removed.
pub fn delete(
    broker: &dyn Broker,
    pipeline: &Pipeline,
    uuid: &str,
    storage: Option<&str>,
    out: &mut dyn Write,
) -> Result<bool> {
    let uuid = canonical_uuid(uuid)?;
    let mut removed = false;
    if storage.is_none() && broker.forget(&uuid)? {
        writeln!(out, "deleted {uuid} from the hot store")?;
        removed = true;
    }
    let targets: Vec<_> = match storage {
        Some(name) => vec![pipeline
            .storages
            .get(name)
            .ok_or_else(|| unknown_storage(pipeline, name))?],
        None => pipeline.storages.iter().collect(),
    };
    for handle in targets {
        if !handle
            .instance()
            .capabilities()
            .contains(plugin_loader::Capabilities::DELETE)
        {
            if storage.is_some() {
                bail!("storage {} cannot delete", handle.name());
            }
            continue;
        }
        match handle.with_permit(|s| s.delete(&uuid)) {
            Ok(true) => {
                writeln!(out, "deleted {uuid} from storage {}", handle.name())?;
                removed = true;
            }
            Ok(false) => {}
            Err(err) => bail!("storage {}: {err}", handle.name()),
        }
    }
    if !removed {
        eprintln!("vCon {uuid} not found");
    }
    Ok(removed)
}

pub(crate) fn unknown_storage(pipeline: &Pipeline, name: &str) -> anyhow::Error {
    let names: Vec<&str> = pipeline.storages.iter().map(|s| s.name()).collect();
    anyhow!(
        "no storage named {name} in the config (storages: {})",
        names.join(", ")
    )
}
