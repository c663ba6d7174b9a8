//! Errors of the audit crate.

/// An opaque storage failure; the cause chain is kept for logs, never shown to clients.
#[derive(Debug, thiserror::Error)]
#[error("audit storage failed")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl StoreError {
    /// Wraps any error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }

    /// Wraps a message.
    #[must_use]
    pub fn msg(m: impl Into<String>) -> Self {
        Self(m.into().into())
    }
}

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The input is not acceptable (bad filter, oversized metadata, …).
    #[error("invalid audit input: {0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain is broken where an operation needs it whole (a checkpoint is not signed over
    /// a chain that does not verify up to its head).
    #[error("the audit chain is broken: {0}")]
    Tampered(crate::ChainBreak),
}
