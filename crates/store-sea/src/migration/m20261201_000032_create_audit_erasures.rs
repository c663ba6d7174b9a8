//! Who each organization erased, by id (a person, and the API keys that acted in their name),
//! so that an audit record naming them that commits after the erasure keeps no personal
//! annotation either: a request that read their name before the erasure and records it after.
//! `audit_heads.erasures` counts an organization's erasures; an append looks the list up only
//! when it is not zero, and an erasure raising it takes the chain head, which orders it with
//! every append to that chain.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_erasures")
                    .col(string("org_id"))
                    .col(string("subject_id"))
                    .col(big_integer("erased_at"))
                    .primary_key(Index::create().col("org_id").col("subject_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("audit_heads")
                    .add_column(big_integer("erasures").default(0))
                    .to_owned(),
            )
            .await
    }
}
