//! Two subscription columns: the billing anchor paid periods are counted from (so renewals keep
//! the day of the month), and when a renewal whose charge failed is tried next. Both NULL for
//! rows written before: such a subscription renews from the end of its period, which becomes
//! its anchor.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in ["billing_anchor", "renewal_retry_at"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("subscriptions")
                        .add_column(big_integer_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
