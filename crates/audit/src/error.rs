//! Errors of the audit crate.

/// An opaque storage failure; the cause chain is kept for logs, never shown to clients.
#[derive(Debug, thiserror::Error)]
#[error("storage failed")]
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

impl AuditError {
    /// A checkpoint-key rotation that found the retention anchor other than it read
    /// ([`crate::AuditStore::save_rotated_checkpoint`]).
    #[must_use]
    pub fn anchor_moved() -> Self {
        Self::Invalid("the retention anchor moved while the checkpoint key rotated".into())
    }

    /// A resealed anchor that names other records than the anchor it replaces.
    #[must_use]
    pub fn anchor_not_resealed() -> Self {
        Self::Invalid("a resealed anchor must name the same records as the one it replaces".into())
    }
}
