//! A witness of the checkpoints outside the audit store.
//!
//! Checkpoints live in the same database as the records they sign, so someone who can write to
//! that database can delete every checkpoint, rewrite the records from the first one on with
//! fresh hashes, and leave a chain that verifies: a signature cannot be forged, but a missing
//! one cannot be missed. A [`CheckpointWitness`] keeps a copy of each organization's newest
//! checkpoint somewhere else (a file beside the checkpoint key, another database, an object
//! store), and [`Witnessed`] puts it in front of an [`AuditStore`]: every checkpoint saved is
//! also witnessed, and the chain is held to both the store's newest checkpoint and the
//! witness's ([`AuditStore::held_checkpoints`]), so [`verify_chain`](crate::verify_chain)
//! reports a rewritten record at or before the witnessed one as
//! [`ChainBreak::CheckpointMismatch`](crate::ChainBreak) and a chain cut short of it as
//! [`ChainBreak::Truncated`](crate::ChainBreak), and neither a new checkpoint nor a retention
//! pass goes over a chain that does not agree with it.

use async_trait::async_trait;
use rbac_core::OrgId;

use crate::chain::{Anchor, ChainLink, Checkpoint};
use crate::error::AuditError;
use crate::events::Journal;
use crate::model::AuditEvent;
use crate::query::AuditQuery;
use crate::store::{AuditStore, PruneJournal};

/// Keeps each organization's newest checkpoint outside the audit store.
///
/// A witness only moves forward: [`witness`](Self::witness) keeps the checkpoint it is given
/// unless it already holds one covering more records. What it holds must be out of reach of
/// whoever can write to the audit store, or it witnesses nothing.
#[async_trait]
pub trait CheckpointWitness: Send + Sync {
    /// The newest checkpoint witnessed for `org`.
    ///
    /// # Errors
    /// [`AuditError::Store`] when the witness cannot be read.
    async fn latest(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError>;

    /// Keeps `checkpoint` as its organization's newest, unless one covering more records is
    /// already kept.
    ///
    /// # Errors
    /// [`AuditError::Store`] when it cannot be kept.
    async fn witness(&self, checkpoint: &Checkpoint) -> Result<(), AuditError>;
}

/// An [`AuditStore`] whose checkpoints are also kept by a [`CheckpointWitness`].
///
/// - [`save_checkpoint`](AuditStore::save_checkpoint) gives the checkpoint to the witness
///   first, then saves it: a checkpoint states what the chain already holds (it is signed only
///   after the records up to its head verify), so one the store then fails to save is still
///   true, and one the witness cannot keep is not saved at all.
/// - [`save_rotated_checkpoint`](AuditStore::save_rotated_checkpoint) saves first and then
///   witnesses: a checkpoint under the new key must not stand in the witness while the store
///   may still be under the old one. Its error after the save says so.
/// - [`held_checkpoints`](AuditStore::held_checkpoints) are both the store's newest and the
///   witness's, so the chain is held to each: to the witness's when someone deleted the
///   store's checkpoints and sealed the chain again, and to a witness's older one when another
///   checkpoint (signed by another instance with a witness of its own, say) was signed over
///   the rewritten chain since. [`latest_checkpoint`](AuditStore::latest_checkpoint) is the
///   newer of the two, the store's at the same position (a genuine checkpoint at one position
///   names one head; the newest must be authentic, an older one counts only when it is, so a
///   witness's checkpoint from before a key rotation is left out).
///
/// Everything else goes straight to the store.
#[derive(Clone, Copy)]
pub struct Witnessed<'a> {
    store: &'a dyn AuditStore,
    witness: &'a dyn CheckpointWitness,
}

impl std::fmt::Debug for Witnessed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witnessed").finish_non_exhaustive()
    }
}

impl<'a> Witnessed<'a> {
    /// `store`, with its checkpoints also kept by `witness`.
    #[must_use]
    pub fn new(store: &'a dyn AuditStore, witness: &'a dyn CheckpointWitness) -> Self {
        Self { store, witness }
    }
}

/// The store's and the witness's checkpoints, oldest first, the store's last at the same
/// position; the witness's is left out when it is the same checkpoint's head.
fn both(stored: Option<Checkpoint>, witnessed: Option<Checkpoint>) -> Vec<Checkpoint> {
    let same = |w: &Checkpoint| {
        stored
            .as_ref()
            .is_some_and(|s| s.seq == w.seq && s.head == w.head)
    };
    let mut held: Vec<Checkpoint> = witnessed
        .filter(|w| !same(w))
        .into_iter()
        .chain(stored.clone())
        .collect();
    // Stable: at the same position the store's stays last.
    held.sort_by_key(|c| c.seq);
    held
}

#[async_trait]
impl AuditStore for Witnessed<'_> {
    async fn append(&self, journal: Journal) -> Result<Vec<AuditEvent>, AuditError> {
        self.store.append(journal).await
    }

    async fn search(&self, org: OrgId, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuditError> {
        self.store.search(org, query).await
    }

    async fn chain_page(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.store.chain_page(org, after, limit).await
    }

    async fn chain_page_for_verification(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.store
            .chain_page_for_verification(org, after, limit)
            .await
    }

    async fn chain_links(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ChainLink>, AuditError> {
        self.store.chain_links(org, after, limit).await
    }

    async fn head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, AuditError> {
        self.store.head(org).await
    }

    async fn save_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        journal: Journal,
    ) -> Result<(), AuditError> {
        self.witness.witness(checkpoint).await?;
        self.store.save_checkpoint(checkpoint, journal).await
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
        Ok(self.held_checkpoints(org).await?.pop())
    }

    async fn held_checkpoints(&self, org: OrgId) -> Result<Vec<Checkpoint>, AuditError> {
        let stored = self.store.latest_checkpoint(org).await?;
        let witnessed = self.witness.latest(org).await?;
        Ok(both(stored, witnessed))
    }

    async fn erase_personal_data(
        &self,
        org: OrgId,
        subject_id: &str,
        journal: Journal,
    ) -> Result<u64, AuditError> {
        self.store
            .erase_personal_data(org, subject_id, journal)
            .await
    }

    async fn anchor(&self, org: OrgId) -> Result<Option<Anchor>, AuditError> {
        self.store.anchor(org).await
    }

    async fn prune(&self, anchor: &Anchor, journal: PruneJournal<'_>) -> Result<u64, AuditError> {
        self.store.prune(anchor, journal).await
    }

    async fn save_rotated_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        anchor: Option<(&Anchor, &Anchor)>,
    ) -> Result<(), AuditError> {
        self.store
            .save_rotated_checkpoint(checkpoint, anchor)
            .await?;
        self.witness.witness(checkpoint).await.map_err(|e| {
            AuditError::Store(crate::StoreError::msg(format!(
                "the checkpoint under the new key was saved, but its witness was not kept: {e}"
            )))
        })
    }

    async fn organizations(&self) -> Result<Vec<OrgId>, AuditError> {
        self.store.organizations().await
    }
}

/// A [`CheckpointWitness`] in memory, for tests.
#[cfg(feature = "memory")]
#[derive(Debug, Default)]
pub struct MemoryWitness {
    kept: std::sync::Mutex<std::collections::HashMap<OrgId, Checkpoint>>,
}

#[cfg(feature = "memory")]
impl MemoryWitness {
    /// A witness that holds nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn kept(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::HashMap<OrgId, Checkpoint>>, AuditError>
    {
        self.kept
            .lock()
            .map_err(|_| AuditError::Store(crate::StoreError::msg("memory witness poisoned")))
    }
}

#[cfg(feature = "memory")]
#[async_trait]
impl CheckpointWitness for MemoryWitness {
    async fn latest(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
        Ok(self.kept()?.get(&org).cloned())
    }

    async fn witness(&self, checkpoint: &Checkpoint) -> Result<(), AuditError> {
        let mut kept = self.kept()?;
        if kept
            .get(&checkpoint.org)
            .is_none_or(|k| k.seq <= checkpoint.seq)
        {
            kept.insert(checkpoint.org, checkpoint.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::chain::{ChainBreak, seal};
    use crate::{
        Actor, AuditAction, MemoryAuditStore, NewAuditEvent, Target, take_checkpoint, verify_chain,
    };

    const KEY: &[u8] = b"checkpoint key";

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    async fn store_with(org: OrgId, n: i64) -> MemoryAuditStore {
        let store = MemoryAuditStore::new();
        append(&store, org, 1, n).await;
        store
    }

    async fn append(store: &MemoryAuditStore, org: OrgId, from: i64, to: i64) {
        for i in from..=to {
            store
                .append(Journal::record(NewAuditEvent::new(
                    org,
                    at(i),
                    Actor::user("usr_1", "Sarah"),
                    AuditAction::ApiKeyCreated,
                    Target::new("api_key", format!("key_{i}"), "Key"),
                )))
                .await
                .unwrap();
        }
    }

    /// Deletes every checkpoint, rewrites record `edited` and seals the chain again from there,
    /// as someone with write access to the store could.
    fn rewrite_from(store: &MemoryAuditStore, org: OrgId, edited: i64) {
        store.forget_checkpoints(org).unwrap();
        store
            .with_chain(org, |chain| {
                let mut prev = chain
                    .iter()
                    .find(|r| r.seq == edited - 1)
                    .map_or(crate::chain::GENESIS, |r| r.hash);
                for r in chain.iter_mut().filter(|r| r.seq >= edited) {
                    let mut e = r.event.clone();
                    if r.seq == edited {
                        e.target.id = "key_forged".into();
                    }
                    *r = seal(e, r.seq, prev);
                    prev = r.hash;
                }
            })
            .unwrap();
    }

    #[tokio::test]
    async fn a_chain_sealed_again_without_its_checkpoints_is_caught_by_the_witness() {
        let org = OrgId::new();
        let store = store_with(org, 10).await;
        let witness = MemoryWitness::new();
        let log = Witnessed::new(&store, &witness);
        let cp = take_checkpoint(&log, org, KEY, at(20)).await.unwrap();
        assert_eq!(cp.as_ref().map(|c| c.seq), Some(10));
        assert_eq!(witness.latest(org).await.unwrap(), cp);
        append(&store, org, 11, 12).await;
        assert!(verify_chain(&log, org, KEY).await.unwrap().is_ok());

        rewrite_from(&store, org, 4);
        // The store alone has nothing left to hold the chain to.
        assert!(verify_chain(&store, org, KEY).await.unwrap().is_ok());
        assert_eq!(
            verify_chain(&log, org, KEY).await.unwrap(),
            Err(ChainBreak::CheckpointMismatch { seq: 10 })
        );
        // Nor is a new checkpoint signed over it.
        assert!(matches!(
            take_checkpoint(&log, org, KEY, at(30)).await,
            Err(AuditError::Tampered(_))
        ));
        assert_eq!(witness.latest(org).await.unwrap(), cp);
    }

    #[tokio::test]
    async fn a_tail_cut_with_its_checkpoints_is_caught_by_the_witness() {
        let org = OrgId::new();
        let store = store_with(org, 10).await;
        let witness = MemoryWitness::new();
        let log = Witnessed::new(&store, &witness);
        take_checkpoint(&log, org, KEY, at(20)).await.unwrap();
        store.forget_checkpoints(org).unwrap();
        store.with_chain(org, |c| c.truncate(6)).unwrap();
        assert!(verify_chain(&store, org, KEY).await.unwrap().is_ok());
        assert_eq!(
            verify_chain(&log, org, KEY).await.unwrap(),
            Err(ChainBreak::Truncated {
                last: 6,
                checkpoint: 10
            })
        );
        // Nor is a checkpoint signed over the shorter log as it grows again.
        append(&store, org, 7, 7).await;
        assert!(matches!(
            take_checkpoint(&log, org, KEY, at(21)).await,
            Err(AuditError::Tampered(ChainBreak::Truncated {
                last: 7,
                checkpoint: 10
            }))
        ));
    }

    #[tokio::test]
    async fn the_newer_checkpoint_is_the_one_held_to() {
        let org = OrgId::new();
        let store = store_with(org, 5).await;
        let witness = MemoryWitness::new();
        let log = Witnessed::new(&store, &witness);
        let first = take_checkpoint(&log, org, KEY, at(20)).await.unwrap();
        append(&store, org, 6, 8).await;
        // A checkpoint the witness did not see (another instance's, say) is newer: it is used,
        // and the witness keeps what it had.
        let second = take_checkpoint(&store, org, KEY, at(21)).await.unwrap();
        assert_eq!(log.latest_checkpoint(org).await.unwrap(), second);
        assert_eq!(witness.latest(org).await.unwrap(), first);
        // A witness never moves back.
        let stale = first.clone().unwrap();
        let newer = second.clone().unwrap();
        witness.witness(&newer).await.unwrap();
        witness.witness(&stale).await.unwrap();
        assert_eq!(witness.latest(org).await.unwrap(), second);
        // At the same position the store's is used: both name the same head.
        let again = Checkpoint::sign(KEY, org, newer.seq, newer.head, at(22));
        store
            .save_checkpoint(&again, Journal::default())
            .await
            .unwrap();
        assert_eq!(log.latest_checkpoint(org).await.unwrap(), Some(again));
        assert!(verify_chain(&log, org, KEY).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn an_older_witnessed_checkpoint_holds_after_another_is_signed_over_a_rewrite() {
        let org = OrgId::new();
        let store = store_with(org, 10).await;
        let (here, there) = (MemoryWitness::new(), MemoryWitness::new());
        let (log, other) = (
            Witnessed::new(&store, &here),
            Witnessed::new(&store, &there),
        );
        take_checkpoint(&log, org, KEY, at(20)).await.unwrap();
        append(&store, org, 11, 15).await;
        rewrite_from(&store, org, 4);
        // Another instance, whose witness saw none of it, signs the rewritten chain.
        let over = take_checkpoint(&other, org, KEY, at(21)).await.unwrap();
        assert_eq!(over.map(|c| c.seq), Some(15));
        assert!(verify_chain(&other, org, KEY).await.unwrap().is_ok());
        // The older checkpoint witnessed here still holds.
        assert_eq!(
            verify_chain(&log, org, KEY).await.unwrap(),
            Err(ChainBreak::CheckpointMismatch { seq: 10 })
        );
        assert!(matches!(
            take_checkpoint(&log, org, KEY, at(22)).await,
            Err(AuditError::Tampered(ChainBreak::CheckpointMismatch {
                seq: 10
            }))
        ));
        // Nor does retention remove the records the witnessed checkpoint disproves.
        let nothing = |_: &crate::Anchor, _: u64| Ok(Journal::default());
        assert!(matches!(
            crate::prune_before(&log, org, at(13), KEY, at(23), &nothing).await,
            Err(AuditError::Tampered(ChainBreak::CheckpointMismatch {
                seq: 10
            }))
        ));
        assert_eq!(store.anchor(org).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_checkpoint_witnessed_before_a_key_rotation_is_left_out() {
        const NEW: &[u8] = b"the new checkpoint key";
        let org = OrgId::new();
        let store = store_with(org, 6).await;
        let witness = MemoryWitness::new();
        let log = Witnessed::new(&store, &witness);
        take_checkpoint(&log, org, KEY, at(20)).await.unwrap();
        append(&store, org, 7, 8).await;
        // Rotated where the witness was not (or its write failed): the store's checkpoint is
        // under the new key, the witness's under the old.
        crate::take_checkpoint_rotating(&store, org, KEY, NEW, at(21))
            .await
            .unwrap();
        assert!(verify_chain(&log, org, NEW).await.unwrap().is_ok());
        take_checkpoint(&log, org, NEW, at(22)).await.unwrap();
        // A rotation through the witness moves it to the new key.
        crate::take_checkpoint_rotating(&log, org, NEW, KEY, at(23))
            .await
            .unwrap();
        let kept = witness.latest(org).await.unwrap().unwrap();
        assert!(kept.is_authentic(KEY));
        assert!(verify_chain(&log, org, KEY).await.unwrap().is_ok());
    }

    /// A witness that keeps nothing.
    struct Failing;

    #[async_trait]
    impl CheckpointWitness for Failing {
        async fn latest(&self, _: OrgId) -> Result<Option<Checkpoint>, AuditError> {
            Ok(None)
        }
        async fn witness(&self, _: &Checkpoint) -> Result<(), AuditError> {
            Err(AuditError::Store(crate::StoreError::msg("disk full")))
        }
    }

    #[tokio::test]
    async fn a_checkpoint_the_witness_cannot_keep_is_not_saved() {
        let org = OrgId::new();
        let store = store_with(org, 3).await;
        let log = Witnessed::new(&store, &Failing);
        assert!(matches!(
            take_checkpoint(&log, org, KEY, at(20)).await,
            Err(AuditError::Store(_))
        ));
        assert_eq!(store.latest_checkpoint(org).await.unwrap(), None);
    }
}
