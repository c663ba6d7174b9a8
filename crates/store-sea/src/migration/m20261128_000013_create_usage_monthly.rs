//! Monthly counters checked against plan limits (API calls).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("usage_monthly")
                    .col(string("org_id"))
                    // `YYYY-MM`, UTC.
                    .col(string("month"))
                    .col(string("metric"))
                    .col(big_integer("count"))
                    .primary_key(Index::create().col("org_id").col("month").col("metric"))
                    .to_owned(),
            )
            .await
    }
}
