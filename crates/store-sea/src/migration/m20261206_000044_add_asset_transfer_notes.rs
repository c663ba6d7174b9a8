//! A transfer's note: what its mover wrote about it (the guide's "document before transfer":
//! test results, what changed). Transfers recorded before have none.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("asset_transfers")
                    .add_column(text_null("note"))
                    .to_owned(),
            )
            .await
    }
}
