//! Who made a credit entry, by id (a user's, an API key's or a SCIM token's), beside the name
//! at the time: an erasure of the person finds their entries by it. NULL for entries written
//! before, which an erasure finds by the name instead.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("credit_entries")
                    .add_column(string_null("actor_id"))
                    .to_owned(),
            )
            .await
    }
}
