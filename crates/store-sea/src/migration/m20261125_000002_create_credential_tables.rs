//! Sessions and API keys; both are looked up by the SHA-256 of their secret.

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
                    .table("sessions")
                    .col(string("id").primary_key())
                    .col(string("token_hash").unique_key())
                    .col(string("user_id"))
                    .col(big_integer("created_at"))
                    .col(big_integer("last_seen_at"))
                    .col(big_integer_null("ended_at"))
                    .col(string("ip"))
                    .col(text("user_agent"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("sessions", "user_id")
                            .to("users", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_sessions_user",
            "sessions",
            &["user_id", "created_at"],
            false,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_keys")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("team_id"))
                    .col(string("created_by"))
                    .col(string("name"))
                    .col(string("prefix"))
                    .col(string("secret_hash").unique_key())
                    .col(big_integer("created_at"))
                    .col(big_integer_null("last_used_at"))
                    .col(big_integer_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("api_keys", "org_id")
                            .to("organizations", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_api_keys_org",
            "api_keys",
            &["org_id", "id"],
            false,
        )
        .await
    }
}
