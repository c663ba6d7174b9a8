//! [`HousekeepingStore`] on SeaORM: stale rows removed a thousand at a time, each batch found
//! through an index on the time its rule looks at (migration `m20261130_000028`), so that no
//! statement holds SQLite's one writer (or PostgreSQL's row locks) for long, however much a pass
//! has to remove. On PostgreSQL a batch can come back short when another instance removed some
//! of the same rows at the same moment; the pass then stops, and the next one takes the rest.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, IntoCondition};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use tenancy::TenancyError;
use tenancy::housekeeping::{Cutoffs, HousekeepingReport, HousekeepingStore};
use webhooks::DeliveryStatus;

use super::tenancy::store;
use crate::SeaStore;
use crate::convert::micros;
use crate::entity::{
    bulk_preview, login_challenge, mail, outbox_event, password_reset, session, sms_outbox,
    webhook_attempt, webhook_delivery,
};

/// Rows removed per statement (and deliveries per transaction).
const BATCH: u64 = 1_000;

/// Removes the rows of `E` that meet `cond`, [`BATCH`] at a time by primary key `pk`, each
/// batch a statement of its own; returns how many went. On PostgreSQL a batch skips the rows
/// another transaction holds (an erasure rewriting them, say), which the next pass removes,
/// so housekeeping never waits in a lock cycle.
async fn delete_batched<E: EntityTrait>(
    db: &impl ConnectionTrait,
    pk: E::Column,
    cond: impl IntoCondition,
) -> Result<u64, sea_orm::DbErr> {
    let cond = cond.into_condition();
    let mut total = 0;
    loop {
        let batch = super::in_key_order::<E>(
            db.get_database_backend(),
            pk,
            cond.clone(),
            true,
            Some(BATCH),
        );
        let n = E::delete_many().filter(batch).exec(db).await?.rows_affected;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Removes the sessions created before `before` (microseconds), except each person's newest,
/// which is their last sign-in, [`BATCH`] at a time, oldest first. Each batch starts at the
/// creation time where the last one ended: the sessions kept (a dormant person's newest) are
/// passed over once, not again in every batch.
async fn prune_sessions(db: &impl ConnectionTrait, before: i64) -> Result<u64, sea_orm::DbErr> {
    let stale = || {
        Condition::all()
            .add(session::Column::CreatedAt.lt(before))
            .add(Expr::cust(
                "created_at < (SELECT MAX(s2.created_at) FROM sessions s2 \
                 WHERE s2.user_id = sessions.user_id)",
            ))
    };
    let mut from = i64::MIN;
    let mut total = 0;
    loop {
        let batch: Vec<(String, i64)> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .column(session::Column::CreatedAt)
            .filter(stale())
            .filter(session::Column::CreatedAt.gte(from))
            .order_by_asc(session::Column::CreatedAt)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(&(_, last)) = batch.last() else {
            return Ok(total);
        };
        let full = batch.len() as u64 == BATCH;
        // Checked again as they go, like every rule here.
        let n = session::Entity::delete_many()
            .filter(super::in_key_order::<session::Entity>(
                db.get_database_backend(),
                session::Column::Id,
                stale().add(session::Column::Id.is_in(batch.into_iter().map(|(id, _)| id))),
                true,
                None,
            ))
            .exec(db)
            .await?
            .rows_affected;
        total += n;
        // Nothing went (all changed meanwhile): the next pass tries again, rather than this
        // one reading the same batch forever.
        if !full || n == 0 {
            return Ok(total);
        }
        // `>=`: sessions created in the same microsecond as the last may remain.
        from = last;
    }
}

#[async_trait]
impl HousekeepingStore for SeaStore {
    async fn prune_stale(&self, c: &Cutoffs) -> Result<HousekeepingReport, TenancyError> {
        let db = self.db();
        let mut report = HousekeepingReport {
            sessions: prune_sessions(db, micros(c.sessions_created_before))
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
            // A few rows per organization at most (each new preview purges the older ones of
            // its organization), so no index: what an erasure or a forgotten upload leaves.
            bulk_previews: delete_batched::<bulk_preview::Entity>(
                db,
                bulk_preview::Column::Id,
                bulk_preview::Column::ExpiresAt.lt(micros(c.tokens_expired_before)),
            )
            .await
            .map_err(store)?,
            mails: delete_batched::<mail::Entity>(
                db,
                mail::Column::Id,
                Condition::any()
                    .add(mail::Column::SentAt.lt(micros(c.mail_before)))
                    .add(
                        Condition::all()
                            .add(mail::Column::SentAt.is_null())
                            .add(mail::Column::CreatedAt.lt(micros(c.mail_before))),
                    ),
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
            ..HousekeepingReport::default()
        };
        let finished = [
            DeliveryStatus::Delivered.as_str(),
            DeliveryStatus::Failed.as_str(),
        ];
        // A delivery goes with its attempts, in one transaction. Its last attempt's time is
        // `next_attempt_at` once it is finished.
        loop {
            let txn = db.begin().await.map_err(store)?;
            let stale = || {
                Condition::all()
                    .add(webhook_delivery::Column::Status.is_in(finished))
                    .add(webhook_delivery::Column::NextAttemptAt.lt(micros(c.history_before)))
            };
            let ids: Vec<String> = webhook_delivery::Entity::find()
                .select_only()
                .column(webhook_delivery::Column::Id)
                .filter(stale())
                .limit(BATCH)
                .into_tuple()
                .all(&txn)
                .await
                .map_err(store)?;
            if ids.is_empty() {
                break;
            }
            // Checked again as they go: one sent again since (pending again) stays.
            let gone = super::webhooks::delete_deliveries_returning_ids(
                &txn,
                stale().add(webhook_delivery::Column::Id.is_in(ids.clone())),
            )
            .await
            .map_err(store)?;
            report.webhook_deliveries += gone.len() as u64;
            report.webhook_attempts += webhook_attempt::Entity::delete_many()
                .filter(webhook_attempt::Column::DeliveryId.is_in(gone))
                .exec(&txn)
                .await
                .map_err(store)?
                .rows_affected;
            txn.commit().await.map_err(store)?;
            if (ids.len() as u64) < BATCH {
                break;
            }
        }
        // After the deliveries: an event stays while a delivery refers to it, since an erasure
        // finds the deliveries that name the person through their events.
        report.events = delete_batched::<outbox_event::Entity>(
            db,
            outbox_event::Column::Id,
            Condition::all()
                .add(outbox_event::Column::CreatedAt.lt(micros(c.history_before)))
                .add(Expr::cust(
                    "NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                     WHERE d.event_id = outbox_events.id)",
                )),
        )
        .await
        .map_err(store)?;
        report.orphaned_organizations = remove_orphans(db).await.map_err(store)?;
        Ok(report)
    }
}

/// Removes what requests wrote for organizations deleted meanwhile: a request past its checks
/// when the deletion committed can still append an audit record (which starts the chain anew)
/// or count usage, and neither write takes the organization's lock. Such an organization is
/// found by its chain head or its monthly usage (a few rows per organization, read whole), and
/// everything of it goes in one transaction, as with the deletion. Returns how many.
async fn remove_orphans(db: &sea_orm::DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    let orphans = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT org_id FROM audit_heads h WHERE NOT EXISTS \
             (SELECT 1 FROM organizations o WHERE o.id = h.org_id) \
             UNION SELECT org_id FROM usage_monthly u WHERE NOT EXISTS \
             (SELECT 1 FROM organizations o WHERE o.id = u.org_id)",
        ))
        .await?;
    let mut removed = 0;
    for row in orphans {
        let id: String = row.try_get_by_index(0)?;
        let txn = db.begin().await?;
        // Looked up again in the transaction that deletes (ids are never reused; an
        // organization whose creation commits meanwhile is seen and left alone).
        let exists = crate::entity::organization::Entity::find_by_id(id.clone())
            .one(&txn)
            .await?
            .is_some();
        if !exists {
            // The chain head first: a late append holds it until it commits, so once it is
            // ours every record appended under it is committed and seen by the deletes below
            // (events before the head would leave a late writer's records behind, headless,
            // where no later pass looks). An append after this commit starts a new head,
            // which the next pass finds.
            crate::entity::audit_head::Entity::delete_by_id(id.clone())
                .exec(&txn)
                .await?;
            super::tenancy::delete_org_rows(&txn, &id).await?;
            removed += 1;
        }
        txn.commit().await?;
    }
    Ok(removed)
}
