//! [`AuditStore`] on SeaORM.

use async_trait::async_trait;
use audit::{
    ActionFilter, AuditAction, AuditError, AuditEvent, AuditQuery, AuditStore, Checkpoint, Journal,
};
use rbac_core::OrgId;
use sea_orm::sea_query::{Expr, ExprTrait, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::SeaStore;
use crate::convert::{hash32, id, micros, time};
use crate::entity::{audit_anchor, audit_checkpoint, audit_erasure, audit_event, audit_head};
use crate::error::db_err;

fn store(e: sea_orm::DbErr) -> AuditError {
    AuditError::Store(db_err(e))
}

impl SeaStore {
    /// Up to `limit` of `org`'s records after `after`, oldest first, as `select` selects them.
    async fn chain_records(
        &self,
        select: sea_orm::Select<audit_event::Entity>,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        use audit_event::Column as C;
        use sea_orm::QueryTrait;
        let page = select
            .filter(C::OrgId.eq(org.to_string()))
            .filter(C::Seq.gt(after))
            .order_by_asc(C::Seq)
            .limit(u64::from(limit))
            .build(self.reader().get_database_backend());
        self.audit_records(page).await.map_err(AuditError::Store)
    }

    /// [`AuditStore::search`] with at most one exact action.
    async fn search_one(
        &self,
        org: OrgId,
        q: &AuditQuery,
        action: Option<&str>,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        use sea_orm::QueryTrait;
        let backend = self.reader().get_database_backend();
        let stmt = with_index(
            backend,
            q,
            backend.build(&search_query(org, q, action).into_query()),
        );
        self.audit_records(stmt).await.map_err(AuditError::Store)
    }

    /// [`AuditStore::search`] for a set of exact actions (a prefix), in one statement: each
    /// action's newest sequence numbers in index order (read from the index alone where the
    /// filters allow), merged and cut to the page by the database, then only the page's records
    /// read from the table. A first page stays a few index reads however large the log is.
    async fn search_any(
        &self,
        org: OrgId,
        q: &AuditQuery,
        actions: &[&str],
    ) -> Result<Vec<AuditEvent>, AuditError> {
        use sea_orm::QueryTrait;
        use sea_orm::sea_query::{Alias, Asterisk, Order, Query, UnionType};
        let backend = self.reader().get_database_backend();
        if backend == sea_orm::DatabaseBackend::Postgres {
            return self.search_any_pg(org, q, actions).await;
        }
        let mut parts = actions.iter().enumerate().map(|(i, a)| {
            Query::select()
                .column(Asterisk)
                .from_subquery(
                    search_query(org, q, Some(a))
                        .select_only()
                        .column(audit_event::Column::Seq)
                        .into_query(),
                    Alias::new(format!("a{i}")),
                )
                .to_owned()
        });
        let Some(mut merged) = parts.next() else {
            return Ok(Vec::new());
        };
        merged.unions(parts.map(|p| (UnionType::All, p)));
        let newest = Query::select()
            .column(Alias::new("seq"))
            .from_subquery(merged, Alias::new("merged"))
            .order_by(Alias::new("seq"), Order::Desc)
            .limit(u64::from(q.limit))
            .to_owned();
        let newest = with_index(backend, q, backend.build(&newest));
        let mut values = newest.values.map(|v| v.0).unwrap_or_default();
        values.push(org.to_string().into());
        // The page's records by primary key (the index hint above applies to the walks only).
        let org_param = match backend {
            sea_orm::DatabaseBackend::Postgres => format!("${}", values.len()),
            _ => "?".to_owned(),
        };
        let page = sea_orm::Statement::from_sql_and_values(
            backend,
            format!(
                r#"SELECT "page".* FROM "audit_events" AS "page" WHERE "page"."seq" IN ({}) AND "page"."org_id" = {org_param} ORDER BY "page"."seq" DESC"#,
                newest.sql
            ),
            values,
        );
        self.audit_records(page).await.map_err(AuditError::Store)
    }

    /// [`Self::search_any`] on PostgreSQL: the same walks, one per action, as one lateral
    /// subquery over the list of actions instead of a union of one subquery per action.
    /// PostgreSQL plans each statement anew (its parameters change the plan), and planning a
    /// union of eight subqueries over a table of six indexes took about 1.4 ms of the 2 ms a
    /// first page may take, three times its execution; one lateral subquery plans in about
    /// 0.3 ms. (SQLite has no `LATERAL`; its planner is quick at the union.)
    async fn search_any_pg(
        &self,
        org: OrgId,
        q: &AuditQuery,
        actions: &[&str],
    ) -> Result<Vec<AuditEvent>, AuditError> {
        use sea_orm::QueryTrait;
        use sea_orm::sea_query::Expr;
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        let backend = sea_orm::DatabaseBackend::Postgres;
        // Catalogue names (letters, digits, dots and underscores) hold no comma.
        debug_assert!(actions.iter().all(|a| !a.contains(',')));
        let walk = backend.build(
            &search_query(org, q, None)
                .select_only()
                .column(audit_event::Column::Seq)
                .filter(Expr::cust(r#""audit_events"."action" = "a"."action""#))
                .into_query(),
        );
        let mut values = walk.values.map(|v| v.0).unwrap_or_default();
        values.push(actions.join(",").into());
        let actions_param = values.len();
        values.push(org.to_string().into());
        let org_param = values.len();
        let page = sea_orm::Statement::from_sql_and_values(
            backend,
            format!(
                r#"SELECT "page".* FROM "audit_events" AS "page" WHERE "page"."seq" IN (SELECT "s"."seq" FROM unnest(string_to_array(${actions_param}, ',')) AS "a"("action") CROSS JOIN LATERAL ({}) AS "s" ORDER BY "s"."seq" DESC LIMIT {}) AND "page"."org_id" = ${org_param} ORDER BY "page"."seq" DESC"#,
                walk.sql, q.limit
            ),
            values,
        );
        self.audit_records(page).await.map_err(AuditError::Store)
    }
}

/// The index a search walks on SQLite, chosen from the filters instead of by the planner.
///
/// SQLite plans from statistics that `ANALYZE` gathers and that each connection loads when it
/// opens: a reader connection opened before the statistics existed (a new database, or before
/// the hourly `optimize`) keeps planning without them, and without them it takes a date range on
/// the time index and sorts the whole range for one page (80 ms at 200,000 events against
/// 0.3 ms). Every search is "the organization, the filters, newest `seq` first", and each filter
/// index ends in `seq`, so the right walk follows from which filters are set: the most selective
/// equality (one resource, then one actor and an action together, then one actor, whose index
/// also carries the action and the time, then the action, then the outcome), else the log
/// itself newest first when the period is open towards now. A bounded period alone is left to
/// the planner (a walk from the newest record may pass many records newer than the period; the
/// time index may sort many). PostgreSQL keeps its statistics current itself (autovacuum) and
/// is not told.
fn sqlite_index(q: &AuditQuery) -> Option<&'static str> {
    if q.target_kind.is_some() && q.target_id.is_some() {
        Some("idx_audit_target")
    } else if q.actor_id.is_some() && q.action.is_some() {
        // A prefix is one walk per exact action (`search_any`), each a seek here.
        Some("idx_audit_actor_action")
    } else if q.actor_id.is_some() {
        Some("idx_audit_actor_filters")
    } else if q.action.is_some() {
        Some("idx_audit_action")
    } else if q.outcome.is_some() {
        Some("idx_audit_outcome")
    } else if q.until.is_none() {
        // The primary key `(org_id, seq)`'s index, as SQLite names a table's first constraint.
        Some("sqlite_autoindex_audit_events_1")
    } else {
        None
    }
}

/// `stmt` (a search over `audit_events`) with SQLite told which index to walk ([`sqlite_index`]).
fn with_index(
    backend: sea_orm::DatabaseBackend,
    q: &AuditQuery,
    mut stmt: sea_orm::Statement,
) -> sea_orm::Statement {
    if backend == sea_orm::DatabaseBackend::Sqlite
        && let Some(index) = sqlite_index(q)
    {
        stmt.sql = stmt.sql.replace(
            r#"FROM "audit_events""#,
            &format!(r#"FROM "audit_events" INDEXED BY "{index}""#),
        );
    }
    stmt
}

/// The newest page of `org`'s log matching `q`, with at most one exact action, in index order.
fn search_query(
    org: OrgId,
    q: &AuditQuery,
    action: Option<&str>,
) -> sea_orm::Select<audit_event::Entity> {
    use audit_event::Column as C;
    let mut cond = Condition::all().add(C::OrgId.eq(org.to_string()));
    if let Some(b) = q.before_seq {
        cond = cond.add(C::Seq.lt(b));
    }
    if let Some(a) = &q.actor_id {
        cond = cond.add(C::ActorId.eq(a.as_str()));
    }
    if let Some(a) = action {
        cond = cond.add(C::Action.eq(a));
    }
    if let Some(s) = q.since {
        cond = cond.add(C::OccurredAt.gte(micros(s)));
    }
    if let Some(u) = q.until {
        cond = cond.add(C::OccurredAt.lt(micros(u)));
    }
    if let Some(k) = &q.target_kind {
        cond = cond.add(C::TargetType.eq(k.as_str()));
    }
    if let Some(i) = &q.target_id {
        cond = cond.add(C::TargetId.eq(i.as_str()));
    }
    if let Some(o) = &q.outcome {
        cond = cond.add(C::Outcome.eq(o.as_str()));
    }
    if let Some(t) = q.team {
        cond = cond.add(C::TeamId.eq(t.to_string()));
    }
    if let Some(s) = &q.seen_by {
        // Their teams' records, and their own actions but the refusals they were answered
        // "not found" for (`audit::hidden_from_its_actor`).
        let hidden = Condition::all()
            .add(C::Action.eq(AuditAction::AccessDenied.as_str()))
            .add(C::Outcome.eq("denied"))
            .add(C::Reason.is_in(audit::HIDDEN_REFUSAL_REASONS));
        cond = cond.add(
            Condition::any()
                .add(C::TeamId.is_in(s.teams.iter().map(ToString::to_string)))
                .add(
                    Condition::all()
                        .add(C::ActorId.eq(s.actor_id.as_str()))
                        .add(hidden.not()),
                ),
        );
    }
    audit_event::Entity::find()
        .filter(cond)
        .order_by_desc(C::Seq)
        .limit(u64::from(q.limit))
}

/// Stores a checkpoint (again, when one of that position exists) in `txn`.
async fn insert_checkpoint(
    txn: &sea_orm::DatabaseTransaction,
    cp: &Checkpoint,
) -> Result<(), AuditError> {
    let model = audit_checkpoint::ActiveModel {
        org_id: Set(cp.org.to_string()),
        seq: Set(cp.seq),
        head: Set(hex::encode(cp.head)),
        signed_at: Set(micros(cp.signed_at)),
        mac: Set(hex::encode(cp.mac)),
    };
    audit_checkpoint::Entity::insert(model)
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                audit_checkpoint::Column::OrgId,
                audit_checkpoint::Column::Seq,
            ])
            .update_columns([
                audit_checkpoint::Column::Head,
                audit_checkpoint::Column::SignedAt,
                audit_checkpoint::Column::Mac,
            ])
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(store)?;

    Ok(())
}

#[async_trait]
impl AuditStore for SeaStore {
    async fn append(&self, journal: Journal) -> Result<Vec<AuditEvent>, AuditError> {
        self.append_grouped(journal).await.map_err(store)
    }

    async fn search(&self, org: OrgId, q: &AuditQuery) -> Result<Vec<AuditEvent>, AuditError> {
        q.validate()?;
        match &q.action {
            Some(ActionFilter::Exact(a)) => self.search_one(org, q, Some(a)).await,
            None => self.search_one(org, q, None).await,
            // A prefix names a set of catalogue actions: one index-ordered query per action,
            // merged, so a first page stays a few index reads however large the log is.
            Some(ActionFilter::Prefix(p)) => {
                let names: Vec<&str> = AuditAction::ALL
                    .iter()
                    .map(|a| a.as_str())
                    .filter(|n| n.starts_with(p.as_str()))
                    .collect();
                self.search_any(org, q, &names).await
            }
        }
    }

    async fn chain_page(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.chain_records(audit_event::Entity::find(), org, after, limit)
            .await
    }

    async fn chain_page_for_verification(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        use audit_event::Column as C;
        use sea_orm::{IdenStatic as _, Iterable};
        // The columns outside the hash are selected as empty text, so that the rows keep the
        // model's shape and go through the same conversion as whole records.
        let outside = [
            C::ActorName,
            C::TargetName,
            C::Ip,
            C::UserAgent,
            C::RequestId,
        ];
        let mut page = audit_event::Entity::find().select_only();
        for c in C::iter() {
            page = if outside.iter().any(|o| o.as_str() == c.as_str()) {
                page.column_as(Expr::val(""), c.as_str())
            } else {
                page.column(c)
            };
        }
        self.chain_records(page, org, after, limit).await
    }

    async fn chain_links(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<audit::ChainLink>, AuditError> {
        use audit_event::Column as C;
        use sea_orm::QueryTrait;
        // Each row is hashed from its hashed columns as stored, not from a record parsed out of
        // them: on a SQLite file where rusqlite reads it, from its bytes in place; elsewhere
        // (PostgreSQL) from the texts SeaORM reads.
        let page = audit_event::Entity::find()
            .select_only()
            .columns(crate::scan::LINK_COLUMNS)
            .filter(C::OrgId.eq(org.to_string()))
            .filter(C::Seq.gt(after))
            .order_by_asc(C::Seq)
            .limit(u64::from(limit));
        if let Some(scan) = &self.sqlite_reads {
            let page = page.build(sea_orm::DbBackend::Sqlite);
            return scan.links(page).await.map_err(AuditError::Store);
        }
        let rows = page
            .into_model::<LinkRow>()
            .all(self.reader())
            .await
            .map_err(store)?;
        let mut buf = Vec::with_capacity(512);
        rows.iter()
            .map(|r| r.stored().link(&mut buf))
            .collect::<Result<_, _>>()
            .map_err(AuditError::Store)
    }

    async fn head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, AuditError> {
        let Some(h) = audit_head::Entity::find_by_id(org.to_string())
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        if h.seq == 0 {
            return Ok(None);
        }
        Ok(Some((h.seq, hash32("audit head", &h.hash)?)))
    }

    async fn save_checkpoint(&self, cp: &Checkpoint, journal: Journal) -> Result<(), AuditError> {
        let txn = self.db().begin().await.map_err(store)?;
        insert_checkpoint(&txn, cp).await?;
        crate::journal::finish(txn, journal, 0)
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn save_rotated_checkpoint(
        &self,
        cp: &Checkpoint,
        anchor: Option<(&audit::Anchor, &audit::Anchor)>,
    ) -> Result<(), AuditError> {
        if let Some((old, new)) = anchor
            && !new.names_same_records(old)
        {
            return Err(AuditError::anchor_not_resealed());
        }
        let txn = self.db().begin().await.map_err(store)?;
        if anchor.is_none()
            && audit_anchor::Entity::find_by_id(cp.org.to_string())
                .one(&txn)
                .await
                .map_err(store)?
                .is_some()
        {
            txn.rollback().await.map_err(store)?;
            return Err(AuditError::anchor_moved());
        }
        if let Some((old, new)) = anchor {
            // Only the anchor read and checked: one a retention pass moved meanwhile is not
            // signed over with the new key unchecked.
            let resealed = audit_anchor::Entity::update_many()
                .col_expr(audit_anchor::Column::Mac, Expr::value(hex::encode(new.mac)))
                .filter(audit_anchor::Column::OrgId.eq(old.org.to_string()))
                .filter(audit_anchor::Column::Seq.eq(old.seq))
                .filter(audit_anchor::Column::Hash.eq(hex::encode(old.hash)))
                .filter(audit_anchor::Column::PrunedAt.eq(micros(old.pruned_at)))
                .filter(audit_anchor::Column::Mac.eq(hex::encode(old.mac)))
                .exec(&txn)
                .await
                .map_err(store)?
                .rows_affected;
            if resealed != 1 {
                txn.rollback().await.map_err(store)?;
                return Err(AuditError::anchor_moved());
            }
        }
        insert_checkpoint(&txn, cp).await?;
        txn.commit().await.map_err(store)?;
        Ok(())
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
        let Some(m) = audit_checkpoint::Entity::find()
            .filter(audit_checkpoint::Column::OrgId.eq(org.to_string()))
            .order_by_desc(audit_checkpoint::Column::Seq)
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        Ok(Some(Checkpoint {
            org: id("organization id", &m.org_id)?,
            seq: m.seq,
            head: hash32("checkpoint head", &m.head)?,
            signed_at: time(m.signed_at)?,
            mac: hash32("checkpoint mac", &m.mac)?,
        }))
    }

    async fn anchor(&self, org: OrgId) -> Result<Option<audit::Anchor>, AuditError> {
        let Some(m) = audit_anchor::Entity::find_by_id(org.to_string())
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        Ok(Some(audit::Anchor {
            org,
            seq: m.seq,
            hash: hash32("anchor hash", &m.hash)?,
            pruned_at: time(m.pruned_at)?,
            mac: hash32("anchor mac", &m.mac)?,
        }))
    }

    async fn prune(
        &self,
        a: &audit::Anchor,
        journal: audit::PruneJournal<'_>,
    ) -> Result<u64, AuditError> {
        let org = a.org.to_string();
        let txn = self.db().begin().await.map_err(store)?;
        // The anchor first, and only forward: the row lock (PostgreSQL) or the write lock
        // (SQLite) it takes serializes concurrent pruners of this organization, and the one that
        // comes second sees the first's anchor and changes nothing.
        let moved = audit_anchor::Entity::insert(audit_anchor::ActiveModel {
            org_id: Set(org.clone()),
            seq: Set(a.seq),
            hash: Set(hex::encode(a.hash)),
            pruned_at: Set(micros(a.pruned_at)),
            mac: Set(hex::encode(a.mac)),
        })
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(audit_anchor::Column::OrgId)
                .update_columns([
                    audit_anchor::Column::Seq,
                    audit_anchor::Column::Hash,
                    audit_anchor::Column::PrunedAt,
                    audit_anchor::Column::Mac,
                ])
                .action_and_where(sea_orm::ExprTrait::lt(
                    Expr::col((audit_anchor::Entity, audit_anchor::Column::Seq)),
                    a.seq,
                ))
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        if moved == 0 {
            txn.rollback().await.map_err(store)?;
            return Ok(0);
        }
        // An archived log (its organization left Enterprise) is kept whole, whenever the pass
        // read the organization: its row is read again here, after the anchor's write (which
        // holds SQLite's write lock from then on) and under a share lock on PostgreSQL, so a
        // downgrade archiving the log either committed before and is seen, or waits for this
        // removal.
        let mut archived = crate::entity::organization::Entity::find_by_id(org.clone())
            .select_only()
            .column(crate::entity::organization::Column::AuditArchivedAt);
        if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            archived = archived.lock(LockType::Share);
        }
        let archived: Option<Option<i64>> = archived.into_tuple().one(&txn).await.map_err(store)?;
        if matches!(archived, Some(Some(_))) {
            txn.rollback().await.map_err(store)?;
            return Ok(0);
        }
        let at = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org.clone()))
            .filter(audit_event::Column::Seq.eq(a.seq))
            .one(&txn)
            .await
            .map_err(store)?;
        if at.is_none_or(|r| r.hash != hex::encode(a.hash)) {
            txn.rollback().await.map_err(store)?;
            return Err(AuditError::Invalid(format!(
                "record {} is not the one the anchor names",
                a.seq
            )));
        }
        // In sequence order on PostgreSQL, as an erasure locks the records it rewrites.
        let backend = txn.get_database_backend();
        let removed = audit_event::Entity::delete_many()
            .filter(audit_event::Column::OrgId.eq(org.clone()))
            .filter(super::in_key_order::<audit_event::Entity>(
                backend,
                audit_event::Column::Seq,
                Condition::all()
                    .add(audit_event::Column::OrgId.eq(org))
                    .add(audit_event::Column::Seq.lte(a.seq)),
                false,
                None,
            ))
            .exec(&txn)
            .await
            .map_err(store)?
            .rows_affected;
        let journal = match journal(a, removed) {
            Ok(j) => j,
            Err(e) => {
                txn.rollback().await.map_err(store)?;
                return Err(e);
            }
        };
        crate::journal::finish(txn, journal, 0)
            .await
            .map_err(store)?;
        Ok(removed)
    }

    async fn erase_personal_data(
        &self,
        org: OrgId,
        subject_id: &str,
        journal: Journal,
    ) -> Result<u64, AuditError> {
        let txn = self.db().begin().await.map_err(store)?;
        let subjects = [subject_id.to_owned()];
        let n = begin_erasure(&txn, org, &subjects, &[])
            .await
            .map_err(store)?
            .complete(&txn, org, &subjects, &[], chrono::Utc::now())
            .await
            .map_err(store)?;
        crate::journal::finish(txn, journal, 0)
            .await
            .map_err(store)?;
        Ok(n)
    }

    async fn organizations(&self) -> Result<Vec<OrgId>, AuditError> {
        self.organizations_with_heads(audit_head::Entity::find())
            .await
    }
}

/// The first half of an erasure in `org` ([`erase_annotations`] of every record naming one of
/// `subjects`), run where the erasure's other rewrites run; [`Erasure::complete`] finishes it
/// just before the commit.
///
/// Records that commit after the erasure are blanked too, as they are appended, until the
/// person joins again: a request that read a name before the erasure may record it after.
/// The subjects go on `org`'s list of erasures (`audit_erasures`), which an append to `org`'s
/// chain reads (`journal::commit_journals`) once `audit_heads.erasures` says the organization
/// has one; a join takes the person off it (`insert_membership`). On PostgreSQL raising that
/// count takes the chain head's row, which every append takes too, so each append either
/// commits before it (and the second pass, after the head, finds its records) or reads the
/// list after the erasure commits. The head is taken last, as every writer takes it (the
/// lock order in ARCHITECTURE), and the second pass touches only records appended since the
/// first. On SQLite the one writer orders everything.
pub(crate) async fn begin_erasure<C: sea_orm::ConnectionTrait>(
    conn: &C,
    org: OrgId,
    subjects: &[String],
    also_named: &[String],
) -> Result<Erasure, sea_orm::DbErr> {
    // The records the first pass surely sees: those up to the committed head.
    let seen = audit_head::Entity::find_by_id(org.to_string())
        .one(conn)
        .await?
        .map_or(0, |h| h.seq);
    let erased = erase_annotations(conn, org, subjects, also_named, 0).await?;
    Ok(Erasure { seen, erased })
}

/// An erasure's first pass, done ([`begin_erasure`]); [`Erasure::complete`] must follow.
#[derive(Debug, Clone, Copy)]
#[must_use = "an erasure lists its ids and blanks late records only in `complete`"]
pub(crate) struct Erasure {
    seen: i64,
    erased: u64,
}

impl Erasure {
    /// Lists `subjects` as erased in `org` (taking its chain head), and blanks the records
    /// committed since the first pass. Returns the records the erasure touched in all.
    pub(crate) async fn complete<C: sea_orm::ConnectionTrait>(
        self,
        conn: &C,
        org: OrgId,
        subjects: &[String],
        also_named: &[String],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, sea_orm::DbErr> {
        use sea_orm::sea_query::OnConflict;
        if subjects.is_empty() {
            return Ok(self.erased);
        }
        let o = org.to_string();
        audit_head::Entity::insert(audit_head::ActiveModel {
            org_id: Set(o.clone()),
            seq: Set(0),
            hash: Set(audit::GENESIS_HEX.to_owned()),
            erasures: Set(1),
        })
        .on_conflict(
            OnConflict::column(audit_head::Column::OrgId)
                .value(
                    audit_head::Column::Erasures,
                    Expr::col((audit_head::Entity, audit_head::Column::Erasures)).add(1),
                )
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        audit_erasure::Entity::insert_many(subjects.iter().map(|s| audit_erasure::ActiveModel {
            org_id: Set(o.clone()),
            subject_id: Set(s.clone()),
            erased_at: Set(micros(now)),
        }))
        .on_conflict(
            OnConflict::columns([
                audit_erasure::Column::OrgId,
                audit_erasure::Column::SubjectId,
            ])
            .update_column(audit_erasure::Column::ErasedAt)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        let late = erase_annotations(conn, org, subjects, also_named, self.seen).await?;
        Ok(self.erased + late)
    }
}

/// Blanks the personal annotations of `org`'s audit records that name any of `subjects` (as
/// actor: the name, address and user agent; as target, or by one of `also_named` as the target's
/// name, such as an invitation's email: the target's name), in the caller's transaction, of
/// the records after sequence number `after` that still carry something to blank. The hashed
/// fields are untouched. Returns the records touched.
///
/// On PostgreSQL the records are locked first, all of them in sequence order, as a retention
/// pass deletes them: changed by the three statements below in the order of their plans, an
/// erasure and a prune of the same organization could each hold a record the other waits for.
pub(crate) async fn erase_annotations<C: sea_orm::ConnectionTrait>(
    conn: &C,
    org: OrgId,
    subjects: &[String],
    also_named: &[String],
    after: i64,
) -> Result<u64, sea_orm::DbErr> {
    use audit_event::Column as A;
    if subjects.is_empty() {
        return Ok(0);
    }
    let org = org.to_string();
    let in_org = || {
        Condition::all()
            .add(A::OrgId.eq(org.as_str()))
            .add(A::Seq.gt(after))
    };
    let mut names_target = Condition::any().add(A::TargetId.is_in(subjects));
    if !also_named.is_empty() {
        names_target = names_target.add(A::TargetName.is_in(also_named));
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        audit_event::Entity::find()
            .select_only()
            .column(A::Seq)
            .filter(in_org())
            .filter(
                Condition::any()
                    .add(A::ActorId.is_in(subjects))
                    .add(names_target.clone()),
            )
            .order_by_asc(A::Seq)
            .lock(LockType::Update)
            .into_tuple::<i64>()
            .all(conn)
            .await?;
    }
    let as_actor = audit_event::Entity::update_many()
        .col_expr(A::ActorName, Expr::value(audit::ERASED))
        .col_expr(A::Ip, Expr::value(""))
        .col_expr(A::UserAgent, Expr::value(""))
        .filter(in_org())
        .filter(A::ActorId.is_in(subjects))
        .filter(
            Condition::any()
                .add(A::ActorName.ne(audit::ERASED))
                .add(A::Ip.ne(""))
                .add(A::UserAgent.ne(""))
                .add(
                    Condition::all()
                        .add(names_target.clone())
                        .add(A::TargetName.ne(audit::ERASED)),
                ),
        )
        .exec(conn)
        .await?
        .rows_affected;
    let as_target = audit_event::Entity::update_many()
        .col_expr(A::TargetName, Expr::value(audit::ERASED))
        .filter(in_org())
        .filter(names_target.clone())
        .filter(A::TargetName.ne(audit::ERASED))
        .filter(A::ActorId.is_not_in(subjects))
        .exec(conn)
        .await?
        .rows_affected;
    // Records where one of them is also the actor were counted above; name the target too.
    audit_event::Entity::update_many()
        .col_expr(A::TargetName, Expr::value(audit::ERASED))
        .filter(in_org())
        .filter(names_target)
        .filter(A::ActorId.is_in(subjects))
        .exec(conn)
        .await?;
    Ok(as_actor + as_target)
}

/// The hashed columns of an `audit_events` row as SeaORM reads them (`scan::LINK_COLUMNS`).
#[derive(Debug, sea_orm::FromQueryResult)]
struct LinkRow {
    schema_version: i32,
    org_id: String,
    seq: i64,
    team_id: Option<String>,
    occurred_at: i64,
    actor_type: String,
    actor_id: String,
    action: String,
    target_type: String,
    target_id: String,
    outcome: String,
    reason: String,
    metadata: String,
    prev_hash: String,
    hash: String,
}

impl LinkRow {
    fn stored(&self) -> crate::scan::StoredLink<'_> {
        crate::scan::StoredLink {
            schema_version: i64::from(self.schema_version),
            org: &self.org_id,
            seq: self.seq,
            team: self.team_id.as_deref(),
            occurred_at_micros: self.occurred_at,
            actor_kind: &self.actor_type,
            actor_id: &self.actor_id,
            action: &self.action,
            target_kind: &self.target_type,
            target_id: &self.target_id,
            status: &self.outcome,
            reason: &self.reason,
            metadata: &self.metadata,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

impl SeaStore {
    /// The organizations with an audit log ([`AuditStore::organizations`]) that still exist:
    /// a record appended just after an organization's deletion, by a request already past its
    /// checks, leaves a head that names no organization, which the server's workers (audit
    /// checkpoints, retention, reports) pass over.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    pub async fn live_organizations(&self) -> Result<Vec<OrgId>, AuditError> {
        let existing = sea_orm::sea_query::Query::select()
            .column(crate::entity::organization::Column::Id)
            .from(crate::entity::organization::Entity)
            .to_owned();
        self.organizations_with_heads(
            audit_head::Entity::find().filter(audit_head::Column::OrgId.in_subquery(existing)),
        )
        .await
    }

    /// The organizations of the heads `heads` selects that have a record.
    async fn organizations_with_heads(
        &self,
        heads: sea_orm::Select<audit_head::Entity>,
    ) -> Result<Vec<OrgId>, AuditError> {
        heads
            .filter(audit_head::Column::Seq.gt(0))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(|h| id("organization id", &h.org_id).map_err(AuditError::Store))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DatabaseBackend, QueryTrait};

    fn sql(backend: DatabaseBackend, q: &AuditQuery) -> String {
        let org = OrgId::new();
        with_index(
            backend,
            q,
            backend.build(&search_query(org, q, None).into_query()),
        )
        .sql
    }

    #[test]
    fn sqlite_searches_name_the_index_their_filters_choose() {
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery {
                limit: 50,
                ..AuditQuery::default()
            };
            f(&mut q);
            q
        };
        let cases = [
            (
                q(|q| {
                    q.actor_id = Some("usr_a".into());
                    q.target_kind = Some("chat_interface".into());
                    q.target_id = Some("res_1".into());
                }),
                Some("idx_audit_target"),
            ),
            (
                q(|q| {
                    q.actor_id = Some("usr_a".into());
                    q.action = Some(ActionFilter::parse("auth.login"));
                    q.since = Some(chrono::Utc::now());
                    q.until = Some(chrono::Utc::now());
                }),
                Some("idx_audit_actor_action"),
            ),
            (
                q(|q| {
                    q.actor_id = Some("usr_a".into());
                    q.since = Some(chrono::Utc::now());
                    q.outcome = Some("denied".into());
                }),
                Some("idx_audit_actor_filters"),
            ),
            (
                q(|q| q.action = Some(ActionFilter::parse("member."))),
                Some("idx_audit_action"),
            ),
            (
                q(|q| q.outcome = Some("denied".into())),
                Some("idx_audit_outcome"),
            ),
            (
                q(|q| q.since = Some(chrono::Utc::now())),
                Some("sqlite_autoindex_audit_events_1"),
            ),
            (q(|q| q.until = Some(chrono::Utc::now())), None),
        ];
        for (query, index) in cases {
            let s = sql(DatabaseBackend::Sqlite, &query);
            match index {
                Some(i) => assert!(
                    s.contains(&format!(r#"FROM "audit_events" INDEXED BY "{i}""#)),
                    "{s}"
                ),
                None => assert!(!s.contains("INDEXED BY"), "{s}"),
            }
            assert!(
                !sql(DatabaseBackend::Postgres, &query).contains("INDEXED BY"),
                "PostgreSQL plans on its own statistics"
            );
        }
    }
}
