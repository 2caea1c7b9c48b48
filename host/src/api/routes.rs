//! The router: which handler answers which path, which routes need the API key, and the layers
//! every request goes through (request id, tracing span, metrics, server headers).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::busy_poll::BusyPoll;
use super::{admin, auth, lists, openapi, vcons, ApiState};

/// The request id header: set when the client did not send one, echoed in the answer, and in
/// every log line of the request's span.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the API: every route under `/` and again under `root_path` (the Python server's
/// `API_ROOT_PATH`, default `/api`; its routes answer both ways).
pub fn router(state: ApiState, root_path: &str) -> Router {
    let protected = Router::new()
        .route("/vcon", get(vcons::list_uuids).post(vcons::create))
        .route("/vcon/count", get(lists::count))
        .route("/vcon/egress", get(lists::egress))
        .route("/vcon/ingress", post(lists::ingress))
        .route(
            "/vcon/{uuid}",
            get(vcons::get_one).delete(vcons::delete_one),
        )
        .route("/vcons", get(vcons::get_many))
        .route("/vcons/search", get(vcons::search))
        .route("/dlq", get(lists::dlq))
        .route("/dlq/reprocess", post(lists::dlq_reprocess))
        .route("/dlq/storage", get(lists::storage_dlq))
        .route("/dlq/storage/reprocess", post(lists::storage_dlq_reprocess))
        .route("/config", get(admin::get_config).post(admin::post_config))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let public = Router::new()
        .route("/health", get(admin::health))
        .route("/version", get(admin::version))
        .route("/stats/queue", get(lists::queue_depth))
        .route("/metrics", get(admin::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/vcon/external-ingress", post(vcons::external_ingress));
    let busy_poll = Arc::clone(&state.busy_poll);
    let api = protected.merge(public).with_state(state);
    let root = root_path.trim_end_matches('/');
    let app = if root.is_empty() {
        api
    } else {
        api.clone().nest(root, api)
    };
    app.layer(middleware::from_fn_with_state(busy_poll, record))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // Only method, path and id: headers (the API key) are never logged. At
                    // WARN so the default filter keeps it: every warning of a request carries
                    // its id.
                    tracing::warn_span!(
                        "request",
                        id,
                        method = %request.method(),
                        path = %request.uri().path(),
                    )
                })
                .on_response(
                    |response: &Response, latency: Duration, _span: &tracing::Span| {
                        tracing::debug!(
                            status = response.status().as_u16(),
                            latency_us = latency.as_micros() as u64,
                            "answered"
                        );
                    },
                ),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Counts the request by route template and status, adds the Python server's version headers
/// to every answer, and tells the busy-polling task an answer is on its way.
async fn record(State(busy_poll): State<Arc<BusyPoll>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let mut response = next.run(request).await;
    crate::metrics::global()
        .requests
        .get_or_create(&crate::metrics::RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-vcon-server-version"),
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    headers.insert(
        HeaderName::from_static("x-vcon-server-commit"),
        HeaderValue::from_static(admin::GIT_COMMIT),
    );
    busy_poll.answered();
    response
}

/// Query parameters as the Python server reads them: repeated keys (`?vcon_uuids=a&vcon_uuids=b`)
/// are lists, which axum's `Query` (serde_urlencoded) cannot express.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// The first value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name`, which must be given (FastAPI's `422 Field required` otherwise).
    pub fn required(&self, name: &str) -> Result<&str, super::ApiError> {
        self.get(name)
            .ok_or_else(|| super::ApiError::bad_param("query", name, "Field required"))
    }

    /// `name` as a number in `min..=max`, else `default`.
    pub fn number(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, super::ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    super::ApiError::bad_param(
                        "query",
                        name,
                        format!("must be a whole number from {min} to {max}, got `{text}`"),
                    )
                }),
        }
    }
}
