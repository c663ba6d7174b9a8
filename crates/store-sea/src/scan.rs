//! Reads on a SQLite file through rusqlite: pages of audit records on tokio's blocking pool, and
//! the small reads of a request on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement and every
//! row across to it and back, copying each value into an allocation of its own on the way. For
//! pages of a thousand records that hand-over, not SQLite, bounds an export or a verification
//! walk (`docs/benchmarks.md`, "Audit log through the store"); for a request's few small reads
//! it is most of the request's cost: under a read load, a `perf record` of the server had about
//! a third of its samples in the kernel's thread wake-ups and sqlx's channel ("Load").
//!
//! - [`SqliteReader::records`]: the same statement as on the sqlx path (built by sea-query) runs
//!   on a read-only connection in one blocking call, which reads the whole page, converts each
//!   row into a record there, and returns them at once.
//! - [`SqliteReader::rows`]: a SeaORM select runs on the calling thread, on a read-only
//!   connection that never waits for a lock: a read that finds the database busy returns `None`
//!   and the caller asks the sqlx readers instead. Reads of a WAL database do not wait for the
//!   writer, so that happens only while SQLite recovers or resets the WAL; a read blocks its
//!   thread only for SQLite's own work (tens of microseconds for an indexed read of cached
//!   pages).
//!
//! Every write stays on SeaORM's writer. Both link the same SQLite (`libsqlite3-sys`), and WAL
//! lets these connections read beside the writer like the sqlx readers do; each read sees every
//! transaction committed before it started.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use audit::{AuditEvent, ChainLink, HashedFields, StoreError};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use sea_orm::{DbErr, IdenStatic, Iterable, Statement, Value};

use crate::convert::corrupt;
use crate::entity::audit_event;
use crate::rows::{Rows, sqlite_err};

/// Reads a page's rows: the connection, the statement's SQL and its parameters.
type ReadPage<T> = fn(&Connection, &str, Vec<Sql>) -> Result<Vec<T>, StoreError>;

/// Idle connections kept for the next page.
const KEEP_IDLE: usize = 2;

/// Idle connections kept for the next small read: as many as threads may read at once (the
/// server's actix workers and tokio's, one of each per core), so that none is opened (and its
/// schema read) per read. Each holds at most SQLite's default page cache, 2 MiB.
fn keep_idle_inline() -> usize {
    std::thread::available_parallelism().map_or(4, |n| 2 * n.get())
}

/// Pages read at once (each on a blocking thread with a connection of its own), like the sqlx
/// reader pool's bound.
const AT_ONCE: usize = crate::SQLITE_MAX_READERS as usize;

/// Read-only connections to one file, kept for reuse.
#[derive(Debug)]
struct Idle {
    busy: Duration,
    conns: Mutex<Vec<Connection>>,
    keep: usize,
}

impl Idle {
    fn take(&self, path: &std::path::Path) -> rusqlite::Result<Connection> {
        if let Some(c) = self.conns.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.conns.lock()
            && idle.len() < self.keep
        {
            idle.push(conn);
        }
    }
}

/// Read-only rusqlite connections to one SQLite file.
#[derive(Debug)]
pub(crate) struct SqliteReader {
    path: PathBuf,
    /// For pages of audit records: they wait for a lock up to the pool's acquire timeout.
    scans: Idle,
    /// For reads on the calling thread: they never wait.
    inline: Idle,
    permits: tokio::sync::Semaphore,
}

impl SqliteReader {
    /// Reads the database file at `path` (as SQLite's `pragma_database_list` names it).
    pub(crate) fn new(path: PathBuf, busy: Duration) -> Self {
        Self {
            path,
            scans: Idle {
                busy,
                conns: Mutex::default(),
                keep: KEEP_IDLE,
            },
            inline: Idle {
                busy: Duration::ZERO,
                conns: Mutex::default(),
                keep: keep_idle_inline(),
            },
            permits: tokio::sync::Semaphore::new(AT_ONCE),
        }
    }

    /// Runs `stmt`, a `SELECT` of whole `audit_events` rows, and returns its records (converted
    /// on the blocking thread too, so the caller only receives them).
    pub(crate) async fn records(
        self: &std::sync::Arc<Self>,
        stmt: Statement,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.scan(stmt, read).await
    }

    /// Runs `stmt`, a `SELECT` of [`LINK_COLUMNS`] of `audit_events` rows, and returns their
    /// chain links, each record hashed from its columns as stored, on the blocking thread.
    pub(crate) async fn links(
        self: &std::sync::Arc<Self>,
        stmt: Statement,
    ) -> Result<Vec<ChainLink>, StoreError> {
        self.scan(stmt, read_links).await
    }

    /// Runs `stmt` with `read` on a scan connection in one blocking call.
    async fn scan<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        stmt: Statement,
        read: ReadPage<T>,
    ) -> Result<Vec<T>, StoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::msg(format!("audit scan closed: {e}")))?;
        let me = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let params = params(&stmt).map_err(|e| StoreError::msg(format!("audit scan: {e}")))?;
            let conn = me.scans.take(&me.path).map_err(scan_err)?;
            let rows = read(&conn, &stmt.sql, params)?;
            me.scans.give_back(conn);
            Ok(rows)
        })
        .await
        .map_err(|e| StoreError::msg(format!("audit scan stopped: {e}")))?
    }

    /// Runs the select `stmt`, whose rows are plain values (a column, an aggregate), here, on
    /// the calling thread, decoding each row with `T`; `None` as for [`Self::rows`].
    pub(crate) fn values<T: crate::rows::Values>(
        &self,
        stmt: &Statement,
    ) -> Result<Option<Vec<T>>, DbErr> {
        self.inline(stmt, |conn, sql, params| {
            let mut st = conn.prepare_cached(sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(params), T::from_sqlite)?;
            rows.collect::<rusqlite::Result<Vec<T>>>().map(Ok)
        })
    }

    /// Runs the SeaORM select `stmt` here, on the calling thread, and decodes its rows as `S`
    /// would; `None` when the database was busy or `stmt` binds a kind of value this reader
    /// does not (the caller reads through sqlx instead).
    pub(crate) fn rows<S: Rows>(&self, stmt: &Statement) -> Result<Option<Vec<S::Item>>, DbErr> {
        self.inline(stmt, select::<S>)
    }

    /// Runs `read` with `stmt`'s SQL and parameters on an idle inline connection, which it gives
    /// back; `None` when the database was busy or `stmt` binds a kind of value this reader does
    /// not.
    #[allow(
        clippy::type_complexity,
        reason = "two layers of errors, as `select` gives them"
    )]
    fn inline<R>(
        &self,
        stmt: &Statement,
        read: impl FnOnce(&Connection, &str, Vec<Sql>) -> rusqlite::Result<Result<R, DbErr>>,
    ) -> Result<Option<R>, DbErr> {
        let Ok(params) = params(stmt) else {
            return Ok(None);
        };
        let conn = self.inline.take(&self.path).map_err(sqlite_err)?;
        let out = read(&conn, &stmt.sql, params);
        self.inline.give_back(conn);
        match out {
            Err(e) if busy(&e) => Ok(None),
            Err(e) => Err(sqlite_err(e)),
            Ok(items) => items.map(Some),
        }
    }
}

/// Runs `sql` and decodes its rows (the outer error is SQLite's, the inner the decoding's).
#[allow(
    clippy::type_complexity,
    reason = "two layers of errors, told apart by the caller"
)]
fn select<S: Rows>(
    conn: &Connection,
    sql: &str,
    params: Vec<Sql>,
) -> rusqlite::Result<Result<Vec<S::Item>, DbErr>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let plan = S::plan(&stmt.column_names());
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        match S::decode(&plan, r) {
            Ok(item) => out.push(item),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(out))
}

/// Whether SQLite was busy or locked (the read, or the checkpoint, may be tried again).
pub(crate) fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn params(stmt: &Statement) -> Result<Vec<Sql>, DbErr> {
    Ok(stmt
        .values
        .as_ref()
        .map(|v| v.0.iter().map(sql_value).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default())
}

fn scan_err(e: rusqlite::Error) -> StoreError {
    StoreError::msg(format!("audit scan: {e}"))
}

/// The rusqlite value of a bound sea-query value (the kinds the store's queries bind).
fn sql_value(v: &Value) -> Result<Sql, DbErr> {
    let int = |i: Option<i64>| i.map_or(Sql::Null, Sql::Integer);
    Ok(match v {
        Value::Bool(b) => int(b.map(i64::from)),
        Value::TinyInt(i) => int(i.map(i64::from)),
        Value::SmallInt(i) => int(i.map(i64::from)),
        Value::Int(i) => int(i.map(i64::from)),
        Value::BigInt(i) => int(*i),
        Value::TinyUnsigned(i) => int(i.map(i64::from)),
        Value::SmallUnsigned(i) => int(i.map(i64::from)),
        Value::Unsigned(i) => int(i.map(i64::from)),
        Value::BigUnsigned(i) => match i {
            Some(u) => Sql::Integer(
                i64::try_from(*u)
                    .map_err(|_| DbErr::Type("integer too large for SQLite".into()))?,
            ),
            None => Sql::Null,
        },
        Value::Float(f) => f.map_or(Sql::Null, |f| Sql::Real(f64::from(f))),
        Value::Double(f) => f.map_or(Sql::Null, Sql::Real),
        Value::String(s) => s.clone().map_or(Sql::Null, Sql::Text),
        Value::Bytes(b) => b.clone().map_or(Sql::Null, Sql::Blob),
        other => {
            return Err(DbErr::Type(format!(
                "no rusqlite binding for parameter {other:?}"
            )));
        }
    })
}

/// Positions of the model's columns (in the entity's declaration order) in a result row.
struct Columns([usize; 20]);

/// Runs `sql` and converts each row to a record as it is read.
fn read(conn: &Connection, sql: &str, params: Vec<Sql>) -> Result<Vec<AuditEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(scan_err)?;
    let mut ix = [usize::MAX; 20];
    let mut columns = audit_event::Column::iter();
    for slot in &mut ix {
        if let Some(col) = columns.next() {
            *slot = stmt.column_index(col.as_str()).map_err(scan_err)?;
        }
    }
    if ix.contains(&usize::MAX) || columns.next().is_some() {
        return Err(StoreError::msg(
            "audit scan: audit_events has not the 20 columns this reader knows",
        ));
    }
    let c = Columns(ix);
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(scan_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(scan_err)? {
        out.push(record(r, &c)?);
    }
    Ok(out)
}

/// A record from its row: the columns it keeps are copied into strings of their own, those it
/// parses (ids, kinds, hashes) are read in place.
fn record(r: &rusqlite::Row<'_>, c: &Columns) -> Result<AuditEvent, StoreError> {
    let i = &c.0;
    let text = |n: usize| -> Result<&str, StoreError> {
        r.get_ref(i[n])
            .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
            .map_err(scan_err)
    };
    let keys = crate::convert::AuditKeys {
        org_id: text(0)?,
        team_id: r
            .get_ref(i[2])
            .and_then(|v| v.as_str_or_null().map_err(rusqlite::Error::from))
            .map_err(scan_err)?,
        actor_type: text(4)?,
        action: text(7)?,
        outcome: text(14)?,
        reason: text(15)?,
        prev_hash: text(18)?,
        hash: text(19)?,
    };
    let int = |n: usize| r.get::<_, i64>(i[n]).map_err(scan_err);
    let owned = |n: usize| text(n).map(str::to_owned);
    let values = crate::convert::AuditValues {
        seq: int(1)?,
        occurred_at: int(3)?,
        actor_id: owned(5)?,
        actor_name: owned(6)?,
        target_type: owned(8)?,
        target_id: owned(9)?,
        target_name: owned(10)?,
        ip: owned(11)?,
        user_agent: owned(12)?,
        request_id: owned(13)?,
        metadata: owned(16)?,
        schema_version: r.get(i[17]).map_err(scan_err)?,
    };
    crate::convert::audit_event(&keys, values)
}

/// The columns [`SqliteReader::links`] reads, in the order it reads them: those the chain's hash
/// covers, then the two hashes.
pub(crate) const LINK_COLUMNS: [audit_event::Column; 15] = {
    use audit_event::Column as C;
    [
        C::SchemaVersion,
        C::OrgId,
        C::Seq,
        C::TeamId,
        C::OccurredAt,
        C::ActorType,
        C::ActorId,
        C::Action,
        C::TargetType,
        C::TargetId,
        C::Outcome,
        C::Reason,
        C::Metadata,
        C::PrevHash,
        C::Hash,
    ]
};

/// Runs `sql` and makes each row's chain link as it is read, from the row's bytes in place.
fn read_links(
    conn: &Connection,
    sql: &str,
    params: Vec<Sql>,
) -> Result<Vec<ChainLink>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(scan_err)?;
    let mut i = [0; LINK_COLUMNS.len()];
    for (slot, col) in i.iter_mut().zip(LINK_COLUMNS) {
        *slot = stmt.column_index(col.as_str()).map_err(scan_err)?;
    }
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(scan_err)?;
    let mut buf = Vec::with_capacity(512);
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(scan_err)? {
        let value = |n: usize| r.get_ref(i[n]).map_err(scan_err);
        // Text columns are read as text (not a blob, valid UTF-8), as a record's would be.
        let text = |n: usize| value(n).and_then(|v| v.as_str().map_err(|e| scan_err(e.into())));
        let int = |n: usize| value(n).and_then(|v| v.as_i64().map_err(|e| scan_err(e.into())));
        let row = StoredLink {
            schema_version: int(0)?,
            org: text(1)?,
            seq: int(2)?,
            team: value(3)?.as_str_or_null().map_err(|e| scan_err(e.into()))?,
            occurred_at_micros: int(4)?,
            actor_kind: text(5)?,
            actor_id: text(6)?,
            action: text(7)?,
            target_kind: text(8)?,
            target_id: text(9)?,
            status: text(10)?,
            reason: text(11)?,
            metadata: text(12)?,
            prev_hash: text(13)?,
            hash: text(14)?,
        };
        out.push(row.link(&mut buf)?);
    }
    Ok(out)
}

/// The hashed columns of an `audit_events` row ([`LINK_COLUMNS`]) as stored, and both hashes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredLink<'a> {
    pub(crate) schema_version: i64,
    pub(crate) org: &'a str,
    pub(crate) seq: i64,
    pub(crate) team: Option<&'a str>,
    pub(crate) occurred_at_micros: i64,
    pub(crate) actor_kind: &'a str,
    pub(crate) actor_id: &'a str,
    pub(crate) action: &'a str,
    pub(crate) target_kind: &'a str,
    pub(crate) target_id: &'a str,
    pub(crate) status: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) metadata: &'a str,
    pub(crate) prev_hash: &'a str,
    pub(crate) hash: &'a str,
}

impl StoredLink<'_> {
    /// The row's chain link, its hash recomputed from the columns' bytes as stored; `buf` is
    /// scratch space. A row whose content does not give its stored hash is returned as such a
    /// link, whatever its columns hold, so that verification reports it as the break it is
    /// (an action, outcome or actor type edited into a value no record has is tampering, not
    /// a storage failure); an intact row must also read back as a record ([`readable`]), or
    /// it is a storage error, so that verification does not pass a row that search and export
    /// would refuse.
    pub(crate) fn link(&self, buf: &mut Vec<u8>) -> Result<ChainLink, StoreError> {
        let fields = HashedFields {
            schema_version: u16::try_from(self.schema_version)
                .map_err(|_| corrupt("schema version", &self.schema_version.to_string()))?,
            org: self.org.as_bytes(),
            seq: self.seq,
            team: self.team.map(str::as_bytes),
            occurred_at_micros: self.occurred_at_micros,
            actor_kind: self.actor_kind.as_bytes(),
            actor_id: self.actor_id.as_bytes(),
            action: self.action.as_bytes(),
            target_kind: self.target_kind.as_bytes(),
            target_id: self.target_id.as_bytes(),
            status: self.status.as_bytes(),
            reason: self.reason.as_bytes(),
            metadata: self.metadata.as_bytes(),
        };
        let prev_hash = crate::convert::hash32("previous hash", self.prev_hash)?;
        let hash = crate::convert::hash32("hash", self.hash)?;
        let link = ChainLink::stored(&fields, prev_hash, hash, buf);
        if link.is_intact() {
            readable(
                self.team,
                self.occurred_at_micros,
                self.actor_kind,
                self.action,
                self.status,
            )?;
        }
        Ok(link)
    }
}

/// Checks that a row hashed for verification would also read back as a record (its ids, actor
/// kind, action, outcome status and time parse), so that verification does not pass a row that search and
/// export would refuse as corrupt. The metadata's JSON is not parsed: its text is hashed as
/// stored, and parsing it would cost more than the rest of the row.
///
/// The organization's id is not parsed: the page's statement selects rows whose `org_id` is
/// the organization's id text, byte for byte.
fn readable(
    team: Option<&str>,
    occurred_at_micros: i64,
    actor_kind: &str,
    action: &str,
    status: &str,
) -> Result<(), StoreError> {
    use crate::convert::{id, time};
    team.map(|t| id::<rbac_core::TeamId>("team id", t))
        .transpose()?;
    time(occurred_at_micros)?;
    audit::ActorKind::parse(actor_kind).ok_or_else(|| corrupt("actor type", actor_kind))?;
    audit::AuditAction::parse(action).ok_or_else(|| corrupt("audit action", action))?;
    match status {
        "success" | "denied" | "failure" => Ok(()),
        other => Err(corrupt("outcome", other)),
    }
}

#[cfg(test)]
mod tests {
    use audit::{
        Actor, AuditAction, AuditError, AuditEvent, AuditStore, Journal, Metadata, NewAuditEvent,
        Outcome, RequestContext, Target,
    };
    use rbac_core::{OrgId, TeamId, UserId};
    use sea_orm::{
        ColumnTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
        QueryTrait,
    };

    use crate::entity::audit_event;

    #[tokio::test]
    async fn pages_read_through_rusqlite_equal_seaorms() {
        let (_dir, store) = crate::temp_sqlite_store().await;
        assert!(
            store.sqlite_reads.is_some(),
            "a SQLite file's audit pages are read with rusqlite"
        );
        let org = OrgId::new();
        let mut journal = Journal::default();
        for i in 0..30u32 {
            let mut e = NewAuditEvent::new(
                org,
                chrono::Utc::now(),
                Actor::user(UserId::new(), format!("Person {i} «ü»")),
                AuditAction::MemberInvited,
                Target::new("member", i, "=cmd|' /C calc'!A0"),
            )
            .with_context(RequestContext {
                ip: "2001:db8::1".into(),
                user_agent: "agent\nwith newline".into(),
                request_id: format!("req-{i}"),
            });
            if i % 3 == 0 {
                e = e.in_team(TeamId::new());
            }
            if i % 4 == 0 {
                e = e.with_outcome(Outcome::Denied {
                    reason: "role_lacks_permission".into(),
                });
            }
            if i % 5 == 0 {
                e = e.with_metadata(
                    Metadata::from_value(serde_json::json!({"n": i, "list": [1, 2]})).unwrap(),
                );
            }
            journal = journal.and_record(e);
        }
        store.append(journal).await.unwrap();

        let stmt = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org.to_string()))
            .filter(audit_event::Column::Seq.gt(2_i64))
            .order_by_desc(audit_event::Column::Seq)
            .limit(20_u64)
            .build(DbBackend::Sqlite);
        let fast = store.audit_records(stmt.clone()).await.unwrap();
        let slow: Vec<AuditEvent> = audit_event::Model::find_by_statement(stmt)
            .all(store.reader())
            .await
            .unwrap()
            .into_iter()
            .map(|m| AuditEvent::try_from(m).unwrap())
            .collect();
        assert_eq!(fast.len(), 20);
        assert_eq!(fast, slow);
        assert!(fast.iter().any(|r| r.event.team.is_some()));
        assert!(fast.iter().any(|r| r.event.team.is_none()));
        assert!(
            fast.iter()
                .any(|r| r.event.metadata.as_json().contains("list"))
        );
        // The connection is kept for the next page, which sees what was appended since.
        let whole_log = || {
            store.audit_records(
                audit_event::Entity::find()
                    .filter(audit_event::Column::OrgId.eq(org.to_string()))
                    .build(DbBackend::Sqlite),
            )
        };
        assert_eq!(whole_log().await.unwrap().len(), 30);
        store
            .append(Journal::record(NewAuditEvent::new(
                org,
                chrono::Utc::now(),
                Actor::system(),
                AuditAction::SettingsUpdated,
                Target::new("org", org, ""),
            )))
            .await
            .unwrap();
        assert_eq!(whole_log().await.unwrap().len(), 31);
    }

    /// Verification hashes each row's columns as stored: edits the parsed record would hide
    /// break the chain, as do edits into values no record has; an intact row that would not
    /// read back as a record is a store error, as it is for search and export. On a SQLite
    /// file (rusqlite's path) and on PostgreSQL (SeaORM's).
    #[tokio::test]
    async fn verification_reads_rows_as_stored() {
        let (_dir, store) = crate::temp_sqlite_store().await;
        verification_reads_rows_as_stored_in(&store, true).await;
        match crate::testing::postgres_server() {
            Some(server) => {
                let url = crate::testing::fresh_postgres(&server).await.unwrap();
                let pg = crate::SeaStore::connect(&url, crate::PoolOptions::default())
                    .await
                    .unwrap();
                pg.migrate().await.unwrap();
                verification_reads_rows_as_stored_in(&pg, false).await;
            }
            None => crate::testing::say_postgres_skipped("store-sea scan"),
        }
    }

    async fn verification_reads_rows_as_stored_in(store: &crate::SeaStore, sqlite: bool) {
        let org = OrgId::new();
        let record = |i: u32| {
            NewAuditEvent::new(
                org,
                chrono::Utc::now(),
                Actor::user(UserId::new(), "Sam"),
                AuditAction::ChatInterfaceUpdated,
                Target::new("chat_interface", i, "Support"),
            )
        };
        let journal = Journal::record(record(1))
            .and_record(record(2))
            .and_record(record(3).in_team(TeamId::new()));
        store.append(journal).await.unwrap();
        let verify = || audit::verify_chain(store, org, b"k");
        assert_eq!(verify().await.unwrap().unwrap().records, 3);
        let sql = |set: &str, seq: i64| {
            format!("UPDATE audit_events SET {set} WHERE org_id = '{org}' AND seq = {seq}")
        };

        // Edits the parsed record would hide: a reason beside a success (the record drops it) and
        // a team id in capitals (it parses as the same id, but is not the text that was hashed).
        for (seq, set, restore) in [
            (2, "reason = 'forged'", "reason = ''"),
            (
                3,
                "team_id = 'team_' || upper(substr(team_id, 6))",
                "team_id = lower(team_id)",
            ),
        ] {
            store.execute_sql(&sql(set, seq)).await.unwrap();
            assert_eq!(
                verify().await.unwrap(),
                Err(audit::ChainBreak::Modified { seq }),
                "{set}"
            );
            store.execute_sql(&sql(restore, seq)).await.unwrap();
            assert!(verify().await.unwrap().is_ok(), "{restore}");
        }

        // Edited into values no record has (which search and export refuse as corrupt), a row
        // is reported as the break it is, not as a storage failure that hides where.
        for (set, restore) in [
            (
                "action = 'no.such_action'",
                "action = 'chat_interface.updated'",
            ),
            ("outcome = 'maybe'", "outcome = 'success'"),
            ("actor_type = 'robot'", "actor_type = 'user'"),
        ] {
            store.execute_sql(&sql(set, 1)).await.unwrap();
            assert_eq!(
                verify().await.unwrap(),
                Err(audit::ChainBreak::Modified { seq: 1 }),
                "{set}"
            );
            store.execute_sql(&sql(restore, 1)).await.unwrap();
            assert!(verify().await.unwrap().is_ok(), "{restore}");
        }
        // Rows whose hashed content is intact but that do not read back as records are
        // refused: an empty team id hashes as no team (no team id is empty), and SQLite keeps
        // a value's type per row, so text stored as a blob has the same bytes.
        for (set, restore) in [
            ("team_id = ''", "team_id = NULL"),
            (
                "actor_id = CAST(actor_id AS BLOB)",
                "actor_id = CAST(actor_id AS TEXT)",
            ),
        ]
        .into_iter()
        .filter(|(set, _)| sqlite || !set.contains("BLOB"))
        {
            store.execute_sql(&sql(set, 1)).await.unwrap();
            assert!(matches!(verify().await, Err(AuditError::Store(_))), "{set}");
            store.execute_sql(&sql(restore, 1)).await.unwrap();
            assert!(verify().await.unwrap().is_ok(), "{restore}");
        }

        // A log whose head was removed does not verify: without it, records cut off after the
        // newest checkpoint would go unseen.
        store
            .execute_sql(&format!("DELETE FROM audit_heads WHERE org_id = '{org}'"))
            .await
            .unwrap();
        assert_eq!(
            verify().await.unwrap(),
            Err(audit::ChainBreak::NoHead { last: 3 })
        );
    }
}
