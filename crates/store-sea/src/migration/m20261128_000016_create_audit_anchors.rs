//! Retention anchors: where each organization's audit chain now starts after old records were
//! removed under its retention period (signed with the checkpoint key).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_anchors")
                    .col(string("org_id").primary_key())
                    .col(big_integer("seq"))
                    .col(string("hash"))
                    .col(big_integer("pruned_at"))
                    .col(string("mac"))
                    .to_owned(),
            )
            .await
    }
}
