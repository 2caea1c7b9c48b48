//! The list endpoints: push uuids to an ingress list, pop an egress list, list lengths, and the
//! dead-letter lists (inspect and replay).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;

use super::body::read_body;
use super::routes::Params;
use super::vcons::uuid_param;
use super::{blocking, ApiError, ApiState};
use crate::broker;
use crate::commands::dlq;

/// Queues vCons already known (in the hot store, or read back from a storage) on an ingress
/// list. Unknown uuids are skipped with a warning, as in the Python server.
#[utoipa::path(
    post, path = "/vcon/ingress", tag = "lists",
    params(("ingress_list" = String, Query, description = "The list to queue on")),
    request_body(content = Vec<String>, description = "uuids"),
    responses(
        (status = 204, description = "Queued (unknown uuids skipped)"),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "No list, or a body that is not a list of UUIDs", body = super::openapi::ErrorBody),
    )
)]
pub async fn ingress(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<StatusCode, ApiError> {
    // The body before the query: answered before its body has arrived, hyper closes the
    // connection, and a client that reuses it (ureq, or any client of the Python server, whose
    // uvicorn keeps it open) finds it gone at its next request.
    let bytes = read_body(body, state.config().host.max_body_bytes).await?;
    let params = Params::parse(query.as_deref());
    let list = params.required("ingress_list")?.to_owned();
    let asked: Vec<String> = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::unprocessable([(
            vec!["body".to_owned()],
            format!("expected a JSON list of uuids: {err}"),
            "json_invalid",
        )])
    })?;
    let uuids = asked
        .iter()
        .map(|u| uuid_param("body", "uuid", u))
        .collect::<Result<Vec<_>, _>>()?;
    blocking(move || {
        let keys: Vec<&str> = uuids.iter().map(String::as_str).collect();
        let hot = state.broker.get_vcons(&keys)?;
        let pipeline = state.pipeline();
        let mut known = Vec::new();
        let mut recached = Vec::new();
        for (uuid, hit) in uuids.iter().zip(hot) {
            if hit.is_some() {
                known.push(uuid.as_str());
            } else if let Some(vcon) = crate::worker::read_back(&pipeline, uuid) {
                recached.push(vcon);
            } else {
                tracing::warn!(list, uuid, "not queued: the vCon is in no store");
            }
        }
        // One transaction for the read-back ones (stored and queued), one push for the rest.
        if !recached.is_empty() {
            state.broker.ingest(
                &recached,
                std::slice::from_ref(&list),
                pipeline.config.host.hot_ttl,
            )?;
        }
        if !known.is_empty() {
            state.broker.push(&list, &known)?;
        }
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Pops up to `limit` uuids from the end of an egress list (Redis `RPOP`: the newest first,
/// as the Python server does).
#[utoipa::path(
    get, path = "/vcon/egress", tag = "lists",
    params(
        ("egress_list" = String, Query, description = "The list to pop"),
        ("limit" = Option<u64>, Query, description = "At most this many, 1..100000 (default 1)"),
    ),
    responses(
        (status = 200, description = "The uuids popped", body = Vec<String>),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "No list, or a bad limit", body = super::openapi::ErrorBody),
    )
)]
pub async fn egress(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>, ApiError> {
    let params = Params::parse(query.as_deref());
    let list = params.required("egress_list")?.to_owned();
    let limit = params.number("limit", 1, 1, 100_000)?;
    let broker = Arc::clone(&state.broker);
    let popped = blocking(move || Ok(broker.pop_back(&list, limit as usize)?)).await?;
    Ok(Json(popped))
}

/// How many uuids wait in a list (the Python server declares this route but shadows it with
/// `GET /vcon/{uuid}`, so it always answers 422 there).
#[utoipa::path(
    get, path = "/vcon/count", tag = "lists",
    params(("egress_list" = String, Query, description = "The list")),
    responses(
        (status = 200, description = "Its length", body = u64, content_type = "application/json"),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "No list", body = super::openapi::ErrorBody),
    )
)]
pub async fn count(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<u64>, ApiError> {
    let params = Params::parse(query.as_deref());
    let list = params.required("egress_list")?.to_owned();
    let broker = Arc::clone(&state.broker);
    Ok(Json(blocking(move || Ok(broker.len(&list)?)).await?))
}

/// The length of a list (public, as in the Python server, for load balancers and dashboards).
#[utoipa::path(
    get, path = "/stats/queue", tag = "lists",
    params(("list_name" = String, Query, description = "The list")),
    responses(
        (status = 200, description = "Its length", body = super::openapi::QueueDepth),
        (status = 422, description = "No list", body = super::openapi::ErrorBody),
    )
)]
pub async fn queue_depth(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<super::openapi::QueueDepth>, ApiError> {
    let params = Params::parse(query.as_deref());
    let list_name = params.required("list_name")?.to_owned();
    let broker = Arc::clone(&state.broker);
    blocking(move || {
        let depth = broker.len(&list_name)?;
        Ok(Json(super::openapi::QueueDepth { list_name, depth }))
    })
    .await
}

/// The uuids dead-lettered from an ingress list (`DLQ:{ingress_list}`), oldest first.
#[utoipa::path(
    get, path = "/dlq", tag = "dead letters",
    params(("ingress_list" = String, Query, description = "The ingress list")),
    responses(
        (status = 200, description = "uuids, oldest first", body = Vec<String>),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "No list", body = super::openapi::ErrorBody),
    )
)]
pub async fn dlq(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>, ApiError> {
    let params = Params::parse(query.as_deref());
    let list = broker::ingress_dlq(params.required("ingress_list")?);
    let broker = Arc::clone(&state.broker);
    let entries = blocking(move || Ok(broker.entries(&list, usize::MAX)?)).await?;
    Ok(Json(entries.into_iter().map(|e| e.uuid).collect()))
}

/// Moves up to `count` dead letters back onto their ingress list, so the chain runs again.
/// Answers how many moved.
#[utoipa::path(
    post, path = "/dlq/reprocess", tag = "dead letters",
    params(
        ("ingress_list" = String, Query, description = "The ingress list"),
        ("count" = Option<u64>, Query, description = "At most this many, 1..100000 (default 1000)"),
    ),
    responses(
        (status = 200, description = "How many moved", body = u64, content_type = "application/json"),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 422, description = "No list, or a bad count", body = super::openapi::ErrorBody),
    )
)]
pub async fn dlq_reprocess(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<usize>, ApiError> {
    let params = Params::parse(query.as_deref());
    let ingress = params.required("ingress_list")?.to_owned();
    let count = params.number("count", 1000, 1, 100_000)?;
    let broker = Arc::clone(&state.broker);
    let moved =
        blocking(move || Ok(dlq::requeue_ingress(&*broker, &ingress, count as usize)?)).await?;
    Ok(Json(moved))
}

fn known_storage(state: &ApiState, name: &str) -> Result<(), ApiError> {
    if state.pipeline().storages.get(name).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "Storage '{name}' is not configured"
        )))
    }
}

/// The uuids whose write to a storage failed for good (`DLQ:storage:{storage_name}`), with why.
#[utoipa::path(
    get, path = "/dlq/storage", tag = "dead letters",
    params(("storage_name" = String, Query, description = "The storage")),
    responses(
        (status = 200, description = "Dead letters, oldest first", body = Vec<super::openapi::StorageDeadLetter>),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 404, description = "No such storage", body = super::openapi::ErrorBody),
        (status = 422, description = "No storage given", body = super::openapi::ErrorBody),
    )
)]
pub async fn storage_dlq(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<super::openapi::StorageDeadLetter>>, ApiError> {
    let params = Params::parse(query.as_deref());
    let storage = params.required("storage_name")?.to_owned();
    known_storage(&state, &storage)?;
    let list = broker::storage_dlq(&storage);
    let broker = Arc::clone(&state.broker);
    let entries = blocking(move || Ok(broker.entries(&list, usize::MAX)?)).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| super::openapi::StorageDeadLetter {
                reason: dlq::reason(&e),
                uuid: e.uuid,
            })
            .collect(),
    ))
}

/// Re-runs only the failed write for up to `count` dead letters of a storage, stopping at the
/// first failure (the rest stay dead-lettered). Answers how many were written.
#[utoipa::path(
    post, path = "/dlq/storage/reprocess", tag = "dead letters",
    params(
        ("storage_name" = String, Query, description = "The storage"),
        ("count" = Option<u64>, Query, description = "At most this many, 1..100000 (default 1000)"),
    ),
    responses(
        (status = 200, description = "How many were written", body = u64, content_type = "application/json"),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 404, description = "No such storage", body = super::openapi::ErrorBody),
        (status = 422, description = "No storage, or a bad count", body = super::openapi::ErrorBody),
    )
)]
pub async fn storage_dlq_reprocess(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<usize>, ApiError> {
    let params = Params::parse(query.as_deref());
    let storage = params.required("storage_name")?.to_owned();
    let count = params.number("count", 1000, 1, 100_000)?;
    known_storage(&state, &storage)?;
    let outcome = blocking(move || {
        let pipeline = state.pipeline();
        Ok(dlq::replay_storage(
            &*state.broker,
            &pipeline,
            &storage,
            count as usize,
        )?)
    })
    .await?;
    if let Some((uuid, err)) = &outcome.stopped_at {
        tracing::warn!(uuid, "storage replay stopped: {err}");
    }
    Ok(Json(outcome.replayed))
}
