//! # store-sea
//!
//! The one storage adapter of Axie Enterprise: SeaORM on SQLite (the embedded
//! default) or PostgreSQL. It implements every storage port of `audit`, `tenancy` and
//! `webhooks` (and `tenancy`'s `SmsSender`, which queues texts in its outbox) on one
//! [`SeaStore`] handle, owns the migrations, and is the only crate that imports `sea_orm` (and
//! `rusqlite`, with which it reads from SQLite files on the calling thread: pages of audit
//! records in `scan.rs`, other reads in `rows.rs`, and the WAL checkpoints of `checkpoint.rs`).
//!
//! Every mutating method opens one transaction, applies the change, appends the
//! `Journal`'s audit records to the organization's hash chain, writes its domain
//! events to the outbox (and as webhook deliveries) and its emails to the mail
//! outbox, then commits: all or nothing.
#![deny(missing_docs)]

mod activity;
mod checkpoint;
mod convert;
#[allow(missing_docs, reason = "SeaORM's derives generate undocumented items")]
pub mod entity;
mod error;
mod journal;
pub mod migration;
mod own_thread;
mod rows;
mod scan;
mod store;
pub mod testing;
mod url;
mod writer;

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm_migration::MigratorTrait;

pub use error::db_err;
pub use journal::deliveries_queued;
pub use store::{BindReport, ReencryptReport};
pub use url::DatabaseUrl;

use audit::StoreError;

/// The PostgreSQL advisory lock that migrations hold (`"axiemigr"` as a number; advisory locks
/// are per database).
const MIGRATION_LOCK: i64 = 0x6178_6965_6d69_6772;

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Maximum PostgreSQL connections; on SQLite, the readers beside the one writer
    /// (at most [`SQLITE_MAX_READERS`]).
    pub max_connections: u32,
    /// How long to wait for a connection or a SQLite lock.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Most SQLite reader connections: each is a thread of its own, and reads beyond what the
/// cores can run only queue there instead of in the pool.
pub const SQLITE_MAX_READERS: u32 = 4;

/// Pages the SQLite write-ahead log may hold before a commit copies them into the database file
/// itself (SQLite's default is 1,000, 4 MiB). The store's checkpoint thread (`checkpoint.rs`)
/// copies the log back about ten times a second while it grows, so a commit reaches this only in
/// a burst that outruns that thread, and then has less left to copy. Before the thread this was
/// the only checkpoint; it is 10,000 because at the default nearly every journal of a thousand
/// audit records (about 1,400 scattered index pages) ended in a checkpoint that wrote those pages
/// again and synced the file (batched appends 15 % faster at 10,000: `docs/benchmarks.md`,
/// "Audit log through the store", run U). The thread copies pages that batch after batch dirty
/// again more often than that did, but on the other core, while the writer goes on.
const SQLITE_WAL_AUTOCHECKPOINT: u32 = 10_000;

/// Pages the SQLite writer's cache may grow to, past its size (SQLite's default, 2 MiB), before
/// a transaction's dirty pages are written to the log ahead of its commit (`cache_spill`):
/// about 31 MiB at 4 KiB pages. A journal of a thousand audit records dirties about 1,400
/// pages, so with SQLite's default (spill once the cache is full) each batch wrote most of its
/// pages to the log twice, mid-transaction and at the commit. Past this bound a large
/// transaction (a retention pass, an index built by a migration) still spills, so its memory
/// stays bounded; pages beyond the cache's size are freed as the transaction ends. Not a
/// multiple of 256: SQLite also reads the number as a boolean, by its low byte, and a zero
/// there turns spilling off altogether.
const SQLITE_CACHE_SPILL_PAGES: u32 = 8_000;

/// PostgreSQL connections idle at least this long are pinged before they are handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// The tables whose rows belong to one organization (an `org_id` column), in the order an
/// organization's deletion empties them: rows another table refers to come after it.
/// `tests/contract.rs` checks that every table with an `org_id` column is here.
pub const ORG_TABLES: &[&str] = &[
    "webhook_deliveries",
    "webhook_endpoints",
    "outbox_events",
    "mail_outbox",
    "team_members",
    "scim_groups",
    "scim_users",
    "scim_tokens",
    "api_keys",
    "invitations",
    "ownership_transfers",
    "bulk_previews",
    "consents",
    "asset_transfers",
    "assets",
    "credit_entries",
    "credit_operations",
    "credit_accounts",
    "invoices",
    "pending_charges",
    "team_pipelines",
    "price_deals",
    "subscriptions",
    "usage_alerts",
    "usage_daily",
    "usage_monthly",
    "audit_erasures",
    "audit_checkpoints",
    "audit_anchors",
    "audit_events",
    "audit_heads",
    "memberships",
    "teams",
];

/// The SeaORM-backed store: one handle implementing every port.
///
/// On SQLite, writes (every transaction) go through one connection, and reads that stand alone
/// go through a small pool of read-only connections beside it (WAL lets them read while the
/// writer writes); each read sees every transaction committed before it started. On PostgreSQL
/// both are the same pool.
#[derive(Debug, Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
    read: DatabaseConnection,
    /// `read` is a pool of its own (SQLite files), to be closed with the writer.
    separate_reader: bool,
    /// Audit appends waiting for a group commit.
    appends: std::sync::Arc<journal::AppendGroup>,
    /// Session activity waiting to be written.
    activity: std::sync::Arc<activity::ActivityBuffer>,
    /// Reads on a SQLite file without sqlx (`scan.rs`).
    sqlite_reads: Option<std::sync::Arc<scan::SqliteReader>>,
    /// Copies a SQLite file's write-ahead log back off the writer's path (`checkpoint.rs`).
    checkpoints: Option<std::sync::Arc<checkpoint::Checkpointer>>,
    /// Runs a SQLite file's write transactions on a thread of their own (`writer.rs`).
    writer: Option<std::sync::Arc<writer::WriterThread>>,
    /// Encrypts what the adapter keeps encrypted at rest itself (webhook URLs); `None` until
    /// [`SeaStore::with_cipher`], and then those values are neither written nor read.
    cipher: Option<std::sync::Arc<security_policy::Cipher>>,
}

impl SeaStore {
    /// Refreshes the query planner's statistics: SQLite's `PRAGMA optimize` (cheap; the server
    /// runs it at start and hourly); PostgreSQL's autovacuum does this on its own, so nothing.
    ///
    /// # Errors
    /// [`StoreError`] on storage failure.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        if self.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
            // Bounded sampling, over every table (not only those this connection used).
            self.execute_sql("PRAGMA analysis_limit=1000").await?;
            self.execute_sql("PRAGMA optimize=0x10002").await?;
        }
        Ok(())
    }
}

impl SeaStore {
    /// Connects. SQLite files are created if missing and run in WAL mode with one writer
    /// connection and up to [`SQLITE_MAX_READERS`] query-only reader connections.
    ///
    /// # Errors
    /// The connection error, with the URL's password redacted.
    pub async fn connect(url: &DatabaseUrl, pool: PoolOptions) -> Result<Self, StoreError> {
        let mut opts = ConnectOptions::new(url.expose());
        opts.acquire_timeout(pool.acquire_timeout)
            .sqlx_logging(false);
        if url.is_sqlite() {
            // The pool pings a connection before every checkout unless told otherwise: for
            // SQLite, a round trip to the connection's thread per statement that tests nothing
            // (the database is in this process), so it is off.
            opts.test_before_acquire(false);
            let busy = pool.acquire_timeout;
            opts.max_connections(1)
                .min_connections(1)
                .map_sqlx_sqlite_opts(move |o| {
                    o.create_if_missing(true)
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .foreign_keys(true)
                        .busy_timeout(busy)
                        .pragma("wal_autocheckpoint", SQLITE_WAL_AUTOCHECKPOINT.to_string())
                        .pragma("cache_spill", SQLITE_CACHE_SPILL_PAGES.to_string())
                });
        } else {
            // A network round trip per checkout would double every statement's latency; only
            // connections idle long enough for a server, proxy or firewall to have dropped them
            // are pinged.
            opts.max_connections(pool.max_connections)
                .min_connections(1)
                .test_before_acquire_if_idle_for(PING_AFTER_IDLE);
        }
        let db = Database::connect(opts).await.map_err(db_err)?;
        let separate_reader = url.is_sqlite() && !url.expose().contains("memory");
        let read = if separate_reader {
            let mut opts = ConnectOptions::new(url.expose());
            let busy = pool.acquire_timeout;
            opts.acquire_timeout(pool.acquire_timeout)
                .sqlx_logging(false)
                .max_connections(pool.max_connections.clamp(1, SQLITE_MAX_READERS))
                .min_connections(0)
                .test_before_acquire(false)
                .map_sqlx_sqlite_opts(move |o| {
                    o.create_if_missing(false)
                        .foreign_keys(true)
                        .busy_timeout(busy)
                        .pragma("query_only", "ON")
                });
            Database::connect(opts).await.map_err(db_err)?
        } else {
            db.clone()
        };
        let sqlite_reads = if separate_reader {
            // The file the writer opened, as SQLite resolved it.
            let file = db
                .query_one_raw(sea_orm::Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT file FROM pragma_database_list WHERE name = 'main'",
                ))
                .await
                .map_err(db_err)?
                .and_then(|r| r.try_get::<String>("", "file").ok())
                .filter(|f| !f.is_empty());
            file.map(std::path::PathBuf::from)
        } else {
            None
        };
        let checkpoints = match &sqlite_reads {
            Some(f) => Some(std::sync::Arc::new(
                checkpoint::Checkpointer::start(f.clone()).map_err(StoreError::new)?,
            )),
            None => None,
        };
        let writer = match &sqlite_reads {
            Some(_) => Some(std::sync::Arc::new(
                writer::WriterThread::start().map_err(StoreError::new)?,
            )),
            None => None,
        };
        let sqlite_reads = sqlite_reads
            .map(|f| std::sync::Arc::new(scan::SqliteReader::new(f, pool.acquire_timeout)));
        Ok(Self {
            db,
            read,
            separate_reader,
            appends: std::sync::Arc::default(),
            activity: std::sync::Arc::default(),
            sqlite_reads,
            checkpoints,
            writer,
            cipher: None,
        })
    }

    /// The key this store encrypts webhook URLs with at rest (a Slack or Teams
    /// incoming-webhook URL is itself a credential), as the domain crates encrypt the secrets
    /// they hand it. Without one, endpoints can neither be written nor read (deliveries are
    /// still queued): a store never falls back to keeping URLs in clear. Use the key the
    /// secrets are encrypted with; [`SeaStore::seal_webhook_urls`] encrypts what an earlier
    /// version stored in clear.
    #[must_use]
    pub fn with_cipher(mut self, cipher: std::sync::Arc<security_policy::Cipher>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Applies pending migrations, all of them in one transaction: an upgrade stopped part-way
    /// (a failure, the process killed) leaves the schema as it was, and the next start applies
    /// them again from there. (SeaORM's migrator runs SQLite's migrations statement by
    /// statement, and records each only after it: an index built before the stop, without its
    /// record, failed the migration's next run with "already exists", and the server never
    /// started again without a hand repair.) On PostgreSQL the transaction first takes an
    /// advisory lock of this database's, so that instances starting together on one database
    /// take turns: the second waits, then finds them applied (each migration would otherwise be
    /// tried twice, and the second `CREATE TABLE` fail). (A SQLite file has one server: two
    /// processes migrating one file at once are not supported.)
    ///
    /// A database a newer release migrated further is left as it is when every migration of
    /// this release is applied to it (a warning names the newer ones), so that a rollback or an
    /// older instance restarting during a rolling upgrade runs on it.
    ///
    /// # Errors
    /// The migration error; a database holding a newer release's migrations that lacks some of
    /// this release's.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let txn = sea_orm::TransactionTrait::begin(&self.db)
            .await
            .map_err(db_err)?;
        if self.db.get_database_backend() == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await
                .map_err(db_err)?;
        }
        // A database a newer release migrated (a rollback, or an older instance restarting in
        // a rolling upgrade) holds migrations this release does not know, which the migrator
        // refuses. With every migration of this release applied, this release runs on it as
        // before (the newer tables and columns go unused; docs/deployment.md says what is lost);
        // a database this release has not fully migrated as well is refused.
        migration::Migrator::install(&txn).await.map_err(db_err)?;
        let applied: std::collections::BTreeSet<String> =
            migration::Migrator::get_migration_models(&txn)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|m| m.version)
                .collect();
        let known: std::collections::BTreeSet<String> = migration::Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        let newer: Vec<&String> = applied.difference(&known).collect();
        if !newer.is_empty() {
            let missing = known.difference(&applied).count();
            if missing > 0 {
                return Err(StoreError::msg(format!(
                    "the database holds migrations of a newer release ({}) and lacks {missing} of this one's: it cannot be migrated by this release",
                    newer
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            tracing::warn!(
                newer = ?newer,
                "the database was migrated by a newer release; this one runs on it without its additions"
            );
            return txn.commit().await.map_err(db_err);
        }
        migration::Migrator::up(&txn, None).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    /// Number of migrations not yet applied.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        // Counted by name, so that a database a newer release migrated further (which the
        // migrator's own status refuses) reads as up to date for this release.
        let applied: std::collections::BTreeSet<String> =
            migration::Migrator::get_migration_models(&self.db)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|m| m.version)
                .collect();
        Ok(migration::Migrator::migrations()
            .iter()
            .filter(|m| !applied.contains(m.name()))
            .count())
    }

    /// A trivial query, for readiness checks.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(db_err)
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    /// Runs raw SQL. For operators' tools and for tests that tamper with rows; not used by the server.
    ///
    /// # Errors
    /// The database error.
    pub async fn execute_sql(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(self
            .db
            .execute_unprepared(sql)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    /// Closes the pool.
    ///
    /// # Errors
    /// The database error.
    pub async fn close(self) -> Result<(), StoreError> {
        if let Some(w) = self.writer.clone() {
            tokio::task::spawn_blocking(move || w.stop())
                .await
                .map_err(StoreError::new)?;
        }
        if let Some(c) = self.checkpoints.clone() {
            tokio::task::spawn_blocking(move || c.stop())
                .await
                .map_err(StoreError::new)?;
        }
        if self.separate_reader {
            self.read.close().await.map_err(db_err)?;
        }
        self.db.close().await.map_err(db_err)
    }

    /// On a SQLite file, how many times the background thread has copied the write-ahead log
    /// back into the database file, all of it, since the store connected (`None` elsewhere).
    /// The writer copies it itself only when a burst outruns that thread (past 10,000 pages).
    #[must_use]
    pub fn background_checkpoints(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(|c| c.completed())
    }

    /// The writer: every transaction, and reads that must see the writer's own state.
    /// The key of [`SeaStore::with_cipher`].
    pub(crate) fn cipher(&self) -> Result<&security_policy::Cipher, StoreError> {
        self.cipher.as_deref().ok_or_else(|| {
            StoreError::msg(
                "this store has no encryption key for webhook URLs (SeaStore::with_cipher)",
            )
        })
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Runs a write transaction, `work`, on the writer's thread on a SQLite file (`writer.rs`);
    /// elsewhere where it is.
    ///
    /// # Errors
    /// `work`'s, or [`tenancy::TenancyError::Store`] if it did not complete.
    pub(crate) async fn on_writer<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, tenancy::TenancyError>> + Send + 'static,
    ) -> Result<T, tenancy::TenancyError> {
        match &self.writer {
            Some(w) => w.run(work).await.unwrap_or_else(|| {
                Err(tenancy::TenancyError::Store(StoreError::msg(
                    "the write transaction did not complete",
                )))
            }),
            None => work.await,
        }
    }

    /// Whether write transactions may run on a thread of their own (`writer.rs`): a SQLite file.
    pub(crate) fn writes_on_a_thread(&self) -> bool {
        self.writer.is_some()
    }

    /// Starts `work`, a task that writes, on the writer's thread on a SQLite file (`writer.rs`),
    /// else on the calling runtime.
    pub(crate) fn spawn_writing(
        &self,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        match &self.writer {
            Some(w) => w.spawn(work),
            None => {
                tokio::spawn(work);
            }
        }
    }

    /// Audit appends waiting for a group commit.
    pub(crate) fn appends(&self) -> &journal::AppendGroup {
        &self.appends
    }

    /// [`Self::activity`], shared.
    pub(crate) fn activity_buffer(&self) -> std::sync::Arc<activity::ActivityBuffer> {
        std::sync::Arc::clone(&self.activity)
    }

    /// [`Self::appends`], shared.
    pub(crate) fn append_group(&self) -> std::sync::Arc<journal::AppendGroup> {
        std::sync::Arc::clone(&self.appends)
    }

    /// Session activity waiting to be written.
    pub(crate) fn activity(&self) -> &activity::ActivityBuffer {
        &self.activity
    }

    /// For reads outside any transaction, on the hot paths (authentication, caller resolution,
    /// listings, audit search and export): the reader pool on SQLite, the one pool on PostgreSQL.
    pub(crate) fn reader(&self) -> &DatabaseConnection {
        &self.read
    }

    /// Runs a `SELECT` of whole `audit_events` rows on the readers and returns the records:
    /// through rusqlite on a SQLite file (`scan.rs`, which also converts the rows there, off the
    /// calling task), else through SeaORM. (Reading PostgreSQL pages in a task of their own, so
    /// that an export's next page decodes on the other thread, was measured and gave nothing
    /// clear: `docs/benchmarks.md`, run R.)
    pub(crate) async fn audit_records(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<audit::AuditEvent>, StoreError> {
        use sea_orm::FromQueryResult;
        match &self.sqlite_reads {
            Some(scan) => scan.records(stmt).await,
            None => entity::audit_event::Model::find_by_statement(stmt)
                .all(self.reader())
                .await
                .map_err(db_err)?
                .into_iter()
                .map(audit::AuditEvent::try_from)
                .collect(),
        }
    }
}

impl SeaStore {
    /// Runs the read-only select `q` on the readers and returns its items, as `q.all(reader)`
    /// would: on a SQLite file through rusqlite on the calling thread (`scan.rs`: most of a
    /// small read's cost on sqlx is handing the statement and each row to the connection's
    /// thread and back), else, or when that finds the database busy, through SeaORM.
    pub(crate) async fn fetch_all<Q: rows::Fetch>(
        &self,
        q: Q,
    ) -> Result<Vec<<Q::Rows as sea_orm::SelectorTrait>::Item>, DbErr> {
        let stmt = q.build(self.read.get_database_backend());
        self.fetch_rows::<Q::Rows>(stmt).await
    }

    /// [`Self::fetch_all`] of the first row (as `q.one(reader)`).
    pub(crate) async fn fetch_one<Q: rows::Fetch + sea_orm::QuerySelect>(
        &self,
        q: Q,
    ) -> Result<Option<<Q::Rows as sea_orm::SelectorTrait>::Item>, DbErr> {
        Ok(self.fetch_all(q.limit(1)).await?.into_iter().next())
    }

    /// Runs the read-only select `q`, whose rows are plain values (`rows::Values`: one column,
    /// or a column and an aggregate), on the readers, like [`Self::fetch_all`]: through rusqlite
    /// on the calling thread on a SQLite file, else (or when that finds the database busy)
    /// through SeaORM.
    pub(crate) async fn fetch_values<T: rows::Values>(
        &self,
        q: impl sea_orm::QueryTrait,
    ) -> Result<Vec<T>, DbErr> {
        let stmt = q.build(self.read.get_database_backend());
        if let Some(file) = &self.sqlite_reads
            && let Some(items) = file.values::<T>(&stmt)?
        {
            return Ok(items);
        }
        self.read
            .query_all_raw(stmt)
            .await?
            .iter()
            .map(T::from_query)
            .collect()
    }

    /// [`Self::fetch_all`] of a statement built elsewhere, read as `S` reads.
    pub(crate) async fn fetch_rows<S: rows::Rows>(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<S::Item>, DbErr> {
        if let Some(file) = &self.sqlite_reads
            && let Some(items) = file.rows::<S>(&stmt)?
        {
            return Ok(items);
        }
        self.read
            .query_all_raw(stmt)
            .await?
            .into_iter()
            .map(S::from_raw_query_result)
            .collect()
    }
}

impl SeaStore {
    /// Connections in the pool and how many of them are idle.
    #[must_use]
    pub fn pool_stats(&self) -> (u32, u32) {
        match self.db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
            DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
            _ => (0, 0),
        }
    }

    /// Webhook deliveries waiting to be sent (first attempt or retry).
    ///
    /// # Errors
    /// [`StoreError`] on storage failure.
    pub async fn webhook_queue_depth(&self) -> Result<u64, StoreError> {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        entity::webhook_delivery::Entity::find()
            .filter(entity::webhook_delivery::Column::Status.eq("pending"))
            .count(&self.db)
            .await
            .map_err(db_err)
    }
}

/// Every table the migrations create, in creation order.
pub const TABLES: &[&str] = &[
    "organizations",
    "users",
    "memberships",
    "teams",
    "team_members",
    "sessions",
    "api_keys",
    "audit_events",
    "audit_heads",
    "audit_checkpoints",
    "outbox_events",
    "mail_outbox",
    "invitations",
    "ownership_transfers",
    "bulk_previews",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "login_throttle",
    "assets",
    "asset_transfers",
    "usage_daily",
    "usage_monthly",
    "usage_alerts",
    "user_mfa",
    "recovery_codes",
    "login_challenges",
    "sms_outbox",
    "scim_tokens",
    "scim_users",
    "scim_groups",
    "consents",
    "audit_anchors",
    "subscriptions",
    "invoices",
    "credit_accounts",
    "credit_operations",
    "credit_entries",
    "password_resets",
    "audit_erasures",
    "credential_changes",
    "pending_charges",
    "price_deals",
    "team_pipelines",
    "service_uptime",
    "service_outages",
    "store_markers",
];

impl SeaStore {
    /// Rows per table (for operators and for backup checks).
    ///
    /// # Errors
    /// [`StoreError`] on storage failure.
    pub async fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let backend = self.db.get_database_backend();
        let mut out = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let row = self
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    backend,
                    format!("SELECT COUNT(*) AS n FROM {t}"),
                ))
                .await
                .map_err(db_err)?
                .ok_or_else(|| StoreError::msg(format!("no count for {t}")))?;
            let n: i64 = row.try_get("", "n").map_err(db_err)?;
            out.push((*t, n));
        }
        Ok(out)
    }

    /// Writes a consistent copy of a SQLite database to `path` while the server runs
    /// (`VACUUM INTO`). PostgreSQL is backed up with `pg_dump` instead.
    ///
    /// # Errors
    /// [`StoreError`] on PostgreSQL, when `path` exists, or on failure.
    pub async fn backup_sqlite(&self, path: &std::path::Path) -> Result<(), StoreError> {
        if self.db.get_database_backend() != DbBackend::Sqlite {
            return Err(StoreError::msg(
                "online backup here is for SQLite; back up PostgreSQL with pg_dump (see docs/deployment.md)",
            ));
        }
        if path.exists() {
            return Err(StoreError::msg(format!("{} exists", path.display())));
        }
        let target = path.to_string_lossy().replace('\'', "''");
        self.db
            .execute_unprepared(&format!("VACUUM INTO '{target}'"))
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// A migrated store on a SQLite file in a new temporary directory (kept alive by the caller).
#[cfg(test)]
pub(crate) async fn temp_sqlite_store() -> (tempfile::TempDir, SeaStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::sqlite_file(&dir.path().join("store.db"));
    let store = SeaStore::connect(&url, PoolOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    /// The value of `pragma` on the store's writer.
    async fn writer_pragma(store: &crate::SeaStore, pragma: &str) -> i64 {
        store
            .db()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                format!("PRAGMA {pragma}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
    }

    /// A deal stored before deals named their plan is taken as made for the plan its
    /// organization is on when the migration runs; an organization without one gets none.
    #[tokio::test]
    async fn existing_deals_are_tagged_with_their_organizations_plan() {
        use sea_orm_migration::MigratorTrait as _;
        let dir = tempfile::tempdir().unwrap();
        let url = crate::DatabaseUrl::sqlite_file(&dir.path().join("store.db"));
        let store = crate::SeaStore::connect(&url, crate::PoolOptions::default())
            .await
            .unwrap();
        // Every migration before the one that tags deals.
        let before = crate::migration::Migrator::migrations()
            .iter()
            .position(|m| m.name() == "m20261205_000041_add_limit_overrides_plan")
            .unwrap();
        crate::migration::Migrator::up(store.db(), Some(u32::try_from(before).unwrap()))
            .await
            .unwrap();
        store
            .execute_sql(
                "INSERT INTO organizations (id, name, plan, profile, access, security, created_at, \
                 lock_version, limit_overrides) VALUES \
                 ('o1', 'Deal', 'pro', '{}', '{}', '{}', 0, 0, '{\"api_keys\":7}'), \
                 ('o2', 'None', 'free', '{}', '{}', '{}', 0, 0, NULL)",
            )
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for (id, tag) in [("o1", Some(billing_limits::Plan::Pro)), ("o2", None)] {
            let row = store
                .db()
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    format!("SELECT limit_overrides_plan FROM organizations WHERE id = '{id}'"),
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<Option<String>>(0)
                .unwrap();
            assert_eq!(
                row.as_deref(),
                tag.map(billing_limits::Plan::as_str),
                "{id}"
            );
        }
    }

    #[tokio::test]
    async fn a_sqlite_writer_checkpoints_its_log_at_ten_thousand_pages() {
        let (_dir, store) = crate::temp_sqlite_store().await;
        assert_eq!(writer_pragma(&store, "wal_autocheckpoint").await, 10_000);
    }

    #[tokio::test]
    async fn a_sqlite_files_log_is_copied_back_by_the_checkpoint_thread_not_the_writer() {
        let (dir, store) = crate::temp_sqlite_store().await;
        let checkpoints = store.checkpoints.clone().unwrap();
        let before = store.background_checkpoints().unwrap();
        // One transaction of a few pages: far below the writer's own threshold of 10,000 pages,
        // so the writer does not copy it back, and nothing closes the database (which would).
        store
            .execute_sql(
                "BEGIN; CREATE TABLE probe (n INTEGER); INSERT INTO probe VALUES (1), (2), (3); COMMIT",
            )
            .await
            .unwrap();
        // Until the rows are in the database file itself: a copy of it without its log has them.
        let copy = dir.path().join("copy.db");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            std::fs::copy(dir.path().join("store.db"), &copy).unwrap();
            let n: Option<i64> = rusqlite::Connection::open(&copy)
                .unwrap()
                .query_row("SELECT count(*) FROM probe", [], |r| r.get(0))
                .ok();
            // The thread counts a checkpoint after SQLite returns from it, so the rows can be in
            // the file a moment before the count moves: wait for both.
            let counted = store.background_checkpoints().unwrap() > before;
            if n == Some(3) && counted {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not copied into the database file by the thread within 10 s \
                 ({n:?} rows there, counted: {counted})"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Closing stops the thread.
        store.close().await.unwrap();
        assert!(checkpoints.own.thread.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_sqlite_writer_spills_a_transaction_past_eight_thousand_pages_only() {
        let (_dir, store) = crate::temp_sqlite_store().await;
        // 0 would mean that spilling is off altogether.
        assert_eq!(writer_pragma(&store, "cache_spill").await, 8_000);
        assert_eq!(
            writer_pragma(&store, "cache_size").await,
            -2_000,
            "the cache itself keeps SQLite's default size"
        );
    }
}
