//! An in-memory [`AuditStore`] for unit tests of code that embeds this crate.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use rbac_core::OrgId;

use crate::chain::{Checkpoint, GENESIS, seal};
use crate::error::{AuditError, StoreError};
use crate::events::{DomainEvent, Journal};
use crate::mail::{MailOutbox, QueuedMail};
use crate::model::AuditEvent;
use crate::query::{ActionFilter, AuditQuery};
use crate::store::AuditStore;

#[derive(Debug, Default)]
struct State {
    chains: HashMap<OrgId, Vec<AuditEvent>>,
    checkpoints: HashMap<OrgId, Vec<Checkpoint>>,
    anchors: HashMap<OrgId, crate::chain::Anchor>,
    outbox: Vec<DomainEvent>,
    /// Each mail with the time it becomes available (its lease or retry time).
    mails: Vec<(QueuedMail, chrono::DateTime<chrono::Utc>)>,
    /// Ids each organization erased: records appended later that name them keep no annotation.
    erased: HashMap<OrgId, std::collections::HashSet<String>>,
}

/// Keeps everything in a mutex; appends are atomic per journal.
#[derive(Debug, Default)]
pub struct MemoryAuditStore {
    state: Mutex<State>,
}

impl MemoryAuditStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything of `org`: its chain, checkpoints and anchor, its queued events, the
    /// mail that names it (for a store that deletes an organization; a database store deletes
    /// the rows in the deletion's transaction).
    ///
    /// # Errors
    /// [`AuditError::Store`] when the store's lock is poisoned.
    pub fn forget_org(&self, org: OrgId) -> Result<(), AuditError> {
        let mut s = self.lock()?;
        s.chains.remove(&org);
        s.checkpoints.remove(&org);
        s.anchors.remove(&org);
        s.erased.remove(&org);
        s.outbox.retain(|e| e.org != org);
        s.mails.retain(|(m, _)| m.org != Some(org));
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, AuditError> {
        self.state
            .lock()
            .map_err(|_| AuditError::Store(StoreError::msg("memory store poisoned")))
    }

    /// Events queued so far (what a webhook dispatcher would pick up).
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn outbox(&self) -> Result<Vec<DomainEvent>, AuditError> {
        Ok(self.lock()?.outbox.clone())
    }

    /// Direct access to the event outbox, for an erasure that rewrites the events naming a
    /// person (see `tenancy::privacy::scrub_event_json`).
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn with_outbox<R>(
        &self,
        f: impl FnOnce(&mut Vec<DomainEvent>) -> R,
    ) -> Result<R, AuditError> {
        Ok(f(&mut self.lock()?.outbox))
    }

    /// Direct access to the mail outbox (each mail with the time it becomes available), for an
    /// erasure that removes or blanks the mail to or about a person.
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn with_mails<R>(
        &self,
        f: impl FnOnce(&mut Vec<(QueuedMail, chrono::DateTime<chrono::Utc>)>) -> R,
    ) -> Result<R, AuditError> {
        Ok(f(&mut self.lock()?.mails))
    }

    /// Lists `ids` as erased in `org`: records of `org` appended from now on that name one of
    /// them keep no personal annotation, until [`readmit`](Self::readmit). A store that keeps
    /// members (the tenancy memory store) lists a person it erases, then blanks the records
    /// already there, so a record appended meanwhile is blanked one way or the other.
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn mark_erased(&self, org: OrgId, ids: &[String]) -> Result<(), AuditError> {
        self.lock()?
            .erased
            .entry(org)
            .or_default()
            .extend(ids.iter().cloned());
        Ok(())
    }

    /// Takes `id` off `org`'s erased list: they joined again, and their records name them.
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn readmit(&self, org: OrgId, id: &str) -> Result<(), AuditError> {
        if let Some(ids) = self.lock()?.erased.get_mut(&org) {
            ids.remove(id);
        }
        Ok(())
    }

    /// Removes the mail sent before `before`, and the mail created before it and never sent
    /// (housekeeping); returns how many went.
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn prune_mail(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, AuditError> {
        let mut state = self.lock()?;
        let n = state.mails.len();
        state.mails.retain(|(m, _)| match m.sent_at {
            Some(sent) => sent >= before,
            None => m.created_at >= before,
        });
        Ok((n - state.mails.len()) as u64)
    }

    /// Direct access to a chain, so tests can tamper with it.
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn with_chain<R>(
        &self,
        org: OrgId,
        f: impl FnOnce(&mut Vec<AuditEvent>) -> R,
    ) -> Result<R, AuditError> {
        Ok(f(self.lock()?.chains.entry(org).or_default()))
    }

    /// Deletes every checkpoint of `org`, so tests can tamper with them.
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn forget_checkpoints(&self, org: OrgId) -> Result<(), AuditError> {
        self.lock()?.checkpoints.remove(&org);
        Ok(())
    }
}

fn matches(r: &AuditEvent, q: &AuditQuery) -> bool {
    let e = &r.event;
    q.before_seq.is_none_or(|b| r.seq < b)
        && q.actor_id.as_ref().is_none_or(|a| &e.actor.id == a)
        && q.action.as_ref().is_none_or(|f| match f {
            ActionFilter::Exact(x) => e.action.as_str() == x,
            ActionFilter::Prefix(p) => e.action.as_str().starts_with(p.as_str()),
        })
        && q.since.is_none_or(|s| e.occurred_at >= s)
        && q.until.is_none_or(|u| e.occurred_at < u)
        && q.target_kind.as_ref().is_none_or(|k| &e.target.kind == k)
        && q.target_id.as_ref().is_none_or(|i| &e.target.id == i)
        && q.outcome.as_ref().is_none_or(|o| e.outcome.status() == o)
        && q.team.is_none_or(|t| e.team == Some(t))
        && q.seen_by.as_ref().is_none_or(|s| s.sees_record(e))
}

/// Appends `journal` to the chains and the outboxes (the caller holds the lock).
fn append_locked(state: &mut State, journal: Journal) -> Vec<AuditEvent> {
    let mut out = Vec::with_capacity(journal.records.len());
    for mut e in journal.records {
        if let Some(erased) = state.erased.get(&e.org) {
            crate::model::erase_annotations_of(&mut e, |id| erased.contains(id));
        }
        // After pruning everything, the chain continues from the retention anchor.
        let anchored = state.anchors.get(&e.org).map(|a| (a.seq + 1, a.hash));
        let chain = state.chains.entry(e.org).or_default();
        let (seq, prev) = chain
            .last()
            .map(|l| (l.seq + 1, l.hash))
            .or(anchored)
            .unwrap_or((1, GENESIS));
        let rec = seal(e, seq, prev);
        chain.push(rec.clone());
        out.push(rec);
    }
    state.outbox.extend(journal.events);
    for m in journal.mails {
        let id = format!("mail_{:020}", state.mails.len() + 1);
        let queued_at = out
            .first()
            .map_or_else(chrono::Utc::now, |r| r.event.occurred_at);
        state.mails.push((
            QueuedMail {
                id,
                org: m.org,
                to: m.to,
                subject: m.subject,
                body: m.body,
                kind: m.kind,
                created_at: queued_at,
                sent_at: None,
                attempts: 0,
                last_error: None,
            },
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
        ));
    }
    out
}

#[async_trait]
impl AuditStore for MemoryAuditStore {
    async fn append(&self, journal: Journal) -> Result<Vec<AuditEvent>, AuditError> {
        let mut state = self.lock()?;
        Ok(append_locked(&mut state, journal))
    }

    async fn search(&self, org: OrgId, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuditError> {
        query.validate()?;
        let state = self.lock()?;
        let Some(chain) = state.chains.get(&org) else {
            return Ok(Vec::new());
        };
        Ok(chain
            .iter()
            .rev()
            .filter(|r| matches(r, query))
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn chain_page(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        let state = self.lock()?;
        let Some(chain) = state.chains.get(&org) else {
            return Ok(Vec::new());
        };
        Ok(chain
            .iter()
            .filter(|r| r.seq > after)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, AuditError> {
        let state = self.lock()?;
        Ok(state
            .chains
            .get(&org)
            .and_then(|c| c.last())
            .map(|l| (l.seq, l.hash))
            .or_else(|| state.anchors.get(&org).map(|a| (a.seq, a.hash))))
    }

    async fn anchor(&self, org: OrgId) -> Result<Option<crate::chain::Anchor>, AuditError> {
        Ok(self.lock()?.anchors.get(&org).cloned())
    }

    async fn prune(
        &self,
        anchor: &crate::chain::Anchor,
        journal: crate::PruneJournal<'_>,
    ) -> Result<u64, AuditError> {
        let mut state = self.lock()?;
        if state
            .anchors
            .get(&anchor.org)
            .is_some_and(|a| a.seq >= anchor.seq)
        {
            return Ok(0);
        }
        let chain = state.chains.entry(anchor.org).or_default();
        if !chain
            .iter()
            .any(|r| r.seq == anchor.seq && r.hash == anchor.hash)
        {
            return Err(AuditError::Invalid(format!(
                "record {} is not the one the anchor names",
                anchor.seq
            )));
        }
        let removed = chain.iter().filter(|r| r.seq <= anchor.seq).count() as u64;
        let journal = journal(anchor, removed)?;
        chain.retain(|r| r.seq > anchor.seq);
        state.anchors.insert(anchor.org, anchor.clone());
        append_locked(&mut state, journal);
        Ok(removed)
    }

    async fn save_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        journal: Journal,
    ) -> Result<(), AuditError> {
        let mut state = self.lock()?;
        state
            .checkpoints
            .entry(checkpoint.org)
            .or_default()
            .push(checkpoint.clone());
        append_locked(&mut state, journal);
        Ok(())
    }

    async fn save_rotated_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        anchor: Option<(&crate::chain::Anchor, &crate::chain::Anchor)>,
    ) -> Result<(), AuditError> {
        let mut state = self.lock()?;
        if anchor.is_none() && state.anchors.contains_key(&checkpoint.org) {
            return Err(AuditError::anchor_moved());
        }
        if let Some((old, new)) = anchor {
            if !new.names_same_records(old) {
                return Err(AuditError::anchor_not_resealed());
            }
            if state.anchors.get(&old.org) != Some(old) {
                return Err(AuditError::anchor_moved());
            }
            state.anchors.insert(new.org, new.clone());
        }
        state
            .checkpoints
            .entry(checkpoint.org)
            .or_default()
            .push(checkpoint.clone());
        Ok(())
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
        Ok(self
            .lock()?
            .checkpoints
            .get(&org)
            .and_then(|c| c.iter().max_by_key(|c| c.seq).cloned()))
    }

    async fn erase_personal_data(
        &self,
        org: OrgId,
        subject_id: &str,
        journal: Journal,
    ) -> Result<u64, AuditError> {
        let mut state = self.lock()?;
        state
            .erased
            .entry(org)
            .or_default()
            .insert(subject_id.to_owned());
        let mut n = 0;
        for r in state.chains.entry(org).or_default() {
            let e = &mut r.event;
            if e.actor.id == subject_id || e.target.id == subject_id {
                crate::model::erase_annotations(e, subject_id);
                n += 1;
            }
        }
        append_locked(&mut state, journal);
        Ok(n)
    }

    async fn organizations(&self) -> Result<Vec<OrgId>, AuditError> {
        Ok(self
            .lock()?
            .chains
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(o, _)| *o)
            .collect())
    }
}

/// Leases and retry times are modelled as in the SQL adapter.
#[async_trait]
impl MailOutbox for MemoryAuditStore {
    async fn claim_mails(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        lease: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, AuditError> {
        let mut state = self.lock()?;
        let mut out = Vec::new();
        for (m, available) in state
            .mails
            .iter_mut()
            .filter(|(m, a)| m.sent_at.is_none() && *a <= now)
            .take(limit as usize)
        {
            *available = lease;
            out.push(m.clone());
        }
        Ok(out)
    }

    async fn mark_mail_sent(
        &self,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AuditError> {
        if let Some((m, _)) = self.lock()?.mails.iter_mut().find(|(m, _)| m.id == id) {
            m.sent_at = Some(now);
            m.attempts += 1;
            m.body.clear();
        }
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AuditError> {
        if let Some((m, available)) = self.lock()?.mails.iter_mut().find(|(m, _)| m.id == id) {
            m.attempts += 1;
            m.last_error = Some(crate::kept_mail_error(error));
            *available = retry_at;
        }
        Ok(())
    }

    async fn list_mails(
        &self,
        org: Option<OrgId>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, AuditError> {
        Ok(self
            .lock()?
            .mails
            .iter()
            .rev()
            .filter(|(m, _)| m.org == org && before.is_none_or(|b| m.id.as_str() < b))
            .take(limit as usize)
            .map(|(m, _)| m.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryAuditStore;

    /// The in-memory store an embedder tests with keeps the contract the database adapter
    /// keeps (`store-sea`'s `contract` tests run the same steps).
    #[tokio::test]
    async fn the_memory_store_keeps_the_store_contract() {
        crate::contract::run(&MemoryAuditStore::default()).await;
        crate::contract::run_mail(&MemoryAuditStore::default()).await;
    }
}
