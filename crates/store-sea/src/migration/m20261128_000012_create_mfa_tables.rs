//! Second factors: the TOTP secret (encrypted), its last used step, the SMS backup number and
//! pending SMS code (hashed), throttling; recovery codes (hashed); login challenges (hashed).

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
                    .table("user_mfa")
                    .col(string("user_id").primary_key())
                    // AES-256-GCM ciphertext of the TOTP secret, base64.
                    .col(text("secret_enc"))
                    .col(big_integer_null("enabled_at"))
                    .col(big_integer_null("last_step"))
                    .col(string_null("phone"))
                    .col(string_null("sms_code_hash"))
                    .col(big_integer_null("sms_expires_at"))
                    .col(integer("failures").default(0))
                    .col(big_integer_null("window_start"))
                    .col(big_integer_null("locked_until"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("user_mfa", "user_id")
                            .to("users", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("recovery_codes")
                    .col(string("user_id"))
                    .col(string("code_hash"))
                    .primary_key(Index::create().col("user_id").col("code_hash"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("recovery_codes", "user_id")
                            .to("users", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("login_challenges")
                    .col(string("token_hash").primary_key())
                    .col(string("user_id"))
                    .col(big_integer("expires_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_login_challenges_expiry",
            "login_challenges",
            &["expires_at"],
            false,
        )
        .await?;
        // Text messages kept for the operator when no SMS gateway is configured.
        manager
            .create_table(
                Table::create()
                    .table("sms_outbox")
                    .col(big_integer("seq").primary_key().auto_increment())
                    .col(string("to_number"))
                    .col(text("body"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await
    }
}
