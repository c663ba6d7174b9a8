//! Outages the operator declared with an incident (`tenancy::uptime::DeclaredOutage`): the
//! incident's reference, its start and, once resolved, its end, in microseconds.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("service_outages")
                    .col(string("reference").primary_key())
                    .col(big_integer("started_at"))
                    .col(big_integer_null("ended_at"))
                    .to_owned(),
            )
            .await
    }
}
