//! Health, version, metrics and the config endpoints.
//!
//! `GET /config` answers the config file as written (before `${VAR}` expansion, so secrets
//! kept in the environment never appear) with every value under a secret-looking key, every
//! `ingress_auth` key and every URL password replaced by `***`. The Python server answers the
//! whole file, secrets included.
//!
//! `POST /config` replaces the chains, links and storages: the new config is validated like
//! `vcon-host config check`, its plugins are opened, and only then is the file replaced
//! (atomically) and the running pipeline swapped, as on SIGHUP. It never installs or runs
//! anything new: `host:` settings (plugin directories, broker, tokens) cannot be changed over
//! HTTP, `imports` and `pip_name` are refused, and storages may name plugins only by module
//! (found in the directories already configured), not by file path. The Python server writes
//! whatever it is given, `pip_name` included, which is remote code execution.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::body::read_body;
use super::openapi::{Health, Version};
use super::{blocking, ApiError, ApiState};

/// The commit the binary was built from (`VCON_GIT_COMMIT` at build time), for the
/// `X-Vcon-Server-Commit` header and `/version`.
pub const GIT_COMMIT: &str = match option_env!("VCON_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

fn version_body() -> Version {
    Version {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: GIT_COMMIT.to_owned(),
        build_time: option_env!("VCON_BUILD_TIME")
            .unwrap_or("unknown")
            .to_owned(),
    }
}

/// Liveness, with the version (public).
#[utoipa::path(get, path = "/health", tag = "admin",
    responses((status = 200, description = "Serving", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "healthy".to_owned(),
        version: version_body(),
    })
}

/// The version (public).
#[utoipa::path(get, path = "/version", tag = "admin",
    responses((status = 200, description = "The build", body = Version)))]
pub async fn version() -> Json<Version> {
    Json(version_body())
}

/// Prometheus metrics (public: counts only, no vCon content).
#[utoipa::path(get, path = "/metrics", tag = "admin",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let broker = Arc::clone(&state.broker);
    let lists = blocking(move || Ok(broker.lists()?)).await?;
    let metrics = crate::metrics::global();
    metrics.set_lists(&lists);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response())
}

/// Whether a key names a secret.
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "credential",
        "private_key",
        "access_key",
        "biscuit",
        "dsn",
    ]
    .iter()
    .any(|s| key.contains(s))
        || key.ends_with("_key")
        || key == "key"
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let at = authority.rfind('@')?;
    let (user, _) = authority[..at].split_once(':')?;
    Some(format!("{scheme}://{user}:***{}", &rest[at..]))
}

/// Replaces secrets in a config tree (see the module docs).
pub fn redact(value: &mut Value, secret: bool) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                redact(value, secret || secret_key(key) || key == "ingress_auth");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, secret)),
        // `${VAR}` names where the secret is, not the secret.
        Value::String(text) if secret && !(text.starts_with("${") && text.ends_with('}')) => {
            *text = "***".to_owned();
        }
        Value::String(text) if !secret => {
            if let Some(redacted) = redact_url_password(text) {
                *text = redacted;
            }
        }
        Value::Number(_) | Value::Bool(_) if secret => *value = Value::String("***".to_owned()),
        _ => {}
    }
}

fn read_raw_config(path: &std::path::Path) -> Result<Value, ApiError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ApiError::internal(format!("reading {}: {err}", path.display())))?;
    serde_yaml::from_str::<Value>(&text)
        .map_err(|err| ApiError::internal(format!("{}: {err}", path.display())))
}

/// The config as written, secrets redacted.
#[utoipa::path(get, path = "/config", tag = "admin",
    responses(
        (status = 200, description = "The config file as JSON, secrets redacted", body = Object),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
    ))]
pub async fn get_config(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let path = Arc::clone(&state.config_path);
    let mut config = blocking(move || read_raw_config(&path)).await?;
    redact(&mut config, false);
    Ok(Json(config))
}

/// What `POST /config` refuses before validating (see the module docs).
fn refused(posted: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(map) = posted.as_object() else {
        return vec!["the config must be a JSON object".to_owned()];
    };
    if map.contains_key("host") {
        problems.push(
            "`host` settings (plugin directories, broker, tokens) cannot be changed over HTTP; \
             edit the file and send SIGHUP"
                .to_owned(),
        );
    }
    if map.contains_key("imports") {
        problems.push("`imports` loads code; vcon-host never installs or runs code".to_owned());
    }
    if let Some(storages) = map.get("storages").and_then(Value::as_object) {
        for (name, storage) in storages {
            if storage.get("pip_name").is_some() {
                problems.push(format!(
                    "storages.{name}.pip_name: vcon-host never installs packages"
                ));
            }
            let module = storage.get("module").and_then(Value::as_str).unwrap_or("");
            if module.contains('/') || module.ends_with(".so") {
                problems.push(format!(
                    "storages.{name}.module: a plugin file path cannot be set over HTTP; name a \
                     module found in the configured plugin directories"
                ));
            }
        }
    }
    if let Some(links) = map.get("links").and_then(Value::as_object) {
        for (name, link) in links {
            if link.get("pip_name").is_some() {
                problems.push(format!(
                    "links.{name}.pip_name: vcon-host never installs packages"
                ));
            }
        }
    }
    problems
}

/// Replaces chains, links and storages, once the new config validates and its plugins open.
#[utoipa::path(post, path = "/config", tag = "admin",
    request_body(content = Object, description = "The new config (without `host`)"),
    responses(
        (status = 204, description = "Validated, written and running"),
        (status = 403, description = "Missing or wrong API key", body = super::openapi::ErrorBody),
        (status = 413, description = "Body over host.max_body_bytes", body = super::openapi::ErrorBody),
        (status = 422, description = "Refused or invalid: the reasons", body = super::openapi::ErrorBody),
    ))]
pub async fn post_config(
    State(state): State<ApiState>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let bytes = read_body(body, state.config().host.max_body_bytes).await?;
    let mut posted: Value = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::unprocessable([(vec!["body".to_owned()], err.to_string(), "json_invalid")])
    })?;
    let problems = refused(&posted);
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(
            problems
                .into_iter()
                .map(|p| (vec!["body".to_owned()], p, "value_error")),
        ));
    }
    blocking(move || {
        let path = Arc::clone(&state.config_path);
        // The running file's host settings stay as they are.
        if let (Some(host), Some(map)) = (
            read_raw_config(&path)?.get("host").cloned(),
            posted.as_object_mut(),
        ) {
            map.insert("host".to_owned(), host);
        }
        let text = serde_yaml::to_string(&posted)
            .map_err(|err| ApiError::internal(format!("writing the config as YAML: {err}")))?;
        let invalid = |message: String| {
            ApiError::unprocessable([(vec!["body".to_owned()], message, "value_error")])
        };
        let loaded = host_config::parse(&text, &path, &host_config::process_env)
            .map_err(|errors| invalid(errors.to_string()))?;
        let search = crate::app::search_path(&state.plugin_dirs, &loaded.config);
        let pipeline = crate::pipeline::Pipeline::build(loaded.config, &search)
            .map_err(|errors| invalid(errors.join("\n")))?;
        write_atomically(&path, text.as_bytes())
            .map_err(|err| ApiError::internal(format!("writing {}: {err}", path.display())))?;
        if let Ok(mut current) = state.pipeline.write() {
            *current = Arc::new(pipeline);
        }
        tracing::warn!("config replaced over HTTP: {}", path.display());
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Writes through a temporary file and a rename, so a reader never sees half a config.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_env_references_kept() {
        let mut config = serde_json::json!({
            "storages": {"pg": {"options": {"password": "hunter2", "user": "app",
                "url": "postgres://app:hunter2@db/x", "api_key": "${PG_KEY}"}}},
            "ingress_auth": {"partner": ["k1", "k2"]},
        });
        redact(&mut config, false);
        let text = config.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("k1"), "{text}");
        assert!(text.contains("${PG_KEY}"), "{text}");
        assert!(text.contains("postgres://app:***@db/x"), "{text}");
        assert!(text.contains("\"user\":\"app\""), "{text}");
    }

    #[test]
    fn code_loading_is_refused() {
        let posted = serde_json::json!({"host": {}, "imports": {},
            "storages": {"s": {"module": "/tmp/evil.so", "pip_name": "evil"}}});
        assert_eq!(refused(&posted).len(), 4);
    }
}
