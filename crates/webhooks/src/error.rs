//! Errors of the webhooks crate.

pub use audit::StoreError;

/// Errors of webhook operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Bad input (URL, filter, secret).
    #[error("{0}")]
    Invalid(String),
    /// No such endpoint or delivery in this organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<audit::AuditError> for WebhookError {
    fn from(e: audit::AuditError) -> Self {
        match e {
            audit::AuditError::Invalid(m) => WebhookError::Invalid(m),
            audit::AuditError::Store(s) => WebhookError::Store(s),
            other => WebhookError::Store(StoreError::msg(other.to_string())),
        }
    }
}
