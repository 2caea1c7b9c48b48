//! The API's error answer: a status and FastAPI's `{"detail": ...}` body, so clients written
//! for the Python server find the message where they look for it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error the API answers with.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// `detail`: a message, or FastAPI's list of `{type, loc, msg}` for validation errors.
    pub detail: serde_json::Value,
}

impl ApiError {
    /// An error with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: serde_json::Value::String(message.into()),
        }
    }

    /// `404` with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// `500`: something behind the API failed (the message says what; it is also logged).
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!("request failed: {message}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// `422` in FastAPI's validation shape: one entry per problem, `loc` naming where.
    pub fn unprocessable(
        problems: impl IntoIterator<Item = (Vec<String>, String, &'static str)>,
    ) -> Self {
        let detail = problems
            .into_iter()
            .map(|(loc, msg, kind)| json!({"type": kind, "loc": loc, "msg": msg}))
            .collect();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: serde_json::Value::Array(detail),
        }
    }

    /// `422` for one bad query or path parameter.
    pub fn bad_param(place: &str, name: &str, msg: impl Into<String>) -> Self {
        Self::unprocessable([(
            vec![place.to_owned(), name.to_owned()],
            msg.into(),
            "value_error",
        )])
    }

    /// The answer to a body that is not a valid vCon: the reasons from `crates/vcon`.
    pub fn invalid_vcon(err: &vcon::VconError) -> Self {
        match err {
            vcon::VconError::NotJson { .. } => {
                Self::unprocessable([(vec!["body".to_owned()], err.to_string(), "json_invalid")])
            }
            vcon::VconError::Invalid { problems } => {
                Self::unprocessable(problems.iter().map(|p| {
                    (
                        vec!["body".to_owned(), p.path.clone()],
                        p.message.clone(),
                        "value_error",
                    )
                }))
            }
            other => {
                Self::unprocessable([(vec!["body".to_owned()], other.to_string(), "value_error")])
            }
        }
    }

    /// `413`: the body is over `host.max_body_bytes`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over the limit of {limit} bytes (host.max_body_bytes / \
                 VCON_MAX_BODY_BYTES)"
            ),
        )
    }
}

impl From<crate::broker::BrokerError> for ApiError {
    fn from(err: crate::broker::BrokerError) -> Self {
        Self::internal(format!("broker: {err}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(format!("{err:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "detail": self.detail }))).into_response();
        // Answered with the body left unread (too large, or refused before it was read), so
        // hyper closes the connection after the answer: saying so spares a client that would
        // reuse it a failed next request.
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
