//! The mail outbox: emails committed with their change and delivered by a worker.

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
                    .table("mail_outbox")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("to_addr"))
                    .col(text("subject"))
                    .col(text("body"))
                    .col(string("kind"))
                    .col(big_integer("created_at"))
                    .col(big_integer_null("sent_at"))
                    .col(integer("attempts").default(0))
                    .col(text_null("last_error"))
                    // Lease for the delivering worker; also the time of the next retry.
                    .col(big_integer("available_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_mail_outbox_due",
            "mail_outbox",
            &["sent_at", "available_at"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_mail_outbox_org",
            "mail_outbox",
            &["org_id", "created_at"],
            false,
        )
        .await
    }
}
