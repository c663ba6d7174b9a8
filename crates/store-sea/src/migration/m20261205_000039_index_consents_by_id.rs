//! Consent decisions are read by id (one person's in the order they were made): a person's
//! newest decision for a purpose (is a new one a restatement?) and the purposes they decided on
//! (at most 50) through `(org_id, user_id, purpose, id)`; a person's newest decision (the next
//! id follows it) and pages of their decisions after a keyset cursor through
//! `(org_id, user_id, id)`; pages of the organization's through `(org_id, id)`.

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
            "consents_person_id",
            "consents",
            &["org_id", "user_id", "id"],
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
