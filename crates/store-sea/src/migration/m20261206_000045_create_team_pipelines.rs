//! Each organization's pipeline of teams (quality gates, `tenancy::pipeline`): `stages` is a
//! JSON array of team ids, first stage first; one pipeline per organization.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("team_pipelines")
                    .col(string("org_id").primary_key())
                    .col(text("stages"))
                    .col(string("updated_by"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await
    }
}
