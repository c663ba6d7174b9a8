//! The service's beats (`tenancy::uptime`): one row per unbroken run of an instance's beats,
//! from its first (`started_at`) to its latest (`last_seen`), in microseconds.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("service_uptime")
                    .col(string("id").primary_key())
                    .col(string("instance"))
                    .col(big_integer("started_at"))
                    .col(big_integer("last_seen"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("service_uptime_by_last_seen")
                    .table("service_uptime")
                    .col("last_seen")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("service_uptime_by_instance")
                    .table("service_uptime")
                    .col("instance")
                    .col("last_seen")
                    .to_owned(),
            )
            .await
    }
}
