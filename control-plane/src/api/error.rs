//! The admin API's one error type.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mana_llm_shared::RegistryVersion;
use serde_json::json;

use crate::domain::DomainError;
use crate::service::ServiceError;
use crate::store::{StorageFault, StoreError};

/// How long a client should wait before retrying a write the lock refused: the other
/// writer's transactions are short.
const LOCKED_RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the registry is invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{message}")]
    Conflict {
        message: String,
        current_version: RegistryVersion,
    },
    #[error("unknown version {0}")]
    UnknownVersion(RegistryVersion),
    #[error("no registry version exists yet")]
    NoRegistry,
    #[error("missing or wrong admin token: send 'Authorization: Bearer <MANA_LLM_ADMIN_TOKEN>'")]
    Unauthorized,
    #[error("no admin token is configured, so the admin API only answers loopback clients; set MANA_LLM_ADMIN_TOKEN")]
    LoopbackOnly,
    /// The named forwarding header shows a proxy in between, so the loopback peer proves nothing.
    #[error("no admin token is configured, so the admin API only answers clients on this machine, and this request came through a proxy (it carries {0}); set MANA_LLM_ADMIN_TOKEN")]
    Proxied(&'static str),
    /// The server listens beyond loopback without a token, so the admin routes are off.
    #[error("the admin API is off: this server listens beyond loopback and no admin token is configured; set MANA_LLM_ADMIN_TOKEN and restart")]
    Disabled,
    /// A console session's write without its CSRF token (`X-CSRF-Token`), or with another one.
    #[error("this write needs the console's CSRF token in X-CSRF-Token; reload the console page")]
    Csrf,
    /// Without a token, a request whose `Host` is not a loopback name (DNS rebinding).
    #[error("no admin token is configured, so the admin API only answers requests addressed to a loopback host (127.0.0.1, [::1], localhost); set MANA_LLM_ADMIN_TOKEN")]
    ForeignHost,
    /// Without a token, a browser request sent by a page of another origin.
    #[error("no admin token is configured, and this request came from a page of another origin; use the console at /admin/ on this server")]
    CrossOrigin,
    /// No console page or asset by that name.
    #[error("no such console page: {0}")]
    NoSuchPage(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "the document is {size} bytes; the limit is {limit} bytes (MANA_LLM_REGISTRY_MAX_BYTES)"
    )]
    TooLarge { size: usize, limit: usize },
    /// A dependency is down (the fleet store): try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The database cannot take writes now; reads still work.
    #[error("{}", unavailable_message(*.cause, .detail))]
    StorageUnavailable { cause: StorageFault, detail: String },
    #[error("{0}")]
    Internal(String),
    /// A write the running rollout forbids (or a rollout the fleet cannot take).
    #[error("{message}")]
    Rollout { code: &'static str, message: String },
    #[error("no rollout is in progress")]
    NoRollout,
}

fn unavailable_message(cause: StorageFault, detail: &str) -> String {
    let what = match cause {
        StorageFault::DiskFull => {
            "the disk holding the control plane's database is full; free space and retry"
        }
        StorageFault::Io => "the disk holding the control plane's database reported an I/O error; check the volume and retry",
        StorageFault::Locked => "another writer holds the database lock; retry shortly",
        StorageFault::ReadOnly => "the control plane's database cannot be written (read-only file, directory or mount)",
    };
    format!("the event store cannot take writes ({cause}): {what}; reads still work [{detail}]")
}

impl AdminError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_registry"),
            AdminError::Conflict { .. } => (StatusCode::CONFLICT, "version_conflict"),
            AdminError::UnknownVersion(_) => (StatusCode::NOT_FOUND, "unknown_version"),
            AdminError::NoRegistry => (StatusCode::NOT_FOUND, "no_registry"),
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::LoopbackOnly => (StatusCode::FORBIDDEN, "loopback_only"),
            AdminError::Proxied(_) => (StatusCode::FORBIDDEN, "proxied_without_token"),
            AdminError::Disabled => (StatusCode::FORBIDDEN, "admin_disabled"),
            AdminError::Csrf => (StatusCode::FORBIDDEN, "csrf_failed"),
            AdminError::ForeignHost => (StatusCode::FORBIDDEN, "foreign_host"),
            AdminError::CrossOrigin => (StatusCode::FORBIDDEN, "cross_origin"),
            AdminError::NoSuchPage(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            AdminError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "document_too_large"),
            AdminError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AdminError::StorageUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            AdminError::Rollout { code, .. } => (StatusCode::CONFLICT, code),
            AdminError::NoRollout => (StatusCode::CONFLICT, "no_rollout"),
        }
    }

    pub fn conflict(current_version: RegistryVersion, message: impl Into<String>) -> Self {
        AdminError::Conflict {
            message: message.into(),
            current_version,
        }
    }
}

impl From<ServiceError> for AdminError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Domain(DomainError::Invalid(errors)) => AdminError::Invalid(errors),
            ServiceError::Domain(DomainError::VersionConflict { actual, .. }) => {
                AdminError::conflict(actual, e.to_string())
            }
            ServiceError::Domain(DomainError::UnknownVersion(v)) => AdminError::UnknownVersion(v),
            ServiceError::Domain(DomainError::RolloutInProgress { .. }) => AdminError::Rollout {
                code: "rollout_in_progress",
                message: e.to_string(),
            },
            ServiceError::Domain(DomainError::NoLiveWorkers) => AdminError::Rollout {
                code: "no_live_workers",
                message: e.to_string(),
            },
            ServiceError::Domain(DomainError::NoRollout) => AdminError::NoRollout,
            // Another process wrote first; the service reloaded, a retry sees the new version.
            ServiceError::Conflict => AdminError::conflict(RegistryVersion(0), e.to_string()),
            ServiceError::Store(StoreError::Unavailable { cause, detail }) => {
                AdminError::StorageUnavailable { cause, detail }
            }
            ServiceError::Store(store) => AdminError::Internal(store.to_string()),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            AdminError::Internal(detail) => {
                tracing::error!(%detail, "admin API internal error");
                "internal error; see the control-plane log".to_owned()
            }
            AdminError::StorageUnavailable { cause, detail } => {
                tracing::error!(cause = cause.as_str(), %detail, "event store refused a write");
                self.to_string()
            }
            other => other.to_string(),
        };
        // `param` too, so OpenAI SDKs and the data plane's clients parse it the same way.
        let mut body = json!({"error": {"message": message, "type": "admin_error", "code": code, "param": null}});
        match &self {
            AdminError::Invalid(errors) => body["error"]["errors"] = json!(errors),
            AdminError::Conflict {
                current_version, ..
            } => body["error"]["current_version"] = json!(current_version),
            AdminError::StorageUnavailable { cause, .. } => {
                body["error"]["cause"] = json!(cause.as_str());
                if *cause == StorageFault::Locked {
                    let retry = [(header::RETRY_AFTER, LOCKED_RETRY_AFTER_SECONDS.to_string())];
                    return (status, retry, Json(body)).into_response();
                }
            }
            _ => {}
        }
        (status, Json(body)).into_response()
    }
}
