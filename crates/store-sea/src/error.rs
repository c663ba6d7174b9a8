//! Mapping database errors to the domain crates' opaque `StoreError`.

use audit::StoreError;
use sea_orm::{DbErr, SqlErr};

/// Wraps a database error; the cause chain stays available to logs.
pub fn db_err(e: DbErr) -> StoreError {
    StoreError::new(e)
}

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
