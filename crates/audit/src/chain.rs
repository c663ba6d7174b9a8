//! The per-organization hash chain, its canonical encoding, signed checkpoints and verification.
//!
//! Each record's hash is `SHA-256(prev_hash || canonical(record))`. The canonical
//! encoding covers the pseudonymous, non-personal fields only (ids, action,
//! target kind and id, outcome, metadata, time, position); display names, the
//! target's name, IP and user agent are left out so they can be erased for GDPR
//! without breaking the chain. A checkpoint is an HMAC-SHA256 over the chain head
//! with a key that lives outside the database, so truncating the tail or
//! rewriting the whole chain is detected too.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rbac_core::OrgId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{AuditEvent, NewAuditEvent, SCHEMA_VERSION};

/// The hash before the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// [`GENESIS`] in hex, as stores keep it.
pub const GENESIS_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &[u8] = b"axie-audit-v1";

fn put(buf: &mut Vec<u8>, field: &[u8]) {
    // Length-prefixed fields make the encoding injective: no two records share bytes.
    buf.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
    buf.extend_from_slice(field);
}

/// An id's `Display` text, written on the stack when it fits (every id's does), else on the heap.
enum IdText {
    Stack([u8; 64], usize),
    Heap(String),
}

impl IdText {
    fn of(value: &dyn std::fmt::Display) -> Self {
        use std::io::Write as _;
        let mut out = [0; 64];
        let mut cursor = std::io::Cursor::new(&mut out[..]);
        match write!(cursor, "{value}").map(|()| usize::try_from(cursor.position())) {
            Ok(Ok(len)) => Self::Stack(out, len),
            _ => Self::Heap(value.to_string()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Stack(out, len) => out.get(..*len).unwrap_or_default(),
            Self::Heap(s) => s.as_bytes(),
        }
    }
}

/// The fields of one record that its chain hash covers, as the bytes a store keeps of them.
///
/// One encoding serves both ways of hashing a record: [`seal`] and [`ChainLink::of`] build it
/// from a record's values, and a store may build it straight from a row's columns
/// ([`ChainLink::stored`]), without making a record first. Every field is the text or number
/// stored for it: ids as their `Display` text, the actor's kind, the action, the outcome's
/// status and reason as their wire names, the time in microseconds since the epoch, the
/// metadata as its stored JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashedFields<'a> {
    /// The record's schema version.
    pub schema_version: u16,
    /// The organization's id.
    pub org: &'a [u8],
    /// The record's position in the chain.
    pub seq: i64,
    /// The team's id, `None` for an organization-wide record.
    pub team: Option<&'a [u8]>,
    /// When it happened, in microseconds since the Unix epoch.
    pub occurred_at_micros: i64,
    /// The actor's kind (`user`, `api_key`, `system`).
    pub actor_kind: &'a [u8],
    /// The actor's id.
    pub actor_id: &'a [u8],
    /// The action's dotted name.
    pub action: &'a [u8],
    /// The target's kind.
    pub target_kind: &'a [u8],
    /// The target's id.
    pub target_id: &'a [u8],
    /// The outcome's status (`success`, `denied`, `failure`).
    pub status: &'a [u8],
    /// The outcome's reason, empty on success.
    pub reason: &'a [u8],
    /// The metadata's JSON text.
    pub metadata: &'a [u8],
}

impl HashedFields<'_> {
    /// Appends the canonical encoding of these fields to `buf`.
    fn write(&self, buf: &mut Vec<u8>) {
        put(buf, DOMAIN);
        put(buf, &self.schema_version.to_be_bytes());
        put(buf, self.org);
        put(buf, &self.seq.to_be_bytes());
        put(buf, self.team.unwrap_or_default());
        put(buf, &self.occurred_at_micros.to_be_bytes());
        put(buf, self.actor_kind);
        put(buf, self.actor_id);
        put(buf, self.action);
        put(buf, self.target_kind);
        put(buf, self.target_id);
        put(buf, self.status);
        put(buf, self.reason);
        put(buf, self.metadata);
    }
}

/// The bytes that the chain hashes for `event` at position `seq`.
#[must_use]
pub fn canonical_bytes(event: &NewAuditEvent, seq: i64, schema_version: u16) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    write_canonical(&mut buf, event, seq, schema_version);
    buf
}

/// Appends [`canonical_bytes`] to `buf`.
fn write_canonical(buf: &mut Vec<u8>, event: &NewAuditEvent, seq: i64, schema_version: u16) {
    let org = IdText::of(&event.org);
    let team = event.team.as_ref().map(|t| IdText::of(t));
    HashedFields {
        schema_version,
        org: org.as_bytes(),
        seq,
        team: team.as_ref().map(IdText::as_bytes),
        occurred_at_micros: event.occurred_at.timestamp_micros(),
        actor_kind: event.actor.kind.as_str().as_bytes(),
        actor_id: event.actor.id.as_bytes(),
        action: event.action.as_str().as_bytes(),
        target_kind: event.target.kind.as_bytes(),
        target_id: event.target.id.as_bytes(),
        status: event.outcome.status().as_bytes(),
        reason: event.outcome.reason().as_bytes(),
        metadata: event.metadata.as_json().as_bytes(),
    }
    .write(buf);
}

/// The chain hash of a record given its predecessor's hash.
#[must_use]
pub fn chain_hash(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

/// Seals `event` as record `seq` after `prev`: computes its hash.
#[must_use]
pub fn seal(event: NewAuditEvent, seq: i64, prev: [u8; 32]) -> AuditEvent {
    let hash = chain_hash(&prev, &canonical_bytes(&event, seq, SCHEMA_VERSION));
    AuditEvent {
        seq,
        event,
        schema_version: SCHEMA_VERSION,
        prev_hash: prev,
        hash,
    }
}

/// What verification needs of one stored record: its position, its two stored hashes, and its
/// hash recomputed from the fields it has as stored.
///
/// A store can make these on the thread that reads its rows ([`ChainLink::stored`]), so that a
/// verification walk neither builds records nor hashes them on its own task
/// ([`AuditStore::chain_links`](crate::AuditStore::chain_links)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    seq: i64,
    prev_hash: [u8; 32],
    hash: [u8; 32],
    computed: [u8; 32],
}

impl ChainLink {
    /// The link of a record with these `fields` and stored hashes; `buf` is scratch space for
    /// the canonical encoding, reused from record to record.
    #[must_use]
    pub fn stored(
        fields: &HashedFields<'_>,
        prev_hash: [u8; 32],
        hash: [u8; 32],
        buf: &mut Vec<u8>,
    ) -> Self {
        buf.clear();
        fields.write(buf);
        Self::hashed(fields.seq, prev_hash, hash, buf)
    }

    /// The link of the record at `seq` whose canonical encoding is `canonical`.
    fn hashed(seq: i64, prev_hash: [u8; 32], hash: [u8; 32], canonical: &[u8]) -> Self {
        Self {
            seq,
            prev_hash,
            hash,
            computed: chain_hash(&prev_hash, canonical),
        }
    }

    /// The link of `record`; `buf` as for [`ChainLink::stored`].
    #[must_use]
    pub fn of(record: &AuditEvent, buf: &mut Vec<u8>) -> Self {
        buf.clear();
        write_canonical(buf, &record.event, record.seq, record.schema_version);
        Self::hashed(record.seq, record.prev_hash, record.hash, buf)
    }

    /// The links of `records`, in their order.
    #[must_use]
    pub fn of_all(records: &[AuditEvent]) -> Vec<Self> {
        let mut buf = Vec::with_capacity(256);
        records.iter().map(|r| Self::of(r, &mut buf)).collect()
    }

    /// The record's position in the chain.
    #[must_use]
    pub const fn seq(&self) -> i64 {
        self.seq
    }

    /// The record's stored hash.
    #[must_use]
    pub const fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Whether the stored hash is the one the record's content and stored previous hash give:
    /// a record whose hash is `h` and that is intact is the record that `h` was computed for
    /// (finding another would take a preimage of SHA-256).
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.computed == self.hash
    }
}

/// A signed statement "the chain of `org` had `seq` records ending in `head`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The organization.
    pub org: OrgId,
    /// Number of records covered.
    pub seq: i64,
    /// Hash of record `seq`.
    #[serde(with = "hex_bytes")]
    pub head: [u8; 32],
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// HMAC-SHA256 over the fields above.
    #[serde(with = "hex_bytes")]
    pub mac: [u8; 32],
}

type HmacSha256 = Hmac<Sha256>;

fn checkpoint_mac(
    key: &[u8],
    org: OrgId,
    seq: i64,
    head: &[u8; 32],
    signed_at: DateTime<Utc>,
) -> HmacSha256 {
    tagged_mac(b"axie-audit-checkpoint-v1", key, org, seq, head, signed_at)
}

fn tagged_mac(
    tag: &[u8],
    key: &[u8],
    org: OrgId,
    seq: i64,
    head: &[u8; 32],
    signed_at: DateTime<Utc>,
) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    mac.update(tag);
    mac.update(org.to_string().as_bytes());
    mac.update(&seq.to_be_bytes());
    mac.update(head);
    mac.update(&signed_at.timestamp_micros().to_be_bytes());
    mac
}

#[allow(
    clippy::panic,
    reason = "HMAC-SHA256 takes keys of every length; this branch cannot run"
)]
fn unreachable_hmac() -> HmacSha256 {
    panic!("HMAC rejected a key")
}

impl Checkpoint {
    /// Signs the chain head with `key`.
    #[must_use]
    pub fn sign(
        key: &[u8],
        org: OrgId,
        seq: i64,
        head: [u8; 32],
        signed_at: DateTime<Utc>,
    ) -> Self {
        let signed_at = crate::model::truncate_to_micros(signed_at);
        let mac = checkpoint_mac(key, org, seq, &head, signed_at)
            .finalize()
            .into_bytes()
            .into();
        Self {
            org,
            seq,
            head,
            signed_at,
            mac,
        }
    }

    /// Checks the signature in constant time.
    #[must_use]
    pub fn is_authentic(&self, key: &[u8]) -> bool {
        checkpoint_mac(key, self.org, self.seq, &self.head, self.signed_at)
            .verify_slice(&self.mac)
            .is_ok()
    }
}

/// A signed statement "records 1 to `seq` of `org`'s chain were removed under the retention
/// policy; record `seq` had hash `hash`". Verification then starts after it, so a pruned prefix
/// verifies while any other gap, edit or reordering still breaks the chain. Signed with the
/// checkpoint key (outside the database) under its own tag, so a checkpoint cannot pass as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The organization.
    pub org: OrgId,
    /// The last removed record.
    pub seq: i64,
    /// Its hash (the `prev_hash` of the first record kept).
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
    /// When the records were removed.
    pub pruned_at: DateTime<Utc>,
    /// HMAC-SHA256 over the fields above.
    #[serde(with = "hex_bytes")]
    pub mac: [u8; 32],
}

impl Anchor {
    /// Signs an anchor with `key`.
    #[must_use]
    pub fn sign(
        key: &[u8],
        org: OrgId,
        seq: i64,
        hash: [u8; 32],
        pruned_at: DateTime<Utc>,
    ) -> Self {
        let pruned_at = crate::model::truncate_to_micros(pruned_at);
        let mac = tagged_mac(b"axie-audit-anchor-v1", key, org, seq, &hash, pruned_at)
            .finalize()
            .into_bytes()
            .into();
        Self {
            org,
            seq,
            hash,
            pruned_at,
            mac,
        }
    }

    /// Whether `other` marks the same removal (organization, position, hash and time), whatever
    /// key signed either: a resealed anchor must.
    #[must_use]
    pub fn names_same_records(&self, other: &Anchor) -> bool {
        (self.org, self.seq, self.hash, self.pruned_at)
            == (other.org, other.seq, other.hash, other.pruned_at)
    }

    /// Checks the signature in constant time.
    #[must_use]
    pub fn is_authentic(&self, key: &[u8]) -> bool {
        tagged_mac(
            b"axie-audit-anchor-v1",
            key,
            self.org,
            self.seq,
            &self.hash,
            self.pruned_at,
        )
        .verify_slice(&self.mac)
        .is_ok()
    }
}

/// What is wrong with a chain, at the first broken link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainBreak {
    /// A record's content no longer matches its hash.
    #[error("record {seq} was modified")]
    Modified {
        /// The record.
        seq: i64,
    },
    /// Records are missing before `seq`.
    #[error("records before {seq} are missing (expected {expected})")]
    Missing {
        /// The first record found after the gap.
        seq: i64,
        /// The position that was expected.
        expected: i64,
    },
    /// Records are out of order or duplicated at `seq`.
    #[error("record {seq} is out of order (expected {expected})")]
    OutOfOrder {
        /// The record found.
        seq: i64,
        /// The position that was expected.
        expected: i64,
    },
    /// A record does not link to its predecessor.
    #[error("record {seq} does not link to the record before it")]
    BrokenLink {
        /// The record.
        seq: i64,
    },
    /// The chain is shorter than a signed checkpoint says.
    #[error("the log ends at {last}, but a checkpoint covers {checkpoint} records")]
    Truncated {
        /// The last record present.
        last: i64,
        /// The number of records the checkpoint covers.
        checkpoint: i64,
    },
    /// The chain ends before the head the store records (records after the newest checkpoint
    /// were cut off, or the head was moved on without them).
    #[error("the log ends at {last}, but its head is at {head}")]
    ShortOfHead {
        /// The last record present.
        last: i64,
        /// The position of the recorded head.
        head: i64,
    },
    /// The chain has records but the store records no head for it (the head was removed,
    /// which would let records after the newest checkpoint be cut off unseen).
    #[error("the log has records through {last}, but no head is recorded for it")]
    NoHead {
        /// The last record present.
        last: i64,
    },
    /// The chain differs from a signed checkpoint at the checkpoint's position.
    #[error("record {seq} differs from the signed checkpoint")]
    CheckpointMismatch {
        /// The checkpoint's position.
        seq: i64,
    },
    /// A checkpoint's signature is wrong (forged or signed with another key).
    #[error("the checkpoint at {seq} has an invalid signature")]
    ForgedCheckpoint {
        /// The checkpoint's position.
        seq: i64,
    },
    /// The retention anchor's signature is wrong (records were removed without the key).
    #[error("the retention anchor at {seq} has an invalid signature")]
    ForgedAnchor {
        /// The anchor's position.
        seq: i64,
    },
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedChain {
    /// Records checked.
    pub records: i64,
    /// Hash of the last record.
    #[serde(with = "hex_bytes")]
    pub head: [u8; 32],
    /// Position of the checkpoint that was checked, if any.
    pub checkpoint_seq: Option<i64>,
}

/// Streams a chain through, record by record, in `seq` order.
#[derive(Debug)]
pub struct ChainVerifier<'a> {
    /// The canonical encoding of the record being checked (reused from record to record).
    buf: Vec<u8>,
    expected: i64,
    prev: [u8; 32],
    /// The checkpoint the chain is held to, and whether the walk has passed it.
    checkpoint: Option<(&'a Checkpoint, bool)>,
    /// Older checkpoints it is also held to ([`ChainVerifier::and_checkpoint`]).
    older: Vec<(&'a Checkpoint, bool)>,
}

impl<'a> ChainVerifier<'a> {
    /// Starts at the genesis. `checkpoint` must already be authenticated by the caller or
    /// passed to [`ChainVerifier::with_checkpoint`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(256),
            expected: 1,
            prev: GENESIS,
            checkpoint: None,
            older: Vec::new(),
        }
    }

    /// Also checks the chain against a signed checkpoint.
    ///
    /// # Errors
    /// [`ChainBreak::ForgedCheckpoint`] when the checkpoint's signature does not verify under `key`.
    pub fn with_checkpoint(checkpoint: &'a Checkpoint, key: &[u8]) -> Result<Self, ChainBreak> {
        if !checkpoint.is_authentic(key) {
            return Err(ChainBreak::ForgedCheckpoint {
                seq: checkpoint.seq,
            });
        }
        Ok(Self {
            checkpoint: Some((checkpoint, false)),
            ..Self::new()
        })
    }

    /// Also holds the chain to an older checkpoint, one kept elsewhere (a witness, see
    /// [`crate::Witnessed`]), when it is authentic under `key`; one that is not (signed before
    /// a key rotation) is left out. The newest checkpoint, given to
    /// [`with_checkpoint`](Self::with_checkpoint) or [`after_checkpoint`](Self::after_checkpoint),
    /// is the one that must be authentic. Call it before [`after_anchor`](Self::after_anchor).
    /// A checkpoint the walk starts after ([`after_checkpoint`](Self::after_checkpoint)) is
    /// taken as covered, except that one at the very start must name the same head.
    ///
    /// # Errors
    /// [`ChainBreak::CheckpointMismatch`] when it is at the walk's start with another head.
    pub fn and_checkpoint(
        mut self,
        checkpoint: &'a Checkpoint,
        key: &[u8],
    ) -> Result<Self, ChainBreak> {
        if !checkpoint.is_authentic(key) {
            return Ok(self);
        }
        let start = self.expected - 1;
        if checkpoint.seq == start && start > 0 && checkpoint.head != self.prev {
            return Err(ChainBreak::CheckpointMismatch {
                seq: checkpoint.seq,
            });
        }
        self.older.push((checkpoint, checkpoint.seq <= start));
        Ok(self)
    }

    /// Starts after a signed checkpoint instead of the genesis, from its position and head:
    /// the records it covers are taken as it says (checking what came after it, as before a
    /// new checkpoint is signed).
    ///
    /// # Errors
    /// [`ChainBreak::ForgedCheckpoint`] when the checkpoint's signature does not verify under `key`.
    pub fn after_checkpoint(checkpoint: &Checkpoint, key: &[u8]) -> Result<Self, ChainBreak> {
        if !checkpoint.is_authentic(key) {
            return Err(ChainBreak::ForgedCheckpoint {
                seq: checkpoint.seq,
            });
        }
        Ok(Self {
            expected: checkpoint.seq + 1,
            prev: checkpoint.head,
            ..Self::new()
        })
    }

    /// Starts after a retention anchor instead of the genesis: records up to `anchor.seq` were
    /// removed under the retention policy. A checkpoint at or before the anchor is covered by it
    /// (at the anchor's position its head must be the anchor's hash).
    ///
    /// # Errors
    /// [`ChainBreak::ForgedAnchor`] when the anchor's signature does not verify under `key`;
    /// [`ChainBreak::CheckpointMismatch`] when a checkpoint at the anchor disagrees with it.
    pub fn after_anchor(mut self, anchor: &Anchor, key: &[u8]) -> Result<Self, ChainBreak> {
        if !anchor.is_authentic(key) {
            return Err(ChainBreak::ForgedAnchor { seq: anchor.seq });
        }
        for (cp, seen) in self.checkpoint.iter_mut().chain(self.older.iter_mut()) {
            if cp.seq <= anchor.seq {
                if cp.seq == anchor.seq && cp.head != anchor.hash {
                    return Err(ChainBreak::CheckpointMismatch { seq: cp.seq });
                }
                *seen = true;
            }
        }
        self.expected = anchor.seq + 1;
        self.prev = anchor.hash;
        Ok(self)
    }

    /// Checks the next record.
    ///
    /// # Errors
    /// The first [`ChainBreak`] found.
    pub fn push(&mut self, record: &AuditEvent) -> Result<(), ChainBreak> {
        let link = ChainLink::of(record, &mut self.buf);
        self.push_link(&link)
    }

    /// Checks the next record, given as its [`ChainLink`].
    ///
    /// # Errors
    /// The first [`ChainBreak`] found.
    pub fn push_link(&mut self, link: &ChainLink) -> Result<(), ChainBreak> {
        if link.seq > self.expected {
            return Err(ChainBreak::Missing {
                seq: link.seq,
                expected: self.expected,
            });
        }
        if link.seq < self.expected {
            return Err(ChainBreak::OutOfOrder {
                seq: link.seq,
                expected: self.expected,
            });
        }
        if link.computed != link.hash {
            return Err(ChainBreak::Modified { seq: link.seq });
        }
        if link.prev_hash != self.prev {
            return Err(ChainBreak::BrokenLink { seq: link.seq });
        }
        for (cp, seen) in self.checkpoint.iter_mut().chain(self.older.iter_mut()) {
            if cp.seq == link.seq {
                if cp.head != link.hash {
                    return Err(ChainBreak::CheckpointMismatch { seq: cp.seq });
                }
                *seen = true;
            }
        }
        self.prev = link.hash;
        self.expected += 1;
        Ok(())
    }

    /// Ends the walk.
    ///
    /// # Errors
    /// [`ChainBreak::Truncated`] when a checkpoint covers more records than were seen (the
    /// one covering the most, when several do).
    pub fn finish(self) -> Result<VerifiedChain, ChainBreak> {
        let records = self.expected - 1;
        let unseen = self
            .checkpoint
            .iter()
            .chain(self.older.iter())
            .filter(|(cp, seen)| !seen && cp.seq > 0)
            .map(|(cp, _)| cp.seq)
            .max();
        if let Some(checkpoint) = unseen {
            return Err(ChainBreak::Truncated {
                last: records,
                checkpoint,
            });
        }
        Ok(VerifiedChain {
            records,
            head: self.prev,
            checkpoint_seq: self.checkpoint.map(|(c, _)| c.seq),
        })
    }
}

impl Default for ChainVerifier<'_> {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::AuditAction;
    use crate::model::{Actor, Target};

    fn chain(n: i64) -> (OrgId, Vec<AuditEvent>) {
        let org = OrgId::new();
        let mut prev = GENESIS;
        let mut out = Vec::new();
        for seq in 1..=n {
            let at = DateTime::from_timestamp(1_700_000_000 + seq, 0).unwrap();
            let e = NewAuditEvent::new(
                org,
                at,
                Actor::user("usr_1", "Sarah"),
                AuditAction::ChatInterfaceCreated,
                Target::new("chat_interface", format!("res_{seq}"), "Customer Support"),
            );
            let rec = seal(e, seq, prev);
            prev = rec.hash;
            out.push(rec);
        }
        (org, out)
    }

    fn verify(
        records: &[AuditEvent],
        cp: Option<(&Checkpoint, &[u8])>,
    ) -> Result<VerifiedChain, ChainBreak> {
        let mut v = match cp {
            Some((cp, key)) => ChainVerifier::with_checkpoint(cp, key)?,
            None => ChainVerifier::new(),
        };
        for r in records {
            v.push(r)?;
        }
        v.finish()
    }

    #[test]
    fn intact_chain_verifies() {
        let (_, records) = chain(5);
        let ok = verify(&records, None).unwrap();
        assert_eq!(ok.records, 5);
        assert_eq!(ok.head, records[4].hash);
    }

    #[test]
    fn edits_are_detected() {
        let (_, mut records) = chain(5);
        records[2].event.action = AuditAction::ChatInterfaceDeleted;
        assert_eq!(verify(&records, None), Err(ChainBreak::Modified { seq: 3 }));
    }

    #[test]
    fn edits_with_recomputed_hash_break_the_next_link() {
        let (_, mut records) = chain(5);
        records[2].event.target.id = "res_forged".into();
        records[2] = seal(records[2].event.clone(), 3, records[2].prev_hash);
        assert_eq!(
            verify(&records, None),
            Err(ChainBreak::BrokenLink { seq: 4 })
        );
    }

    #[test]
    fn deletions_and_reorders_are_detected() {
        let (_, records) = chain(5);
        let mut deleted = records.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&deleted, None),
            Err(ChainBreak::Missing {
                seq: 3,
                expected: 2
            })
        );
        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert_eq!(
            verify(&swapped, None),
            Err(ChainBreak::Missing {
                seq: 3,
                expected: 2
            })
        );
        // Swapping the seq numbers as well breaks the hashes.
        let mut renumbered = records;
        renumbered.swap(1, 2);
        renumbered[1].seq = 2;
        renumbered[2].seq = 3;
        assert_eq!(
            verify(&renumbered, None),
            Err(ChainBreak::Modified { seq: 2 })
        );
    }

    #[test]
    fn truncation_is_detected_by_a_checkpoint() {
        let key = b"checkpoint-key";
        let (org, records) = chain(5);
        let cp = Checkpoint::sign(key, org, 5, records[4].hash, Utc::now());
        assert!(verify(&records, Some((&cp, key))).is_ok());
        assert_eq!(
            verify(&records[..3], Some((&cp, key))),
            Err(ChainBreak::Truncated {
                last: 3,
                checkpoint: 5
            })
        );
    }

    #[test]
    fn forged_or_mismatched_checkpoints_are_detected() {
        let key = b"checkpoint-key";
        let (org, records) = chain(3);
        let forged = Checkpoint::sign(b"other key", org, 3, records[2].hash, Utc::now());
        assert_eq!(
            verify(&records, Some((&forged, key))),
            Err(ChainBreak::ForgedCheckpoint { seq: 3 })
        );
        let wrong_head = Checkpoint::sign(key, org, 2, records[2].hash, Utc::now());
        assert_eq!(
            verify(&records, Some((&wrong_head, key))),
            Err(ChainBreak::CheckpointMismatch { seq: 2 })
        );
    }

    #[test]
    fn stored_metadata_is_hashed_as_stored() {
        let (_, mut records) = chain(2);
        assert!(verify(&records, None).is_ok());
        // The text a store read back, unchanged, verifies; the same object reformatted does not.
        records[1].event.metadata =
            crate::model::Metadata::from_json(records[1].event.metadata.as_json().to_owned())
                .unwrap();
        assert!(verify(&records, None).is_ok());
        records[1].event.metadata = crate::model::Metadata::from_json("{ }".to_owned()).unwrap();
        assert_eq!(verify(&records, None), Err(ChainBreak::Modified { seq: 2 }));
    }

    #[test]
    fn personal_fields_are_outside_the_hash() {
        let (_, mut records) = chain(2);
        records[0].event.actor.name = String::new();
        records[0].event.context.ip = String::new();
        records[0].event.target.name = "[erased]".into();
        assert!(verify(&records, None).is_ok());
    }

    /// The encoding of stored chains must never change by accident: a fixed record's hash,
    /// as the first release computed it.
    #[test]
    fn the_canonical_encoding_is_stable() {
        let org: OrgId = "org_0190f2a8c4e97d2b9a3e5f1c7d6b4a21".parse().unwrap();
        let team: rbac_core::TeamId = "team_0190f2a8c4e97d2b9a3e5f1c7d6b4a22".parse().unwrap();
        let mut e = NewAuditEvent::new(
            org,
            DateTime::from_timestamp(1_764_000_000, 123_456_000).unwrap(),
            Actor::user("usr_0190f2a8c4e97d2b9a3e5f1c7d6b4a23", "Sarah"),
            AuditAction::RoleChanged,
            Target::new("member", "usr_0190f2a8c4e97d2b9a3e5f1c7d6b4a24", "Sam"),
        )
        .with_metadata(
            crate::model::Metadata::from_value(
                serde_json::json!({ "to": "admin", "from": "user" }),
            )
            .unwrap(),
        )
        .with_outcome(crate::model::Outcome::Denied {
            reason: "role_lacks_permission".into(),
        });
        e.team = Some(team);
        let sealed = seal(e, 7, [7; 32]);
        assert_eq!(
            hex::encode(sealed.hash),
            "2881877b0295ee0e8da62e0af5a6d32a0d3f11e0ae0718209e76c119695724a3"
        );
        let mut untouched = sealed.event.clone();
        untouched.team = None;
        assert_ne!(seal(untouched, 7, [7; 32]).hash, sealed.hash);
    }

    /// A store hashing a row's columns as stored gets the record's own link, and any byte it
    /// reads differently (even one the record's values would not show) breaks it.
    #[test]
    fn links_from_stored_fields_are_the_records_links() {
        let (_, records) = chain(2);
        let mut buf = Vec::new();
        let link = ChainLink::of(&records[1], &mut buf);
        let e = &records[1].event;
        let (org, actor_id, target_id) =
            (e.org.to_string(), e.actor.id.clone(), e.target.id.clone());
        let stored = HashedFields {
            schema_version: SCHEMA_VERSION,
            org: org.as_bytes(),
            seq: 2,
            team: None,
            occurred_at_micros: e.occurred_at.timestamp_micros(),
            actor_kind: b"user",
            actor_id: actor_id.as_bytes(),
            action: b"chat_interface.created",
            target_kind: b"chat_interface",
            target_id: target_id.as_bytes(),
            status: b"success",
            reason: b"",
            metadata: b"{}",
        };
        let read = |f: &HashedFields<'_>| {
            ChainLink::stored(f, records[1].prev_hash, records[1].hash, &mut Vec::new())
        };
        assert_eq!(read(&stored), link);
        let mut v = ChainVerifier::new();
        v.push(&records[0]).unwrap();
        v.push_link(&read(&stored)).unwrap();
        assert_eq!(v.finish().unwrap().records, 2);

        // A reason stored beside a success: the record's value would drop it, the link does not.
        let edited = read(&HashedFields {
            reason: b"forged",
            ..stored
        });
        let mut v = ChainVerifier::new();
        v.push(&records[0]).unwrap();
        assert_eq!(v.push_link(&edited), Err(ChainBreak::Modified { seq: 2 }));
        for other in [
            HashedFields {
                team: Some(b"team_0190f2a8c4e97d2b9a3e5f1c7d6b4a22"),
                ..stored
            },
            HashedFields {
                occurred_at_micros: stored.occurred_at_micros + 1,
                ..stored
            },
            HashedFields {
                org: b"ORG_X",
                ..stored
            },
        ] {
            assert_ne!(read(&other), link, "{other:?}");
        }
    }
}
