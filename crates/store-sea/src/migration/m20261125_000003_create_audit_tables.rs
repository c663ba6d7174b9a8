//! The audit log: records, chain heads and signed checkpoints.

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
                    .table("audit_events")
                    .col(string("org_id"))
                    .col(big_integer("seq"))
                    .col(string_null("team_id"))
                    .col(big_integer("occurred_at"))
                    .col(string("actor_type"))
                    .col(string("actor_id"))
                    .col(text("actor_name"))
                    .col(string("action"))
                    .col(string("target_type"))
                    .col(string("target_id"))
                    .col(text("target_name"))
                    .col(string("ip"))
                    .col(text("user_agent"))
                    .col(string("request_id"))
                    .col(string("outcome"))
                    .col(string("reason"))
                    .col(text("metadata"))
                    .col(integer("schema_version"))
                    .col(string("prev_hash"))
                    .col(string("hash"))
                    .primary_key(Index::create().col("org_id").col("seq"))
                    .to_owned(),
            )
            .await?;
        // Every filtered search is "org + filter, newest seq first": each index ends in seq.
        index(
            manager,
            "idx_audit_actor",
            "audit_events",
            &["org_id", "actor_id", "seq"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_audit_action",
            "audit_events",
            &["org_id", "action", "seq"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_audit_target",
            "audit_events",
            &["org_id", "target_type", "target_id", "seq"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_audit_time",
            "audit_events",
            &["org_id", "occurred_at", "seq"],
            false,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_heads")
                    .col(string("org_id").primary_key())
                    .col(big_integer("seq"))
                    .col(string("hash"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_checkpoints")
                    .col(string("org_id"))
                    .col(big_integer("seq"))
                    .col(string("head"))
                    .col(big_integer("signed_at"))
                    .col(string("mac"))
                    .primary_key(Index::create().col("org_id").col("seq"))
                    .to_owned(),
            )
            .await
    }
}
