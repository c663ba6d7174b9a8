//! `FileWitness`: each organization's newest audit checkpoint, kept in a file outside the
//! database (`audit.witness_dir`), so that deleting the checkpoints from the database and
//! sealing the chain again is caught (`audit::Witnessed`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use audit::{AuditError, Checkpoint, CheckpointWitness, StoreError};
use rbac_core::OrgId;

use crate::Settings;
use crate::workspace_io::write_atomically;

/// One JSON file per organization, `<org id>.json`, holding its newest checkpoint, written to
/// a temporary name, synced and renamed into place.
#[derive(Debug)]
pub struct FileWitness {
    dir: PathBuf,
    /// Writes of this process, one at a time, so a newer checkpoint is never replaced by an
    /// older one written alongside it.
    writing: tokio::sync::Mutex<()>,
}

impl FileWitness {
    /// A witness keeping its files in `dir`, created if missing.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// The witness the settings name (`audit.witness_dir`, or `<data_dir>/audit-witness`).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn for_settings(settings: &Settings) -> std::io::Result<Self> {
        Self::open(&settings.audit.witness_dir(&settings.server.data_dir))
    }

    fn path(&self, org: OrgId) -> PathBuf {
        self.dir.join(format!("{org}.json"))
    }
}

fn failed(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Store(StoreError::msg(format!(
        "audit checkpoint witness {}: {e}",
        path.display()
    )))
}

#[async_trait]
impl CheckpointWitness for FileWitness {
    async fn latest(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
        let path = self.path(org);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(&path, e)),
        };
        let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| failed(&path, e))?;
        if cp.org != org {
            return Err(failed(&path, format!("holds a checkpoint of {}", cp.org)));
        }
        Ok(Some(cp))
    }

    async fn witness(&self, checkpoint: &Checkpoint) -> Result<(), AuditError> {
        let _one_at_a_time = self.writing.lock().await;
        if self
            .latest(checkpoint.org)
            .await?
            .is_some_and(|kept| kept.seq > checkpoint.seq)
        {
            return Ok(());
        }
        let path = self.path(checkpoint.org);
        let bytes = serde_json::to_vec_pretty(checkpoint).map_err(|e| failed(&path, e))?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
            .await
            .map_err(|e| failed(&path, e))?
            .map_err(|e| failed(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(org: OrgId, seq: i64) -> Checkpoint {
        Checkpoint::sign(b"key", org, seq, [seq as u8; 32], chrono::Utc::now())
    }

    #[tokio::test]
    async fn keeps_the_newest_checkpoint_of_each_organization_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (OrgId::new(), OrgId::new());
        let w = FileWitness::open(dir.path()).unwrap();
        assert_eq!(w.latest(a).await.unwrap(), None);
        w.witness(&checkpoint(a, 5)).await.unwrap();
        w.witness(&checkpoint(b, 2)).await.unwrap();
        w.witness(&checkpoint(a, 9)).await.unwrap();
        w.witness(&checkpoint(a, 7)).await.unwrap();
        let again = FileWitness::open(dir.path()).unwrap();
        assert_eq!(again.latest(a).await.unwrap().map(|c| c.seq), Some(9));
        assert_eq!(again.latest(b).await.unwrap().map(|c| c.seq), Some(2));
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
