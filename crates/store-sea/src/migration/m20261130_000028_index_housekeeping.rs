//! Indexes for housekeeping (`store/housekeeping.rs`): each stale batch is found by the time its
//! rule looks at, and an outbox event's deliveries by the event, instead of a scan of the table.
//! (Finished deliveries use `idx_webhook_deliveries_due`, on status and `next_attempt_at`; mail
//! uses `idx_mail_outbox_due` for sent mail; login challenges already have theirs.)

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, cols) in [
            ("idx_sessions_created", "sessions", &["created_at"][..]),
            (
                "idx_password_resets_expiry",
                "password_resets",
                &["expires_at"],
            ),
            ("idx_sms_outbox_created", "sms_outbox", &["created_at"]),
            (
                "idx_outbox_events_created",
                "outbox_events",
                &["created_at"],
            ),
            ("idx_mail_outbox_created", "mail_outbox", &["created_at"]),
            (
                "idx_webhook_deliveries_event",
                "webhook_deliveries",
                &["event_id"],
            ),
        ] {
            index(manager, name, table, cols, false).await?;
        }
        Ok(())
    }
}
