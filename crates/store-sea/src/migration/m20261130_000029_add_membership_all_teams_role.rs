//! A member's role in every team of the organization, those created later included
//! (`rbac_core::Subject::all_teams`: the guide's Finance, "view only, all teams"): `viewer`,
//! `member` or `admin`, or NULL for explicit team roles only.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("memberships")
                    .add_column(string_null("all_teams_role"))
                    .to_owned(),
            )
            .await
    }
}
