//! Monthly counters checked against plan limits (API calls), and the usage alerts sent.

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
            .await?;
        // Usage alerts already sent: one row per threshold, limit and period.
        manager
            .create_table(
                Table::create()
                    .table("usage_alerts")
                    .col(string("org_id"))
                    .col(string("metric"))
                    .col(string("period"))
                    .col(big_integer("threshold"))
                    .primary_key(
                        Index::create()
                            .col("org_id")
                            .col("metric")
                            .col("period")
                            .col("threshold"),
                    )
                    .to_owned(),
            )
            .await
    }
}
