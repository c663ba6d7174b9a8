//! Per-account login throttling state.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("login_throttle")
                    .col(string("user_id").primary_key())
                    .col(integer("failures"))
                    .col(big_integer("window_start"))
                    .col(big_integer_null("locked_until"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("login_throttle", "user_id")
                            .to("users", "id"),
                    )
                    .to_owned(),
            )
            .await
    }
}
