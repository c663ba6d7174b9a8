//! When an organization leaves the Enterprise plan its audit log is archived (read-only, the
//! Owner may export it); NULL while it is live.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("organizations")
                    .add_column(big_integer_null("audit_archived_at"))
                    .to_owned(),
            )
            .await
    }
}
