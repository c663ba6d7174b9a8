//! Organizations, users, memberships, teams and team members.

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
                    .table("organizations")
                    .col(string("id").primary_key())
                    .col(string("name"))
                    .col(string("plan"))
                    .col(text("profile"))
                    .col(text("access"))
                    .col(text("security"))
                    .col(big_integer("created_at"))
                    // Bumped by every limit-checked insert: a row lock on PostgreSQL, the write lock on SQLite.
                    .col(big_integer("lock_version").default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(string("id").primary_key())
                    .col(string("email").unique_key())
                    .col(string("name"))
                    .col(text_null("password_hash"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("memberships")
                    .col(string("org_id"))
                    .col(string("user_id"))
                    .col(string("role"))
                    .col(big_integer("joined_at"))
                    .primary_key(Index::create().col("org_id").col("user_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("memberships", "org_id")
                            .to("organizations", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("memberships", "user_id")
                            .to("users", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_memberships_user",
            "memberships",
            &["user_id"],
            false,
        )
        .await?;
        // Exactly one Owner per organization, enforced by the database as well as the domain.
        manager
            .create_index(
                Index::create()
                    .name("uq_memberships_one_owner")
                    .table("memberships")
                    .col("org_id")
                    .unique()
                    .and_where(Expr::col("role").eq("owner"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("teams")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("name"))
                    .col(boolean("is_default"))
                    .col(big_integer("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("teams", "org_id")
                            .to("organizations", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_teams_org_name",
            "teams",
            &["org_id", "name"],
            true,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("team_members")
                    .col(string("team_id"))
                    .col(string("user_id"))
                    .col(string("org_id"))
                    .col(string("role"))
                    .primary_key(Index::create().col("team_id").col("user_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("team_members", "team_id")
                            .to("teams", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_team_members_org_user",
            "team_members",
            &["org_id", "user_id"],
            false,
        )
        .await
    }
}
