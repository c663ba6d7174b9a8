//! `FileWitness`: each organization's newest audit checkpoint, kept in a file outside the
//! database (`audit.witness_dir`), so that deleting the checkpoints from the database and
//! sealing the chain again is caught (`audit::Witnessed`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use audit::{AuditError, Checkpoint, CheckpointWitness, StoreError};
use rbac_core::OrgId;

use crate::Settings;

/// One JSON file per organization, `<org id>.json`, holding its newest checkpoint.
///
/// Each write holds a lock of the process (one write at a time in the process: on a shared
/// mount the file lock below may be emulated with per-process locks, which do not keep two
/// threads of one process apart) and an exclusive lock on `<org id>.lock` (`File::lock`, an
/// advisory lock that holds between processes, on a shared mount too where the file system
/// supports it) while it reads the file, compares, writes a temporary file of its own
/// (`.<org id>.json.*`), syncs it, renames it into place and syncs the directory: so the
/// witness only moves forward even when several instances, or the server and an operator's
/// command, share the directory, and a crash leaves either the old file or the new one.
#[derive(Debug)]
pub struct FileWitness {
    dir: PathBuf,
}

/// One witness write at a time in the process, whichever `FileWitness` makes it (two may share
/// a directory: the server's and an operator command's, or a test's).
static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl FileWitness {
    /// A witness keeping its files in `dir`, created if missing.
    ///
    /// # Errors
    /// When the directory cannot be created or written to.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // Checked now rather than at the first checkpoint, which it would refuse.
        tempfile::tempfile_in(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The witness the settings name (`audit.witness_dir`, or `<data_dir>/audit-witness`).
    ///
    /// # Errors
    /// When the directory cannot be created or written to.
    pub fn for_settings(settings: &Settings) -> std::io::Result<Self> {
        Self::open(&settings.audit.witness_dir(&settings.server.data_dir))
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, org: OrgId) -> PathBuf {
        self.dir.join(format!("{org}.json"))
    }
}

fn failed(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Store(StoreError::msg(format!(
        "audit checkpoint witness {}: {e} (a file that no longer reads can be moved aside; the next checkpoint writes it again)",
        path.display()
    )))
}

/// Reads `path`: `None` when there is no file.
fn read(path: &Path, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(path, e)),
    };
    let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| failed(path, e))?;
    if cp.org != org {
        return Err(failed(path, format!("holds a checkpoint of {}", cp.org)));
    }
    Ok(Some(cp))
}

/// The rename just made in `dir`, made durable (a directory opens as a file on Unix only).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Keeps `cp` in `path` unless it holds one covering more records (under the locks of
/// [`FileWitness::under_lock`]).
fn keep(dir: &Path, path: &Path, cp: &Checkpoint) -> Result<(), AuditError> {
    if read(path, cp.org)?.is_some_and(|kept| kept.seq > cp.seq) {
        return Ok(());
    }
    let bytes = serde_json::to_vec_pretty(cp).map_err(|e| failed(path, e))?;
    // A temporary file no other write uses (removed when dropped unless it was renamed).
    let written = (|| {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.json.", cp.org))
            .tempfile_in(dir)?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        sync_dir(dir)
    })();
    written.map_err(|e| failed(path, e))
}

impl FileWitness {
    /// Runs `f` with the directory and `org`'s file on a blocking thread, holding the process's
    /// lock and `org`'s file lock (`<org id>.lock`): every write of the witness goes through
    /// here.
    async fn under_lock<T: Send + 'static>(
        &self,
        org: OrgId,
        f: impl FnOnce(&Path, &Path) -> Result<T, AuditError> + Send + 'static,
    ) -> Result<T, AuditError> {
        let (dir, path) = (self.dir.clone(), self.path(org));
        tokio::task::spawn_blocking(move || {
            // A poisoned lock guards nothing but the order of writes: go on.
            let _one_at_a_time = WRITING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let lock = std::fs::File::create(dir.join(format!("{org}.lock")))
                .map_err(|e| failed(&path, e))?;
            lock.lock().map_err(|e| failed(&path, e))?;
            f(&dir, &path)
            // The file lock goes with `lock`.
        })
        .await
        .map_err(|e| AuditError::Store(StoreError::new(e)))?
    }

    /// Moves `org`'s file aside, to `<org id>.json.replaced-<UTC time>` beside it (never over
    /// another), under the organization's lock, and returns the checkpoint it held and where it
    /// went; `None` when there was none. The next checkpoint starts the file again (after a
    /// restore, from the database's own checkpoints: `admin::accept_restored_audit`).
    ///
    /// # Errors
    /// When the file cannot be read or moved.
    pub async fn set_aside(
        &self,
        org: OrgId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<(Checkpoint, PathBuf)>, AuditError> {
        self.under_lock(org, move |dir, path| {
            let Some(held) = read(path, org)? else {
                return Ok(None);
            };
            let aside = path.with_extension(format!(
                "json.replaced-{}",
                now.format("%Y%m%dT%H%M%S%.6fZ")
            ));
            // Never over an earlier one: that is the evidence of an earlier acceptance.
            std::fs::hard_link(path, &aside).map_err(|e| failed(&aside, e))?;
            std::fs::remove_file(path).map_err(|e| failed(path, e))?;
            sync_dir(dir).map_err(|e| failed(path, e))?;
            Ok(Some((held, aside)))
        })
        .await
    }

    /// Puts back a file [`set_aside`](Self::set_aside) moved, unless a checkpoint was witnessed
    /// since (then the newer file stays, and the one set aside too).
    ///
    /// # Errors
    /// When the file cannot be moved back.
    pub async fn put_back(&self, org: OrgId, aside: &Path) -> Result<(), AuditError> {
        let aside = aside.to_path_buf();
        self.under_lock(org, move |dir, path| {
            if path.exists() {
                return Ok(());
            }
            std::fs::rename(&aside, path)
                .and_then(|()| sync_dir(dir))
                .map_err(|e| failed(path, e))
        })
        .await
    }
}

#[async_trait]
impl CheckpointWitness for FileWitness {
    async fn latest(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
        let path = self.path(org);
        tokio::task::spawn_blocking(move || read(&path, org))
            .await
            .map_err(|e| AuditError::Store(StoreError::new(e)))?
    }

    async fn witness(&self, checkpoint: &Checkpoint) -> Result<(), AuditError> {
        let cp = checkpoint.clone();
        self.under_lock(checkpoint.org, move |dir, path| keep(dir, path, &cp))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(org: OrgId, seq: i64) -> Checkpoint {
        Checkpoint::sign(b"key", org, seq, [seq as u8; 32], chrono::Utc::now())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keeps_the_newest_checkpoint_of_each_organization_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (OrgId::new(), OrgId::new());
        let w = FileWitness::open(dir.path()).unwrap();
        assert_eq!(w.latest(a).await.unwrap(), None);
        // Two witnesses on one directory (two instances on a shared mount) write at once: the
        // newest stays, and every file reads.
        let other = FileWitness::open(dir.path()).unwrap();
        let checkpoints: Vec<Checkpoint> = (1..=40).map(|seq| checkpoint(b, seq)).collect();
        let writes: Vec<_> = checkpoints
            .iter()
            .map(|cp| if cp.seq % 2 == 0 { &w } else { &other }.witness(cp))
            .collect();
        for r in futures::future::join_all(writes).await {
            r.unwrap();
        }
        assert_eq!(w.latest(b).await.unwrap().map(|c| c.seq), Some(40));
        w.witness(&checkpoint(a, 5)).await.unwrap();
        w.witness(&checkpoint(a, 9)).await.unwrap();
        w.witness(&checkpoint(a, 7)).await.unwrap();
        let again = FileWitness::open(dir.path()).unwrap();
        assert_eq!(again.latest(a).await.unwrap().map(|c| c.seq), Some(9));
        assert_eq!(again.latest(b).await.unwrap().map(|c| c.seq), Some(40));
        // Only the checkpoints and their locks are left.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected = vec![
            format!("{a}.json"),
            format!("{a}.lock"),
            format!("{b}.json"),
            format!("{b}.lock"),
        ];
        expected.sort();
        assert_eq!(names, expected);
        assert!(again.latest(a).await.unwrap().unwrap().is_authentic(b"key"));
    }

    #[tokio::test]
    async fn an_unreadable_or_misplaced_file_is_an_error_not_an_empty_witness() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (OrgId::new(), OrgId::new());
        let w = FileWitness::open(dir.path()).unwrap();
        std::fs::write(w.path(a), b"{not json").unwrap();
        assert!(w.latest(a).await.is_err());
        // A file copied over another organization's is not taken as that organization's.
        w.witness(&checkpoint(b, 3)).await.unwrap();
        std::fs::copy(w.path(b), w.path(a)).unwrap();
        assert!(w.latest(a).await.is_err());
    }
}
