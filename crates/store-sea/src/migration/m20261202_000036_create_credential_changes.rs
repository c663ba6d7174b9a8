//! When each person's password last changed (changed, reset, or reset by an operator): the
//! addresses of their sessions before it no longer pass a lock on their account as familiar
//! ones (`AccountStore::sign_in_addresses`), since a credential change is what ends an
//! intruder's access.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("credential_changes")
                    .col(string("user_id").primary_key())
                    .col(big_integer("changed_at"))
                    .to_owned(),
            )
            .await
    }
}
