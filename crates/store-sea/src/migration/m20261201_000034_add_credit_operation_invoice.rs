//! The invoice issued with a credit operation (a purchase), so that its reversal can void the
//! invoice while it is open. NULL for operations without one, and for purchases made before
//! this column (their reversals leave the invoice as it is).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("credit_operations")
                    .add_column(string_null("invoice_number"))
                    .to_owned(),
            )
            .await
    }
}
