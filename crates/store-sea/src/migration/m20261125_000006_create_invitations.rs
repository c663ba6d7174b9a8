//! Invitations, found by the SHA-256 of their current token.

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
                    .table("invitations")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("email"))
                    .col(string("role"))
                    .col(string("invited_by"))
                    .col(string("token_hash").unique_key())
                    .col(big_integer("created_at"))
                    .col(big_integer("expires_at"))
                    .col(big_integer_null("accepted_at"))
                    .col(string_null("accepted_by"))
                    .col(big_integer_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("invitations", "org_id")
                            .to("organizations", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_invitations_org_email",
            "invitations",
            &["org_id", "email"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_invitations_org_id",
            "invitations",
            &["org_id", "id"],
            false,
        )
        .await
    }
}
