//! API keys: the global `x-conserver-api-token` and the per-ingress-list keys of
//! `ingress_auth`, compared in constant time and never logged.
//!
//! Both sides are hashed with SHA-256 first and every configured key is compared, so neither the
//! length of a key nor which key matched shows in the time an answer takes.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use host_config::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};

/// Whether `presented` is one of `keys`, in time independent of both.
pub fn matches(presented: &str, keys: &[Secret]) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    keys.iter()
        .fold(subtle::Choice::from(0), |found, key| {
            found | Sha256::digest(key.expose().as_bytes()).ct_eq(&presented)
        })
        .into()
}

/// The key presented in the configured header, if any.
pub fn presented<'h>(headers: &'h HeaderMap, header_name: &str) -> Option<&'h str> {
    headers.get(header_name).and_then(|v| v.to_str().ok())
}

/// Middleware for the routes that need the global key (every route but `/health`,
/// `/version`, `/stats/queue`, `/metrics`, `/openapi.json` and `/vcon/external-ingress`).
/// Like the Python server: open when no key is configured, `403 {"detail": "Invalid API Key"}`
/// for a missing or wrong one.
pub async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let config = state.config();
    let keys = &config.host.api_tokens;
    if !keys.is_empty() {
        let ok = presented(request.headers(), &config.host.header_name)
            .is_some_and(|key| matches(key, keys));
        if !ok {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "Invalid API Key"));
        }
    }
    Ok(next.run(request).await)
}

/// Checks the key for `POST /vcon/external-ingress?ingress_list=NAME`, with the Python
/// server's `403` messages. Only the keys listed for that list are accepted (the global token
/// is not, as in the Python code).
pub fn check_ingress_key(
    headers: &HeaderMap,
    header_name: &str,
    ingress_auth: &std::collections::BTreeMap<String, Vec<Secret>>,
    list: &str,
) -> Result<(), ApiError> {
    let forbidden = |msg: String| ApiError::new(StatusCode::FORBIDDEN, msg);
    let Some(key) = presented(headers, header_name) else {
        return Err(forbidden("API Key required".into()));
    };
    if ingress_auth.is_empty() {
        return Err(forbidden("No ingress authentication configured".into()));
    }
    let Some(keys) = ingress_auth.get(list) else {
        return Err(forbidden(format!("Ingress list '{list}' not configured")));
    };
    if !matches(key, keys) {
        return Err(forbidden(format!(
            "Invalid API Key for ingress list '{list}'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_configured_key_matches() {
        let keys = vec![Secret::new("alpha"), Secret::new("beta")];
        assert!(matches("beta", &keys));
        assert!(!matches("bet", &keys));
        assert!(!matches("", &keys));
        assert!(!matches("beta", &[]));
    }
}
