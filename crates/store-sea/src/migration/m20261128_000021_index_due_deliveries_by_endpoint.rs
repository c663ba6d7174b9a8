//! An endpoint's own due deliveries, oldest first: while some endpoints already have enough in
//! flight (a slow or hanging receiver), the delivery worker claims per remaining endpoint through
//! this index instead of scanning past the saturated endpoints' waiting deliveries.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            "idx_webhook_deliveries_endpoint_due",
            "webhook_deliveries",
            &["endpoint_id", "status", "next_attempt_at"],
            false,
        )
        .await
    }
}
