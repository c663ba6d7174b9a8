//! Webhook endpoints, the delivery queue and its attempts.

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
                    .table("webhook_endpoints")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(text("url"))
                    .col(text("description"))
                    .col(text("events"))
                    .col(boolean("enabled"))
                    .col(text_null("disabled_reason"))
                    .col(integer("consecutive_failures").default(0))
                    // AES-256-GCM ciphertexts; the previous secret lives on during a rotation's grace period.
                    .col(text("secret"))
                    .col(text_null("previous_secret"))
                    .col(big_integer_null("previous_secret_until"))
                    .col(big_integer("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("webhook_endpoints", "org_id")
                            .to("organizations", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_webhook_endpoints_org",
            "webhook_endpoints",
            &["org_id"],
            false,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_deliveries")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("endpoint_id"))
                    .col(string("event_id"))
                    .col(string("kind"))
                    .col(text("payload"))
                    .col(string("status"))
                    .col(integer("attempts").default(0))
                    .col(big_integer("next_attempt_at"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_webhook_deliveries_due",
            "webhook_deliveries",
            &["status", "next_attempt_at"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_webhook_deliveries_endpoint",
            "webhook_deliveries",
            &["endpoint_id", "id"],
            false,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_attempts")
                    .col(string("delivery_id"))
                    .col(integer("number"))
                    .col(big_integer("at"))
                    .col(integer_null("status"))
                    .col(big_integer("duration_ms"))
                    .col(text_null("error"))
                    .col(text("response_body"))
                    .primary_key(Index::create().col("delivery_id").col("number"))
                    .to_owned(),
            )
            .await
    }
}
