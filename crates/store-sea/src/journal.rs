//! Commits a `Journal` inside an open transaction: audit chain appends and outbox rows.

use std::collections::BTreeMap;

use audit::{AuditEvent, GENESIS_HEX, Journal, NewAuditEvent, chain::seal};
use rbac_core::OrgId;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};

use crate::convert::{audit_model, micros};
use crate::entity::{audit_erasure, audit_event, audit_head, mail, outbox_event};

/// Appends every record to its organization's chain and writes every event to the outbox.
///
/// Returns the sealed records and how many webhook deliveries the events queued.
pub(crate) async fn commit_journal(
    txn: &DatabaseTransaction,
    journal: Journal,
) -> Result<(Vec<AuditEvent>, usize), DbErr> {
    let (mut written, queued) = commit_journals(txn, vec![journal]).await?;
    Ok((written.pop().unwrap_or_default(), queued))
}

/// Rows per `INSERT` of audit records: 20 parameters each, under SQLite's 32,766 and
/// PostgreSQL's 65,535 parameters per statement.
const INSERT_ROWS: usize = 1_000;

/// [`commit_journal`] for several journals at once (a group commit of appends), in three
/// statements for the chains whatever the number of journals and organizations: one reserves
/// the sequence numbers of every organization and reads their heads, one writes the new heads,
/// one inserts the records (per [`INSERT_ROWS`]).
///
/// Chains are advanced in organization id order (a fixed lock order, so two batches touching
/// the same organizations cannot deadlock on PostgreSQL); within an organization, records keep
/// the journals' order and each journal's own. The reservation is an upsert that creates a head
/// at genesis or adds to it, taking the head rows' locks (PostgreSQL) or the write lock
/// (SQLite), so concurrent appends to one chain serialise.
/// Returns each journal's sealed records (by organization, then in its order) and how many
/// webhook deliveries the events queued.
pub(crate) async fn commit_journals(
    txn: &DatabaseTransaction,
    journals: Vec<Journal>,
) -> Result<(Vec<Vec<AuditEvent>>, usize), DbErr> {
    let mut by_org: BTreeMap<OrgId, Vec<(usize, NewAuditEvent)>> = BTreeMap::new();
    let mut events = Vec::new();
    let mut mails = Vec::new();
    let mut written: Vec<Vec<AuditEvent>> = journals.iter().map(|_| Vec::new()).collect();
    for (i, j) in journals.into_iter().enumerate() {
        for r in j.records {
            by_org.entry(r.org).or_default().push((i, r));
        }
        events.extend(j.events);
        mails.extend(j.mails);
    }
    if !by_org.is_empty() {
        let seq_col = audit_head::Column::Seq;
        let reserve = by_org.iter().map(|(org, records)| audit_head::ActiveModel {
            org_id: Set(org.to_string()),
            seq: Set(i64::try_from(records.len()).unwrap_or(i64::MAX)),
            hash: Set(GENESIS_HEX.to_owned()),
            erasures: NotSet,
        });
        let heads: BTreeMap<String, audit_head::Model> = audit_head::Entity::insert_many(reserve)
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
            .await?
            .into_iter()
            .map(|h| (h.org_id.clone(), h))
            .collect();
        erase_the_erased(txn, &heads, &mut by_org).await?;
        let mut models = Vec::new();
        let mut new_heads = Vec::with_capacity(by_org.len());
        for (org, records) in by_org {
            let org_s = org.to_string();
            let head = heads
                .get(&org_s)
                .ok_or_else(|| DbErr::Custom(format!("no audit head returned for {org_s}")))?;
            let n = i64::try_from(records.len()).unwrap_or(i64::MAX);
            let mut seq = head.seq - n;
            let mut prev = crate::convert::hash32("audit head", &head.hash)
                .map_err(|e| DbErr::Custom(e.to_string()))?;
            for (i, r) in records {
                seq += 1;
                let sealed = seal(r, seq, prev);
                prev = sealed.hash;
                models.push(audit_model(&sealed));
                if let Some(w) = written.get_mut(i) {
                    w.push(sealed);
                }
            }
            new_heads.push(audit_head::ActiveModel {
                org_id: Set(org_s),
                seq: Set(seq),
                hash: Set(hex::encode(prev)),
                erasures: NotSet,
            });
        }
        audit_head::Entity::insert_many(new_heads)
            .on_conflict(
                OnConflict::column(audit_head::Column::OrgId)
                    .update_column(audit_head::Column::Hash)
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        let mut models = models.into_iter().peekable();
        let backend = txn.get_database_backend();
        while models.peek().is_some() {
            txn.execute_raw(insert_records(backend, models.by_ref().take(INSERT_ROWS)))
                .await?;
        }
    }
    let mut queued = 0;
    if !events.is_empty() {
        queued = crate::store::fan_out(txn, &events, None).await?;
        let now = chrono::Utc::now();
        let rows = events.iter().map(|e| outbox_event::ActiveModel {
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
    if !mails.is_empty() {
        let now = micros(chrono::Utc::now());
        let rows = mails.into_iter().map(|m| mail::ActiveModel {
            id: Set(format!("mail_{}", uuid::Uuid::now_v7().simple())),
            // Account mail (no organization) is kept under the empty id, which no
            // organization's outbox lists.
            org_id: Set(m.org.map_or_else(String::new, |o| o.to_string())),
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

/// Blanks the personal annotations of the records about to be appended that name someone their
/// organization erased and who has not joined it again (`store::audit::begin_erasure`):
/// a request that read the name before the erasure and records it after. Only the
/// organizations whose head counts an erasure are looked up, in one query. The annotations are
/// outside the hash, so the chain is the same either way.
async fn erase_the_erased(
    txn: &DatabaseTransaction,
    heads: &BTreeMap<String, audit_head::Model>,
    by_org: &mut BTreeMap<OrgId, Vec<(usize, NewAuditEvent)>>,
) -> Result<(), DbErr> {
    let orgs: Vec<String> = heads
        .values()
        .filter(|h| h.erasures > 0)
        .map(|h| h.org_id.clone())
        .collect();
    if orgs.is_empty() {
        return Ok(());
    }
    let mut named: Vec<String> = by_org
        .iter()
        .filter(|(org, _)| orgs.contains(&org.to_string()))
        .flat_map(|(_, records)| records.iter())
        .flat_map(|(_, r)| [r.actor.id.clone(), r.target.id.clone()])
        .filter(|id| !id.is_empty())
        .collect();
    named.sort_unstable();
    named.dedup();
    let rows: Vec<(String, String)> = audit_erasure::Entity::find()
        .select_only()
        .column(audit_erasure::Column::OrgId)
        .column(audit_erasure::Column::SubjectId)
        .filter(audit_erasure::Column::OrgId.is_in(orgs))
        .filter(audit_erasure::Column::SubjectId.is_in(named))
        .into_tuple()
        .all(txn)
        .await?;
    let mut erased: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (org, id) in rows {
        erased.entry(org).or_default().insert(id);
    }
    for (org, records) in by_org.iter_mut() {
        if let Some(ids) = erased.get(&org.to_string()) {
            for (_, r) in records.iter_mut() {
                audit::erase_annotations_of(r, |id| ids.contains(id));
            }
        }
    }
    Ok(())
}

/// The insert of `rows` into the audit log. On SQLite it is `INSERT OR FAIL`: SQLite keeps a
/// statement journal (the original of every page a statement changes, in a temporary file past
/// 64 KiB) so that a multi-row insert that fails can undo its own rows and leave its transaction
/// going; nothing here goes on after a failed insert (the error drops the whole transaction), so
/// without the journal nothing is lost, and a journal of a thousand records no longer writes and
/// reads back megabytes of temporary file.
fn insert_records(
    backend: DbBackend,
    rows: impl IntoIterator<Item = audit_event::ActiveModel>,
) -> sea_orm::Statement {
    let mut stmt = audit_event::Entity::insert_many(rows).build(backend);
    if backend == DbBackend::Sqlite {
        stmt.sql = stmt.sql.replacen("INSERT INTO", "INSERT OR FAIL INTO", 1);
    }
    stmt
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

/// Most records committed together by one group commit of appends.
const GROUP_RECORDS: usize = 4_096;

/// Group commit for [`AuditStore::append`](audit::AuditStore::append): appends that arrive while
/// one is being committed wait and are then committed together, in one transaction, so that
/// concurrent appends (failed logins, denials, views, exports of many organizations) share the
/// transaction's fixed cost and its statements ([`commit_journals`]). Each caller still gets its
/// own sealed records, and only after the transaction that holds them has committed. When a
/// group's transaction fails, its journals are committed again one by one, so one journal's
/// failure is its own.
#[derive(Debug, Default)]
pub(crate) struct AppendGroup {
    state: std::sync::Mutex<GroupState>,
}

#[derive(Debug, Default)]
struct GroupState {
    waiting: Vec<Waiting>,
    /// A task is committing and will take what waits.
    committing: bool,
}

#[derive(Debug)]
struct Waiting {
    journal: Journal,
    done: tokio::sync::oneshot::Sender<Result<Vec<AuditEvent>, DbErr>>,
}

impl AppendGroup {
    fn state(&self) -> std::sync::MutexGuard<'_, GroupState> {
        // The lock guards plain pushes and takes, which cannot leave the state half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `journal`; returns whether the caller must start a committing task.
    fn push(&self, w: Waiting) -> bool {
        let mut s = self.state();
        s.waiting.push(w);
        !std::mem::replace(&mut s.committing, true)
    }

    /// The next group (oldest first, up to [`GROUP_RECORDS`] records, at least one journal), or
    /// an empty one, ending the committing task's turn.
    fn take(&self) -> Vec<Waiting> {
        let mut s = self.state();
        let mut records = 0;
        let n = s
            .waiting
            .iter()
            .take_while(|w| {
                let first = records == 0;
                records += w.journal.records.len().max(1);
                first || records <= GROUP_RECORDS
            })
            .count();
        if n == 0 {
            s.committing = false;
        }
        s.waiting.drain(..n).collect()
    }
}

/// Ends a committing task's turn when it stops before taking an empty group (its runtime
/// dropped it mid-commit): the journals still waiting are abandoned (their callers get an error;
/// nothing of theirs was committed) and the next append starts another task.
struct TurnGuard {
    group: std::sync::Arc<AppendGroup>,
    ended: bool,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if !self.ended {
            let abandoned = {
                let mut s = self.group.state();
                s.committing = false;
                std::mem::take(&mut s.waiting)
            };
            drop(abandoned);
        }
    }
}

impl crate::SeaStore {
    /// Appends `journal` with whatever other appends are waiting (see [`AppendGroup`]).
    pub(crate) async fn append_grouped(&self, journal: Journal) -> Result<Vec<AuditEvent>, DbErr> {
        let (done, result) = tokio::sync::oneshot::channel();
        if self.appends().push(Waiting { journal, done }) {
            let store = self.clone();
            // The turn exists before the task: a task dropped before it first runs (its runtime
            // stopping) still ends the turn and abandons the waiting journals.
            let turn = TurnGuard {
                group: self.append_group(),
                ended: false,
            };
            // A task of its own, so that a caller that stops waiting (a dropped request) does not
            // stop the commit of the others' journals.
            self.spawn_writing(async move { store.commit_groups(turn).await });
        }
        result.await.map_err(|_| {
            DbErr::Custom("the audit append was abandoned before it committed".into())
        })?
    }

    async fn commit_groups(&self, mut turn: TurnGuard) {
        let group = std::sync::Arc::clone(&turn.group);
        loop {
            let batch = group.take();
            if batch.is_empty() {
                // `take` ended the turn under the lock: a push after it starts a new task.
                turn.ended = true;
                return;
            }
            self.commit_group(batch).await;
        }
    }

    async fn commit_group(&self, batch: Vec<Waiting>) {
        let (journals, senders): (Vec<Journal>, Vec<_>) =
            batch.into_iter().map(|w| (w.journal, w.done)).unzip();
        if journals.len() > 1 {
            match self.commit_together(journals.clone()).await {
                Ok(results) => {
                    for (done, r) in senders.into_iter().zip(results) {
                        // A caller that stopped waiting does not want its result.
                        let _ = done.send(Ok(r));
                    }
                    return;
                }
                // The commit itself failed: whether it took effect is unknown, and appending
                // again could record the same facts twice.
                Err(GroupFailure::AtCommit(e)) => {
                    for done in senders {
                        let _ = done.send(Err(DbErr::Custom(e.to_string())));
                    }
                    return;
                }
                Err(GroupFailure::Before(e)) => {
                    tracing::debug!(error = %e, "group append failed; appending one by one");
                }
            }
        }
        for (done, journal) in senders.into_iter().zip(journals) {
            let result = match self.commit_together(vec![journal]).await {
                Ok(mut written) => Ok(written.pop().unwrap_or_default()),
                Err(GroupFailure::Before(e) | GroupFailure::AtCommit(e)) => Err(e),
            };
            let _ = done.send(result);
        }
    }

    async fn commit_together(
        &self,
        journals: Vec<Journal>,
    ) -> Result<Vec<Vec<AuditEvent>>, GroupFailure> {
        use sea_orm::TransactionTrait;
        let txn = self.db().begin().await.map_err(GroupFailure::Before)?;
        let (written, queued) = commit_journals(&txn, journals)
            .await
            .map_err(GroupFailure::Before)?;
        txn.commit().await.map_err(GroupFailure::AtCommit)?;
        count_appends(written.iter().map(Vec::len).sum());
        if queued > 0 {
            DELIVERIES_QUEUED.notify_one();
        }
        Ok(written)
    }
}

/// Where a group's transaction failed.
enum GroupFailure {
    /// Before its commit: nothing was written.
    Before(DbErr),
    /// At its commit, which may or may not have taken effect.
    AtCommit(DbErr),
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

#[cfg(test)]
mod tests {
    use audit::{Actor, AuditAction, NewAuditEvent, Target, chain::seal};
    use sea_orm::DbBackend;

    use crate::convert::audit_model;

    #[test]
    fn sqlite_inserts_records_without_a_statement_journal() {
        let record = seal(
            NewAuditEvent::new(
                rbac_core::OrgId::new(),
                chrono::Utc::now(),
                Actor::user("usr_1", "Someone"),
                AuditAction::Login,
                Target::new("session", "s1", ""),
            ),
            1,
            audit::chain::GENESIS,
        );
        let rows = || [audit_model(&record), audit_model(&record)];
        let sqlite = super::insert_records(DbBackend::Sqlite, rows());
        assert!(
            sqlite
                .sql
                .starts_with(r#"INSERT OR FAIL INTO "audit_events""#),
            "{}",
            sqlite.sql
        );
        let postgres = super::insert_records(DbBackend::Postgres, rows());
        assert!(
            postgres.sql.starts_with(r#"INSERT INTO "audit_events""#),
            "{}",
            postgres.sql
        );
        for stmt in [sqlite, postgres] {
            assert_eq!(stmt.values.map(|v| v.0.len()), Some(40), "two rows of 20");
        }
    }
}
