//! Copies a SQLite file's write-ahead log into the database file on a thread of its own, so that
//! the writer's commits seldom do it.
//!
//! SQLite copies the log back (a *checkpoint*) inside the commit that finds it past
//! `wal_autocheckpoint` pages: that commit also writes every page the log holds into the
//! database file and syncs it, while every other write waits behind it on the one writer. Here a
//! thread with a connection of its own runs `PRAGMA wal_checkpoint(PASSIVE)` a few times a second
//! while the log grows: a passive checkpoint copies what is committed without blocking the
//! writer or the readers, and once it has copied everything, the writer's next transaction
//! starts the log again from its beginning. The writer's own threshold stays as the bound for a
//! burst that outruns this thread (in which case its checkpoint has less left to copy).
//!
//! When nothing was committed since the log was last copied (`PRAGMA data_version` is
//! unchanged) the thread waits longer each time (up to [`IDLE_WAIT`]), so an idle server wakes it
//! about once a second; after a failure it waits a minute.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::own_thread::OwnThread;

/// Wait between checkpoints while the log grows.
const BUSY_WAIT: Duration = Duration::from_millis(100);
/// Longest wait between checks while nothing is written.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Wait after a failed checkpoint.
const FAILING_WAIT: Duration = Duration::from_secs(60);

/// The checkpointing thread of one SQLite file; stops when dropped or [`Self::stop`]ped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    /// The thread; a message or the sender's drop stops it.
    pub(crate) own: OwnThread<Sender<()>>,
    /// Checkpoints of this thread that followed new commits and left the whole log copied.
    completed: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Opens a connection to `path` (which must exist) and starts the thread.
    pub(crate) fn start(path: PathBuf) -> std::io::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(std::io::Error::other)?;
        // A passive checkpoint never waits for a lock anyway; with no busy timeout, reloading the
        // schema while a migration holds the write lock fails at once too (`Round::Busy`), and
        // the next round tries again.
        conn.busy_timeout(Duration::ZERO)
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = channel::<()>();
        let completed = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&completed);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut wait = BUSY_WAIT;
                // The database's version when the last checkpoint left the whole log copied:
                // `data_version` changes whenever another connection commits.
                let mut copied_at = None;
                let mut failing = false;
                // A message or a dropped sender stops the thread.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    match round(&conn, copied_at) {
                        // Nothing committed since the log was last copied.
                        Ok(Round::Idle) => wait = (wait * 2).min(IDLE_WAIT),
                        // Another checkpoint (the writer's) was running, or the schema could not
                        // be read just now: try again soon.
                        Ok(Round::Busy) => wait = BUSY_WAIT,
                        Ok(Round::Copied { version, all }) => {
                            failing = false;
                            if all {
                                copied_at = Some(version);
                                count.fetch_add(1, Ordering::Relaxed);
                                metrics::counter!("axie_sqlite_background_checkpoints_total")
                                    .increment(1);
                            }
                            wait = BUSY_WAIT;
                        }
                        Err(e) => {
                            // Once per streak of failures (a full disk, a replaced file), then
                            // quietly, once a minute; the writer still checkpoints.
                            if !failing {
                                tracing::warn!(error = %e, "background WAL checkpoint failed");
                            }
                            failing = true;
                            wait = FAILING_WAIT;
                        }
                    }
                }
            })?;
        Ok(Self {
            own: OwnThread::new(stop, thread),
            completed,
        })
    }

    /// Checkpoints of this thread so far that followed new commits and left the whole log
    /// copied into the database file.
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it (at most the end of a checkpoint in progress). Blocks.
    pub(crate) fn stop(&self) {
        self.own.stop();
    }
}

/// What a round did.
enum Round {
    /// Nothing was committed since the log was last copied whole.
    Idle,
    /// Another checkpoint was running, or SQLite was busy.
    Busy,
    /// A checkpoint ran at `version`; `all`: it left the whole log copied.
    Copied { version: i64, all: bool },
}

/// One round: a passive checkpoint, unless nothing was committed since the last complete one.
fn round(conn: &Connection, copied_at: Option<i64>) -> Result<Round, rusqlite::Error> {
    let version: i64 = match conn.query_row("PRAGMA data_version", [], |r| r.get(0)) {
        Err(e) if crate::scan::busy(&e) => return Ok(Round::Busy),
        other => other?,
    };
    if copied_at == Some(version) {
        return Ok(Round::Idle);
    }
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match result {
        Err(e) if crate::scan::busy(&e) => Ok(Round::Busy),
        Err(e) => Err(e),
        Ok((1, _, _)) => Ok(Round::Busy),
        // The counts are -1 when the database is not in WAL mode.
        Ok((_, log, done)) => Ok(Round::Copied {
            version,
            all: log >= 0 && done == log,
        }),
    }
}
