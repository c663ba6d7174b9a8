//! Webhook deliveries are also found by their organization: an erasure rewrites the payloads of
//! one organization's deliveries that name the person, and deleting an organization (or
//! sweeping one's late rows) removes its deliveries and their attempts. Without an index each of
//! these read every organization's deliveries while holding that organization's lock (on
//! SQLite, the one writer).

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            "idx_webhook_deliveries_org",
            "webhook_deliveries",
            &["org_id", "id"],
            false,
        )
        .await
    }
}
