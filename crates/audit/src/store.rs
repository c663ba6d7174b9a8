//! The audit log's storage port.

use std::task::Poll;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rbac_core::OrgId;

use crate::chain::{Anchor, ChainBreak, ChainLink, ChainVerifier, Checkpoint, VerifiedChain};
use crate::error::AuditError;
use crate::events::Journal;
use crate::model::{AuditEvent, Metadata};
use crate::query::AuditQuery;

/// Storage for audit records and checkpoints.
///
/// Records are appended through a [`Journal`], which is also how every other
/// store's mutating methods take their audit records: implementations append
/// each record to its organization's chain (next `seq`, `prev_hash` = the
/// current head) in the same transaction as the change.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends the journal's records (and queues its events) in one transaction.
    ///
    /// Used for facts that are not a state change of their own: failed logins,
    /// denied attempts, views and exports.
    ///
    /// # Errors
    /// [`AuditError::Store`] when the transaction fails; nothing is written then.
    async fn append(&self, journal: Journal) -> Result<Vec<AuditEvent>, AuditError>;

    /// One newest-first page of `org`'s records matching `query` (keyset on `seq`).
    ///
    /// # Errors
    /// [`AuditError::Invalid`] when the query does not validate.
    async fn search(&self, org: OrgId, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuditError>;

    /// Up to `limit` records of `org` with `seq > after`, oldest first, for verification and export.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn chain_page(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError>;

    /// [`chain_page`](Self::chain_page) as verification reads it: the records' fields outside
    /// the chain's hash (actor and target names, IP address, user agent, request id) may come
    /// back empty, sparing the store reading and copying what verification does not check.
    /// Everything the hash covers, and both hashes, must be as stored. The default reads whole
    /// records.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn chain_page_for_verification(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.chain_page(org, after, limit).await
    }

    /// The [`ChainLink`]s of [`chain_page_for_verification`](Self::chain_page_for_verification)'s
    /// records: what [`verify_chain`] checks. A store that can should read them straight from its
    /// rows with [`ChainLink::stored`], hashing each record's fields exactly as stored (on the
    /// thread that reads them, say) rather than building records first. The default hashes the
    /// records of `chain_page_for_verification`.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn chain_links(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ChainLink>, AuditError> {
        let records = self.chain_page_for_verification(org, after, limit).await?;
        Ok(ChainLink::of_all(&records))
    }

    /// The chain head (`seq`, hash) as the store records it, or `None` for an empty log.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, AuditError>;

    /// Saves a signed checkpoint and commits `journal` (the audit record of a checkpoint someone
    /// asked for; empty for the system's periodic ones) in the same transaction.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn save_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        journal: Journal,
    ) -> Result<(), AuditError>;

    /// The newest checkpoint of `org`.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError>;

    /// Every checkpoint `org`'s chain is held to, oldest first: the newest the store keeps
    /// (the default), and the newest kept elsewhere when that differs (a witness, see
    /// [`crate::Witnessed`]). The last is the newest, and must be authentic; an older one is
    /// held to when it is authentic under the key the chain is checked with.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn held_checkpoints(&self, org: OrgId) -> Result<Vec<Checkpoint>, AuditError> {
        Ok(self.latest_checkpoint(org).await?.into_iter().collect())
    }

    /// Blanks the personal annotations (actor name, IP, user agent, target name)
    /// of every record of `org` whose actor or target id is `subject_id`, and commits `journal`
    /// (the erasure's own record) in the same transaction.
    /// The hash chain is unaffected. Returns the number of records touched.
    ///
    /// Records of `org` appended later that name `subject_id` are blanked the same way as they
    /// are appended: a request may read a name before the erasure and record it after. A store
    /// that also keeps an organization's members (as the tenancy stores do) stops once the
    /// subject joins `org` again.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure; nothing is changed then.
    async fn erase_personal_data(
        &self,
        org: OrgId,
        subject_id: &str,
        journal: Journal,
    ) -> Result<u64, AuditError>;

    /// The retention anchor of `org`: the records up to it were removed.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn anchor(&self, org: OrgId) -> Result<Option<Anchor>, AuditError>;

    /// Removes `anchor.org`'s records up to `anchor.seq` and stores the anchor, in one
    /// transaction, after checking that record `anchor.seq` is still there with `anchor.hash`.
    /// Returns the number of records removed.
    ///
    /// `journal`, given the anchor and how many records were removed, is what the removal
    /// commits with (its audit record), in the same transaction: a removal is never without
    /// its record.
    ///
    /// When an anchor at or past `anchor.seq` is already stored (another pruner, on this
    /// instance or another, got there first), changes nothing and returns 0: the anchor never
    /// moves back, which would leave removed records unaccounted for. Concurrent calls for one
    /// organization must be serialized by the store so that exactly one of them removes.
    ///
    /// # Errors
    /// [`AuditError::Invalid`] when the record at the anchor is missing or different; the
    /// error of `journal`; either way nothing is removed.
    async fn prune(&self, anchor: &Anchor, journal: PruneJournal<'_>) -> Result<u64, AuditError>;

    /// Stores `checkpoint`, the first signed with a new checkpoint key, and, in the same
    /// transaction, replaces the retention anchor `anchor.0` with `anchor.1` (the same anchor
    /// signed with the new key), so that the organization's log verifies under exactly one key
    /// whatever happens to the rotation: under the old one before this commits, under the new
    /// one after. With `None` the organization has no anchor, which is checked too (on
    /// PostgreSQL without a lock, since there is no row to hold: a retention pass committing
    /// at that moment is not seen, which is why rotations run with the servers stopped).
    ///
    /// # Errors
    /// [`AuditError::Invalid`] when the stored anchor is no longer `anchor.0`, or there is one
    /// where `None` said there was none (a retention pass moved it meanwhile); nothing is
    /// written then. [`AuditError::Store`] on storage failure.
    async fn save_rotated_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        anchor: Option<(&Anchor, &Anchor)>,
    ) -> Result<(), AuditError>;

    /// Every organization that has at least one record (for periodic checkpoints).
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn organizations(&self) -> Result<Vec<OrgId>, AuditError>;
}

/// What a retention pass commits with its removal, given its anchor and how many records it
/// removed: see [`AuditStore::prune`].
pub type PruneJournal<'a> = &'a (dyn Fn(&Anchor, u64) -> Result<Journal, AuditError> + Send + Sync);

/// Page size used when walking a chain.
pub const WALK_PAGE: u32 = 5_000;

/// Walks `org`'s whole chain and checks it against its newest checkpoint.
///
/// Retention may remove the oldest records while the walk reads (another instance's pass, or
/// this one's): the walk read the anchor before they went and would find them missing. So a
/// walk that finds a break while the anchor moved meanwhile is made again from the new anchor
/// (a few times at most); a break found with the anchor where it was is the answer.
///
/// # Errors
/// The outer error is a storage failure; the inner one is the first broken link.
pub async fn verify_chain(
    store: &dyn AuditStore,
    org: OrgId,
    checkpoint_key: &[u8],
) -> Result<Result<VerifiedChain, ChainBreak>, AuditError> {
    verify_while_pruned(store, org, checkpoint_key, WALK_PAGE).await
}

/// [`verify_chain`] with pages of `page` records.
async fn verify_while_pruned(
    store: &dyn AuditStore,
    org: OrgId,
    checkpoint_key: &[u8],
    page: u32,
) -> Result<Result<VerifiedChain, ChainBreak>, AuditError> {
    const WALKS: usize = 3;
    for _ in 1..WALKS {
        let anchor = store.anchor(org).await?;
        let verdict = verify_in_pages(store, org, checkpoint_key, page).await?;
        if verdict.is_ok() || store.anchor(org).await? == anchor {
            return Ok(verdict);
        }
    }
    verify_in_pages(store, org, checkpoint_key, page).await
}

/// [`verify_chain`] with pages of `page` records.
///
/// It checks exactly the records, in exactly the order, that reading one page after the other
/// (each starting after the last record of the one before) would, and reads two pages at once
/// while it checks the ones before them: the page after the last record checked, and, betting
/// that the chain has no gap, the page after the position `page` records further. The second
/// is used only when the first ends at that very position, that is when it is the read the
/// page-by-page walk would make next; otherwise it is dropped and the walk reads on from where
/// the first page ended.
async fn verify_in_pages(
    store: &dyn AuditStore,
    org: OrgId,
    checkpoint_key: &[u8],
    page: u32,
) -> Result<Result<VerifiedChain, ChainBreak>, AuditError> {
    // The head as recorded before the walk: the chain must reach it (appends made meanwhile
    // may take the walk further).
    let head = store.head(org).await?;
    let held = store.held_checkpoints(org).await?;
    let anchor = store.anchor(org).await?;
    let mut verifier = match holding(&held, anchor.as_ref(), checkpoint_key) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let mut after = anchor.as_ref().map_or(0, |a| a.seq);
    let mut links = store.chain_links(org, after, page).await?;
    while let Some(last) = links.last() {
        after = last.seq();
        let guess = after.saturating_add(i64::from(page));
        // The next two pages are read while these records are checked.
        let reads = overlapped(store.chain_links(org, after, page), || {
            store.chain_links(org, guess, page)
        });
        let ((next, beyond), checked) = overlapped(reads, || {
            std::future::ready(links.iter().try_for_each(|l| verifier.push_link(l)))
        })
        .await;
        if let Err(e) = checked {
            return Ok(Err(e));
        }
        links = next?;
        // A failed bet is a lost one: the page is read again, and fails there if it must.
        if links.last().is_some_and(|l| l.seq() == guess)
            && let Ok(beyond) = beyond
        {
            links.extend(beyond);
        }
    }
    let verdict = verifier.finish().and_then(|v| reaches_head(v, head));
    // Records and no head: the head was removed (records appended during the walk may have
    // written the first head since it was read, so it is read again).
    if let (Ok(v), None) = (&verdict, head)
        && v.records > anchor.as_ref().map_or(0, |a| a.seq)
        && store.head(org).await?.is_none()
    {
        return Ok(Err(ChainBreak::NoHead { last: v.records }));
    }
    Ok(verdict)
}

/// A verifier from the start of the chain (or after `anchor`) held to every checkpoint of
/// `held` (oldest first; the last must be authentic, an older one counts when it is).
fn holding<'a>(
    held: &'a [Checkpoint],
    anchor: Option<&Anchor>,
    key: &[u8],
) -> Result<ChainVerifier<'a>, ChainBreak> {
    let mut verifier = match held.split_last() {
        Some((newest, older)) => older
            .iter()
            .try_fold(ChainVerifier::with_checkpoint(newest, key)?, |v, cp| {
                v.and_checkpoint(cp, key)
            })?,
        None => ChainVerifier::new(),
    };
    if let Some(a) = anchor {
        verifier = verifier.after_anchor(a, key)?;
    }
    Ok(verifier)
}

/// Checks a verified chain against the head recorded before its walk: it must reach it, and
/// when it ends there, end with its hash. Otherwise records after the newest checkpoint were
/// cut off (or the head was rewritten), which the checkpoint alone cannot show.
fn reaches_head(
    v: VerifiedChain,
    head: Option<(i64, [u8; 32])>,
) -> Result<VerifiedChain, ChainBreak> {
    match head {
        Some((seq, _)) if v.records < seq => Err(ChainBreak::ShortOfHead {
            last: v.records,
            head: seq,
        }),
        Some((seq, hash)) if v.records == seq && v.head != hash => {
            Err(ChainBreak::BrokenLink { seq })
        }
        _ => Ok(v),
    }
}

/// Hands every record `query` matches to `write`, newest first, a page ([`AuditQuery::limit`]
/// records) at a time, and returns how many there were. The first page is handed over even when
/// it is empty; no later page is.
///
/// The next page is read while `write` handles this one, so an export streams at the pace of
/// the slower of the two rather than of both added up (when the store reads off the calling
/// thread, as `SeaStore` does). When the page just read holds consecutive positions (an
/// unfiltered view, or a filter every record matches) it also bets that the next does and reads
/// the page after that at once, from the position `limit` records further; that page is used
/// only when the next page ends at exactly that position, that is when it is the read a
/// page-by-page walk would make next, so `write` gets exactly the pages, in exactly the order,
/// that reading one page after the other would give it.
///
/// # Errors
/// The first error of the store (converted) or of `write`; nothing more is read then.
pub async fn for_each_page<E, F, Fut>(
    store: &dyn AuditStore,
    org: OrgId,
    query: AuditQuery,
    write: F,
) -> Result<u64, E>
where
    E: From<AuditError>,
    F: FnMut(Vec<AuditEvent>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    for_each_page_by_any(store, org, query, &[], write).await
}

/// Most actors [`search_by_any`] takes (a person and their API keys).
pub const MAX_ACTORS: usize = 256;

/// Whether [`search_by_any`] takes `actors` with `query`: not with an actor in the query too,
/// and not more than [`MAX_ACTORS`]. An export checks this before it answers, since a streamed
/// body cannot turn into an error later.
///
/// # Errors
/// [`AuditError::Invalid`], saying which.
pub fn check_actors(query: &AuditQuery, actors: &[String]) -> Result<(), AuditError> {
    if actors.is_empty() {
        return Ok(());
    }
    if query.actor_id.is_some() {
        return Err(AuditError::Invalid(
            "give either one actor or a set of actors, not both".to_owned(),
        ));
    }
    if actors.len() > MAX_ACTORS {
        return Err(AuditError::Invalid(format!(
            "at most {MAX_ACTORS} actors at once (a person and their API keys); search by one actor instead"
        )));
    }
    Ok(())
}

/// One page of `query` ([`AuditStore::search`]) as done by any of `actors` (each an actor id:
/// a person and their API keys, say), newest first: one search per actor, merged. With no
/// actors, the store's search as it is.
///
/// # Errors
/// [`AuditError::Invalid`] when `query` names an actor too, or for more than [`MAX_ACTORS`];
/// the store's errors.
pub async fn search_by_any(
    store: &dyn AuditStore,
    org: OrgId,
    query: &AuditQuery,
    actors: &[String],
) -> Result<Vec<AuditEvent>, AuditError> {
    if actors.is_empty() {
        return store.search(org, query).await;
    }
    check_actors(query, actors)?;
    let mut found = Vec::new();
    for actor in actors {
        let q = AuditQuery {
            actor_id: Some(actor.clone()),
            ..query.clone()
        };
        // Each actor's newest `limit`: the newest `limit` of all are among them. Only those
        // are kept after each actor, so what is held stays at two pages, however many actors
        // (an export of a person with many API keys reads page after page of this).
        found.extend(store.search(org, &q).await?);
        found.sort_unstable_by_key(|r| std::cmp::Reverse(r.seq));
        found.dedup_by_key(|r| r.seq);
        found.truncate(query.limit as usize);
    }
    Ok(found)
}

/// [`for_each_page`] of the records done by any of `actors` ([`search_by_any`]).
///
/// # Errors
/// As [`for_each_page`] and [`search_by_any`].
pub async fn for_each_page_by_any<E, F, Fut>(
    store: &dyn AuditStore,
    org: OrgId,
    mut query: AuditQuery,
    actors: &[String],
    mut write: F,
) -> Result<u64, E>
where
    E: From<AuditError>,
    F: FnMut(Vec<AuditEvent>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let limit = query.limit as usize;
    let mut written = 0u64;
    // Pages read and not yet handed over, in the walk's order: one, or two after a bet won.
    let mut pages = vec![search_by_any(store, org, &query, actors).await?];
    loop {
        let last_page = pages.last().map_or(&[][..], Vec::as_slice);
        let last = match last_page.last() {
            Some(r) if limit > 0 && last_page.len() == limit => r.seq,
            // A page that is not full ends the walk: hand over what was read.
            _ => {
                for page in pages {
                    let n = page.len() as u64;
                    // The first page is handed over even when empty (an export still has its
                    // header).
                    if n > 0 || written == 0 {
                        write(page).await?;
                    }
                    written += n;
                }
                return Ok(written);
            }
        };
        let consecutive = last_page
            .first()
            .is_some_and(|first| first.seq - last == last_page.len() as i64 - 1);
        let guess = last.saturating_sub(query.limit.into());
        query.before_seq = Some(last);
        let bet = consecutive.then(|| AuditQuery {
            before_seq: Some(guess),
            ..query.clone()
        });
        let reads = overlapped(search_by_any(store, org, &query, actors), || async {
            match &bet {
                Some(q) => Some(search_by_any(store, org, q, actors).await),
                None => None,
            }
        });
        let ((next, beyond), wrote) = overlapped(reads, || async {
            for page in pages {
                let n = page.len() as u64;
                write(page).await?;
                written += n;
            }
            Ok::<_, E>(())
        })
        .await;
        wrote?;
        let next = next?;
        let won = next.len() == limit && next.last().is_some_and(|r| r.seq == guess);
        pages = vec![next];
        // A failed bet is a lost one: the page is read again, and fails there if it must, after
        // `next` is handed over, as a page-by-page walk would.
        if let (true, Some(Ok(beyond))) = (won, beyond) {
            pages.push(beyond);
        }
    }
}

/// Runs `next` and the future `work` makes together and returns both outputs. `next` is polled
/// once before `work` is even made, so a store that reads on another thread starts reading
/// then, while this thread works; after that both are polled until each is done, so the read
/// finishes (and gives back its connection) even while `work` waits, for example on a slow
/// client.
async fn overlapped<T, W, Fut: Future<Output = W>>(
    next: impl Future<Output = T>,
    work: impl FnOnce() -> Fut,
) -> (T, W) {
    let mut next = std::pin::pin!(next);
    let mut read = match std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await {
        Poll::Ready(t) => Some(t),
        Poll::Pending => None,
    };
    let mut work = std::pin::pin!(work());
    let mut done = None;
    std::future::poll_fn(|cx| {
        if read.is_none()
            && let Poll::Ready(t) = next.as_mut().poll(cx)
        {
            read = Some(t);
        }
        if done.is_none()
            && let Poll::Ready(w) = work.as_mut().poll(cx)
        {
            done = Some(w);
        }
        match (read.take(), done.take()) {
            (Some(t), Some(w)) => Poll::Ready((t, w)),
            (t, w) => {
                read = t;
                done = w;
                Poll::Pending
            }
        }
    })
    .await
}

/// What a verification found, as the metadata of its `audit.verified` record (so the log
/// shows who checked it, when, and with what result): `{"valid": true, "records": n,
/// "checkpoint_seq": s}`, or `{"valid": false, "first_break": {"kind": …, …}}`.
#[must_use]
pub fn verification_metadata(outcome: &Result<VerifiedChain, ChainBreak>) -> Metadata {
    let value = match outcome {
        Ok(v) => serde_json::json!({
            "valid": true,
            "records": v.records,
            "checkpoint_seq": v.checkpoint_seq,
        }),
        Err(b) => serde_json::json!({ "valid": false, "first_break": b }),
    };
    // A few small fields: always within the metadata bounds.
    Metadata::from_value(value).unwrap_or_default()
}

/// Signs and stores a checkpoint of `org`'s current head, as the system (nothing recorded);
/// `None` for an empty log.
///
/// # Errors
/// [`AuditError::Store`] on storage failure.
pub async fn take_checkpoint(
    store: &dyn AuditStore,
    org: OrgId,
    key: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Checkpoint>, AuditError> {
    take_checkpoint_recorded(store, org, key, now, |_| Ok(Journal::default())).await
}

/// [`take_checkpoint`] that someone asked for: `record` builds the audit record of the
/// checkpoint it is given, which commits with the checkpoint (it follows the head the
/// checkpoint signs, so the next checkpoint covers it).
///
/// # Errors
/// [`AuditError::Store`] on storage failure; what `record` returns.
pub async fn take_checkpoint_recorded(
    store: &dyn AuditStore,
    org: OrgId,
    key: &[u8],
    now: DateTime<Utc>,
    record: impl FnOnce(&Checkpoint) -> Result<Journal, AuditError> + Send,
) -> Result<Option<Checkpoint>, AuditError> {
    let Some((seq, head)) = store.head(org).await? else {
        return Ok(None);
    };
    // Signed only after the records since the last checkpoint are checked up to this head: a
    // chain edited and sealed again from some record on, with its head moved to match, is
    // refused here rather than made to look genuine by a new signature. A retention pass that
    // moved the anchor during the check is not a break: checked once more.
    let anchor = store.anchor(org).await?;
    if let Err(e) = verify_since_checkpoint(store, org, key, seq, head).await {
        if !matches!(e, AuditError::Tampered(_)) || store.anchor(org).await? == anchor {
            return Err(e);
        }
        verify_since_checkpoint(store, org, key, seq, head).await?;
    }
    let cp = Checkpoint::sign(key, org, seq, head, now);
    let journal = record(&cp)?;
    store.save_checkpoint(&cp, journal).await?;
    Ok(Some(cp))
}

/// [`take_checkpoint`] when the checkpoint key changes: the records since the newest
/// checkpoint are checked with `old_key` (which signed that checkpoint and any anchor), the
/// new checkpoint is signed with `new_key`, and the retention anchor, checked with `old_key`,
/// is signed again with `new_key` in the checkpoint's transaction
/// ([`AuditStore::save_rotated_checkpoint`]): a log whose oldest records were removed
/// verifies under the new key too.
///
/// # Errors
/// As [`take_checkpoint`]; [`AuditError::Tampered`] with [`ChainBreak::ForgedAnchor`] when the
/// anchor is not `old_key`'s.
pub async fn take_checkpoint_rotating(
    store: &dyn AuditStore,
    org: OrgId,
    old_key: &[u8],
    new_key: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Checkpoint>, AuditError> {
    let Some((seq, head)) = store.head(org).await? else {
        return Ok(None);
    };
    let anchor = store.anchor(org).await?;
    if let Some(a) = &anchor
        && !a.is_authentic(old_key)
    {
        return Err(AuditError::Tampered(ChainBreak::ForgedAnchor {
            seq: a.seq,
        }));
    }
    verify_since_checkpoint(store, org, old_key, seq, head).await?;
    let cp = Checkpoint::sign(new_key, org, seq, head, now);
    let resealed = anchor
        .as_ref()
        .map(|a| Anchor::sign(new_key, a.org, a.seq, a.hash, a.pruned_at));
    store
        .save_rotated_checkpoint(&cp, anchor.as_ref().zip(resealed.as_ref()))
        .await?;
    Ok(Some(cp))
}

/// Checks `org`'s records from the oldest checkpoint it is held to (the store's newest, or a
/// witness's older one; or the retention anchor when that is further on; or the start) up to
/// `seq`, which must end with `head`, against every held checkpoint up to `seq`, before a
/// checkpoint of that head is signed.
///
/// # Errors
/// [`AuditError::Tampered`] with the first broken link; [`AuditError::Store`].
async fn verify_since_checkpoint(
    store: &dyn AuditStore,
    org: OrgId,
    key: &[u8],
    seq: i64,
    head: [u8; 32],
) -> Result<(), AuditError> {
    let mut held = authentic_checkpoints(store, org, key).await?;
    // A checkpoint past `seq` was signed since its head was read, and then the head has moved
    // on to it; or the log was cut short of it.
    if let Some(beyond) = held.last().map(|cp| cp.seq).filter(|&s| s > seq) {
        let now = store.head(org).await?.map_or(0, |(s, _)| s);
        if now < beyond {
            return Err(AuditError::Tampered(ChainBreak::Truncated {
                last: now,
                checkpoint: beyond,
            }));
        }
    }
    // The records up to `seq` are checked against the checkpoints up to it.
    held.retain(|cp| cp.seq <= seq);
    let anchor = store.anchor(org).await?;
    // The walk starts after the oldest checkpoint it is held to, or after the anchor when that
    // is further on.
    let (verifier, after) = match (held.split_first(), &anchor) {
        (Some((first, rest)), a) if a.as_ref().is_none_or(|a| a.seq <= first.seq) => {
            held_record_is_there(store, org, first, a.as_ref(), key).await?;
            let v = rest
                .iter()
                .try_fold(
                    ChainVerifier::after_checkpoint(first, key).map_err(AuditError::Tampered)?,
                    |v, c| v.and_checkpoint(c, key),
                )
                .map_err(AuditError::Tampered)?;
            (v, first.seq)
        }
        (_, Some(a)) => (
            holding(&held, Some(a), key).map_err(AuditError::Tampered)?,
            a.seq,
        ),
        (_, None) => (ChainVerifier::new(), 0),
    };
    walk_through(store, org, verifier, after, seq, head).await
}

/// Checks that the record a held checkpoint ends with is still in the log, unchanged (or, when
/// retention removed it, that the signed anchor names it): the walk from that checkpoint does
/// not read it, and without this a log cut back to the checkpoint, with its head row set to
/// the checkpoint's, would pass and be signed over as it grows.
///
/// # Errors
/// [`AuditError::Tampered`] with [`ChainBreak::Missing`], [`ChainBreak::Modified`] or
/// [`ChainBreak::CheckpointMismatch`]; [`ChainBreak::ForgedAnchor`] for an anchor at the
/// checkpoint that is not `key`'s; [`AuditError::Store`].
async fn held_record_is_there(
    store: &dyn AuditStore,
    org: OrgId,
    checkpoint: &Checkpoint,
    anchor: Option<&Anchor>,
    key: &[u8],
) -> Result<(), AuditError> {
    if let Some(a) = anchor.filter(|a| a.seq == checkpoint.seq) {
        if !a.is_authentic(key) {
            return Err(AuditError::Tampered(ChainBreak::ForgedAnchor {
                seq: a.seq,
            }));
        }
        if a.hash != checkpoint.head {
            return Err(AuditError::Tampered(ChainBreak::CheckpointMismatch {
                seq: checkpoint.seq,
            }));
        }
        return Ok(());
    }
    let links = store.chain_links(org, checkpoint.seq - 1, 1).await?;
    let Some(link) = links.first().filter(|l| l.seq() == checkpoint.seq) else {
        return Err(AuditError::Tampered(match links.first() {
            Some(l) => ChainBreak::Missing {
                seq: l.seq(),
                expected: checkpoint.seq,
            },
            // Nothing from the checkpoint's record on: the log ends before it.
            None => ChainBreak::Truncated {
                last: checkpoint.seq - 1,
                checkpoint: checkpoint.seq,
            },
        }));
    };
    if !link.is_intact() {
        return Err(AuditError::Tampered(ChainBreak::Modified {
            seq: checkpoint.seq,
        }));
    }
    if link.hash() != checkpoint.head {
        return Err(AuditError::Tampered(ChainBreak::CheckpointMismatch {
            seq: checkpoint.seq,
        }));
    }
    Ok(())
}

/// `org`'s held checkpoints ([`AuditStore::held_checkpoints`]) that are authentic under `key`,
/// oldest first: an older one that is not (signed before a key rotation) is left out.
///
/// # Errors
/// [`AuditError::Tampered`] with [`ChainBreak::ForgedCheckpoint`] when the newest is not.
async fn authentic_checkpoints(
    store: &dyn AuditStore,
    org: OrgId,
    key: &[u8],
) -> Result<Vec<Checkpoint>, AuditError> {
    let mut held = store.held_checkpoints(org).await?;
    if let Some(newest) = held.last()
        && !newest.is_authentic(key)
    {
        return Err(AuditError::Tampered(ChainBreak::ForgedCheckpoint {
            seq: newest.seq,
        }));
    }
    held.retain(|cp| cp.is_authentic(key));
    Ok(held)
}

/// Pushes `org`'s records after `after` up to `through` into `verifier`, which must end there
/// with `hash`.
///
/// # Errors
/// [`AuditError::Tampered`] with the first broken link (records missing before `through` are
/// [`ChainBreak::ShortOfHead`]); [`AuditError::Store`].
async fn walk_through(
    store: &dyn AuditStore,
    org: OrgId,
    mut verifier: ChainVerifier<'_>,
    mut after: i64,
    through: i64,
    hash: [u8; 32],
) -> Result<(), AuditError> {
    while after < through {
        let links = store.chain_links(org, after, WALK_PAGE).await?;
        let Some(last) = links.last() else { break };
        after = last.seq();
        for l in links.iter().take_while(|l| l.seq() <= through) {
            verifier.push_link(l).map_err(AuditError::Tampered)?;
        }
    }
    let v = verifier.finish().map_err(AuditError::Tampered)?;
    if v.records < through {
        return Err(AuditError::Tampered(ChainBreak::ShortOfHead {
            last: v.records,
            head: through,
        }));
    }
    if v.head != hash {
        return Err(AuditError::Tampered(ChainBreak::BrokenLink {
            seq: through,
        }));
    }
    Ok(())
}

/// Applies a retention period: removes `org`'s records that occurred before `cutoff` (the
/// longest prefix of the chain that holds no record at or after `cutoff`) under a signed
/// [`Anchor`], so the rest still verifies, committing `journal` (its audit record) with the
/// removal. A record's time is its writer's clock when the change began, and positions are
/// given at commit, so times need not rise with positions (one instance's clock behind the
/// others', a long request): the prefix ends before the first record still within the
/// period, never taking one with it, and an old record after that waits for a later pass.
/// Returns the anchor written, or `None` when nothing is old enough or a concurrent pass
/// (another instance's retention worker) already removed it, or is removing it.
///
/// The records to be removed are verified first, from the anchor (or the start) through the
/// last of them, with the checkpoints the chain is held to ([`AuditStore::held_checkpoints`]) that
/// lie among them: a break there would go
/// with the records and the log would verify afterwards, so retention refuses rather than
/// erase the evidence of tampering.
///
/// # Errors
/// [`AuditError::Tampered`] with the first broken link among the records to be removed
/// (nothing is removed then); [`AuditError::Store`] on storage failure.
pub async fn prune_before(
    store: &dyn AuditStore,
    org: OrgId,
    cutoff: DateTime<Utc>,
    key: &[u8],
    now: DateTime<Utc>,
    journal: PruneJournal<'_>,
) -> Result<Option<(Anchor, u64)>, AuditError> {
    // The newest old record with no record within the period before it: the newest old one,
    // then, while a record within the period comes before it, the newest old one before that.
    let mut below = None;
    let last = loop {
        let Some(old) = newest_of(store, org, Some(cutoff), None, below).await? else {
            return Ok(None);
        };
        match newest_of(store, org, None, Some(cutoff), Some(old.seq)).await? {
            Some(young) => below = Some(young.seq),
            None => break old,
        }
    };
    let last = &last;
    // Another pass may remove records under the walk (another instance's, with another
    // cutoff): the walk then finds them missing, and is made again from the new anchor. Each
    // new walk needs the anchor to have moved forward, which it does only so many times.
    loop {
        let before = store.anchor(org).await?;
        if before.as_ref().is_some_and(|a| a.seq >= last.seq) {
            return Ok(None);
        }
        match verify_to_remove(store, org, key, before.as_ref(), last.seq, last.hash).await {
            Ok(()) => break,
            Err(AuditError::Tampered(_)) if store.anchor(org).await? != before => {}
            Err(e) => return Err(e),
        }
    }
    let anchor = Anchor::sign(key, org, last.seq, last.hash, now);
    match store.prune(&anchor, journal).await? {
        // A concurrent pass anchored at or past this record first.
        0 => Ok(None),
        removed => Ok(Some((anchor, removed))),
    }
}

/// `org`'s newest record before `until`, at or after `since`, below position `below`.
async fn newest_of(
    store: &dyn AuditStore,
    org: OrgId,
    until: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
    below: Option<i64>,
) -> Result<Option<AuditEvent>, AuditError> {
    let q = AuditQuery {
        until,
        since,
        before_seq: below,
        limit: 1,
        ..AuditQuery::default()
    };
    Ok(store.search(org, &q).await?.into_iter().next())
}

/// Checks `org`'s records after `anchor` (or from the start) through `through`, which must end
/// with `hash`, with the checkpoints held to when they lie among them (the newest must be
/// authentic): what a retention pass is
/// about to remove.
async fn verify_to_remove(
    store: &dyn AuditStore,
    org: OrgId,
    key: &[u8],
    anchor: Option<&Anchor>,
    through: i64,
    hash: [u8; 32],
) -> Result<(), AuditError> {
    let mut held = authentic_checkpoints(store, org, key).await?;
    held.retain(|cp| cp.seq <= through);
    let mut verifier = held
        .iter()
        .try_fold(ChainVerifier::new(), |v, cp| v.and_checkpoint(cp, key))
        .map_err(AuditError::Tampered)?;
    if let Some(a) = anchor {
        verifier = verifier
            .after_anchor(a, key)
            .map_err(AuditError::Tampered)?;
    }
    let after = anchor.map_or(0, |a| a.seq);
    walk_through(store, org, verifier, after, through, hash).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, AuditAction, MemoryAuditStore, NewAuditEvent, Target};

    async fn store_with(org: OrgId, n: usize) -> MemoryAuditStore {
        let store = MemoryAuditStore::default();
        let mut j = Journal::default();
        for i in 0..n {
            j = j.and_record(NewAuditEvent::new(
                org,
                chrono::Utc::now(),
                Actor::system(),
                AuditAction::SettingsUpdated,
                Target::new("n", i, ""),
            ));
        }
        if n > 0 {
            store.append(j).await.unwrap();
        }
        store
    }

    async fn pages(store: &MemoryAuditStore, org: OrgId, limit: u32) -> (u64, Vec<Vec<i64>>) {
        let mut seen = Vec::new();
        let query = AuditQuery {
            limit,
            ..AuditQuery::default()
        };
        let n = for_each_page(store, org, query, |p| {
            seen.push(p.iter().map(|r| r.seq).collect::<Vec<_>>());
            std::future::ready(Ok::<_, AuditError>(()))
        })
        .await
        .unwrap();
        (n, seen)
    }

    #[tokio::test]
    async fn a_person_and_their_keys_are_searched_together_page_by_page() {
        let org = OrgId::new();
        let store = MemoryAuditStore::default();
        let actors = ["usr_a", "key_1", "usr_b", "key_2"];
        let mut j = Journal::default();
        for i in 0..37 {
            j = j.and_record(NewAuditEvent::new(
                org,
                chrono::Utc::now(),
                Actor::user(actors[i % 4], ""),
                AuditAction::SettingsUpdated,
                Target::new("n", i, ""),
            ));
        }
        store.append(j).await.unwrap();
        let theirs = ["usr_a".to_owned(), "key_1".to_owned()];
        let query = AuditQuery {
            limit: 4,
            ..AuditQuery::default()
        };
        let mut pages = Vec::new();
        let n = for_each_page_by_any(&store, org, query.clone(), &theirs, |p| {
            pages.push(p.iter().map(|r| r.seq).collect::<Vec<_>>());
            std::future::ready(Ok::<_, AuditError>(()))
        })
        .await
        .unwrap();
        // Records 1, 2, 5, 6, … (positions start at 1; actors cycle from the first).
        let expected: Vec<i64> = (1..=37).rev().filter(|s| (s - 1) % 4 < 2).collect();
        assert_eq!(n, expected.len() as u64);
        assert_eq!(pages.concat(), expected);
        assert!(pages.iter().all(|p| p.len() <= 4));
        // One actor and a set at once is a mistake, not an intersection.
        let both = AuditQuery {
            actor_id: Some("usr_a".into()),
            ..query
        };
        assert!(matches!(
            search_by_any(&store, org, &both, &theirs).await,
            Err(AuditError::Invalid(_))
        ));
        assert!(check_actors(&both, &theirs).is_err());
        assert!(check_actors(&both, &[]).is_ok(), "one actor alone");
        let many: Vec<String> = (0..=MAX_ACTORS).map(|i| format!("key_{i}")).collect();
        assert!(check_actors(&AuditQuery::default(), &many[1..]).is_ok());
        assert!(matches!(
            search_by_any(&store, org, &AuditQuery::default(), &many).await,
            Err(AuditError::Invalid(m)) if m.contains("at most 256")
        ));
    }

    #[tokio::test]
    async fn a_log_cut_back_to_its_checkpoint_is_not_signed_over() {
        const KEY: &[u8] = b"checkpoint key";
        let org = OrgId::new();
        let store = store_with(org, 10).await;
        let cp = take_checkpoint(&store, org, KEY, chrono::Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cp.seq, 10);
        // Records 7 to 10 deleted and a record standing in for the tenth, with the tenth's
        // hash, so that the head agrees with the checkpoint: the walk from the checkpoint
        // reads nothing, but the record the checkpoint ends with is not the one it signed.
        store
            .with_chain(org, |chain| {
                let mut tenth = chain[9].clone();
                chain.truncate(6);
                tenth.event.target.id = "forged".into();
                chain.push(tenth);
            })
            .unwrap();
        assert_eq!(store.head(org).await.unwrap(), Some((10, cp.head)));
        assert!(matches!(
            take_checkpoint(&store, org, KEY, chrono::Utc::now()).await,
            Err(AuditError::Tampered(ChainBreak::Modified { seq: 10 }))
        ));
        // The checkpoint's record gone altogether, the log going on after it.
        store
            .with_chain(org, |chain| {
                let mut eleventh = chain[6].clone();
                eleventh.seq = 11;
                chain[6] = eleventh;
            })
            .unwrap();
        assert!(matches!(
            take_checkpoint(&store, org, KEY, chrono::Utc::now()).await,
            Err(AuditError::Tampered(ChainBreak::Missing {
                seq: 11,
                expected: 10
            }))
        ));
    }

    #[tokio::test]
    async fn every_record_is_handed_over_once_newest_first() {
        let org = OrgId::new();
        let store = store_with(org, 23).await;
        let (n, seen) = pages(&store, org, 10).await;
        assert_eq!(n, 23);
        assert_eq!(seen.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
        let all: Vec<i64> = seen.concat();
        assert_eq!(all, (1..=23).rev().collect::<Vec<_>>());
        // A log that fills its last page exactly ends without an empty page; an empty log is
        // one empty page.
        let store = store_with(org, 20).await;
        assert_eq!(pages(&store, org, 10).await.1.len(), 2);
        let empty = store_with(org, 0).await;
        assert_eq!(pages(&empty, org, 10).await, (0, vec![Vec::new()]));
    }

    /// The export walk one page after the other, each starting before the last record of the
    /// one before: what [`for_each_page`] must agree with.
    async fn search_page_by_page(
        store: &MemoryAuditStore,
        org: OrgId,
        mut query: AuditQuery,
    ) -> Vec<Vec<i64>> {
        let mut seen = Vec::new();
        loop {
            let page = store.search(org, &query).await.unwrap();
            let full = page.len() == query.limit as usize;
            query.before_seq = page.last().map(|r| r.seq);
            if !page.is_empty() || seen.is_empty() {
                seen.push(page.iter().map(|r| r.seq).collect());
            }
            if !full {
                return seen;
            }
        }
    }

    #[tokio::test]
    async fn reading_ahead_hands_over_what_a_page_by_page_walk_reads() {
        let org = OrgId::new();
        let n = 14;
        // Logins in runs of different lengths among settings updates, so that a filtered view
        // has pages of consecutive positions (a bet) and pages with gaps (none).
        let login = |i: usize| [0, 1, 2, 3, 5, 6, 9, 10, 11, 12].contains(&i);
        let fresh = || async {
            let store = MemoryAuditStore::default();
            let mut j = Journal::default();
            for i in 0..n {
                let action = if login(i) {
                    AuditAction::Login
                } else {
                    AuditAction::SettingsUpdated
                };
                j = j.and_record(NewAuditEvent::new(
                    org,
                    chrono::Utc::now(),
                    Actor::system(),
                    action,
                    Target::new("n", i, ""),
                ));
            }
            store.append(j).await.unwrap();
            store
        };
        for removed in std::iter::once(None).chain((0..n).map(Some)) {
            for action in [None, Some(crate::ActionFilter::Exact("auth.login".into()))] {
                for limit in 1..=5 {
                    let store = fresh().await;
                    if let Some(i) = removed {
                        store.with_chain(org, |c| drop(c.remove(i))).unwrap();
                    }
                    let query = AuditQuery {
                        action: action.clone(),
                        limit,
                        ..AuditQuery::default()
                    };
                    let expected = search_page_by_page(&store, org, query.clone()).await;
                    let mut seen = Vec::new();
                    let count = for_each_page(&store, org, query, |p| {
                        seen.push(p.iter().map(|r| r.seq).collect::<Vec<_>>());
                        std::future::ready(Ok::<_, AuditError>(()))
                    })
                    .await
                    .unwrap();
                    let case = format!("removed {removed:?}, {action:?}, pages of {limit}");
                    assert_eq!(seen, expected, "{case}");
                    assert_eq!(count as usize, expected.concat().len(), "{case}");
                    if removed.is_none() && action.is_none() {
                        assert_eq!(count as usize, n, "{case}");
                    }
                }
            }
        }

        // Unfiltered, pages of 2: after the first page each read of the next page comes with a
        // bet on the one after, and every bet wins, so the walk makes one read more than the 8 a
        // page-by-page walk makes (7 full pages and the empty one after them), where losing
        // every bet would make 15, and reads two pages at once.
        use std::sync::atomic::Ordering::SeqCst;
        let store = Growing::new(fresh().await, org, i64::MAX);
        let query = AuditQuery {
            limit: 2,
            ..AuditQuery::default()
        };
        let mut seen = Vec::new();
        for_each_page(&store, org, query, |p| {
            seen.extend(p.iter().map(|r| r.seq));
            std::future::ready(Ok::<_, AuditError>(()))
        })
        .await
        .unwrap();
        assert_eq!(seen, (1..=14).rev().collect::<Vec<i64>>());
        assert_eq!(store.searches.load(SeqCst), 9);
        assert_eq!(store.most_at_once.load(SeqCst), 2);
    }

    /// The walk one page after the other, each starting after the last record of the one
    /// before: what [`verify_in_pages`] must agree with.
    async fn page_by_page(
        store: &MemoryAuditStore,
        org: OrgId,
        page: u32,
    ) -> Result<VerifiedChain, ChainBreak> {
        let mut v = ChainVerifier::new();
        let mut after = 0;
        loop {
            let records = store.chain_page(org, after, page).await.unwrap();
            let Some(last) = records.last() else { break };
            after = last.seq;
            for r in &records {
                v.push(r)?;
            }
        }
        v.finish()
    }

    #[tokio::test]
    async fn reading_ahead_checks_what_a_page_by_page_walk_checks() {
        let org = OrgId::new();
        let n = 12;
        type Tamper = Box<dyn Fn(&mut Vec<AuditEvent>)>;
        let mut tampers: Vec<(String, Tamper)> = vec![("intact".into(), Box::new(|_| {}))];
        for i in 0..n {
            tampers.push((format!("delete {i}"), Box::new(move |c| drop(c.remove(i)))));
            tampers.push((
                format!("swap {i}"),
                Box::new(move |c| c.swap(i, (i + 1) % n)),
            ));
            tampers.push((
                format!("duplicate {i}"),
                Box::new(move |c| c.insert(i, c[i].clone())),
            ));
            tampers.push((
                format!("edit {i}"),
                Box::new(move |c| c[i].event.target.id = "changed".into()),
            ));
            tampers.push((format!("cut at {i}"), Box::new(move |c| c.truncate(i))));
        }
        for (name, tamper) in &tampers {
            for page in 1..=5 {
                let store = store_with(org, n).await;
                store.with_chain(org, |c| tamper(c)).unwrap();
                let expected = page_by_page(&store, org, page).await;
                // The cases are real: every edit and every deletion but the last breaks the chain.
                if name.starts_with("edit")
                    || (name.starts_with("delete") && *name != format!("delete {}", n - 1))
                {
                    assert!(expected.is_err(), "{name}, pages of {page}");
                }
                assert_eq!(
                    verify_in_pages(&store, org, b"k", page).await.unwrap(),
                    expected,
                    "{name}, pages of {page}"
                );
            }
        }
        let intact = verify_in_pages(&store_with(org, n).await, org, b"k", 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(intact.records, 12);
    }

    /// A log that grows while it is walked: records are appended just before the first read
    /// that starts at or after `grow_at`.
    /// It also counts its searches, and how many ran at once at most (each search yields before
    /// it reads, so that searches started together overlap).
    struct Growing {
        log: MemoryAuditStore,
        org: OrgId,
        grow_at: i64,
        grown: std::sync::atomic::AtomicBool,
        /// Retention removes the records through this position just before the first read.
        prune_through: Option<i64>,
        pruned: std::sync::atomic::AtomicBool,
        searches: std::sync::atomic::AtomicUsize,
        searching: std::sync::atomic::AtomicUsize,
        most_at_once: std::sync::atomic::AtomicUsize,
    }

    impl Growing {
        fn new(log: MemoryAuditStore, org: OrgId, grow_at: i64) -> Self {
            Self {
                log,
                org,
                grow_at,
                grown: false.into(),
                prune_through: None,
                pruned: false.into(),
                searches: 0.into(),
                searching: 0.into(),
                most_at_once: 0.into(),
            }
        }
    }

    #[async_trait]
    impl AuditStore for Growing {
        async fn append(&self, journal: Journal) -> Result<Vec<AuditEvent>, AuditError> {
            self.log.append(journal).await
        }
        async fn search(&self, org: OrgId, q: &AuditQuery) -> Result<Vec<AuditEvent>, AuditError> {
            use std::sync::atomic::Ordering::SeqCst;
            self.searches.fetch_add(1, SeqCst);
            let now = self.searching.fetch_add(1, SeqCst) + 1;
            self.most_at_once.fetch_max(now, SeqCst);
            // Twice: `overlapped` polls a read again before it first polls the work beside it.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            self.searching.fetch_sub(1, SeqCst);
            self.log.search(org, q).await
        }
        async fn chain_page(
            &self,
            org: OrgId,
            after: i64,
            limit: u32,
        ) -> Result<Vec<AuditEvent>, AuditError> {
            if let Some(seq) = self.prune_through
                && !self.pruned.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let last = self.log.chain_page(org, seq - 1, 1).await?;
                let anchor = Anchor::sign(b"k", org, seq, last[0].hash, chrono::Utc::now());
                self.log
                    .prune(&anchor, &|_, _| Ok(Journal::default()))
                    .await?;
            }
            if after >= self.grow_at && !self.grown.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let more = store_with(self.org, 8).await.with_chain(self.org, |c| {
                    c.iter().map(|r| r.event.clone()).collect::<Vec<_>>()
                })?;
                self.log
                    .append(
                        more.into_iter()
                            .fold(Journal::default(), Journal::and_record),
                    )
                    .await?;
            }
            self.log.chain_page(org, after, limit).await
        }
        async fn head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, AuditError> {
            self.log.head(org).await
        }
        async fn save_checkpoint(&self, cp: &Checkpoint, j: Journal) -> Result<(), AuditError> {
            self.log.save_checkpoint(cp, j).await
        }
        async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
            self.log.latest_checkpoint(org).await
        }
        async fn save_rotated_checkpoint(
            &self,
            cp: &Checkpoint,
            anchor: Option<(&Anchor, &Anchor)>,
        ) -> Result<(), AuditError> {
            self.log.save_rotated_checkpoint(cp, anchor).await
        }
        async fn erase_personal_data(
            &self,
            org: OrgId,
            subject_id: &str,
            journal: Journal,
        ) -> Result<u64, AuditError> {
            self.log.erase_personal_data(org, subject_id, journal).await
        }
        async fn anchor(&self, org: OrgId) -> Result<Option<Anchor>, AuditError> {
            self.log.anchor(org).await
        }
        async fn prune(
            &self,
            anchor: &Anchor,
            journal: PruneJournal<'_>,
        ) -> Result<u64, AuditError> {
            self.log.prune(anchor, journal).await
        }
        async fn organizations(&self) -> Result<Vec<OrgId>, AuditError> {
            self.log.organizations().await
        }
    }

    #[tokio::test]
    async fn records_pruned_during_the_walk_are_not_mistaken_for_a_gap() {
        // Retention removes records 1 to 4 of 12 after the walk read the (absent) anchor and
        // before it read the first page: the walk finds 5 where it expected 1, sees the anchor
        // moved, and walks again from it. A gap with the anchor unmoved is still a break.
        let org = OrgId::new();
        let mut store = Growing::new(store_with(org, 12).await, org, i64::MAX);
        store.prune_through = Some(4);
        let once = verify_in_pages(&store, org, b"k", 5).await.unwrap();
        assert_eq!(
            once,
            Err(ChainBreak::Missing {
                seq: 5,
                expected: 1
            }),
            "one walk alone mistakes the pruning for a gap"
        );
        store
            .pruned
            .store(false, std::sync::atomic::Ordering::SeqCst);
        store.log = store_with(org, 12).await;
        let v = verify_while_pruned(&store, org, b"k", 5).await.unwrap();
        assert!(store.pruned.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(store.log.anchor(org).await.unwrap().map(|a| a.seq), Some(4));
        // Verified through the head, from the anchor on.
        assert_eq!(v.map(|v| v.records), Ok(12));
        let tampered = store_with(org, 12).await;
        tampered.with_chain(org, |c| drop(c.remove(6))).unwrap();
        let v = verify_while_pruned(&tampered, org, b"k", 5).await.unwrap();
        assert!(
            matches!(v, Err(ChainBreak::Missing { seq: 8, .. })),
            "{v:?}"
        );
    }

    #[tokio::test]
    async fn retention_refuses_to_remove_tampered_records() {
        let org = OrgId::new();
        let t0 = chrono::Utc::now();
        let at = |minutes: i64| t0 + chrono::Duration::minutes(minutes);
        let fresh = || async {
            let store = MemoryAuditStore::default();
            let journal = (1..=10).fold(Journal::default(), |j, i| {
                j.and_record(NewAuditEvent::new(
                    org,
                    at(i),
                    Actor::system(),
                    AuditAction::SettingsUpdated,
                    Target::new("n", i, ""),
                ))
            });
            store.append(journal).await.unwrap();
            store
        };
        let nothing: PruneJournal<'_> = &|_, _| Ok(Journal::default());
        // Records 1 to 5 are past the cut.
        let cut = at(6) - chrono::Duration::seconds(30);
        let edit = |c: &mut Vec<AuditEvent>| c[2].event.target.id = "forged".into();
        let delete = |c: &mut Vec<AuditEvent>| drop(c.remove(1));
        let swap = |c: &mut Vec<AuditEvent>| c.swap(1, 2);
        for (what, tamper) in [
            ("an edit", &edit as &dyn Fn(&mut Vec<AuditEvent>)),
            ("a deletion", &delete),
            ("a reordering", &swap),
        ] {
            let store = fresh().await;
            store.with_chain(org, tamper).unwrap();
            let refused = prune_before(&store, org, cut, b"k", at(20), nothing).await;
            assert!(
                matches!(refused, Err(AuditError::Tampered(_))),
                "{what}: {refused:?}"
            );
            assert_eq!(store.anchor(org).await.unwrap(), None, "{what}");
            assert_eq!(
                store.with_chain(org, |c| c.len()).unwrap(),
                if what == "a deletion" { 9 } else { 10 },
                "{what}: nothing removed"
            );
        }
        // A checkpoint among the records to be removed is checked with them.
        let store = fresh().await;
        let fourth = store.chain_page(org, 3, 1).await.unwrap()[0].hash;
        store
            .save_checkpoint(
                &Checkpoint::sign(b"another key", org, 4, fourth, at(5)),
                Journal::default(),
            )
            .await
            .unwrap();
        assert!(matches!(
            prune_before(&store, org, cut, b"k", at(20), nothing).await,
            Err(AuditError::Tampered(ChainBreak::ForgedCheckpoint { .. }))
        ));
        store
            .save_checkpoint(
                &Checkpoint::sign(b"k", org, 4, fourth, at(5)),
                Journal::default(),
            )
            .await
            .unwrap();
        let (anchor, removed) = prune_before(&store, org, cut, b"k", at(20), nothing)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((anchor.seq, removed), (5, 5));
        // The next pass checks from the anchor on; a break after the cut is not retention's to
        // judge, and verification still reports it.
        store
            .with_chain(org, |c| c[4].event.target.id = "forged".into())
            .unwrap();
        // Records 6 and 7 are past this cut (half a minute after record 7: a cut at record 7's
        // own time would depend on how the store rounds times below a microsecond).
        let (anchor, removed) = prune_before(
            &store,
            org,
            at(8) - chrono::Duration::seconds(30),
            b"k",
            at(21),
            nothing,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!((anchor.seq, removed), (7, 2));
        assert!(verify_chain(&store, org, b"k").await.unwrap().is_err());
        // An anchor (and checkpoint) the key did not sign stops the next pass.
        assert!(matches!(
            prune_before(&store, org, at(9), b"another key", at(22), nothing).await,
            Err(AuditError::Tampered(
                ChainBreak::ForgedAnchor { .. } | ChainBreak::ForgedCheckpoint { .. }
            ))
        ));
        assert_eq!(store.anchor(org).await.unwrap(), Some(anchor));
    }

    #[tokio::test]
    async fn records_appended_during_the_walk_are_not_mistaken_for_a_gap() {
        // 7 records in pages of 5: after the first page the walk reads after 5 (records 6 and
        // 7) and, betting on a full page, after 10; the log grows to 15 just before that second
        // read. The bet lost (the first read ended at 7), so its records 11 to 15 must not
        // follow 7: the walk reads on after 7 and checks all 15.
        let org = OrgId::new();
        let store = Growing::new(store_with(org, 7).await, org, 10);
        let v = verify_in_pages(&store, org, b"k", 5).await.unwrap();
        assert!(store.grown.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(v.map(|v| v.records), Ok(15));
    }

    #[tokio::test]
    async fn the_next_read_finishes_while_the_work_waits() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let read_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&read_done);
        let next = async move {
            tokio::task::yield_now().await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            7
        };
        let seen = std::sync::Arc::clone(&read_done);
        let joined = overlapped(next, || async move {
            // The work waits for something only the test's other task gives, and that task
            // gives it once the read has finished: with the read polled only after the work,
            // this would never end.
            let _ = rx.await;
            seen.load(std::sync::atomic::Ordering::SeqCst)
        });
        let waker = tokio::spawn({
            let read_done = std::sync::Arc::clone(&read_done);
            async move {
                while !read_done.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::task::yield_now().await;
                }
                let _ = tx.send(());
            }
        });
        let (read, work) = tokio::time::timeout(std::time::Duration::from_secs(5), joined)
            .await
            .expect("the read is polled while the work waits");
        waker.await.unwrap();
        assert_eq!(read, 7);
        assert!(work, "the read had finished before the work's wait ended");
    }

    #[tokio::test]
    async fn a_failed_write_stops_the_walk() {
        let org = OrgId::new();
        let store = store_with(org, 35).await;
        let mut calls = 0;
        let query = AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        };
        let r = for_each_page(&store, org, query, |_| {
            calls += 1;
            std::future::ready(if calls == 2 {
                Err(AuditError::Invalid("disk full".into()))
            } else {
                Ok(())
            })
        })
        .await;
        assert!(matches!(r, Err(AuditError::Invalid(_))));
        assert_eq!(calls, 2);
    }
}
