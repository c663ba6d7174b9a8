//! Port implementations, one file per port family.

mod audit;
mod billing;
mod housekeeping;
mod invitations;
mod keys;
mod mail;
mod members;
mod metering;
mod mfa;
mod password_reset;
mod pipeline;
mod privacy;
mod scim;
mod tenancy;
mod uptime;
mod webhooks;
mod workspace;

pub use keys::{BindReport, ReencryptReport};
#[cfg(test)]
pub(crate) use tenancy::session_caller_statement;
pub(crate) use webhooks::fan_out;

/// The rows of `E` that `cond` selects (at most `limit` of them), as a condition on `pk` that
/// on PostgreSQL first locks them in `pk` order: `pk IN (SELECT pk … ORDER BY pk [LIMIT n]
/// FOR UPDATE [SKIP LOCKED])`, in the same statement.
///
/// A multi-row `UPDATE` or `DELETE` otherwise locks its rows in the order its plan visits
/// them, and two statements (or a statement and a transaction changing rows one by one) can
/// each hold a row the other waits for. Every transaction that changes several rows of such a
/// table takes them in key order. With `skip_locked` the rows another transaction holds are
/// left out instead of waited for (a claim takes what is free; housekeeping leaves them for
/// its next pass). On SQLite, whose writes take turns, only the order and the limit apply.
pub(crate) fn in_key_order<E: sea_orm::EntityTrait>(
    backend: sea_orm::DbBackend,
    pk: E::Column,
    cond: sea_orm::Condition,
    skip_locked: bool,
    limit: Option<u64>,
) -> sea_orm::Condition {
    use sea_orm::ColumnTrait;
    use sea_orm::sea_query::{LockBehavior, LockType, Query};
    if backend != sea_orm::DbBackend::Postgres && limit.is_none() {
        return cond;
    }
    let mut rows = Query::select();
    rows.column(pk)
        .from(E::default())
        .cond_where(cond)
        .order_by(pk, sea_orm::Order::Asc);
    if let Some(n) = limit {
        rows.limit(n);
    }
    if skip_locked {
        rows.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    } else {
        rows.lock(LockType::Update);
    }
    sea_orm::Condition::all().add(pk.in_subquery(rows.to_owned()))
}
