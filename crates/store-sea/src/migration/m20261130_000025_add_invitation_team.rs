//! The one team an invitation brings its invitee into (`tenancy::invitations::InvitedTeam`):
//! NULL in both columns joins the default team, as every invitation did before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table("invitations")
                    .add_column(text_null("team_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("invitations")
                    .add_column(text_null("team_role"))
                    .to_owned(),
            )
            .await
    }
}
