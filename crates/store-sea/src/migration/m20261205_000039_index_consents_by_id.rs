//! Consent decisions are read by id (time-ordered): a person's newest decision for a purpose
//! (is a new one a restatement?), the purposes they decided on (at most 50), and pages of an
//! organization's or a person's decisions after a keyset cursor. The indexes carry the id, so
//! each of these walks only what it returns.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            "consents_person_purpose",
            "consents",
            &["org_id", "user_id", "purpose", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "consents_org_id",
            "consents",
            &["org_id", "id"],
            false,
        )
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("consents_org_user")
                    .table("consents")
                    .to_owned(),
            )
            .await
    }
}
