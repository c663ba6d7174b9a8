//! "Did this person do this, in this period": an index on the actor and the action together,
//! newest first within them, so a search filtered by both seeks straight to the matching
//! records. With the actor index alone, such a search walked every index entry of the actor
//! to find the few (or none) with that action: 50,000 entries, 4.5 ms, at a log of
//! 10,000,000 events with 200 actors, and proportionally more for a busier actor.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            "idx_audit_actor_action",
            "audit_events",
            &["org_id", "actor_id", "action", "seq", "occurred_at"],
            false,
        )
        .await
    }
}
