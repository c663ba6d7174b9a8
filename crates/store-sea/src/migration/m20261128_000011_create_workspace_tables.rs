//! Workspace resources (assets), their transfer history, daily usage counters, and team archiving.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Archived teams keep their resources readable but accept nothing new.
        manager
            .alter_table(
                Table::alter()
                    .table("teams")
                    .add_column(big_integer_null("archived_at"))
                    .to_owned(),
            )
            .await?;
        // One table for every kind of workspace resource: the shared columns drive
        // scoping, quotas and transfers; `details` holds the kind's own fields as JSON.
        manager
            .create_table(
                Table::create()
                    .table("assets")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("team_id"))
                    .col(string("kind"))
                    .col(string("name"))
                    .col(string_null("parent_id"))
                    .col(string("created_by"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .col(big_integer("size_bytes").default(0))
                    // A domain's host name, unique per organization; NULL for other kinds.
                    .col(string_null("hostname"))
                    .col(text("details"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("assets", "org_id")
                            .to("organizations", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("assets", "team_id")
                            .to("teams", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_assets_org_kind",
            "assets",
            &["org_id", "kind", "id"],
            false,
        )
        .await?;
        index(manager, "idx_assets_team", "assets", &["team_id"], false).await?;
        index(
            manager,
            "idx_assets_parent",
            "assets",
            &["parent_id"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_assets_creator",
            "assets",
            &["org_id", "created_by"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_assets_hostname",
            "assets",
            &["org_id", "hostname"],
            true,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("asset_transfers")
                    .col(big_integer("seq").primary_key().auto_increment())
                    .col(string("org_id"))
                    .col(string("asset_id"))
                    .col(string("from_team"))
                    .col(string("to_team"))
                    .col(string("from_name"))
                    .col(string("to_name"))
                    .col(string("by_user"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_asset_transfers_asset",
            "asset_transfers",
            &["org_id", "asset_id", "seq"],
            false,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("usage_daily")
                    .col(string("org_id"))
                    .col(string("team_id"))
                    // '' when the usage is of no particular asset.
                    .col(string("asset_id"))
                    .col(string("metric"))
                    // ISO date, UTC.
                    .col(string("day"))
                    .col(big_integer("count"))
                    .primary_key(
                        Index::create()
                            .col("org_id")
                            .col("day")
                            .col("team_id")
                            .col("asset_id")
                            .col("metric"),
                    )
                    .to_owned(),
            )
            .await
    }
}
