//! Self-service password reset links (`tenancy::password_reset`): the SHA-256 of the token,
//! never the token; `used_at` is set when the link is used or another of the person's links is.

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
                    .table("password_resets")
                    .col(string("token_hash").primary_key())
                    .col(string("user_id"))
                    .col(big_integer("created_at"))
                    .col(big_integer("expires_at"))
                    .col(big_integer_null("used_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "password_resets_user",
            "password_resets",
            &["user_id", "created_at"],
            false,
        )
        .await
    }
}
