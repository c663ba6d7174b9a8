//! Prices agreed with one organization: `plan` (`pro` or `enterprise`) at `monthly_cents` a
//! month replaces the list's monthly price of that plan for that organization
//! (`tenancy::billing::prices_for`); one deal per organization, set by the operator
//! (`set-price`; when, the audit record says: `billing.price_agreed`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("price_deals")
                    .col(string("org_id").primary_key())
                    .col(string("plan"))
                    .col(big_integer("monthly_cents"))
                    .to_owned(),
            )
            .await
    }
}
