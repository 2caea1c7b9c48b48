//! `vcon-host ingest PATH...`: validate documents and hand them to the broker, as `POST /vcon`
//! does, without a running API.
//!
//! Directories are walked for `*.json` (including `*.vcon.json`). Valid documents are stored
//! in the hot store and pushed to the ingress lists in transactions of a few hundred; invalid
//! ones are refused, with the file and the reason, and nothing of them is stored.
//! Documents are stored as `POST /vcon` stores them: without the whitespace between their
//! tokens unless `host.keep_whitespace` is set.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::broker::{now_us, Broker, HotVcon};
use crate::stored_form::stored_form;

/// Documents per broker transaction: large enough to amortise the commit, small enough that a
/// crash loses little progress (nothing acknowledged is lost either way).
const BATCH: usize = 256;

/// The outcome of an ingest run.
#[derive(Debug, Default)]
pub struct IngestSummary {
    /// Documents stored and queued.
    pub accepted: usize,
    /// Documents refused: the file and why.
    pub refused: Vec<(PathBuf, String)>,
}

/// Every `.json` file under the given paths, sorted for a reproducible order.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    Ok(())
}

/// Validates and queues every file onto `lists`, with the hot copy's time to live `ttl`, each in
/// its stored form ([`stored_form`]: without the whitespace between tokens unless
/// `keep_whitespace`), as `POST /vcon` stores it.
pub fn ingest(
    broker: &dyn Broker,
    files: &[PathBuf],
    lists: &[String],
    ttl: Option<std::time::Duration>,
    keep_whitespace: bool,
    progress: bool,
) -> Result<IngestSummary> {
    let bar = if progress {
        let bar = ProgressBar::new(files.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut summary = IngestSummary::default();
    let mut batch: Vec<HotVcon> = Vec::with_capacity(BATCH);
    for file in files {
        match std::fs::read(file) {
            Err(err) => summary
                .refused
                .push((file.clone(), format!("cannot read: {err}"))),
            Ok(bytes) => match HotVcon::from_json(bytes.into(), now_us()) {
                Ok(mut vcon) => {
                    vcon.json = stored_form(vcon.json, keep_whitespace);
                    batch.push(vcon);
                }
                Err(err) => summary.refused.push((file.clone(), err.to_string())),
            },
        }
        if batch.len() == BATCH {
            broker.ingest(&batch, lists, ttl)?;
            summary.accepted += batch.len();
            batch.clear();
        }
        bar.inc(1);
    }
    if !batch.is_empty() {
        broker.ingest(&batch, lists, ttl)?;
        summary.accepted += batch.len();
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// Prints the summary; answers whether every document was accepted.
pub fn report(summary: &IngestSummary, lists: &[String], out: &mut dyn Write) -> Result<bool> {
    for (file, reason) in &summary.refused {
        writeln!(out, "refused {}: {reason}", file.display())?;
    }
    writeln!(
        out,
        "accepted {}, refused {} (queued on {})",
        summary.accepted,
        summary.refused.len(),
        lists.join(", ")
    )?;
    Ok(summary.refused.is_empty())
}

/// Where `ingest --url` sends documents, and with which key.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// The API's base URL, with its root path if it has one (`http://127.0.0.1:8000/api`).
    pub url: String,
    /// The API key, if the host wants one.
    pub token: Option<String>,
    /// The header carrying it (`x-conserver-api-token`).
    pub header_name: String,
}

/// Sends every file to a running host's `POST /vcon` (one request each, as any client would),
/// queued on `lists`. A document the host refuses is reported with its answer; an unreachable
/// host or a refused key stops the run (nothing more could be accepted).
pub fn ingest_http(
    target: &HttpTarget,
    files: &[PathBuf],
    lists: &[String],
    progress: bool,
) -> Result<IngestSummary> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for list in lists {
        query.append_pair("ingress_lists", list);
    }
    let query = query.finish();
    let endpoint = format!(
        "{}/vcon{}{query}",
        target.url.trim_end_matches('/'),
        if query.is_empty() { "" } else { "?" }
    );
    let bar = if progress {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    let mut summary = IngestSummary::default();
    for file in files {
        bar.inc(1);
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(err) => {
                summary
                    .refused
                    .push((file.clone(), format!("cannot read: {err}")));
                continue;
            }
        };
        let mut request = agent
            .post(&endpoint)
            .header("content-type", "application/json");
        if let Some(token) = &target.token {
            request = request.header(target.header_name.as_str(), token.as_str());
        }
        let mut response = request
            .send(&bytes[..])
            .map_err(|err| anyhow::anyhow!("cannot reach {}: {err}", target.url))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => summary.accepted += 1,
            401 | 403 => bail!(
                "{} refused the API key ({status}): give it with --token or CONSERVER_API_TOKEN",
                target.url
            ),
            _ => {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                summary
                    .refused
                    .push((file.clone(), format!("HTTP {status}: {body}")));
            }
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}
