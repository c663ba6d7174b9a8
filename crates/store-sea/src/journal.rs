//! Commits a `Journal` inside an open transaction: audit chain appends and outbox rows.

use std::collections::BTreeMap;

use audit::{AuditEvent, GENESIS_HEX, Journal, NewAuditEvent, chain::seal};
use rbac_core::OrgId;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
};

use crate::convert::{audit_model, micros};
use crate::entity::{audit_event, audit_head, mail, outbox_event};

/// Appends every record to its organization's chain and writes every event to the outbox.
///
/// Chains are advanced per organization in id order (a fixed lock order, so two
/// journals touching the same organizations cannot deadlock on PostgreSQL).
/// Reserving the sequence numbers first takes the head's row lock (PostgreSQL) or the write
/// lock (SQLite), so concurrent appends to one chain serialise.
/// Returns the sealed records and how many webhook deliveries the events queued.
pub(crate) async fn commit_journal(
    txn: &DatabaseTransaction,
    journal: Journal,
) -> Result<(Vec<AuditEvent>, usize), DbErr> {
    let mut by_org: BTreeMap<OrgId, Vec<NewAuditEvent>> = BTreeMap::new();
    for r in journal.records {
        by_org.entry(r.org).or_default().push(r);
    }
    let mut written = Vec::new();
    for (org, records) in by_org {
        let org_s = org.to_string();
        let n = i64::try_from(records.len()).unwrap_or(i64::MAX);
        // One statement reserves `n` sequence numbers and reads the chain's head: the upsert
        // creates the head at genesis or adds `n` to it, taking the row lock (PostgreSQL) or the
        // write lock (SQLite), so concurrent appends to one chain serialise.
        let seq_col = audit_head::Column::Seq;
        let head = audit_head::Entity::insert(audit_head::ActiveModel {
            org_id: Set(org_s.clone()),
            seq: Set(n),
            hash: Set(GENESIS_HEX.to_owned()),
        })
        .on_conflict(
            OnConflict::column(audit_head::Column::OrgId)
                .value(
                    seq_col,
                    Expr::col((audit_head::Entity, seq_col))
                        .add(Expr::col((Alias::new("excluded"), seq_col))),
                )
                .to_owned(),
        )
        .exec_with_returning(txn)
        .await?;
        let mut seq = head.seq - n;
        let mut prev = crate::convert::hash32("audit head", &head.hash)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let mut models = Vec::with_capacity(records.len());
        for r in records {
            seq += 1;
            let sealed = seal(r, seq, prev);
            prev = sealed.hash;
            models.push(audit_model(&sealed));
            written.push(sealed);
        }
        audit_head::Entity::update_many()
            .col_expr(audit_head::Column::Hash, Expr::value(hex::encode(prev)))
            .filter(audit_head::Column::OrgId.eq(org_s.as_str()))
            .exec(txn)
            .await?;
        audit_event::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
    }
    let mut queued = 0;
    if !journal.events.is_empty() {
        queued = crate::store::fan_out(txn, &journal.events, None).await?;
        let now = chrono::Utc::now();
        let rows = journal.events.iter().map(|e| outbox_event::ActiveModel {
            id: Set(e.id.to_string()),
            org_id: Set(e.org.to_string()),
            kind: Set(e.kind.as_str().to_owned()),
            occurred_at: Set(micros(e.occurred_at)),
            data: Set(e.data.to_string()),
            created_at: Set(micros(now)),
        });
        outbox_event::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    if !journal.mails.is_empty() {
        let now = micros(chrono::Utc::now());
        let rows = journal.mails.into_iter().map(|m| mail::ActiveModel {
            id: Set(format!("mail_{}", uuid::Uuid::now_v7().simple())),
            org_id: Set(m.org.to_string()),
            to_addr: Set(m.to),
            subject: Set(m.subject),
            body: Set(m.body),
            kind: Set(m.kind),
            created_at: Set(now),
            sent_at: Set(None),
            attempts: Set(0),
            last_error: Set(None),
            available_at: Set(now),
        });
        mail::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok((written, queued))
}

/// Writes `journal` in `txn` and commits; then counts the appends and, when deliveries were
/// queued (by the journal's events, or `queued` by the caller in the same transaction), wakes
/// this process's delivery worker, so a new event does not wait for the next poll.
pub(crate) async fn finish(
    txn: DatabaseTransaction,
    journal: Journal,
    queued: usize,
) -> Result<Vec<AuditEvent>, DbErr> {
    let (written, fanned) = commit_journal(&txn, journal).await?;
    txn.commit().await?;
    count_appends(written.len());
    if queued + fanned > 0 {
        DELIVERIES_QUEUED.notify_one();
    }
    Ok(written)
}

static DELIVERIES_QUEUED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Completes after a commit in this process queued webhook deliveries (at once if one did
/// since the last wait). A hint for the delivery worker, which still polls: other processes'
/// commits do not signal here.
pub async fn deliveries_queued() {
    DELIVERIES_QUEUED.notified().await;
}

/// Counts audit records that committed (`axie_audit_appends_total`, through the `metrics` facade:
/// a no-op unless the embedding program installs a recorder).
pub(crate) fn count_appends(n: usize) {
    if n > 0 {
        metrics::counter!("axie_audit_appends_total").increment(n as u64);
    }
}
