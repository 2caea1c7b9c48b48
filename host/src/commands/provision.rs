//! `vcon-host provision`: create or migrate each storage's schema, bucket or directory.

use std::io::{BufRead, Write};

use anyhow::{bail, Result};
use plugin_loader::Capabilities;

use crate::pipeline::Pipeline;

/// Provisions `storage` (or every storage that can), asking before a `recreate` unless `yes`.
pub fn provision(
    pipeline: &Pipeline,
    storage: Option<&str>,
    recreate: bool,
    yes: bool,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<bool> {
    let targets: Vec<_> = match storage {
        Some(name) => vec![pipeline
            .storages
            .get(name)
            .ok_or_else(|| super::vcons::unknown_storage(pipeline, name))?],
        None => pipeline.storages.iter().collect(),
    };
    if recreate && !yes {
        let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
        write!(
            out,
            "recreate DROPS everything stored in {}. Type `yes` to go on: ",
            names.join(", ")
        )?;
        out.flush()?;
        let mut answer = String::new();
        input.read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("not confirmed: nothing was changed");
        }
    }
    let mut all_ok = true;
    for handle in targets {
        if !handle
            .instance()
            .capabilities()
            .contains(Capabilities::PROVISION)
        {
            if storage.is_some() {
                bail!(
                    "storage {} has nothing to provision (its plugin does not declare provision)",
                    handle.name()
                );
            }
            writeln!(out, "{}: nothing to provision", handle.name())?;
            continue;
        }
        match handle.with_permit(|s| s.provision(recreate)) {
            Ok(report) => writeln!(out, "{}: {report}", handle.name())?,
            Err(err) => {
                all_ok = false;
                writeln!(out, "{}: provision failed: {err}", handle.name())?;
            }
        }
    }
    Ok(all_ok)
}
