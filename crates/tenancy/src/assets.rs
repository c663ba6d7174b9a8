//! Workspace resources ("assets"): chat interfaces, knowledge bases and their documents,
//! custom domains; their transfer between teams; usage analytics.
//!
//! Every asset belongs to exactly one team and records its creator, which drives the
//! "Limited" cells of the permission table. Documents live in a knowledge base, and a
//! knowledge base may belong to a chat interface; a transfer moves an asset with
//! everything under it, atomically. Document bytes go to a [`BlobStore`]; domain
//! ownership is checked through a [`DomainVerifier`].

use async_trait::async_trait;
use audit::{AuditAction, DomainEvent, EventKind, Journal, Metadata, Target};
use billing_limits::Limit;
use chrono::{DateTime, NaiveDate, Utc};
use rbac_core::{Grant, Permission, Resource, ResourceId, TeamId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::caller::Caller;
use crate::error::{StoreError, TenancyError};
use crate::model::{Team, valid_name};
use crate::store::{TenancyStore, WorkspaceStore};
use crate::teams;

/// The kinds of workspace resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// A chat interface (agent).
    ChatInterface,
    /// A knowledge base.
    KnowledgeBase,
    /// A document in a knowledge base.
    Document,
    /// A custom domain.
    Domain,
}

impl AssetKind {
    /// Every kind.
    pub const ALL: [AssetKind; 4] = [
        AssetKind::ChatInterface,
        AssetKind::KnowledgeBase,
        AssetKind::Document,
        AssetKind::Domain,
    ];

    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            AssetKind::ChatInterface => "chat_interface",
            AssetKind::KnowledgeBase => "knowledge_base",
            AssetKind::Document => "document",
            AssetKind::Domain => "domain",
        }
    }

    /// Parses [`AssetKind::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Words for error messages ("chat interface not found").
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            AssetKind::ChatInterface => "chat interface",
            AssetKind::KnowledgeBase => "knowledge base",
            AssetKind::Document => "document",
            AssetKind::Domain => "domain",
        }
    }

    /// The plan limit counting this kind.
    #[must_use]
    pub const fn limit(self) -> Limit {
        match self {
            AssetKind::ChatInterface => Limit::ChatInterfaces,
            AssetKind::KnowledgeBase => Limit::KnowledgeBases,
            AssetKind::Document => Limit::Documents,
            AssetKind::Domain => Limit::CustomDomains,
        }
    }

    const fn view(self) -> Permission {
        match self {
            AssetKind::ChatInterface => Permission::ViewChatInterface,
            AssetKind::KnowledgeBase | AssetKind::Document => Permission::ViewKnowledgeBase,
            AssetKind::Domain => Permission::ViewDomains,
        }
    }

    const fn create(self) -> Permission {
        match self {
            AssetKind::ChatInterface => Permission::CreateChatInterface,
            AssetKind::KnowledgeBase => Permission::CreateKnowledgeBase,
            AssetKind::Document => Permission::UploadDocument,
            AssetKind::Domain => Permission::ManageDomains,
        }
    }

    const fn edit(self) -> Permission {
        match self {
            AssetKind::ChatInterface => Permission::EditChatInterface,
            AssetKind::KnowledgeBase => Permission::ManageKnowledgeBase,
            AssetKind::Document => Permission::DeleteDocument,
            AssetKind::Domain => Permission::ManageDomains,
        }
    }

    /// The kind an asset of this kind may sit under, and whether it must.
    const fn parent(self) -> (Option<AssetKind>, bool) {
        match self {
            AssetKind::KnowledgeBase => (Some(AssetKind::ChatInterface), false),
            AssetKind::Document => (Some(AssetKind::KnowledgeBase), true),
            AssetKind::ChatInterface | AssetKind::Domain => (None, false),
        }
    }
}

/// What each kind carries besides the common fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AssetDetails {
    /// A chat interface.
    ChatInterface {
        /// What it is for.
        description: String,
        /// Its system instructions.
        instructions: String,
    },
    /// A knowledge base.
    KnowledgeBase {
        /// What it holds.
        description: String,
    },
    /// A document; the bytes are in the blob store under the document's id.
    Document {
        /// Media type as uploaded.
        content_type: String,
        /// SHA-256 of the bytes, hex.
        sha256: String,
    },
    /// A custom domain.
    Domain {
        /// The host name, lower case.
        hostname: String,
        /// The value to publish in a TXT record at `_axie-verification.<hostname>`.
        verification_token: String,
        /// When ownership was last proven.
        verified_at: Option<DateTime<Utc>>,
    },
}

impl AssetDetails {
    /// The kind these details belong to.
    #[must_use]
    pub const fn kind(&self) -> AssetKind {
        match self {
            AssetDetails::ChatInterface { .. } => AssetKind::ChatInterface,
            AssetDetails::KnowledgeBase { .. } => AssetKind::KnowledgeBase,
            AssetDetails::Document { .. } => AssetKind::Document,
            AssetDetails::Domain { .. } => AssetKind::Domain,
        }
    }
}

/// One workspace resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Its id.
    pub id: ResourceId,
    /// Its organization.
    pub org: rbac_core::OrgId,
    /// The one team it belongs to.
    pub team: TeamId,
    /// Display name.
    pub name: String,
    /// The asset it sits under (a document's knowledge base, a knowledge base's chat interface).
    pub parent: Option<ResourceId>,
    /// Its creator.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Bytes of storage it accounts for (documents).
    pub size_bytes: u64,
    /// Kind-specific fields.
    pub details: AssetDetails,
    /// When it was archived (chat interfaces and knowledge bases): it stays readable and can
    /// be moved, unarchived or deleted, but is not edited, used or added to, and listings leave
    /// it out unless asked for archived ones.
    pub archived_at: Option<DateTime<Utc>>,
}

impl Asset {
    /// Its kind.
    #[must_use]
    pub const fn kind(&self) -> AssetKind {
        self.details.kind()
    }

    /// The authorization target.
    #[must_use]
    pub const fn resource(&self) -> Resource {
        Resource::owned(self.org, self.team, self.created_by)
    }

    fn target(&self) -> Target {
        Target::new(self.kind().as_str(), self.id, self.name.clone())
    }
}

/// Which assets a listing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetFilter {
    /// The kind.
    pub kind: AssetKind,
    /// Only these teams; `None` for every team.
    pub teams: Option<Vec<TeamId>>,
    /// Only those under this asset.
    pub parent: Option<ResourceId>,
    /// `Some(false)`: only assets in use; `Some(true)`: only archived ones; `None`: both.
    pub archived: Option<bool>,
}

/// One move of an asset between teams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetTransfer {
    /// The asset moved (its children moved with it).
    pub asset: ResourceId,
    /// The organization.
    pub org: rbac_core::OrgId,
    /// From this team.
    pub from_team: TeamId,
    /// To this team.
    pub to_team: TeamId,
    /// Name before.
    pub from_name: String,
    /// Name after.
    pub to_name: String,
    /// Who moved it.
    pub by: UserId,
    /// When.
    pub at: DateTime<Utc>,
    /// What the mover wrote about it (the guide's "document before transfer": test results,
    /// what changed), if anything ([`transfer_note`]).
    pub note: Option<String>,
}

/// The longest note of a transfer, in characters.
pub const MAX_TRANSFER_NOTE_CHARS: usize = 2_000;

/// How much of a transfer's note its audit record keeps, in characters: a record's metadata is
/// bounded (`audit::MAX_METADATA_BYTES`); the whole note is in the transfer's history and event.
pub const AUDITED_NOTE_CHARS: usize = 500;

/// A transfer's note as written: trimmed, empty being none, at most
/// [`MAX_TRANSFER_NOTE_CHARS`] characters, lines and tabs allowed but no other control
/// character.
///
/// # Errors
/// [`TenancyError::Invalid`].
pub fn transfer_note(note: Option<&str>) -> Result<Option<String>, TenancyError> {
    note.filter(|n| !n.trim().is_empty())
        .map(|n| crate::model::valid_lines("note", n, MAX_TRANSFER_NOTE_CHARS))
        .transpose()
}

/// Usage of one metric on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The team the usage was attributed to when it happened.
    pub team: TeamId,
    /// The asset, if the usage is of one.
    pub asset: Option<ResourceId>,
    /// What was counted (`messages`, …).
    pub metric: String,
    /// The UTC day.
    pub day: NaiveDate,
    /// How many.
    pub count: u64,
}

/// Storage used by one team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamStorage {
    /// The team.
    pub team: TeamId,
    /// Number of documents.
    pub documents: u64,
    /// Bytes.
    pub bytes: u64,
}

/// How many assets of one kind one team holds (archived ones included, as the plan's limits
/// count them): see [`crate::store::WorkspaceStore::asset_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamAssets {
    /// The team.
    pub team: TeamId,
    /// The kind.
    pub kind: AssetKind,
    /// How many.
    pub count: u64,
}

/// Where document bytes live (a local directory by default; object storage in production).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing nothing (keys are fresh ids).
    ///
    /// # Errors
    /// [`StoreError`] when the bytes could not be stored durably.
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// The bytes under `key`, `None` if absent.
    ///
    /// # Errors
    /// [`StoreError`] on read failure.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes `key` (absent keys are fine).
    ///
    /// # Errors
    /// [`StoreError`] on failure.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// The keys of the bytes stored before `before`, in any order, for
    /// [`sweep_unreferenced_blobs`]. The default lists none: a store that cannot list its keys
    /// keeps what it holds.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be listed.
    async fn keys_stored_before(&self, before: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let _ = before;
        Ok(Vec::new())
    }

    /// Moves the bytes under `key` out of the store's keys, into an area where they wait to
    /// be removed ([`sweep_unreferenced_blobs`]): kept meanwhile, so that bytes set aside by a
    /// server started on the wrong database can be put back. The default removes them at once
    /// (a store that lists no keys is never asked).
    ///
    /// # Errors
    /// [`StoreError`] on failure; the bytes stay where they were then.
    async fn set_aside(&self, key: &str) -> Result<(), StoreError> {
        self.delete(key).await
    }

    /// The keys of the bytes set aside, each with when it was set aside. The default has none.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be listed.
    async fn keys_set_aside(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        Ok(Vec::new())
    }

    /// Moves bytes set aside back under their key (a document refers to them again). The
    /// default does nothing.
    ///
    /// # Errors
    /// [`StoreError`] on failure.
    async fn put_back(&self, key: &str) -> Result<(), StoreError> {
        let _ = key;
        Ok(())
    }

    /// Removes bytes set aside. The default does nothing.
    ///
    /// # Errors
    /// [`StoreError`] on failure.
    async fn remove_set_aside(&self, key: &str) -> Result<(), StoreError> {
        let _ = key;
        Ok(())
    }
}

/// How old bytes must be before [`sweep_unreferenced_blobs`] sets them aside: an upload or a
/// copy writes its bytes, then commits its rows, in seconds, or minutes for a large copy.
pub const UNREFERENCED_BLOB_GRACE: chrono::Duration = chrono::Duration::days(1);

/// How long bytes set aside by [`sweep_unreferenced_blobs`] are kept before they are removed.
pub const SET_ASIDE_KEPT: chrono::Duration = chrono::Duration::days(30);

/// What one [`sweep_unreferenced_blobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobSweep {
    /// Bytes no document refers to, set aside.
    pub set_aside: u64,
    /// Bytes set aside earlier that a document refers to again, put back.
    pub put_back: u64,
    /// Bytes set aside more than [`SET_ASIDE_KEPT`] ago that no document refers to, removed.
    pub removed: u64,
}

/// Sets aside the document bytes that no document refers to; puts back those set aside that a
/// document refers to again; removes those set aside more than [`SET_ASIDE_KEPT`] before `now`
/// that no document refers to. Unreferenced bytes are those a deletion committed and did not
/// get to remove, or an upload or a copy wrote and never committed, when the server stopped in
/// between (a crash, a kill, a stop). Only bytes stored more than [`UNREFERENCED_BLOB_GRACE`]
/// before `now` are set aside, and only those whose key is a resource id; a key is kept
/// whenever the store cannot say. Bytes are set aside, not removed, and put back as soon as a
/// document refers to them: a server started on the wrong database (a mistyped URL, a restore
/// not finished, an older backup) sees every document unreferenced, and the right database,
/// once back, gets its bytes back at the next sweep. `now` is the wall clock the store's times
/// are in.
///
/// # Errors
/// [`TenancyError::Store`] when the keys cannot be listed or the documents read (nothing more
/// is moved then).
pub async fn sweep_unreferenced_blobs<S: WorkspaceStore + ?Sized>(
    store: &S,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
) -> Result<BlobSweep, TenancyError> {
    let mut done = BlobSweep::default();
    let aside: Vec<(ResourceId, DateTime<Utc>)> = blobs
        .keys_set_aside()
        .await?
        .into_iter()
        .filter_map(|(k, at)| Some((k.parse().ok()?, at)))
        .collect();
    for chunk in aside.chunks(500) {
        let ids: Vec<ResourceId> = chunk.iter().map(|(id, _)| *id).collect();
        let referenced: std::collections::HashSet<ResourceId> =
            store.documents_among(&ids).await?.into_iter().collect();
        for (id, at) in chunk {
            let key = id.to_string();
            let moved = if referenced.contains(id) {
                blobs.put_back(&key).await.map(|()| done.put_back += 1)
            } else if *at < now - SET_ASIDE_KEPT {
                blobs
                    .remove_set_aside(&key)
                    .await
                    .map(|()| done.removed += 1)
            } else {
                Ok(())
            };
            if let Err(e) = moved {
                tracing::warn!(error = %e, blob = %id, "could not put back or remove document bytes set aside");
            }
        }
    }
    let keys = blobs
        .keys_stored_before(now - UNREFERENCED_BLOB_GRACE)
        .await?;
    let ids: Vec<ResourceId> = keys.iter().filter_map(|k| k.parse().ok()).collect();
    for chunk in ids.chunks(500) {
        let kept: std::collections::HashSet<ResourceId> =
            store.documents_among(chunk).await?.into_iter().collect();
        for id in chunk.iter().filter(|id| !kept.contains(id)) {
            match blobs.set_aside(&id.to_string()).await {
                Ok(()) => done.set_aside += 1,
                Err(e) => {
                    tracing::warn!(error = %e, blob = %id, "could not set aside unreferenced document bytes");
                }
            }
        }
    }
    Ok(done)
}

/// Looks up the TXT records that prove a domain's ownership (DNS in production, a table in tests).
#[async_trait]
pub trait DomainVerifier: Send + Sync {
    /// The TXT strings at `name`; empty when there are none.
    ///
    /// # Errors
    /// [`StoreError`] when the lookup itself failed (as opposed to finding nothing).
    async fn txt_records(&self, name: &str) -> Result<Vec<String>, StoreError>;
}

/// The name a domain's verification TXT record goes under.
#[must_use]
pub fn verification_record_name(hostname: &str) -> String {
    format!("{VERIFICATION_LABEL}.{hostname}")
}

/// Upload rules for documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRules {
    /// Largest accepted document, in bytes.
    pub max_bytes: u64,
    /// Accepted media types (without parameters, lower case).
    pub content_types: Vec<String>,
}

impl Default for DocumentRules {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            content_types: [
                "text/plain",
                "text/markdown",
                "text/csv",
                "text/html",
                "application/json",
                "application/pdf",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A new asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAsset {
    /// Team; the parent's team when there is a parent, else the default team when `None`.
    pub team: Option<TeamId>,
    /// Display name.
    pub name: String,
    /// Parent asset.
    pub parent: Option<ResourceId>,
    /// Kind-specific fields; for domains the hostname is read and the token minted here.
    pub details: AssetDetails,
}

/// What an edit may change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (chat interfaces, knowledge bases).
    pub description: Option<String>,
    /// New instructions (chat interfaces).
    pub instructions: Option<String>,
}

const MAX_TEXT: usize = 10_000;

/// Free text (a description, instructions): at most [`MAX_TEXT`] characters, without U+0000,
/// which PostgreSQL's `text` cannot hold (and a store would otherwise keep on SQLite only).
fn valid_text(field: &str, s: &str) -> Result<String, TenancyError> {
    if s.chars().count() > MAX_TEXT {
        return Err(TenancyError::Invalid(format!(
            "`{field}` is longer than {MAX_TEXT} characters"
        )));
    }
    if s.contains('\0') {
        return Err(TenancyError::Invalid(format!(
            "`{field}` must not contain a NUL character (U+0000)"
        )));
    }
    Ok(s.to_owned())
}

/// The label under a custom domain where its verification record is published.
pub const VERIFICATION_LABEL: &str = "_axie-verification";

/// Lower-cases and checks a host name (RFC 1123 labels, at least two of them, no IP literals),
/// short enough that its verification record's name (`_axie-verification.<host>`) is a DNS
/// name too (253 characters at most).
///
/// # Errors
/// [`TenancyError::Invalid`].
pub fn valid_hostname(s: &str) -> Result<String, TenancyError> {
    let h = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = || TenancyError::Invalid(format!("`{s}` is not a valid host name"));
    let longest = 253 - VERIFICATION_LABEL.len() - 1;
    if h.len() > longest {
        return Err(TenancyError::Invalid(format!(
            "a custom domain has at most {longest} characters (its verification record, \
             `{VERIFICATION_LABEL}.<domain>`, must be a DNS name)"
        )));
    }
    if !h.contains('.') || h.parse::<std::net::IpAddr>().is_ok() {
        return Err(bad());
    }
    for label in h.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    if h.rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(h)
}

/// Loads an asset of `kind` the caller may see; anything else (other kinds, other teams,
/// other tenants) answers 404.
///
/// # Errors
/// [`TenancyError::NotFound`].
pub async fn get<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    kind: AssetKind,
    id: ResourceId,
) -> Result<Asset, TenancyError> {
    let a = store
        .get_asset(caller.org.id, id)
        .await?
        .filter(|a| a.kind() == kind)
        .ok_or(TenancyError::NotFound(kind.label()))?;
    caller
        .check(kind.view(), &a.resource())
        .map_err(|e| e.not_found_as(kind.label()))?;
    Ok(a)
}

/// An asset of any kind the caller may see ([`get`]); one they may not see is not found as an
/// "asset", as a missing one is, so its kind is not told either.
async fn get_any<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: ResourceId,
) -> Result<Asset, TenancyError> {
    let kind = store
        .get_asset(caller.org.id, id)
        .await?
        .ok_or(TenancyError::NotFound("asset"))?
        .kind();
    get(store, caller, kind, id)
        .await
        .map_err(|e| e.not_found_as("asset"))
}

/// The teams whose assets the caller may list; `None` means all of them.
async fn visible_teams<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: Option<TeamId>,
) -> Result<Option<Vec<TeamId>>, TenancyError> {
    if let Some(t) = team {
        teams::get(store, caller, t).await?;
        return Ok(Some(vec![t]));
    }
    // Admins, and a member with a role in every team, see every team's.
    if caller.subject.role.is_admin() || caller.subject.in_every_team() {
        return Ok(None);
    }
    Ok(Some(caller.subject.teams.iter().map(|(t, _)| *t).collect()))
}

/// Lists the assets of `kind` the caller may see, optionally in one team or under one parent;
/// those in use, or with `archived` the archived ones.
///
/// # Errors
/// [`TenancyError::NotFound`] for a team or parent the caller may not see.
#[allow(
    clippy::too_many_arguments,
    reason = "the listing's filters, each an API query parameter"
)]
pub async fn list<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    kind: AssetKind,
    team: Option<TeamId>,
    parent: Option<ResourceId>,
    archived: bool,
    after: Option<ResourceId>,
    limit: u32,
) -> Result<Vec<Asset>, TenancyError> {
    if let (Some(p), (Some(pk), _)) = (parent, kind.parent()) {
        get(store, caller, pk, p).await?;
    }
    let filter = AssetFilter {
        kind,
        teams: visible_teams(store, caller, team).await?,
        parent,
        archived: Some(archived),
    };
    let assets = store
        .list_assets(caller.org.id, &filter, after, limit)
        .await?;
    Ok(assets
        .into_iter()
        .filter(|a| caller.decide(kind.view(), &a.resource()).is_allowed())
        .collect())
}

fn event_for(kind: AssetKind, action: &str) -> Option<EventKind> {
    match (kind, action) {
        (AssetKind::ChatInterface, "created") => Some(EventKind::ChatInterfaceCreated),
        (AssetKind::ChatInterface, "updated" | "archived" | "unarchived") => {
            Some(EventKind::ChatInterfaceUpdated)
        }
        (AssetKind::ChatInterface, "deleted") => Some(EventKind::ChatInterfaceDeleted),
        (AssetKind::Document, "created") => Some(EventKind::DocumentUploaded),
        (AssetKind::Document, "deleted") => Some(EventKind::DocumentDeleted),
        _ => None,
    }
}

fn audit_action(kind: AssetKind, action: &str) -> AuditAction {
    match (kind, action) {
        (AssetKind::ChatInterface, "created") => AuditAction::ChatInterfaceCreated,
        (AssetKind::ChatInterface, "updated") => AuditAction::ChatInterfaceUpdated,
        (AssetKind::ChatInterface, "archived") => AuditAction::ChatInterfaceArchived,
        (AssetKind::ChatInterface, "unarchived") => AuditAction::ChatInterfaceUnarchived,
        (AssetKind::ChatInterface, _) => AuditAction::ChatInterfaceDeleted,
        (AssetKind::KnowledgeBase, "created") => AuditAction::KnowledgeBaseCreated,
        (AssetKind::KnowledgeBase, "updated") => AuditAction::KnowledgeBaseUpdated,
        (AssetKind::KnowledgeBase, "archived") => AuditAction::KnowledgeBaseArchived,
        (AssetKind::KnowledgeBase, "unarchived") => AuditAction::KnowledgeBaseUnarchived,
        (AssetKind::KnowledgeBase, _) => AuditAction::KnowledgeBaseDeleted,
        (AssetKind::Document, "created") => AuditAction::DocumentUploaded,
        (AssetKind::Document, _) => AuditAction::DocumentDeleted,
        (AssetKind::Domain, "created") => AuditAction::DomainAdded,
        (AssetKind::Domain, "updated") => AuditAction::DomainVerified,
        (AssetKind::Domain, _) => AuditAction::DomainRemoved,
    }
}

/// The audit record and domain event of `action` (`created`, `updated`, `deleted`) on `a`.
fn journal(
    caller: &Caller,
    a: &Asset,
    action: &str,
    now: DateTime<Utc>,
    extra: serde_json::Value,
) -> Result<Journal, TenancyError> {
    let kind = a.kind();
    let mut record = caller
        .audit(now, audit_action(kind, action), a.target())
        .in_team(a.team);
    if !extra.is_null() {
        record = record.with_metadata(Metadata::from_value(extra)?);
    }
    let mut j = Journal::record(record);
    if let Some(ev) = event_for(kind, action) {
        let id_key = match kind {
            AssetKind::Document => "documentId",
            _ => "chatInterfaceId",
        };
        let mut data = json!({
            id_key: a.id, "name": a.name, "teamId": a.team, "by": caller.user.id,
            "byName": caller.user.name,
        });
        if let ("archived" | "unarchived", Some(obj)) = (action, data.as_object_mut()) {
            obj.insert("archived".into(), json!(action == "archived"));
        }
        if let (AssetKind::Document, Some(kb), Some(obj)) = (kind, a.parent, data.as_object_mut()) {
            obj.insert("knowledgeBaseId".into(), json!(kb));
            obj.insert("sizeBytes".into(), json!(a.size_bytes));
        }
        j = j.publish(DomainEvent::new(caller.org.id, ev, now, data));
    }
    Ok(j)
}

/// Resolves where a new asset goes and checks the caller may create it there.
async fn placement<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    kind: AssetKind,
    team: Option<TeamId>,
    parent: Option<ResourceId>,
) -> Result<(Team, Option<Asset>), TenancyError> {
    let (parent_kind, required) = kind.parent();
    let mut parent_asset = None;
    let team = match (parent, parent_kind) {
        (Some(p), Some(pk)) => {
            let parent = parent_asset.insert(get(store, caller, pk, p).await?);
            in_use_with_ancestors(store, parent).await?;
            if team.is_some_and(|t| t != parent.team) {
                return Err(TenancyError::Invalid(format!(
                    "a {} goes in its {}'s team",
                    kind.label(),
                    pk.label()
                )));
            }
            parent.team
        }
        (Some(_), None) => {
            return Err(TenancyError::Invalid(format!(
                "a {} has no parent",
                kind.label()
            )));
        }
        (None, _) if required => {
            return Err(TenancyError::Invalid(format!(
                "a {} needs its {}",
                kind.label(),
                parent_kind.map_or("parent", AssetKind::label)
            )));
        }
        (None, _) => match team {
            Some(t) => t,
            None => store.default_team(caller.org.id).await?.id,
        },
    };
    let team = teams::get(store, caller, team).await?;
    caller.check(kind.create(), &Resource::team(team.org, team.id))?;
    if team.archived_at.is_some() {
        return Err(teams::archived(&team.name, "nothing new is made in it"));
    }
    Ok((team, parent_asset))
}

/// Refuses work on the resources of an archived team: editing or using them. They stay
/// readable, and can be moved out, archived or brought back, and deleted. Checked before the
/// change; an edit is checked again in its transaction ([`WorkspaceStore::update_asset`]), a
/// use (a count for analytics) is not.
async fn team_in_use<S: WorkspaceStore + ?Sized>(store: &S, a: &Asset) -> Result<(), TenancyError> {
    match store.get_team(a.org, a.team).await? {
        Some(t) if t.archived_at.is_some() => Err(team_archived(&t.name)),
        _ => Ok(()),
    }
}

/// The refusal of an edit or use of a resource in the archived team `name`.
#[must_use]
pub fn team_archived(name: &str) -> TenancyError {
    teams::archived(name, "its resources are not edited or used")
}

/// Creates a chat interface, knowledge base or domain (documents: [`upload_document`]).
/// The plan's limit for the kind is checked atomically with the insert.
///
/// # Errors
/// [`TenancyError::Forbidden`], [`TenancyError::NotFound`], [`TenancyError::Invalid`],
/// [`TenancyError::Conflict`] (archived team, domain already added),
/// [`TenancyError::LimitReached`].
pub async fn create<S: TenancyStore + WorkspaceStore + crate::metering::MeteringStore + ?Sized>(
    store: &S,
    caller: &Caller,
    new: NewAsset,
    now: DateTime<Utc>,
) -> Result<Asset, TenancyError> {
    let kind = new.details.kind();
    let details = match new.details {
        AssetDetails::ChatInterface {
            description,
            instructions,
        } => AssetDetails::ChatInterface {
            description: valid_text("description", &description)?,
            instructions: valid_text("instructions", &instructions)?,
        },
        AssetDetails::KnowledgeBase { description } => AssetDetails::KnowledgeBase {
            description: valid_text("description", &description)?,
        },
        AssetDetails::Domain { hostname, .. } => AssetDetails::Domain {
            hostname: valid_hostname(&hostname)?,
            verification_token: security_policy::mint("axie-verify", 24).secret,
            verified_at: None,
        },
        AssetDetails::Document { .. } => {
            return Err(TenancyError::Invalid(
                "documents are uploaded with their content".into(),
            ));
        }
    };
    let name = match &details {
        AssetDetails::Domain { hostname, .. } if new.name.trim().is_empty() => hostname.clone(),
        _ => valid_name("name", &new.name)?,
    };
    let (team, _) = placement(store, caller, kind, new.team, new.parent).await?;
    let asset = Asset {
        id: ResourceId::new(),
        org: caller.org.id,
        team: team.id,
        name,
        parent: new.parent,
        created_by: caller.user.id,
        created_at: now,
        updated_at: now,
        size_bytes: 0,
        details,
        archived_at: None,
    };
    let j = journal(caller, &asset, "created", now, json!({ "team": team.name }))?;
    store.create_asset(&asset, &caller.org.limits(), j).await?;
    crate::metering::alert_after_create(store, &caller.org, kind.limit(), 1, now).await;
    Ok(asset)
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Uploads a document into a knowledge base: the bytes go to `blobs` first, then the metadata,
/// the document count and the storage total are checked and written with the audit record in
/// one transaction; when that fails the bytes are removed again.
///
/// # Errors
/// [`TenancyError::Invalid`] (empty, too large, type not accepted), [`TenancyError::LimitReached`]
/// (documents or storage), and those of [`create`].
#[allow(
    clippy::too_many_arguments,
    reason = "the upload's parts arrive separately from HTTP"
)]
pub async fn upload_document<
    S: TenancyStore + WorkspaceStore + crate::metering::MeteringStore + ?Sized,
>(
    store: &S,
    blobs: &dyn BlobStore,
    rules: &DocumentRules,
    caller: &Caller,
    knowledge_base: ResourceId,
    name: &str,
    content_type: &str,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<Asset, TenancyError> {
    let name = valid_name("name", name)?;
    let media = media_type(content_type);
    if !rules.content_types.contains(&media) {
        return Err(TenancyError::Invalid(format!(
            "documents of type `{media}` are not accepted; accepted: {}",
            rules.content_types.join(", ")
        )));
    }
    if bytes.is_empty() {
        return Err(TenancyError::Invalid("the document is empty".into()));
    }
    let size = bytes.len() as u64;
    if size > rules.max_bytes {
        return Err(TenancyError::Invalid(format!(
            "the document is {size} bytes; the most accepted is {}",
            rules.max_bytes
        )));
    }
    let (team, knowledge_base_asset) = placement(
        store,
        caller,
        AssetKind::Document,
        None,
        Some(knowledge_base),
    )
    .await?;
    let asset = Asset {
        id: ResourceId::new(),
        org: caller.org.id,
        team: team.id,
        name,
        parent: Some(knowledge_base),
        created_by: caller.user.id,
        created_at: now,
        updated_at: now,
        size_bytes: size,
        details: AssetDetails::Document {
            content_type: media,
            sha256: hex::encode(Sha256::digest(bytes)),
        },
        archived_at: None,
    };
    let j = journal(
        caller,
        &asset,
        "created",
        now,
        json!({
            "size_bytes": size,
            "knowledge_base": knowledge_base_asset.map(|kb| kb.name),
        }),
    )?;
    let key = asset.id.to_string();
    blobs.put(&key, bytes).await?;
    if let Err(e) = store.create_asset(&asset, &caller.org.limits(), j).await {
        if let Err(cleanup) = blobs.delete(&key).await {
            tracing::warn!(error = %cleanup, blob = %key, "could not remove the bytes of a refused upload");
        }
        return Err(e);
    }
    storage_alert(store, caller, size, now).await;
    crate::metering::alert_after_create(
        store,
        &caller.org,
        billing_limits::Limit::Documents,
        1,
        now,
    )
    .await;
    Ok(asset)
}

/// A document's bytes, its download recorded (`document.downloaded`) first.
///
/// # Errors
/// [`TenancyError::NotFound`] when the caller may not see it or its bytes are gone.
pub async fn document_content<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    blobs: &dyn BlobStore,
    caller: &Caller,
    id: ResourceId,
    now: DateTime<Utc>,
) -> Result<(Asset, Vec<u8>), TenancyError> {
    let a = get(store, caller, AssetKind::Document, id).await?;
    let bytes = blobs
        .get(&a.id.to_string())
        .await?
        .ok_or(TenancyError::NotFound("document content"))?;
    // Every read of a document's content is on the record, before it is handed out.
    let record = caller
        .audit(
            now,
            AuditAction::DocumentDownloaded,
            Target::new("document", a.id, a.name.clone()),
        )
        .in_team(a.team)
        .with_metadata(Metadata::from_value(json!({ "bytes": bytes.len() }))?);
    store.record(Journal::record(record)).await?;
    Ok((a, bytes))
}

/// Tries of an edit against concurrent edits of the same asset. Each failed compare-and-swap
/// means another edit committed, so with up to this many editors at once every edit applies.
const EDIT_ATTEMPTS: u32 = 16;

/// Edits a chat interface or knowledge base.
///
/// The change names only the fields it sets. The store writes it only if the asset is still as
/// it was read (compare-and-swap); when a concurrent edit got there first, the change is applied
/// again to the asset as it now is, so both edits' fields survive and neither caller sees a
/// conflict for a race it could not have avoided (it sent no precondition).
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`], [`TenancyError::Invalid`],
/// [`TenancyError::Archived`] in an archived team, [`TenancyError::Conflict`] for an archived
/// asset or when it still changed concurrently after [`EDIT_ATTEMPTS`] tries.
pub async fn update<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    kind: AssetKind,
    id: ResourceId,
    change: AssetUpdate,
    now: DateTime<Utc>,
) -> Result<Asset, TenancyError> {
    let fields: Vec<&str> = [
        ("name", change.name.is_some()),
        ("description", change.description.is_some()),
        ("instructions", change.instructions.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    let mut attempt = 1;
    loop {
        let before = get(store, caller, kind, id).await?;
        caller.check(kind.edit(), &before.resource())?;
        in_use_with_ancestors(store, &before).await?;
        team_in_use(store, &before).await?;
        let after = edited(&before, kind, &change, now)?;
        if after == before {
            return Ok(after);
        }
        let j = journal(caller, &after, "updated", now, json!({ "fields": fields }))?;
        match store.update_asset(&before, &after, j).await {
            Err(TenancyError::Conflict(_)) if attempt < EDIT_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
            Ok(()) => return Ok(after),
        }
    }
}

/// `before` with `change` applied (unchanged when the change sets what is already there).
fn edited(
    before: &Asset,
    kind: AssetKind,
    change: &AssetUpdate,
    now: DateTime<Utc>,
) -> Result<Asset, TenancyError> {
    in_use(before)?;
    let mut after = before.clone();
    if let Some(n) = &change.name {
        after.name = valid_name("name", n)?;
    }
    match &mut after.details {
        AssetDetails::ChatInterface {
            description,
            instructions,
        } => {
            if let Some(d) = &change.description {
                *description = valid_text("description", d)?;
            }
            if let Some(i) = &change.instructions {
                *instructions = valid_text("instructions", i)?;
            }
        }
        AssetDetails::KnowledgeBase { description } => {
            if let Some(d) = &change.description {
                *description = valid_text("description", d)?;
            }
            if change.instructions.is_some() {
                return Err(TenancyError::Invalid(
                    "a knowledge base has no instructions".into(),
                ));
            }
        }
        AssetDetails::Document { .. } | AssetDetails::Domain { .. } => {
            return Err(TenancyError::Invalid(format!(
                "a {} cannot be edited",
                kind.label()
            )));
        }
    }
    if after != *before {
        after.updated_at = now;
    }
    Ok(after)
}

/// Storage alerts after `added` bytes were committed: one upload or copy can cross 80 % and
/// 100 % at once. An alert that cannot be written is logged, not turned into a failed change.
async fn storage_alert<
    S: TenancyStore + WorkspaceStore + crate::metering::MeteringStore + ?Sized,
>(
    store: &S,
    caller: &Caller,
    added: u64,
    now: DateTime<Utc>,
) {
    let alert = async {
        let after: u64 = store
            .storage(caller.org.id)
            .await?
            .iter()
            .map(|t| t.bytes)
            .sum();
        crate::metering::alert_on_change(
            store,
            &caller.org,
            billing_limits::Limit::StorageBytes,
            after.saturating_sub(added),
            after,
            now,
        )
        .await
    };
    if let Err(e) = alert.await {
        tracing::warn!(error = %e, org = %caller.org.id, "storage alert not sent");
    }
}

/// Copies a chat interface or knowledge base with everything under it (knowledge bases and
/// their documents, bytes included) into `to_team` (the source's team when `None`), named
/// `name` (the source's name with " (copy)" when `None`): the guide's template library,
/// whose best agents stay in the internal team while client teams start from copies. The
/// copies are the caller's, in use (not archived); what is archived under the source (a
/// retired knowledge base, with its documents) is left out; a knowledge base copied on its
/// own sits under nothing. The caller must see the source and may create in the team. Every copy is
/// created, counted against the plan and recorded (with the asset it was copied from) in
/// one transaction, or none is; documents' bytes are written first and removed again when
/// that transaction is refused.
///
/// # Errors
/// [`TenancyError::NotFound`] (source or team not visible), [`TenancyError::Forbidden`],
/// [`TenancyError::Invalid`] (documents and domains, a bad name), [`TenancyError::Conflict`]
/// (archived team), [`TenancyError::LimitReached`].
#[allow(
    clippy::too_many_arguments,
    reason = "the copy's source, destination and name arrive separately from HTTP"
)]
pub async fn copy<S: TenancyStore + WorkspaceStore + crate::metering::MeteringStore + ?Sized>(
    store: &S,
    blobs: &dyn BlobStore,
    caller: &Caller,
    id: ResourceId,
    to_team: Option<TeamId>,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Asset>, TenancyError> {
    let source = get_any(store, caller, id).await?;
    let kind = source.kind();
    if !matches!(kind, AssetKind::ChatInterface | AssetKind::KnowledgeBase) {
        return Err(TenancyError::Invalid(format!(
            "a {} is not copied on its own: copy its knowledge base or chat interface",
            kind.label()
        )));
    }
    let name = match name {
        Some(n) => valid_name("name", n)?,
        // Within the name's 100 characters however long the source's is.
        None => {
            let stem: String = source.name.chars().take(100 - " (copy)".len()).collect();
            valid_name("name", &format!("{} (copy)", stem.trim_end()))?
        }
    };
    let team = teams::get(store, caller, to_team.unwrap_or(source.team)).await?;
    if team.archived_at.is_some() {
        return Err(teams::archived(&team.name, "nothing is copied into it"));
    }
    // The tree, each asset before those under it.
    let mut tree = vec![source];
    let mut next = 0;
    while let Some((parent, parent_kind)) = tree.get(next).map(|a| (a.id, a.kind())) {
        // What can sit under each kind: knowledge bases under a chat interface, documents
        // under a knowledge base.
        let under: &[AssetKind] = match parent_kind {
            AssetKind::ChatInterface => &[AssetKind::KnowledgeBase],
            AssetKind::KnowledgeBase => &[AssetKind::Document],
            AssetKind::Document | AssetKind::Domain => &[],
        };
        for &child_kind in under {
            let filter = AssetFilter {
                kind: child_kind,
                teams: None,
                parent: Some(parent),
                archived: Some(false),
            };
            let mut after = None;
            loop {
                let page = store
                    .list_assets(caller.org.id, &filter, after, 500)
                    .await?;
                after = page.last().map(|a| a.id);
                let done = page.len() < 500;
                tree.extend(page);
                if done {
                    break;
                }
            }
        }
        next += 1;
    }
    let mut kinds: Vec<AssetKind> = Vec::new();
    for a in &tree {
        if !kinds.contains(&a.kind()) {
            kinds.push(a.kind());
        }
    }
    for k in &kinds {
        caller.check(k.create(), &Resource::team(team.org, team.id))?;
    }
    // Storage first: the documents' bytes are written before the transaction checks it.
    let added: u64 = tree.iter().map(|a| a.size_bytes).sum();
    if added > 0 {
        let used: u64 = store
            .storage(caller.org.id)
            .await?
            .iter()
            .map(|t| t.bytes)
            .sum();
        crate::enforce_quota(billing_limits::check_quota(
            &caller.org.limits(),
            billing_limits::Limit::StorageBytes,
            used,
            added,
        ))?;
    }
    let mut new_ids = std::collections::HashMap::new();
    let mut copies = Vec::with_capacity(tree.len());
    for (n, a) in tree.iter().enumerate() {
        let copy = Asset {
            id: ResourceId::new(),
            org: caller.org.id,
            team: team.id,
            name: if n == 0 { name.clone() } else { a.name.clone() },
            parent: if n == 0 {
                None
            } else {
                a.parent.and_then(|p| new_ids.get(&p).copied())
            },
            created_by: caller.user.id,
            created_at: now,
            updated_at: now,
            size_bytes: a.size_bytes,
            details: a.details.clone(),
            archived_at: None,
        };
        new_ids.insert(a.id, copy.id);
        copies.push(copy);
    }
    let mut j = Journal::default();
    for (a, copy) in tree.iter().zip(&copies) {
        let part = journal(
            caller,
            copy,
            "created",
            now,
            json!({ "team": team.name, "copied_from": a.id }),
        )?;
        j.records.extend(part.records);
        j.events.extend(part.events);
        // Reading a document's content is on the source team's record, as a download is.
        if a.kind() == AssetKind::Document {
            j.records.push(
                caller
                    .audit(
                        now,
                        AuditAction::DocumentDownloaded,
                        Target::new("document", a.id, a.name.clone()),
                    )
                    .in_team(a.team)
                    .with_metadata(Metadata::from_value(
                        json!({ "bytes": a.size_bytes, "copied_to": copy.id }),
                    )?),
            );
        }
    }
    let mut written = Vec::new();
    for (a, copy) in tree.iter().zip(&copies) {
        if a.kind() != AssetKind::Document {
            continue;
        }
        let bytes = match blobs.get(&a.id.to_string()).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                remove_blobs(blobs, &written).await;
                return Err(TenancyError::NotFound("document content"));
            }
            Err(e) => {
                remove_blobs(blobs, &written).await;
                return Err(e.into());
            }
        };
        if let Err(e) = blobs.put(&copy.id.to_string(), &bytes).await {
            remove_blobs(blobs, &written).await;
            return Err(e.into());
        }
        written.push(copy.clone());
    }
    if let Err(e) = store.create_assets(&copies, &caller.org.limits(), j).await {
        remove_blobs(blobs, &written).await;
        return Err(e);
    }
    for k in kinds {
        let added = copies.iter().filter(|c| c.kind() == k).count() as u64;
        crate::metering::alert_after_create(store, &caller.org, k.limit(), added, now).await;
    }
    let bytes: u64 = written.iter().map(|d| d.size_bytes).sum();
    if bytes > 0 {
        storage_alert(store, caller, bytes, now).await;
    }
    Ok(copies)
}

/// Refuses work on an asset that is archived or sits under an archived one (a knowledge
/// base of an archived chat interface, a document of such a knowledge base).
async fn in_use_with_ancestors<S: WorkspaceStore + ?Sized>(
    store: &S,
    a: &Asset,
) -> Result<(), TenancyError> {
    in_use(a)?;
    let mut up = a.parent;
    // Assets nest at most two levels.
    for _ in 0..2 {
        let Some(p) = up else { break };
        let Some(parent) = store.get_asset(a.org, p).await? else {
            break;
        };
        in_use(&parent)?;
        up = parent.parent;
    }
    Ok(())
}

/// Refuses work on an archived asset: editing, using, or adding to it.
fn in_use(a: &Asset) -> Result<(), TenancyError> {
    match a.archived_at {
        None => Ok(()),
        Some(_) => Err(TenancyError::Conflict(format!(
            "the {} `{}` is archived; unarchive it first",
            a.kind().label(),
            a.name
        ))),
    }
}

/// Archives a chat interface or knowledge base (`archived`), or brings it back. Who may
/// delete it may archive it: its team's admins, the Owner and Admins, and a team Member for
/// what they created. Setting the state it already has changes nothing and records nothing.
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`], [`TenancyError::Invalid`] for
/// documents and domains, [`TenancyError::Conflict`] when it changed meanwhile.
pub async fn set_archived<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    kind: AssetKind,
    id: ResourceId,
    archived: bool,
    now: DateTime<Utc>,
) -> Result<Asset, TenancyError> {
    if !matches!(kind, AssetKind::ChatInterface | AssetKind::KnowledgeBase) {
        return Err(TenancyError::Invalid(format!(
            "a {} is not archived: delete it instead",
            kind.label()
        )));
    }
    let before = get(store, caller, kind, id).await?;
    let grant = caller.check(kind.edit(), &before.resource())?;
    if grant == Grant::TeamMember && before.created_by != caller.user.id {
        return Err(TenancyError::Forbidden(rbac_core::DenyReason::NotCreator));
    }
    if before.archived_at.is_some() == archived {
        return Ok(before);
    }
    let after = Asset {
        archived_at: archived.then_some(now),
        updated_at: now,
        ..before.clone()
    };
    let action = if archived { "archived" } else { "unarchived" };
    let j = journal(caller, &after, action, now, serde_json::Value::Null)?;
    store.update_asset(&before, &after, j).await?;
    Ok(after)
}

/// Deletes an asset with everything under it and removes the documents' bytes.
/// Team Members may delete only what they created, and so not what holds knowledge bases or
/// documents other people created (a knowledge base someone else linked to their chat
/// interface, say); their team's admins, the Owner and Admins may delete anything in it.
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`].
pub async fn delete<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    blobs: &dyn BlobStore,
    caller: &Caller,
    kind: AssetKind,
    id: ResourceId,
    now: DateTime<Utc>,
) -> Result<Vec<Asset>, TenancyError> {
    let a = get(store, caller, kind, id).await?;
    let grant = caller.check(kind.edit(), &a.resource())?;
    if grant == Grant::TeamMember && a.created_by != caller.user.id {
        return Err(TenancyError::Forbidden(rbac_core::DenyReason::NotCreator));
    }
    let j = journal(caller, &a, "deleted", now, serde_json::Value::Null)?;
    // A team Member deletes only what they created: granted as a team Member (chat
    // interfaces) or as the creator (knowledge bases, documents), they take nothing of
    // others' with it (documents others uploaded into their knowledge base, say).
    let only_by = matches!(grant, Grant::TeamMember | Grant::Creator).then_some(caller.user.id);
    let removed = store
        .delete_asset(caller.org.id, id, a.team, only_by, j)
        .await?;
    remove_blobs(blobs, &removed).await;
    Ok(removed)
}

/// The refusal of a deletion, by someone who may delete only what they created, of an asset
/// that holds what other people created; the stores check it in the deletion's transaction.
#[must_use]
pub fn others_under_it() -> TenancyError {
    TenancyError::Forbidden(rbac_core::DenyReason::NotCreator)
}

/// The refusal of a change to an asset that moved to another team (or, for a transfer, was
/// renamed) since its caller read it; the stores check it in the change's transaction.
#[must_use]
pub fn moved_meanwhile() -> TenancyError {
    TenancyError::Conflict("the asset was moved or renamed meanwhile; read it again".into())
}

/// Removes the bytes of deleted documents by id, after the deletion committed (a failure only
/// orphans bytes, and is logged).
pub async fn remove_document_blobs(blobs: &dyn BlobStore, documents: &[ResourceId]) {
    for d in documents {
        if let Err(e) = blobs.delete(&d.to_string()).await {
            tracing::warn!(error = %e, blob = %d, "could not remove a deleted document's bytes");
        }
    }
}

/// Removes the bytes of deleted documents (after the deletion committed; a failure
/// leaves an orphan blob, never a document without bytes).
pub async fn remove_blobs(blobs: &dyn BlobStore, removed: &[Asset]) {
    let documents: Vec<ResourceId> = removed
        .iter()
        .filter(|a| a.kind() == AssetKind::Document)
        .map(|a| a.id)
        .collect();
    remove_document_blobs(blobs, &documents).await;
}

/// Checks a custom domain's TXT record and records the result.
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`], [`TenancyError::Conflict`] when
/// the record is not (yet) published, [`TenancyError::Store`] when the lookup failed,
/// [`TenancyError::Archived`] in an archived team (its resources are not edited).
pub async fn verify_domain<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    verifier: &dyn DomainVerifier,
    caller: &Caller,
    id: ResourceId,
    now: DateTime<Utc>,
) -> Result<Asset, TenancyError> {
    let before = get(store, caller, AssetKind::Domain, id).await?;
    caller.check(Permission::ManageDomains, &before.resource())?;
    team_in_use(store, &before).await?;
    let AssetDetails::Domain {
        hostname,
        verification_token,
        ..
    } = &before.details
    else {
        return Err(TenancyError::NotFound("domain"));
    };
    let record = verification_record_name(hostname);
    let found = verifier.txt_records(&record).await?;
    if !found
        .iter()
        .any(|t| security_policy::constant_time_eq(t.trim(), verification_token))
    {
        return Err(TenancyError::Conflict(format!(
            "no TXT record `{verification_token}` found at `{record}` yet"
        )));
    }
    let mut after = before.clone();
    if let AssetDetails::Domain { verified_at, .. } = &mut after.details {
        *verified_at = Some(now);
    }
    after.updated_at = now;
    let j = journal(caller, &after, "updated", now, json!({ "record": record }))?;
    store.update_asset(&before, &after, j).await?;
    Ok(after)
}

/// Moves an asset (with everything under it) to another team of the organization, optionally
/// renaming it ("Customer Service Agent - PROD"). Needs the right to transfer assets in both
/// teams, and the asset kind's own rights (editing it where it is, making one where it goes:
/// for a custom domain, `manage_domains` with its feature-access setting); the move is atomic
/// and kept in the asset's history with the mover's `note` ([`transfer_note`]; in the
/// `asset.transferred` event too, and its first [`AUDITED_NOTE_CHARS`] characters in the audit
/// record).
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`], [`TenancyError::Invalid`] (same
/// team, not a top-level asset, a bad note), [`TenancyError::Conflict`] (archived target, concurrent move).
pub async fn transfer<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: ResourceId,
    to_team: TeamId,
    rename: Option<&str>,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Asset, AssetTransfer), TenancyError> {
    let note = transfer_note(note)?;
    let a = get_any(store, caller, id).await?;
    caller.check(Permission::TransferAsset, &Resource::team(a.org, a.team))?;
    let to = teams::get(store, caller, to_team).await?;
    caller.check(Permission::TransferAsset, &Resource::team(to.org, to.id))?;
    // And the kind's own rights, taking it out of one team and making it in the other: a
    // custom domain moves only for someone the `manage_domains` setting lets manage domains.
    caller.check(a.kind().edit(), &a.resource())?;
    caller.check(a.kind().create(), &Resource::team(to.org, to.id))?;
    if a.parent.is_some() {
        return Err(TenancyError::Invalid(
            "this asset moves with the asset it belongs to; transfer that one".into(),
        ));
    }
    if to.id == a.team {
        return Err(TenancyError::Invalid(
            "the asset is already in that team".into(),
        ));
    }
    if to.archived_at.is_some() {
        return Err(teams::archived(&to.name, "nothing is moved into it"));
    }
    let to_name = match rename {
        Some(n) => valid_name("name", n)?,
        None => a.name.clone(),
    };
    let t = AssetTransfer {
        asset: a.id,
        org: a.org,
        from_team: a.team,
        to_team: to.id,
        from_name: a.name.clone(),
        to_name: to_name.clone(),
        by: caller.user.id,
        at: now,
        note,
    };
    let mut moved = a.clone();
    moved.team = to.id;
    moved.name = to_name;
    moved.updated_at = now;
    let j = Journal::record(
        caller
            .audit(now, AuditAction::AssetTransferred, moved.target())
            .in_team(to.id)
            .with_metadata(Metadata::from_value(json!({
                "kind": a.kind().as_str(), "from_team": t.from_team, "to_team": t.to_team,
                "from_name": t.from_name, "to_name": t.to_name,
                "note": t.note.as_deref().map(|n| n.chars().take(AUDITED_NOTE_CHARS).collect::<String>()),
                "note_truncated": t.note.as_deref().is_some_and(|n| n.chars().count() > AUDITED_NOTE_CHARS),
            }))?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::AssetTransferred,
        now,
        json!({
            "assetId": a.id, "kind": a.kind().as_str(), "fromTeamId": t.from_team, "toTeamId": t.to_team,
            "name": t.to_name, "previousName": t.from_name, "transferredBy": caller.user.id,
            "note": t.note,
        }),
    ));
    store.transfer_asset(&t, j).await?;
    Ok((moved, t))
}

/// An asset's transfer history, oldest first.
///
/// # Errors
/// [`TenancyError::NotFound`] when the caller may not see the asset.
pub async fn history<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: ResourceId,
) -> Result<Vec<AssetTransfer>, TenancyError> {
    get_any(store, caller, id).await?;
    store.transfers_of(caller.org.id, id).await
}

/// Records one use of a chat interface (a conversation turn), counted for analytics.
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`].
pub async fn use_chat_interface<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: ResourceId,
    now: DateTime<Utc>,
) -> Result<Asset, TenancyError> {
    let a = get(store, caller, AssetKind::ChatInterface, id).await?;
    caller.check(Permission::UseChatInterface, &a.resource())?;
    in_use(&a)?;
    team_in_use(store, &a).await?;
    store
        .record_usage(
            &UsageRecord {
                team: a.team,
                asset: Some(a.id),
                metric: METRIC_MESSAGES.into(),
                day: now.date_naive(),
                count: 1,
            },
            a.org,
        )
        .await?;
    Ok(a)
}

/// The metric counted when a chat interface is used.
pub const METRIC_MESSAGES: &str = "messages";

/// The analytics view: usage per resource and per team, and storage, for the teams the caller sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analytics {
    /// First day included.
    pub from: NaiveDate,
    /// Last day included.
    pub to: NaiveDate,
    /// Daily usage rows.
    pub usage: Vec<UsageRecord>,
    /// Per-team totals of each metric.
    pub teams: Vec<TeamUsage>,
    /// Storage per team.
    pub storage: Vec<TeamStorage>,
}

/// One team's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamUsage {
    /// The team.
    pub team: TeamId,
    /// The metric.
    pub metric: String,
    /// The total over the period.
    pub count: u64,
}

/// Usage analytics any member may view, limited to the teams they see; the viewing is audited
/// (the guide's "Viewed analytics dashboard").
///
/// # Errors
/// [`TenancyError::NotFound`] for a team the caller may not see; [`TenancyError::Invalid`]
/// for a period longer than a year or reversed.
pub async fn analytics<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: Option<TeamId>,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Analytics, TenancyError> {
    if to < from || (to - from).num_days() > 366 {
        return Err(TenancyError::Invalid(
            "the period must run forward and span at most a year".into(),
        ));
    }
    let target_team = match team {
        Some(t) => Some(teams::get(store, caller, t).await?),
        None => None,
    };
    let resource = match &target_team {
        Some(t) => Resource::team(t.org, t.id),
        None => Resource {
            org: caller.org.id,
            team: None,
            creator: None,
        },
    };
    caller.check(Permission::ViewAnalytics, &resource)?;
    let visible = visible_teams(store, caller, team).await?;
    let keep = |t: &TeamId| visible.as_ref().is_none_or(|v| v.contains(t));
    let usage: Vec<UsageRecord> = store
        .usage(caller.org.id, from, to)
        .await?
        .into_iter()
        .filter(|u| keep(&u.team))
        .collect();
    let mut totals: Vec<TeamUsage> = Vec::new();
    for u in &usage {
        match totals
            .iter_mut()
            .find(|t| t.team == u.team && t.metric == u.metric)
        {
            Some(t) => t.count += u.count,
            None => totals.push(TeamUsage {
                team: u.team,
                metric: u.metric.clone(),
                count: u.count,
            }),
        }
    }
    let storage = store
        .storage(caller.org.id)
        .await?
        .into_iter()
        .filter(|s| keep(&s.team))
        .collect();
    let (kind, id, name) = match &target_team {
        Some(t) => ("team", t.id.to_string(), t.name.clone()),
        None => (
            "organization",
            caller.org.id.to_string(),
            caller.org.name.clone(),
        ),
    };
    let mut record = caller
        .audit(
            now,
            AuditAction::AnalyticsViewed,
            Target::new(kind, id, name),
        )
        .with_metadata(Metadata::from_value(json!({ "from": from, "to": to }))?);
    if let Some(t) = &target_team {
        record = record.in_team(t.id);
    }
    store.record(Journal::record(record)).await?;
    Ok(Analytics {
        from,
        to,
        usage,
        teams: totals,
        storage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_domain_leaves_room_for_its_verification_record() {
        assert_eq!(
            valid_hostname(" Chat.Example.COM. ").unwrap(),
            "chat.example.com"
        );
        // Labels of 63 characters, 234 characters in all: the record's name is 253.
        let longest = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(42)
        );
        assert_eq!(longest.len(), 234);
        let ok = valid_hostname(&longest).unwrap();
        assert_eq!(verification_record_name(&ok).len(), 253);
        let too_long = format!("{longest}x");
        assert!(matches!(
            valid_hostname(&too_long),
            Err(TenancyError::Invalid(m)) if m.contains("at most 234")
        ));
        for bad in ["localhost", "10.0.0.1", "-a.example", "a..example"] {
            assert!(valid_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn free_text_is_bounded_and_holds_no_nul_character() {
        assert_eq!(
            valid_text("description", "Answers billing questions").unwrap(),
            "Answers billing questions"
        );
        assert!(valid_text("description", &"x".repeat(MAX_TEXT)).is_ok());
        assert!(matches!(
            valid_text("description", &"x".repeat(MAX_TEXT + 1)),
            Err(TenancyError::Invalid(_))
        ));
        assert!(matches!(
            valid_text("instructions", "be kind\0"),
            Err(TenancyError::Invalid(m)) if m.contains("`instructions`") && m.contains("NUL")
        ));
    }
}
