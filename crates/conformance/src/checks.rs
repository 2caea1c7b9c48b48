//! The checks, one function each. A check answers `Ok(Passed)`, `Ok(Skipped(why))` or
//! `Err(what went wrong)`.
//!
//! Capability honesty runs both ways: a declared capability is exercised by its check, and an
//! undeclared one must answer `UNSUPPORTED` when called directly through the raw trait object
//! (bypassing the loader's own refusal).

use std::time::Instant;

use plugin_loader::{CallError, Capabilities, ErrorKind, StorageInstance};

use crate::documents::{fresh_uuid, Document};
use crate::{CheckOutcome, CheckResult};

/// What every check gets.
#[derive(Debug)]
pub struct Context<'a> {
    /// The opened storage.
    pub storage: &'a StorageInstance,
    /// Whether checks that remove everything may run.
    pub destructive: bool,
    /// The size of the largest document to try.
    pub large_bytes: usize,
}

/// A check's name and body.
pub type Check = (
    &'static str,
    fn(&Context<'_>) -> Result<CheckOutcome, String>,
);

/// Every check, in the order they run (destructive ones last).
pub const ALL: &[Check] = &[
    ("save_then_get_round_trips", save_then_get_round_trips),
    ("get_missing_uuid_is_none", get_missing_uuid_is_none),
    ("save_is_an_upsert", save_is_an_upsert),
    ("delete_semantics", delete_semantics),
    ("exists_semantics", exists_semantics),
    ("batch_semantics", batch_semantics),
    (
        "list_pages_through_everything",
        list_pages_through_everything,
    ),
    ("count_follows_saves", count_follows_saves),
    ("status_is_a_json_object", status_is_a_json_object),
    ("provision_is_repeatable", provision_is_repeatable),
    (
        "awkward_text_is_stored_as_text",
        awkward_text_is_stored_as_text,
    ),
    ("concurrent_saves", concurrent_saves),
    ("large_call_270kb", large_call),
    ("large_document_10mb", large_document),
    (
        "undeclared_operations_are_unsupported",
        undeclared_operations_are_unsupported,
    ),
    ("clear_removes_everything", clear_removes_everything),
];

/// Runs one check, timing it and turning a panic in the check itself into a failure.
pub fn run_one(check: &Check, context: &Context<'_>) -> CheckResult {
    let (name, body) = *check;
    let started = Instant::now();
    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(context))) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(message)) => CheckOutcome::Failed(message),
        Err(_) => CheckOutcome::Failed("the check panicked (a bug in the suite)".to_owned()),
    };
    CheckResult {
        name,
        outcome,
        duration: started.elapsed(),
    }
}

fn has(context: &Context<'_>, capability: Capabilities) -> bool {
    context.storage.capabilities().contains(capability)
}

fn skip(capability: &str) -> Result<CheckOutcome, String> {
    Ok(CheckOutcome::Skipped(format!(
        "does not declare {capability}"
    )))
}

fn call<T>(what: &str, result: Result<T, CallError>) -> Result<T, String> {
    result.map_err(|err| format!("{what} failed: {err}"))
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

/// What a storage gave back must be the same JSON document (key order and whitespace may
/// differ: a JSONB column does not keep them).
fn same_json(doc: &Document, stored: Option<Vec<u8>>) -> Result<(), String> {
    let stored = stored.ok_or_else(|| format!("get({}) answered None after a save", doc.uuid))?;
    let value: serde_json::Value = serde_json::from_slice(&stored)
        .map_err(|err| format!("get({}) answered bytes that are not JSON: {err}", doc.uuid))?;
    ensure(value == doc.value(), || {
        format!(
            "get({}) answered a different document ({} bytes, saved {})",
            doc.uuid,
            stored.len(),
            doc.json.len()
        )
    })
}

fn save_then_get_round_trips(context: &Context<'_>) -> Result<CheckOutcome, String> {
    let doc = Document::small(1);
    call("save", context.storage.save(&doc.record()))?;
    if !has(context, Capabilities::GET) {
        return skip("get (saved, but cannot read back)");
    }
    same_json(&doc, call("get", context.storage.get(&doc.uuid))?)?;
    Ok(CheckOutcome::Passed)
}

fn get_missing_uuid_is_none(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::GET) {
        return skip("get");
    }
    let uuid = fresh_uuid();
    match context.storage.get(&uuid) {
        Ok(None) => Ok(CheckOutcome::Passed),
        Ok(Some(_)) => Err(format!(
            "get({uuid}) of a uuid never saved answered a document"
        )),
        Err(err) => Err(format!(
            "get of a uuid never saved must answer None, not an error: {err}"
        )),
    }
}

fn save_is_an_upsert(context: &Context<'_>) -> Result<CheckOutcome, String> {
    let first = Document::small(1);
    let second = Document::with_uuid(&first.uuid, 2, 0, Some("revised"));
    let count_before = has(context, Capabilities::COUNT)
        .then(|| call("count", context.storage.count()))
        .transpose()?;
    call("first save", context.storage.save(&first.record()))?;
    call(
        "second save of the same uuid",
        context.storage.save(&second.record()),
    )?;
    call(
        "third save, identical",
        context.storage.save(&second.record()),
    )?;
    if let Some(before) = count_before {
        let after = call("count", context.storage.count())?;
        ensure(after == before + 1, || {
            format!(
                "three saves of one uuid changed count by {}, expected 1",
                after as i64 - before as i64
            )
        })?;
    }
    if has(context, Capabilities::GET) {
        same_json(&second, call("get", context.storage.get(&second.uuid))?)
            .map_err(|e| format!("after re-saving, {e}"))?;
    }
    Ok(CheckOutcome::Passed)
}

fn delete_semantics(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::DELETE) {
        return skip("delete");
    }
    let doc = Document::small(3);
    call("save", context.storage.save(&doc.record()))?;
    let removed = call("delete", context.storage.delete(&doc.uuid))?;
    ensure(removed, || {
        "delete of a stored vCon answered false".to_owned()
    })?;
    if has(context, Capabilities::GET) {
        let after = call("get after delete", context.storage.get(&doc.uuid))?;
        ensure(after.is_none(), || {
            "get after delete still answered the document".to_owned()
        })?;
    }
    let again = call("second delete", context.storage.delete(&doc.uuid))?;
    ensure(!again, || {
        "delete of a vCon already deleted answered true".to_owned()
    })?;
    let never = call(
        "delete of a uuid never saved",
        context.storage.delete(&fresh_uuid()),
    )?;
    ensure(!never, || {
        "delete of a uuid never saved answered true".to_owned()
    })?;
    Ok(CheckOutcome::Passed)
}

fn exists_semantics(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::EXISTS) {
        return skip("exists");
    }
    let doc = Document::small(4);
    ensure(!call("exists", context.storage.exists(&doc.uuid))?, || {
        "exists answered true before any save".to_owned()
    })?;
    call("save", context.storage.save(&doc.record()))?;
    ensure(call("exists", context.storage.exists(&doc.uuid))?, || {
        "exists answered false after a save".to_owned()
    })?;
    if has(context, Capabilities::DELETE) {
        call("delete", context.storage.delete(&doc.uuid))?;
        ensure(!call("exists", context.storage.exists(&doc.uuid))?, || {
            "exists answered true after delete".to_owned()
        })?;
    }
    Ok(CheckOutcome::Passed)
}

fn batch_semantics(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::BATCH) {
        return skip("batch");
    }
    let docs: Vec<Document> = (0..50).map(Document::small).collect();
    let records: Vec<_> = docs.iter().map(Document::record).collect();
    let results = call("save_many", context.storage.save_many(&records))?;
    ensure(results.len() == docs.len(), || {
        format!(
            "save_many of {} answered {} results",
            docs.len(),
            results.len()
        )
    })?;
    for (doc, result) in docs.iter().zip(&results) {
        result
            .as_ref()
            .map_err(|err| format!("save_many failed for {}: {err}", doc.uuid))?;
    }
    // Saving the same batch again is fine (upserts).
    call("save_many again", context.storage.save_many(&records))?;
    let missing = fresh_uuid();
    let mut uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    uuids.insert(10, &missing);
    if has(context, Capabilities::GET) {
        let got = call("get_many", context.storage.get_many(&uuids))?;
        ensure(got.len() == uuids.len(), || {
            format!("get_many of {} answered {}", uuids.len(), got.len())
        })?;
        for (i, answer) in got.into_iter().enumerate() {
            match i.cmp(&10) {
                std::cmp::Ordering::Equal => ensure(answer.is_none(), || {
                    "get_many answered a document for a uuid never saved".to_owned()
                })?,
                std::cmp::Ordering::Less => {
                    same_json(&docs[i], answer).map_err(|e| format!("get_many answer {i}: {e}"))?
                }
                std::cmp::Ordering::Greater => same_json(&docs[i - 1], answer)
                    .map_err(|e| format!("get_many answer {i}: {e}"))?,
            }
        }
    }
    if has(context, Capabilities::DELETE) {
        let removed = call("delete_many", context.storage.delete_many(&uuids))?;
        ensure(removed.len() == uuids.len(), || {
            format!("delete_many of {} answered {}", uuids.len(), removed.len())
        })?;
        ensure(!removed[10], || {
            "delete_many answered true for a uuid never saved".to_owned()
        })?;
        ensure(removed.iter().filter(|r| **r).count() == docs.len(), || {
            "delete_many did not remove every saved vCon".to_owned()
        })?;
    }
    Ok(CheckOutcome::Passed)
}

fn list_pages_through_everything(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::LIST) {
        return skip("list");
    }
    let docs: Vec<Document> = (0..7).map(Document::small).collect();
    for doc in &docs {
        call("save", context.storage.save(&doc.record()))?;
    }
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    for _page in 0..100_000 {
        let request = serde_json::json!({ "limit": 3, "after": after });
        let page = call("list", context.storage.list(&request))?;
        let uuids = page["uuids"]
            .as_array()
            .ok_or_else(|| format!("list answered no `uuids` array: {page}"))?;
        ensure(uuids.len() <= 3, || {
            format!("list with limit 3 answered {}", uuids.len())
        })?;
        for uuid in uuids {
            let uuid = uuid.as_str().unwrap_or_default().to_owned();
            ensure(seen.insert(uuid.clone()), || {
                format!("list answered {uuid} twice")
            })?;
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    for doc in &docs {
        ensure(seen.contains(&doc.uuid), || {
            format!("paging through list never answered {}", doc.uuid)
        })?;
    }
    Ok(CheckOutcome::Passed)
}

fn count_follows_saves(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::COUNT) {
        return skip("count");
    }
    let before = call("count", context.storage.count())?;
    let docs: Vec<Document> = (0..5).map(Document::small).collect();
    for doc in &docs {
        call("save", context.storage.save(&doc.record()))?;
    }
    let after = call("count", context.storage.count())?;
    ensure(after == before + 5, || {
        format!("count went from {before} to {after} after 5 new saves")
    })?;
    Ok(CheckOutcome::Passed)
}

fn status_is_a_json_object(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::STATUS) {
        return skip("status");
    }
    let status = call("status", context.storage.status())?;
    ensure(status.is_object(), || {
        format!("status answered {status}, not a JSON object")
    })?;
    Ok(CheckOutcome::Passed)
}

fn provision_is_repeatable(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::PROVISION) {
        return skip("provision");
    }
    let doc = Document::small(5);
    call("save", context.storage.save(&doc.record()))?;
    call("provision", context.storage.provision(false))?;
    call("provision again", context.storage.provision(false))?;
    if has(context, Capabilities::GET) {
        same_json(&doc, call("get", context.storage.get(&doc.uuid))?)
            .map_err(|e| format!("provision without recreate lost data: {e}"))?;
    }
    if context.destructive {
        call("provision with recreate", context.storage.provision(true))?;
        if has(context, Capabilities::GET) {
            let after = call("get", context.storage.get(&doc.uuid))?;
            ensure(after.is_none(), || {
                "provision {recreate} kept old data".to_owned()
            })?;
        }
    }
    Ok(CheckOutcome::Passed)
}

fn awkward_text_is_stored_as_text(context: &Context<'_>) -> Result<CheckOutcome, String> {
    let subject = "'; DROP TABLE vcons; -- \"quoted\" \\ back ünïcödé 😀 %s {}";
    let doc = Document::with_uuid(&fresh_uuid(), 6, 0, Some(subject));
    call("save", context.storage.save(&doc.record()))?;
    if has(context, Capabilities::GET) {
        same_json(&doc, call("get", context.storage.get(&doc.uuid))?)?;
        // The storage still works for other documents (nothing was dropped).
        let other = Document::small(7);
        call(
            "save after the awkward one",
            context.storage.save(&other.record()),
        )?;
        same_json(&other, call("get", context.storage.get(&other.uuid))?)?;
    }
    Ok(CheckOutcome::Passed)
}

fn concurrent_saves(context: &Context<'_>) -> Result<CheckOutcome, String> {
    const THREADS: usize = 8;
    const EACH: u32 = 25;
    let docs: Vec<Vec<Document>> = (0..THREADS)
        .map(|_| (0..EACH).map(Document::small).collect())
        .collect();
    let errors: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = docs
            .iter()
            .map(|batch| {
                scope.spawn(move || {
                    batch
                        .iter()
                        .filter_map(|doc| context.storage.save(&doc.record()).err())
                        .map(|err| err.to_string())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["a saving thread panicked".into()])
            })
            .collect()
    });
    // Retryable contention (a busy database) is allowed; anything else is a failure.
    if let Some(err) = errors.iter().find(|e| !e.starts_with("unavailable")) {
        return Err(format!(
            "{} of {} concurrent saves failed, e.g. {err}",
            errors.len(),
            THREADS * EACH as usize
        ));
    }
    if has(context, Capabilities::GET) && errors.is_empty() {
        for doc in docs.iter().flatten() {
            same_json(doc, call("get", context.storage.get(&doc.uuid))?)?;
        }
    }
    Ok(if errors.is_empty() {
        CheckOutcome::Passed
    } else {
        CheckOutcome::Skipped(format!(
            "{} saves were refused as unavailable under contention (retryable)",
            errors.len()
        ))
    })
}

fn large(context: &Context<'_>, bytes: usize) -> Result<CheckOutcome, String> {
    let doc = Document::sized(bytes);
    match context.storage.save(&doc.record()) {
        Ok(()) => {}
        Err(err) if err.kind == ErrorKind::INVALID_INPUT => {
            // A documented size limit is an honest answer, if it says so.
            return if err.message.contains("size") || err.message.contains("large") {
                Ok(CheckOutcome::Skipped(format!(
                    "refused a {} byte document with a size limit: {}",
                    doc.json.len(),
                    err.message
                )))
            } else {
                Err(format!(
                    "refused a {} byte document without naming a size limit: {err}",
                    doc.json.len()
                ))
            };
        }
        Err(err) => {
            return Err(format!(
                "save of a {} byte document failed: {err}",
                doc.json.len()
            ))
        }
    }
    if has(context, Capabilities::GET) {
        same_json(&doc, call("get", context.storage.get(&doc.uuid))?)?;
    }
    Ok(CheckOutcome::Passed)
}

fn large_call(context: &Context<'_>) -> Result<CheckOutcome, String> {
    large(context, 270_000)
}

fn large_document(context: &Context<'_>) -> Result<CheckOutcome, String> {
    large(context, context.large_bytes)
}

fn undeclared_operations_are_unsupported(context: &Context<'_>) -> Result<CheckOutcome, String> {
    use plugin_abi::__private::{RResult, RSlice, RStr};
    /// The error kind an answer carries, if any.
    fn kind<T>(answer: RResult<T, plugin_abi::PluginError>) -> Option<ErrorKind> {
        answer.into_result().err().map(|err| err.kind)
    }
    let raw = context.storage.raw();
    let caps = context.storage.capabilities();
    let uuid = fresh_uuid();
    let doc = Document::small(8);
    let records = [doc.record()];
    let uuids = [RStr::from(uuid.as_str())];
    let id = || RStr::from(uuid.as_str());
    // Each probe runs only when its capability is undeclared, so a declared `clear` is never
    // called here.
    type Probe<'p> = (&'p str, Capabilities, &'p dyn Fn() -> Option<ErrorKind>);
    let probes: [Probe<'_>; 12] = [
        ("get", Capabilities::GET, &|| kind(raw.get(id()))),
        ("delete", Capabilities::DELETE, &|| kind(raw.delete(id()))),
        ("exists", Capabilities::EXISTS, &|| kind(raw.exists(id()))),
        ("save_many", Capabilities::BATCH, &|| {
            kind(raw.save_many(RSlice::from_slice(&records)))
        }),
        ("get_many", Capabilities::BATCH, &|| {
            kind(raw.get_many(RSlice::from_slice(&uuids)))
        }),
        ("delete_many", Capabilities::BATCH, &|| {
            kind(raw.delete_many(RSlice::from_slice(&uuids)))
        }),
        ("list", Capabilities::LIST, &|| {
            kind(raw.list(RStr::from("{}")))
        }),
        ("query", Capabilities::QUERY, &|| {
            kind(raw.query(RStr::from("{}")))
        }),
        ("count", Capabilities::COUNT, &|| kind(raw.count())),
        ("status", Capabilities::STATUS, &|| kind(raw.status())),
        ("provision", Capabilities::PROVISION, &|| {
            kind(raw.provision(RStr::from("{}")))
        }),
        ("clear", Capabilities::CLEAR, &|| kind(raw.clear())),
    ];
    let mut dishonest: Vec<&str> = probes
        .iter()
        .filter(|(_, capability, _)| !caps.contains(*capability))
        .filter(|(_, _, probe)| probe() != Some(ErrorKind::UNSUPPORTED))
        .map(|(name, _, _)| *name)
        .collect();
    let unknown = raw.call(
        RStr::from("conformance.no_such_operation"),
        RSlice::from_slice(b"{}"),
    );
    if kind(unknown) != Some(ErrorKind::UNSUPPORTED) {
        dishonest.push("call(unknown op)");
    }
    if dishonest.is_empty() {
        Ok(CheckOutcome::Passed)
    } else {
        Err(format!(
            "these operations are not declared in the capabilities but did not answer \
             UNSUPPORTED: {} (declare them, or leave the SDK's default)",
            dishonest.join(", ")
        ))
    }
}

fn clear_removes_everything(context: &Context<'_>) -> Result<CheckOutcome, String> {
    if !has(context, Capabilities::CLEAR) {
        return skip("clear");
    }
    if !context.destructive {
        return Ok(CheckOutcome::Skipped(
            "destructive: run with --destructive on a location holding nothing of value".into(),
        ));
    }
    let doc = Document::small(9);
    call("save", context.storage.save(&doc.record()))?;
    let removed = call("clear", context.storage.clear())?;
    ensure(removed >= 1, || {
        format!("clear answered {removed} removed after a save")
    })?;
    if has(context, Capabilities::COUNT) {
        let left = call("count", context.storage.count())?;
        ensure(left == 0, || format!("count answered {left} after clear"))?;
    }
    if has(context, Capabilities::GET) {
        let after = call("get", context.storage.get(&doc.uuid))?;
        ensure(after.is_none(), || {
            "get after clear still answered the document".to_owned()
        })?;
    }
    Ok(CheckOutcome::Passed)
}
