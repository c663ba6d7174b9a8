//! When a chat interface or knowledge base was archived (`tenancy::assets::set_archived`):
//! NULL for one in use. Listings filter on it within an organization's few hundred assets of a
//! kind, so it has no index of its own.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("assets")
                    .add_column(big_integer_null("archived_at"))
                    .to_owned(),
            )
            .await
    }
}
