//! One-time passes the store has made, by name: `secrets_bound` says the secrets earlier
//! versions stored unbound (`v1:`) were bound to their rows (`SeaStore::bind_secrets`). After
//! it, an unbound value is never bound again: one pasted onto a row later (a TOTP secret its
//! writer knows, copied over another person's) stays unreadable instead of becoming theirs.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("store_markers")
                    .col(string("name").primary_key())
                    .col(big_integer("done_at"))
                    .to_owned(),
            )
            .await
    }
}
