//! Pending ownership transfers: at most one per organization.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("ownership_transfers")
                    .col(string("org_id").primary_key())
                    .col(string("from_user"))
                    .col(string("to_user"))
                    .col(big_integer("proposed_at"))
                    .col(big_integer("expires_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("ownership_transfers", "org_id")
                            .to("organizations", "id"),
                    )
                    .to_owned(),
            )
            .await
    }
}
