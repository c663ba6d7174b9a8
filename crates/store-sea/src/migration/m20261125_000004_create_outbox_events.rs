//! The transactional outbox of domain events, consumed by the webhook dispatcher.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox_events")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("kind"))
                    .col(big_integer("occurred_at"))
                    .col(text("data"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_outbox_org",
            "outbox_events",
            &["org_id", "id"],
            false,
        )
        .await
    }
}
