//! [`HousekeepingStore`] on SeaORM: stale rows removed a thousand at a time, so that no pass
//! holds SQLite's one writer (or PostgreSQL's row locks) for long, however much it has to remove.

use async_trait::async_trait;
use sea_orm::sea_query::IntoCondition;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    TransactionTrait,
};
use tenancy::TenancyError;
use tenancy::housekeeping::{Cutoffs, HousekeepingReport, HousekeepingStore};
use webhooks::DeliveryStatus;

use super::tenancy::store;
use crate::SeaStore;
use crate::convert::micros;
use crate::entity::{
    login_challenge, mail, outbox_event, password_reset, session, sms_outbox, webhook_attempt,
    webhook_delivery,
};

/// Rows removed per statement (and deliveries per transaction).
const BATCH: u64 = 1_000;

/// Removes the rows of `E` that meet `cond`, [`BATCH`] at a time by primary key `pk`, each
/// batch a statement of its own; returns how many went.
async fn delete_batched<E: EntityTrait>(
    db: &impl ConnectionTrait,
    pk: E::Column,
    cond: impl IntoCondition,
) -> Result<u64, sea_orm::DbErr> {
    let cond = cond.into_condition();
    let mut total = 0;
    loop {
        let batch = E::find()
            .select_only()
            .column(pk)
            .filter(cond.clone())
            .limit(BATCH)
            .into_query();
        let n = E::delete_many()
            .filter(pk.in_subquery(batch))
            .exec(db)
            .await?
            .rows_affected;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

#[async_trait]
impl HousekeepingStore for SeaStore {
    async fn prune_stale(&self, c: &Cutoffs) -> Result<HousekeepingReport, TenancyError> {
        let db = self.db();
        let mut report = HousekeepingReport {
            sessions: delete_batched::<session::Entity>(
                db,
                session::Column::Id,
                session::Column::CreatedAt.lt(micros(c.sessions_created_before)),
            )
            .await
            .map_err(store)?,
            password_resets: delete_batched::<password_reset::Entity>(
                db,
                password_reset::Column::TokenHash,
                password_reset::Column::ExpiresAt.lt(micros(c.tokens_expired_before)),
            )
            .await
            .map_err(store)?,
            login_challenges: delete_batched::<login_challenge::Entity>(
                db,
                login_challenge::Column::TokenHash,
                login_challenge::Column::ExpiresAt.lt(micros(c.tokens_expired_before)),
            )
            .await
            .map_err(store)?,
            // Unsent mail (`sent_at` NULL) never matches.
            mails: delete_batched::<mail::Entity>(
                db,
                mail::Column::Id,
                mail::Column::SentAt.lt(micros(c.mail_sent_before)),
            )
            .await
            .map_err(store)?,
            sms: delete_batched::<sms_outbox::Entity>(
                db,
                sms_outbox::Column::Seq,
                sms_outbox::Column::CreatedAt.lt(micros(c.sms_created_before)),
            )
            .await
            .map_err(store)?,
            events: delete_batched::<outbox_event::Entity>(
                db,
                outbox_event::Column::Id,
                outbox_event::Column::CreatedAt.lt(micros(c.history_created_before)),
            )
            .await
            .map_err(store)?,
            ..HousekeepingReport::default()
        };
        // A delivery goes with its attempts, in one transaction.
        loop {
            let txn = db.begin().await.map_err(store)?;
            let ids: Vec<String> = webhook_delivery::Entity::find()
                .select_only()
                .column(webhook_delivery::Column::Id)
                .filter(webhook_delivery::Column::Status.ne(DeliveryStatus::Pending.as_str()))
                .filter(webhook_delivery::Column::CreatedAt.lt(micros(c.history_created_before)))
                .limit(BATCH)
                .into_tuple()
                .all(&txn)
                .await
                .map_err(store)?;
            if ids.is_empty() {
                break;
            }
            report.webhook_attempts += webhook_attempt::Entity::delete_many()
                .filter(webhook_attempt::Column::DeliveryId.is_in(ids.clone()))
                .exec(&txn)
                .await
                .map_err(store)?
                .rows_affected;
            report.webhook_deliveries += webhook_delivery::Entity::delete_many()
                .filter(webhook_delivery::Column::Id.is_in(ids.clone()))
                .exec(&txn)
                .await
                .map_err(store)?
                .rows_affected;
            txn.commit().await.map_err(store)?;
            if (ids.len() as u64) < BATCH {
                break;
            }
        }
        Ok(report)
    }
}
