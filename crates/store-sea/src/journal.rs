//! Commits a `Journal` inside an open transaction: audit chain appends and outbox rows.

use std::collections::BTreeMap;

use audit::{AuditEvent, GENESIS_HEX, Journal, NewAuditEvent, chain::seal};
use rbac_core::OrgId;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
};

use crate::convert::{audit_model, micros};
use crate::entity::{audit_event, audit_head, mail, outbox_event};

/// Appends every record to its organization's chain and writes every event to the outbox.
///
/// Chains are advanced per organization in id order (a fixed lock order, so two
/// journals touching the same organizations cannot deadlock on PostgreSQL).
/// Bumping the head row first takes its row lock (PostgreSQL) or the write lock
/// (SQLite), so concurrent appends to one chain serialise.
pub(crate) async fn commit_journal(
    txn: &DatabaseTransaction,
    journal: Journal,
) -> Result<Vec<AuditEvent>, DbErr> {
    let mut by_org: BTreeMap<OrgId, Vec<NewAuditEvent>> = BTreeMap::new();
    for r in journal.records {
        by_org.entry(r.org).or_default().push(r);
    }
    let mut written = Vec::new();
    for (org, records) in by_org {
        let org_s = org.to_string();
        let n = i64::try_from(records.len()).unwrap_or(i64::MAX);
        audit_head::Entity::insert(audit_head::ActiveModel {
            org_id: Set(org_s.clone()),
            seq: Set(0),
            hash: Set(GENESIS_HEX.to_owned()),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
        audit_head::Entity::update_many()
            .col_expr(
                audit_head::Column::Seq,
                Expr::col(audit_head::Column::Seq).add(n),
            )
            .filter(audit_head::Column::OrgId.eq(org_s.as_str()))
            .exec(txn)
            .await?;
        let head = audit_head::Entity::find_by_id(org_s.clone())
            .one(txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("audit head of {org_s}")))?;
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
    if !journal.events.is_empty() {
        crate::store::fan_out(txn, &journal.events, None).await?;
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
    Ok(written)
}

/// Counts audit records that committed (`axie_audit_appends_total`, through the `metrics` facade:
/// a no-op unless the embedding program installs a recorder).
pub(crate) fn count_appends(n: usize) {
    if n > 0 {
        metrics::counter!("axie_audit_appends_total").increment(n as u64);
    }
}
