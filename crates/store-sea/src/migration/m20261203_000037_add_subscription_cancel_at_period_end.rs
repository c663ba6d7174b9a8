//! Whether a paid plan was cancelled: it stays in force until its period ends, is not renewed,
//! and then gives way to Free (`Subscription::cancel_at_period_end`). False for rows written
//! before, which were never cancelled that way (a cancellation ended the plan at once).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("subscriptions")
                    .add_column(boolean("cancel_at_period_end").default(false))
                    .to_owned(),
            )
            .await
    }
}
