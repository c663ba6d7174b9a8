//! GDPR consent decisions: append-only, one row per grant or withdrawal.

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
                    .table("consents")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("user_id"))
                    .col(string("purpose"))
                    .col(boolean("granted"))
                    .col(big_integer("at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "consents_org_user",
            "consents",
            &["org_id", "user_id", "at"],
            false,
        )
        .await
    }
}
