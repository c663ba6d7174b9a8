//! The organizations a session was signed out of (by an Owner or Admin there) while its
//! person belongs to other organizations too: comma-separated organization ids, empty for none.
//! The session is refused in those organizations and stays valid in the others.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("sessions")
                    .add_column(string("signed_out_of").default(""))
                    .to_owned(),
            )
            .await
    }
}
