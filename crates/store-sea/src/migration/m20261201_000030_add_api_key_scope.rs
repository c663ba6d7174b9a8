//! What an API key reaches (`tenancy::KeyScope`): `organization` for a key created in the
//! organization's default team, `team` for one created in any other team, which then acts only
//! in that team. Keys created before are given the scope their team implies.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .add_column(string("scope").default("organization"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE api_keys SET scope = 'team' \
                 WHERE team_id IN (SELECT id FROM teams WHERE is_default = FALSE)",
            )
            .await?;
        Ok(())
    }
}
