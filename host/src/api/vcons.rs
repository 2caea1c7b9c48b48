//! The vCon endpoints: create, read (one, many, listing, search), delete, external ingress.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::read_body;
use super::group_commit::Ingest;
use super::routes::Params;
use super::stager::Staging;
use super::{auth, blocking, ApiError, ApiState};
use crate::broker::{now_us, HotVcon, ListingPage};
use crate::stored_form::stored_form;

/// A vCon from the request body: validated, index fields extracted, and when `compact` in its
/// stored form ([`stored_form`], else the body's buffer as it is: a clone of `Bytes` shares
/// it). Validated before it is compacted: dropping whitespace from invalid JSON can make it look
/// valid.
fn parse_vcon(bytes: &Bytes, compact: bool) -> Result<HotVcon, ApiError> {
    let mut vcon =
        HotVcon::from_json(bytes.clone(), now_us()).map_err(|err| ApiError::invalid_vcon(&err))?;
    vcon.json = stored_form(vcon.json, !compact);
    Ok(vcon)
}

/// Bodies at least this large are validated on the blocking pool while other ingests are in
/// flight ([`validate`]); below it the hand-off costs more than the validation.
const VALIDATE_ELSEWHERE_BYTES: usize = 64 << 10;

/// Validates a posted vCon (and compacts it when `compact`, see [`parse_vcon`]). The API runs
/// on one thread ([`super::server`]), so with several clients a large document's validation
/// (cat1, 270 KB: about 130 µs in `cargo xtask bench vcon`) would hold up every other request.
/// While another ingest is in flight, a body of [`VALIDATE_ELSEWHERE_BYTES`] or more is
/// validated on the blocking pool instead, on the other core, and the API thread goes on
/// reading and answering. A lone request, or a small body, is validated inline: the hand-off to
/// another thread costs tens of microseconds where idle cores sleep, which would only add to
/// its latency.
///
/// At most one validation per other core runs elsewhere at once
/// ([`ApiState::validating_elsewhere`]); when they are all taken the API thread validates
/// this one itself, so both cores validate and neither holds a queue.
async fn validate(
    state: &ApiState,
    bytes: &Bytes,
    compact: bool,
    in_flight: &InFlight<'_>,
) -> Result<HotVcon, ApiError> {
    if bytes.len() < VALIDATE_ELSEWHERE_BYTES || in_flight.others == 0 {
        return parse_vcon(bytes, compact);
    }
    let Ok(permit) = Arc::clone(&state.validating_elsewhere).try_acquire_owned() else {
        return parse_vcon(bytes, compact);
    };
    crate::metrics::global().validated_off_thread.inc();
    let bytes = bytes.clone();
    tokio::task::spawn_blocking(move || {
        let vcon = parse_vcon(&bytes, compact);
        drop(permit);
        vcon
    })
    .await
    .map_err(|err| ApiError::internal(format!("validating the vCon failed: {err}")))?
}

/// [`validate`], and the document put in its stored form ([`stored_form`]); for a large
/// document posted alone, that and its write happen meanwhile: an embedded broker that keeps
/// large documents as files gets this one from the [`super::stager`] thread, compacted and
/// written while the API thread validates the body as posted
/// ([`crate::broker::Broker::stage_document`]), so the compaction, the file's write and its CRC
/// take the idle core instead of adding to the request (one-client cat1 p50 540–661 µs without
/// the staging, 436–477 µs with, in `cargo xtask bench api`). While other ingests are in flight
/// no core is idle, and the extra hand-off only costs: cat1 with 64 clients went from
/// 1,632–1,842 to 1,228–1,687 requests/s when every large post staged its document
/// (docs/benchmarks.md). A document found invalid leaves nothing behind: its staged file is
/// given up when the staging's result is dropped. A staging that failed leaves the write to the
/// ingest, which reports the error.
async fn validate_and_stage(
    state: &ApiState,
    bytes: &Bytes,
    keep_whitespace: bool,
    in_flight: &InFlight<'_>,
) -> Result<HotVcon, ApiError> {
    let alone = in_flight.others == 0;
    let large = bytes.len() >= VALIDATE_ELSEWHERE_BYTES;
    let staging = match &state.stager {
        Some(stager) if alone && large => Some(stager.stage(bytes.clone(), keep_whitespace)),
        _ => None,
    };
    let compact_here = !keep_whitespace && staging.is_none();
    let mut vcon = validate(state, bytes, compact_here, in_flight).await?;
    if let Some(staging) = staging {
        match staging.await {
            Some(Staging { stored, staged }) => {
                vcon.json = stored;
                vcon.staged = staged.map(Arc::new);
            }
            // The stager is gone: its work is done here.
            None => vcon.json = stored_form(vcon.json, keep_whitespace),
        }
    }
    Ok(vcon)
}

/// One ingest counted in [`ApiState::ingests_in_flight`] from its start to its answer.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// How many other ingests were in flight when this one started.
    others: usize,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let others = count.fetch_add(1, Ordering::Relaxed);
        Self { count, others }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The canonical form of a uuid from the path or query (`422` when it is not one), so nothing
/// else ever reaches a key, a path or a query.
pub(crate) fn uuid_param(place: &str, name: &str, text: &str) -> Result<String, ApiError> {
    uuid::Uuid::try_parse(text)
        .map(|u| u.hyphenated().to_string())
        .map_err(|err| ApiError::bad_param(place, name, format!("`{text}` is not a UUID: {err}")))
}

/// A JSON answer from bytes already serialised (a stored vCon is answered as stored).
fn json_bytes(status: StatusCode, bytes: impl Into<Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        bytes.into(),
    )
        .into_response()
}

/// Creates a vCon: stores it in the hot store (time to live `host.hot_ttl`), lists it, indexes
/// its parties, and queues it on every `ingress_lists` given, in one broker transaction. It is
/// stored, and answered, without the whitespace between its tokens unless
/// `host.keep_whitespace` is set ([`stored_form`]).
#[utoipa::path(
    post, path = "/vcon", tag = "vcons",
    params(("ingress_lists" = Option<Vec<String>>, Query, explode, description = "Lists to queue the vCon on (repeatable)")),
    request_body(content = super::openapi::VconDocument, description = "A vCon"),
    responses(
        (status = 201, description = "Stored; the document as stored", body = super::openapi::VconDocument),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 413, description = "Body over host.max_body_bytes", body = super::openapi::ErrorBody),
        (status = 422, description = "Malformed JSON or an invalid vCon", body = super::openapi::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let lists: Vec<String> = params
        .all("ingress_lists")
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let in_flight = InFlight::enter(&state.ingests_in_flight);
    let config = state.config();
    let bytes = read_body(body, config.host.max_body_bytes).await?;
    let vcon = validate_and_stage(&state, &bytes, config.host.keep_whitespace, &in_flight).await?;
    let stored = vcon.json.clone();
    let ingest = Ingest {
        vcon,
        lists,
        ttl: config.host.hot_ttl,
    };
    state.ingests.ingest(&state.broker, ingest).await?;
    Ok(json_bytes(StatusCode::CREATED, stored))
}

/// Takes a vCon from a partner: the key must be one of `ingress_auth[ingress_list]` (checked
/// before the body is read), then it is stored and queued on that list.
#[utoipa::path(
    post, path = "/vcon/external-ingress", tag = "vcons",
    params(("ingress_list" = String, Query, description = "The ingress list, with keys in ingress_auth")),
    request_body(content = super::openapi::VconDocument, description = "A vCon"),
    responses(
        (status = 204, description = "Stored and queued"),
        (status = 403, description = "Missing key, list not configured, or wrong key", body = super::openapi::ErrorBody),
        (status = 413, description = "Body over host.max_body_bytes", body = super::openapi::ErrorBody),
        (status = 422, description = "Missing ingress_list, malformed JSON or an invalid vCon", body = super::openapi::ErrorBody),
    ),
    security(("ingress_key" = []))
)]
pub async fn external_ingress(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let params = Params::parse(query.as_deref());
    let list = params.required("ingress_list")?.to_owned();
    let config = state.config();
    auth::check_ingress_key(
        &headers,
        &config.host.header_name,
        &config.ingress_auth,
        &list,
    )?;
    let in_flight = InFlight::enter(&state.ingests_in_flight);
    let bytes = read_body(body, config.host.max_body_bytes).await?;
    let vcon = validate_and_stage(&state, &bytes, config.host.keep_whitespace, &in_flight).await?;
    let ingest = Ingest {
        vcon,
        lists: vec![list],
        ttl: config.host.hot_ttl,
    };
    state.ingests.ingest(&state.broker, ingest).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Finds vCons: the hot store first, then the storages in config order for the misses (a hit
/// is put back in the hot store, as the Python server does). `None` for each one found nowhere.
fn find(state: &ApiState, uuids: &[String]) -> Result<Vec<Option<Bytes>>, ApiError> {
    let keys: Vec<&str> = uuids.iter().map(String::as_str).collect();
    let hot = state.broker.get_vcons(&keys)?;
    let pipeline = state.pipeline();
    let mut recached = Vec::new();
    let found = hot
        .into_iter()
        .zip(uuids)
        .map(|(hit, uuid)| match hit {
            Some(vcon) => Some(vcon.json),
            None => crate::worker::read_back(&pipeline, uuid).map(|vcon| {
                let json = vcon.json.clone();
                recached.push(vcon);
                json
            }),
        })
        .collect();
    if !recached.is_empty() {
        if let Err(err) = state
            .broker
            .ingest(&recached, &[], pipeline.config.host.hot_ttl)
        {
            tracing::warn!("could not put vCons read from storage back in the hot store: {err}");
        }
    }
    Ok(found)
}

/// One vCon: from the hot store, else the first storage (in config order) that has it.
#[utoipa::path(
    get, path = "/vcon/{uuid}", tag = "vcons",
    params(("uuid" = String, Path, description = "The vCon's uuid")),
    responses(
        (status = 200, description = "The vCon", body = super::openapi::VconDocument),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 404, description = "In no store", body = super::openapi::ErrorBody),
        (status = 422, description = "Not a UUID", body = super::openapi::ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let uuid = uuid_param("path", "uuid", &uuid)?;
    let found = blocking(move || find(&state, &[uuid])).await?;
    match found.into_iter().next().flatten() {
        Some(json) => Ok(json_bytes(StatusCode::OK, Bytes::from_owner(json))),
        None => Err(ApiError::not_found("vCon not found")),
    }
}

/// Many vCons, in the order asked, `null` for each one found nowhere.
#[utoipa::path(
    get, path = "/vcons", tag = "vcons",
    params(("vcon_uuids" = Vec<String>, Query, explode, description = "uuids (repeatable)")),
    responses(
        (status = 200, description = "The vCons, null for misses", body = Vec<Option<super::openapi::VconDocument>>),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "No uuid given, or one is not a UUID", body = super::openapi::ErrorBody),
    )
)]
pub async fn get_many(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let asked = params.all("vcon_uuids");
    if asked.is_empty() {
        // The Python server answers 500 here; a missing parameter is the client's to fix.
        return Err(ApiError::bad_param("query", "vcon_uuids", "Field required"));
    }
    let uuids = asked
        .iter()
        .map(|u| uuid_param("query", "vcon_uuids", u))
        .collect::<Result<Vec<_>, _>>()?;
    let found = blocking(move || find(&state, &uuids)).await?;
    // The stored documents are spliced in as they are: no parse, no re-serialisation.
    let mut body =
        Vec::with_capacity(found.iter().flatten().map(|j| j.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, json) in found.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json.as_deref().unwrap_or(b"null"));
    }
    body.push(b']');
    Ok(json_bytes(StatusCode::OK, body))
}

/// A `since`/`until` bound: RFC 3339, or a date-time without offset read as UTC (the Python
/// server reads it in the server's local zone), or seconds since the epoch.
fn time_param(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    let micros = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc().timestamp_micros())
        })
        .or_else(|_| {
            text.parse::<f64>()
                .map(|s| (s * 1_000_000.0) as i64)
                .map_err(|_| ())
        })
        .map_err(|()| {
            ApiError::bad_param(
                "query",
                name,
                format!("`{text}` is not a date-time (e.g. 2024-03-01T12:00:00Z)"),
            )
        })?;
    Ok(Some(micros))
}

/// The uuids of vCons ever created (and not deleted), newest `created_at` first, a page at a
/// time.
#[utoipa::path(
    get, path = "/vcon", tag = "vcons",
    params(
        ("page" = Option<u64>, Query, description = "Page, from 1 (default 1)"),
        ("size" = Option<u64>, Query, description = "Page size, 1..10000 (default 50)"),
        ("since" = Option<String>, Query, description = "Only created at or after (date-time)"),
        ("until" = Option<String>, Query, description = "Only created at or before (date-time)"),
    ),
    responses(
        (status = 200, description = "uuids, newest first", body = Vec<String>),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "A bad parameter", body = super::openapi::ErrorBody),
    )
)]
pub async fn list_uuids(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Vec<String>>, ApiError> {
    let params = Params::parse(query.as_deref());
    let page = params.number("page", 1, 1, u64::from(u32::MAX))?;
    let size = params.number("size", 50, 1, 10_000)?;
    let listing = ListingPage {
        since_us: time_param(&params, "since")?,
        until_us: time_param(&params, "until")?,
        offset: (page - 1).saturating_mul(size),
        limit: size,
    };
    let broker = Arc::clone(&state.broker);
    let uuids = blocking(move || Ok(broker.list_uuids(&listing)?)).await?;
    Ok(axum::Json(uuids))
}

/// The uuids of vCons with a party matching every term given (exact strings).
#[utoipa::path(
    get, path = "/vcons/search", tag = "vcons",
    params(
        ("tel" = Option<String>, Query, description = "A party's tel"),
        ("mailto" = Option<String>, Query, description = "A party's mailto"),
        ("name" = Option<String>, Query, description = "A party's name"),
    ),
    responses(
        (status = 200, description = "Matching uuids", body = Vec<String>),
        (status = 400, description = "No search term given", body = super::openapi::ErrorBody),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
    )
)]
pub async fn search(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Vec<String>>, ApiError> {
    let params = Params::parse(query.as_deref());
    let keys: Vec<String> = ["tel", "mailto", "name"]
        .into_iter()
        .filter_map(|kind| params.get(kind).map(|v| format!("{kind}:{v}")))
        .collect();
    if keys.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "At least one search parameter (tel, mailto or name) must be provided",
        ));
    }
    let broker = Arc::clone(&state.broker);
    let uuids = blocking(move || Ok(broker.search(&keys)?)).await?;
    Ok(axum::Json(uuids))
}

/// Deletes a vCon from the hot store, the listing, the search index and every storage that
/// can delete. `204` even when it was nowhere (as the Python server); `500` naming the
/// storages whose delete failed.
#[utoipa::path(
    delete, path = "/vcon/{uuid}", tag = "vcons",
    params(("uuid" = String, Path, description = "The vCon's uuid")),
    responses(
        (status = 204, description = "Gone from every store"),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "Not a UUID", body = super::openapi::ErrorBody),
        (status = 500, description = "A storage's delete failed (the others stand)", body = super::openapi::ErrorBody),
    )
)]
pub async fn delete_one(
    State(state): State<ApiState>,
    Path(uuid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uuid = uuid_param("path", "uuid", &uuid)?;
    blocking(move || {
        state.broker.forget(&uuid)?;
        let pipeline = state.pipeline();
        let failures: Vec<String> = pipeline
            .storages
            .iter()
            .filter(|s| {
                s.instance()
                    .capabilities()
                    .contains(plugin_loader::Capabilities::DELETE)
            })
            .filter_map(|s| match s.with_permit(|i| i.delete(&uuid)) {
                Ok(_) => None,
                Err(err) => Some(format!("{}: {err}", s.name())),
            })
            .collect();
        if failures.is_empty() {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::internal(format!(
                "deleted {uuid} from the hot store, but not from {}",
                failures.join("; ")
            )))
        }
    })
    .await
}
