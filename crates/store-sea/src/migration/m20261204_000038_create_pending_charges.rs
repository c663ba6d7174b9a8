//! The subscription charge each organization is about to make (`tenancy::billing::PendingCharge`),
//! recorded before the payment provider is asked: a later try of the same change from the same
//! subscription version asks for the same amount under the same idempotency key. One row per
//! organization; `for_version` is the subscription version the change is made from, `change`
//! what is bought (`subscribe-pro-annual`), `amount_cents` and `description` what the provider
//! is asked for.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("pending_charges")
                    .col(string("org_id").primary_key())
                    .col(big_integer("for_version"))
                    .col(string("change"))
                    .col(big_integer("amount_cents"))
                    .col(text("description"))
                    .to_owned(),
            )
            .await
    }
}
