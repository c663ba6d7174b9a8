//! Bulk invitation previews, confirmable once before they expire.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("bulk_previews")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("created_by"))
                    .col(big_integer("expires_at"))
                    .col(text("data"))
                    .col(big_integer_null("consumed_at"))
                    .to_owned(),
            )
            .await
    }
}
