//! "Who was refused": searches by outcome (denied, failed) newest first, without scanning the
//! successful majority.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            "idx_audit_outcome",
            "audit_events",
            &["org_id", "outcome", "seq"],
            false,
        )
        .await
    }
}
