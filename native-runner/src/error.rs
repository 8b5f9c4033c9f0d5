//! The runner's one error type; each variant is an HTTP answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::protocol::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed or invalid; `field` names the part at fault.
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    /// 401: a write without the right bearer token.
    #[error(
        "missing or wrong bearer token; send 'Authorization: Bearer <token>' with the token the runner printed at start (also in <data-dir>/token)"
    )]
    Unauthorized,
    /// 404: no such job, corpus or file.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state (cancelling a finished job,
    /// uploading over an existing corpus).
    #[error("{0}")]
    Conflict(String),
    /// 413: an upload over `--max-upload-bytes`.
    #[error(
        "the upload is larger than the limit of {limit} bytes; send a smaller file or start the runner with a larger --max-upload-bytes"
    )]
    PayloadTooLarge { limit: usize },
    /// 500: logged; the client only learns that something went wrong.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Internal(e.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Error::Internal(e) => {
                tracing::error!("internal error: {e:#}");
                ApiError {
                    error: "something went wrong; see the runner's log".into(),
                    field: None,
                }
            }
            Error::BadRequest { field, message } => ApiError {
                error: match field {
                    Some(field) => format!("{field}: {message}"),
                    None => message.clone(),
                },
                field: field.clone(),
            },
            other => ApiError {
                error: other.to_string(),
                field: None,
            },
        };
        (status, Json(body)).into_response()
    }
}
