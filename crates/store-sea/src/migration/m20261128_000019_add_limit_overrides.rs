//! Negotiated per-organization limits on top of the plan's (JSON object limit → number or null
//! for unlimited); NULL = the plan's limits.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("organizations")
                    .add_column(text_null("limit_overrides"))
                    .to_owned(),
            )
            .await
    }
}
