//! An endpoint's message template (`webhooks::template`): NULL sends the event document.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("webhook_endpoints")
                    .add_column(text_null("message"))
                    .to_owned(),
            )
            .await
    }
}
