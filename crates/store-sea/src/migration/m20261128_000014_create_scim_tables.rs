//! SCIM provisioning: tokens, the identity provider's view of members and teams, and member
//! deactivation.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A deactivated member keeps their membership and resources but cannot act in the
        // organization until reactivated (NULL = active).
        manager
            .alter_table(
                Table::alter()
                    .table("memberships")
                    .add_column(big_integer_null("deactivated_at"))
                    .to_owned(),
            )
            .await?;
        // Bearer tokens of an organization's SCIM base; only the SHA-256 of the secret is kept.
        manager
            .create_table(
                Table::create()
                    .table("scim_tokens")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("name"))
                    .col(string("prefix"))
                    .col(string("secret_hash"))
                    .col(string("created_by"))
                    .col(big_integer("created_at"))
                    .col(big_integer_null("revoked_at"))
                    .col(big_integer_null("last_used_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "scim_tokens_secret_hash",
            "scim_tokens",
            &["secret_hash"],
            true,
        )
        .await?;
        index(
            manager,
            "scim_tokens_org",
            "scim_tokens",
            &["org_id", "id"],
            false,
        )
        .await?;
        // The identity provider's attributes of a member: `user_name_key` is the lower-cased
        // userName (unique per organization, as SCIM compares it case-insensitively);
        // `attributes` holds the rest of the SCIM resource as JSON.
        manager
            .create_table(
                Table::create()
                    .table("scim_users")
                    .col(string("org_id"))
                    .col(string("user_id"))
                    .col(string("user_name"))
                    .col(string("user_name_key"))
                    .col(string_null("external_id"))
                    .col(text("attributes"))
                    .col(big_integer("version"))
                    .col(big_integer("updated_at"))
                    .primary_key(Index::create().col("org_id").col("user_id"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "scim_users_user_name",
            "scim_users",
            &["org_id", "user_name_key"],
            true,
        )
        .await?;
        // The identity provider's externalId of a team (a SCIM Group).
        manager
            .create_table(
                Table::create()
                    .table("scim_groups")
                    .col(string("org_id"))
                    .col(string("team_id"))
                    .col(string_null("external_id"))
                    // The `members` entries as the identity provider sent them (JSON).
                    .col(text("members"))
                    .col(big_integer("version"))
                    .col(big_integer("updated_at"))
                    .primary_key(Index::create().col("org_id").col("team_id"))
                    .to_owned(),
            )
            .await
    }
}
