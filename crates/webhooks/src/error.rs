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
    /// The endpoint changed between the read a change was computed from and its write (a
    /// concurrent rotation of its secret): nothing was written; read it again.
    #[error("{0}")]
    Changed(String),
    /// The organization has the most endpoints it may have
    /// ([`MAX_ENDPOINTS_PER_ORG`](crate::MAX_ENDPOINTS_PER_ORG)): delete one first.
    #[error("an organization has at most {max} webhook endpoints; delete one first")]
    TooManyEndpoints {
        /// The most endpoints an organization may have.
        max: usize,
    },
    /// The endpoint is disabled, so nothing is sent to it (a test event included, which would
    /// otherwise wait until it is enabled again): enable it first.
    #[error("the webhook endpoint is disabled; enable it to send to it")]
    Disabled,
    /// The endpoint's stored URL does not open with the configured key (a key lost or
    /// replaced without re-encryption, or a value written onto its row by hand): nothing is
    /// sent to it, and it can only be deleted.
    #[error(
        "webhook endpoint {0}'s stored URL cannot be read with the configured key; delete the endpoint and create it again"
    )]
    Unreadable(rbac_core::EndpointId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// The refusal of a secret rotation that lost to another (see
    /// [`WebhookStore::set_secrets`](crate::WebhookStore::set_secrets)).
    #[must_use]
    pub fn secret_changed() -> Self {
        WebhookError::Changed(
            "the endpoint's secret was rotated meanwhile; nothing was changed".into(),
        )
    }
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
