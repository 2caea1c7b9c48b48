//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations (utoipa: the
//! document cannot drift from the code it describes), and the answer types it names.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{admin, lists, vcons};

/// A vCon document (validated by `crates/vcon`; unknown keys kept).
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct VconDocument(serde_json::Value);

/// Every error answer: FastAPI's shape. `detail` is a message, or for validation errors a list
/// of `{type, loc, msg}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong: a string, or a list of `{type, loc, msg}`.
    pub detail: serde_json::Value,
}

/// The build.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    /// The package version.
    pub version: String,
    /// The commit built from.
    pub git_commit: String,
    /// When it was built.
    pub build_time: String,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `healthy` when it answers.
    pub status: String,
    /// The build.
    pub version: Version,
}

/// `GET /stats/queue`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueDepth {
    /// The list.
    pub list_name: String,
    /// Items in it.
    pub depth: u64,
}

/// One dead letter of a storage.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageDeadLetter {
    /// The vCon.
    pub uuid: String,
    /// Why its write failed.
    pub reason: String,
}

/// The API document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "vcon-host API",
        description = "The vCon Server's HTTP API, served by vcon-host. Every path also answers under the root path (API_ROOT_PATH, default /api)."
    ),
    paths(
        vcons::create, vcons::external_ingress, vcons::get_one, vcons::get_many,
        vcons::list_uuids, vcons::search, vcons::delete_one,
        lists::ingress, lists::egress, lists::count, lists::queue_depth,
        lists::dlq, lists::dlq_reprocess, lists::storage_dlq, lists::storage_dlq_reprocess,
        admin::health, admin::version, admin::metrics, admin::get_config, admin::post_config,
        document,
    ),
    components(schemas(VconDocument, ErrorBody, Version, Health, QueueDepth, StorageDeadLetter)),
    modifiers(&ApiKeys),
    security(("api_key" = []))
)]
pub struct ApiDoc;

/// Declares the API key header (the default name; `CONSERVER_HEADER_NAME` may change it).
#[derive(Debug)]
struct ApiKeys;

impl Modify for ApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api_key", "ingress_key"] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-conserver-api-token"))),
            );
        }
    }
}

/// This document (public).
#[utoipa::path(get, path = "/openapi.json", tag = "admin", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
