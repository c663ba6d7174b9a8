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
mod privacy;
mod scim;
mod tenancy;
mod webhooks;
mod workspace;

pub use keys::ReencryptReport;
#[cfg(test)]
pub(crate) use tenancy::session_caller_statement;
pub(crate) use webhooks::fan_out;

/// Deletes the deliveries `filter` selects, inside `txn`, and returns their ids only (a
/// delivery's row holds its whole payload, which `exec_with_returning` would read back).
pub(crate) async fn delete_deliveries_returning_ids(
    txn: &sea_orm::DatabaseTransaction,
    filter: sea_orm::Condition,
) -> Result<Vec<String>, sea_orm::DbErr> {
    use crate::entity::webhook_delivery;
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::Query;
    let stmt = Query::delete()
        .from_table(webhook_delivery::Entity)
        .cond_where(filter)
        .returning_col(webhook_delivery::Column::Id)
        .to_owned();
    let backend = txn.get_database_backend();
    txn.query_all_raw(backend.build(&stmt))
        .await?
        .iter()
        .map(|r| r.try_get::<String>("", "id"))
        .collect()
}
