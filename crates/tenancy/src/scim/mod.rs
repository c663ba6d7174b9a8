//! SCIM 2.0 provisioning (RFC 7643, RFC 7644): the customer's identity provider creates,
//! updates, deactivates and removes members, and manages teams as Groups.
//!
//! Users are the organization's members (SCIM id = user id); Groups are its teams (SCIM id =
//! team id). What the identity provider sends is validated against the declared schema
//! ([`schema`]) and kept verbatim as a [`UserRecord`] or [`GroupRecord`], so it reads back
//! exactly as written; the parts the product acts on are derived from it:
//! - the login email is the primary (else first) email, else `userName` when it is an email;
//! - the display name is `displayName`, else `name.formatted`, else given and family name;
//! - a `roles` value `admin` makes the member an Admin, other values a User (a document without
//!   `roles` leaves the role as it is; new members are Users);
//! - `active: false` deactivates the membership (sessions ended, API keys deactivated,
//!   resources kept) and `active: true` restores it;
//! - Group `members` that are members of the organization are the team's members.
//!
//! Every change goes through the same rules as the API (the caller is a SCIM token acting
//! with an Admin's rights, limited to provisioning): role rules, the Owner's protection,
//! member limits, one transaction with its audit records and webhooks (`user.created`,
//! `user.updated`, `user.deleted`, `team.*`).

pub mod filter;
pub mod patch;
pub mod schema;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use audit::{Actor, ActorKind, AuditAction, DomainEvent, EventKind, Journal, Metadata, Target};
use billing_limits::PlanLimits;
use chrono::{DateTime, SecondsFormat, Utc};
use rbac_core::{
    Credential, DenyReason, OrgId, OrgRole, Permission, PlanFeature, ScimTokenId, Subject, TeamId,
    UserId, check_removal, check_role_change,
};
use security_policy::{
    MintedToken, PasswordHasher, check_password, context_words, hash_token, mint,
};
use serde_json::{Map, Value, json};

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::members::Disposition;
use crate::model::{Email, Member, Team, User, valid_name};
use crate::store::{MembershipStore, TenancyStore, WorkspaceStore};

pub use filter::{Filter, FilterError};
pub use patch::PatchError;
pub use schema::{GROUP_SCHEMA, SchemaError, USER_SCHEMA};

/// Prefix of SCIM token secrets.
pub const TOKEN_PREFIX: &str = "axs";
/// Largest page a list returns.
pub const MAX_RESULTS: usize = 1000;
/// Page size when the client gives none.
pub const DEFAULT_COUNT: usize = 100;

/// A bearer token of an organization's SCIM base (the secret is shown once, only its hash kept).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScimToken {
    /// Its id.
    pub id: ScimTokenId,
    /// Its organization.
    pub org: OrgId,
    /// A label, for example "Okta".
    pub name: String,
    /// The visible start of the secret.
    pub prefix: String,
    /// The Owner or Admin who created it; it stops working when they no longer are one.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The identity provider's view of a member, kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// The member.
    pub user: UserId,
    /// `userName`, as sent (unique per organization without regard to case).
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// The other writable attributes under their canonical names (never `password`).
    pub attributes: Map<String, Value>,
    /// Bumped on every change (the ETag).
    pub version: i64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The identity provider's view of a team.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    /// The team.
    pub team: TeamId,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `members` entries as sent.
    pub members: Vec<Value>,
    /// Bumped on every change.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A change to a member made through SCIM, applied in one transaction.
#[derive(Debug, Clone)]
pub struct MemberWrite {
    /// The organization.
    pub org: OrgId,
    /// The member.
    pub user: UserId,
    /// The record's version the change was computed from (`None`: there was no record).
    pub expected_version: Option<i64>,
    /// The new record.
    pub record: UserRecord,
    /// New display name.
    pub name: String,
    /// New login email.
    pub email: Email,
    /// New password hash, when one was sent.
    pub password_hash: Option<String>,
    /// The role change, when there is one: `(from, to)`, `from` being the role the change was
    /// decided on. The store refuses the write when the member no longer has it, and applies what
    /// follows from the new role as a role change through the API does (the default team's role;
    /// when admin rights are lost, the person's pending invitations withdrawn).
    pub role: Option<(OrgRole, OrgRole)>,
    /// `Some(false)` deactivates, `Some(true)` reactivates, `None` leaves the state.
    pub active: Option<bool>,
    /// Whose rights the write is made with (a SCIM token's creator): the store refuses it with
    /// [`crate::members::acting_role_changed`] when they are no longer an active Owner or Admin
    /// under the organization's lock, as [`crate::store::MembershipStore::set_role`] does.
    pub by: Option<UserId>,
    /// When.
    pub now: DateTime<Utc>,
}

/// What a member write ended: deactivation ends the person's API keys and SCIM tokens here and
/// their sessions (unless another organization of theirs is active); a new password ends their
/// sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberWriteReport {
    /// API keys deactivated.
    pub api_keys_deactivated: u64,
    /// SCIM tokens they created, revoked (reactivation does not bring them back).
    pub scim_tokens_revoked: u64,
    /// Sessions ended.
    pub sessions_ended: u64,
}

/// A team created or changed through SCIM, applied in one transaction.
#[derive(Debug, Clone)]
pub struct GroupWrite {
    /// The team as it will be.
    pub team: Team,
    /// Create it (else rename it when the name differs).
    pub create: bool,
    /// The record's version the change was computed from.
    pub expected_version: Option<i64>,
    /// The new record.
    pub record: GroupRecord,
    /// Members to give the team's Member role.
    pub add: Vec<UserId>,
    /// Members to take out of the team.
    pub remove: Vec<UserId>,
    /// Whose rights the write is made with (a SCIM token's creator), checked again under the
    /// organization's lock as for [`MemberWrite::by`].
    pub by: Option<UserId>,
}

/// Storage of SCIM tokens and records.
#[async_trait]
pub trait ScimStore: Send + Sync {
    /// Stores a token (by the hash of its secret) with its audit record, if its creator is
    /// still an active Owner or Admin (checked under the organization's lock, as
    /// [`MemberWrite::by`] is: a demotion, removal or deactivation revokes the tokens it
    /// finds, and a token stored after it would outlive it).
    ///
    /// # Errors
    /// [`TenancyError::RoleRule`] when the creator is no longer an active Owner or Admin
    /// (`members::acting_role_changed`); [`TenancyError::Store`].
    async fn create_scim_token(
        &self,
        token: &ScimToken,
        secret_hash: &str,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// A live (not revoked) token by the hash of its secret.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn find_scim_token(&self, secret_hash: &str) -> Result<Option<ScimToken>, TenancyError>;

    /// The organization's tokens, revoked ones included, oldest first.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn list_scim_tokens(&self, org: OrgId) -> Result<Vec<ScimToken>, TenancyError>;

    /// Revokes a live token.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when it is not a live token of `org`.
    async fn revoke_scim_token(
        &self,
        org: OrgId,
        token: ScimTokenId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Records a token's use.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn touch_scim_token(
        &self,
        token: ScimTokenId,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError>;

    /// Every member record of `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn user_records(&self, org: OrgId) -> Result<Vec<UserRecord>, TenancyError>;

    /// One member's record.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn user_record(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Option<UserRecord>, TenancyError>;

    /// The record of `org` whose userName is `user_name`, compared case-insensitively (as
    /// lower case: userName is unique that way in an organization). The default walks
    /// [`Self::user_records`]; a store with an index on the lower-cased name should use it,
    /// since identity providers look a user up by name before each creation.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn user_record_by_name(
        &self,
        org: OrgId,
        user_name: &str,
    ) -> Result<Option<UserRecord>, TenancyError> {
        let key = user_name.to_lowercase();
        Ok(self
            .user_records(org)
            .await?
            .into_iter()
            .find(|r| r.user_name.to_lowercase() == key))
    }

    /// Creates an account and its membership (role `role`, Member of `team`, deactivated when
    /// `active` is false) and the record, if the member limit allows, in one transaction.
    ///
    /// `by` is whose rights the creation is made with (a SCIM token's creator), checked again
    /// under the organization's lock as for [`MemberWrite::by`].
    ///
    /// # Errors
    /// [`TenancyError::LimitReached`]; [`TenancyError::Conflict`] when the email or the
    /// userName is taken; [`crate::members::acting_role_changed`].
    #[allow(clippy::too_many_arguments, reason = "the new member's parts")]
    async fn provision_member(
        &self,
        org: OrgId,
        user: &User,
        password_hash: Option<&str>,
        record: &UserRecord,
        role: OrgRole,
        active: bool,
        team: TeamId,
        limits: &PlanLimits,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Applies a member change: record (compare-and-swap on its version), name, email,
    /// password, role and activation (a new password ends the person's sessions; deactivating
    /// signs them out of the organization, ending the sessions good in no other organization
    /// where they are active, deactivates their API keys in it, and withdraws their pending
    /// invitations and a transfer of ownership to them). `journal`, and the records `ended`
    /// makes from the number of sessions ended or signed out of the organization, commit with
    /// it.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`]; [`TenancyError::Changed`] (the record's version or the
    /// member's role changed meanwhile, or, when the email or password changes, the account
    /// joined another organization or its person became the Owner:
    /// [`credentials_changed_hands`]); [`TenancyError::Conflict`] (email or userName taken);
    /// [`TenancyError::RoleRule`] with [`rbac_core::RoleRuleError::OwnerViaTransferOnly`] for a role
    /// change to or from Owner, which the service never asks for.
    async fn write_member(
        &self,
        write: &MemberWrite,
        journal: Journal,
        ended: crate::SessionsEndedJournal<'_>,
    ) -> Result<MemberWriteReport, TenancyError>;

    /// Every group record of `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn group_records(&self, org: OrgId) -> Result<Vec<GroupRecord>, TenancyError>;

    /// One team's group record. The default walks [`Self::group_records`].
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn group_record(
        &self,
        org: OrgId,
        team: TeamId,
    ) -> Result<Option<GroupRecord>, TenancyError> {
        Ok(self
            .group_records(org)
            .await?
            .into_iter()
            .find(|r| r.team == team))
    }

    /// Creates or renames the team, stores the record and changes the team's members, in one
    /// transaction.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] (name taken); [`TenancyError::Archived`] (people added to an
    /// archived team, [`crate::teams::archived_team`], except those with a role in every team);
    /// [`TenancyError::Changed`] (the record's version
    /// changed meanwhile); [`TenancyError::NotFound`].
    async fn write_group(&self, write: &GroupWrite, journal: Journal) -> Result<(), TenancyError>;
}

/// A SCIM-level failure: an HTTP status and RFC 7644's `scimType`.
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// A domain error (status mapped by the server).
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// 400 with a `scimType`.
    #[error("{detail}")]
    BadRequest {
        /// `invalidValue`, `invalidSyntax`, `invalidFilter`, `invalidPath`, `noTarget`, `mutability`.
        scim_type: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// 400 `mutability` for a change to a protected person or account (deactivating the Owner;
    /// the sign-in of the Owner or of an account other organizations share): a refusal, which
    /// the server audits with `reason` like the API's.
    #[error("{detail}")]
    Protected {
        /// The audited reason code: `owner_protected` or `credentials_not_owned`.
        reason: &'static str,
        /// What was refused.
        detail: String,
    },
    /// 409 `uniqueness`.
    #[error("{0}")]
    Uniqueness(String),
    /// 412: the `If-Match` version is not the current one.
    #[error("the resource changed: its version is {0}")]
    PreconditionFailed(String),
}

impl From<audit::AuditError> for ScimError {
    fn from(e: audit::AuditError) -> Self {
        ScimError::Tenancy(e.into())
    }
}

impl From<SchemaError> for ScimError {
    fn from(e: SchemaError) -> Self {
        ScimError::BadRequest {
            scim_type: e.scim_type,
            detail: e.detail,
        }
    }
}

impl From<PatchError> for ScimError {
    fn from(e: PatchError) -> Self {
        ScimError::BadRequest {
            scim_type: e.scim_type,
            detail: e.detail,
        }
    }
}

impl From<FilterError> for ScimError {
    fn from(e: FilterError) -> Self {
        ScimError::BadRequest {
            scim_type: "invalidFilter",
            detail: e.0,
        }
    }
}

fn bad(scim_type: &'static str, detail: impl Into<String>) -> ScimError {
    ScimError::BadRequest {
        scim_type,
        detail: detail.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// Creates a SCIM token (Owner or Admin, Enterprise plan); the secret is in the returned
/// token and nowhere else.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Invalid`] for a bad name.
pub async fn create_token<S: ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(ScimToken, MintedToken), TenancyError> {
    check_manage_tokens(caller)?;
    let name = valid_name("name", name)?;
    let secret = mint(TOKEN_PREFIX, 32);
    let token = ScimToken {
        id: ScimTokenId::new(),
        org: caller.org.id,
        name,
        prefix: secret.display_prefix.clone(),
        created_by: caller.user.id,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    let journal = Journal::record(caller.audit(
        now,
        AuditAction::ScimTokenCreated,
        Target::new("scim_token", token.id, token.name.clone()),
    ));
    store
        .create_scim_token(&token, &secret.hash, journal)
        .await?;
    Ok((token, secret))
}

/// The organization's SCIM tokens.
///
/// # Errors
/// [`TenancyError::Forbidden`].
pub async fn list_tokens<S: ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
) -> Result<Vec<ScimToken>, TenancyError> {
    check_manage_tokens(caller)?;
    store.list_scim_tokens(caller.org.id).await
}

/// Revokes a SCIM token.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::NotFound`].
pub async fn revoke_token<S: ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: ScimTokenId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    check_manage_tokens(caller)?;
    let token = store
        .list_scim_tokens(caller.org.id)
        .await?
        .into_iter()
        .find(|t| t.id == id && t.revoked_at.is_none())
        .ok_or(TenancyError::NotFound("SCIM token"))?;
    let journal = Journal::record(caller.audit(
        now,
        AuditAction::ScimTokenRevoked,
        Target::new("scim_token", token.id, token.name),
    ));
    store
        .revoke_scim_token(caller.org.id, id, now, journal)
        .await
}

/// Token management needs the Owner or an Admin in a session, and the Enterprise plan.
fn check_manage_tokens(caller: &Caller) -> Result<(), TenancyError> {
    caller.check_org(Permission::UpdateSettings)?;
    if caller.subject.credential != Credential::Session {
        return Err(TenancyError::Forbidden(DenyReason::InteractiveOnly));
    }
    if !caller.org.plan.features().scim {
        return Err(TenancyError::Forbidden(DenyReason::PlanLacksFeature {
            feature: PlanFeature::Scim,
        }));
    }
    Ok(())
}

/// Resolves a SCIM bearer token for `org` into a caller: the token's creator's identity
/// acting as an Admin limited to provisioning ([`Credential::Scim`]), audited as the token.
/// The token stops working when revoked, when its creator is no longer an active Owner or
/// Admin, or when the plan loses SCIM.
///
/// # Errors
/// [`TenancyError::Unauthenticated`] for an unknown, revoked or orphaned token or one of
/// another organization; [`TenancyError::Forbidden`] without the plan feature.
pub async fn authenticate<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    org: OrgId,
    secret: &str,
    request: audit::RequestContext,
    now: DateTime<Utc>,
) -> Result<Caller, TenancyError> {
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
        return Err(TenancyError::Unauthenticated);
    }
    let token = store
        .find_scim_token(&hash_token(secret))
        .await?
        .filter(|t| t.org == org)
        .ok_or(TenancyError::Unauthenticated)?;
    let creator = store
        .get_member(org, token.created_by)
        .await?
        .filter(|m| m.role.is_admin() && m.deactivated_at.is_none())
        .ok_or(TenancyError::Unauthenticated)?;
    let organization = store.get_org(org).await?;
    if !organization.plan.features().scim {
        return Err(TenancyError::Forbidden(DenyReason::PlanLacksFeature {
            feature: PlanFeature::Scim,
        }));
    }
    if token
        .last_used_at
        .is_none_or(|t| now - t > chrono::Duration::minutes(1))
    {
        store.touch_scim_token(token.id, now).await?;
    }
    let teams = store.team_roles(org, creator.user.id).await?;
    Ok(Caller {
        subject: Subject {
            user: creator.user.id,
            org,
            role: OrgRole::Admin,
            teams,
            all_teams: None,
            credential: Credential::Scim,
        },
        user: creator.user,
        api_key: None,
        scim_token: Some(Actor {
            kind: ActorKind::ScimToken,
            id: token.id.to_string(),
            name: format!("SCIM token \"{}\"", token.name),
        }),
        org: organization,
        request,
        member_since: creator.joined_at,
    })
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The weak ETag of a version.
#[must_use]
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The weak ETag of a member's User resource: the record's version (which SCIM writes move)
/// and a digest of what the product changes without writing the record (the role, whether
/// they are active, their name and address), so that a change made in the product also moves
/// it and an identity provider's write made against the resource as it was is refused (412).
#[must_use]
pub fn user_etag(version: i64, m: &Member) -> String {
    use sha2::Digest as _;
    let state = json!([
        m.role.as_str(),
        m.deactivated_at.is_some(),
        m.user.name,
        m.user.email.as_str()
    ]);
    let digest = sha2::Sha256::digest(state.to_string().as_bytes());
    format!("W/\"{version}-{}\"", hex::encode(&digest[..4]))
}

/// A role as the `roles` attribute shows it: `admin` for the Owner and the Admins.
const fn role_value(role: OrgRole) -> &'static str {
    match role {
        OrgRole::User => "user",
        OrgRole::Owner | OrgRole::Admin => "admin",
    }
}

/// Corrects a stored User document where the membership has changed in the product since the
/// identity provider last wrote it (a role changed, a member deactivated or reactivated): the
/// resource shows the membership as it is, and a PATCH that does not touch `roles` or `active`
/// keeps it (applied to the stored document, it would write the old role back). Attributes
/// that agree with the membership, or that the identity provider never sent, stay as they are.
fn reconcile(doc: &mut Map<String, Value>, m: &Member) {
    let live = role_value(m.role);
    let stored_admin = doc
        .get("roles")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.iter().any(|x| {
                x["value"]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case("admin"))
            })
        });
    if stored_admin.is_some_and(|admin| admin != (live == "admin")) {
        doc.insert("roles".into(), json!([{ "value": live }]));
    }
    let active = m.deactivated_at.is_none();
    // Absent means active.
    let stored_active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
    if stored_active != active {
        doc.insert("active".into(), json!(active));
    }
}

/// The User resource of a member.
#[must_use]
pub fn render_user(base: &str, m: &Member, rec: Option<&UserRecord>) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([USER_SCHEMA]));
    out.insert("id".into(), json!(m.user.id.to_string()));
    let (version, modified) = match rec {
        Some(r) => {
            if let Some(x) = &r.external_id {
                out.insert("externalId".into(), json!(x));
            }
            out.insert("userName".into(), json!(r.user_name));
            for (k, v) in &r.attributes {
                out.insert(k.clone(), v.clone());
            }
            reconcile(&mut out, m);
            (r.version, r.updated_at.max(m.joined_at))
        }
        None => {
            // A member added by hand: their product identity, so an identity provider can
            // match them by userName or email before taking them over.
            out.insert("userName".into(), json!(m.user.email.as_str()));
            out.insert("displayName".into(), json!(m.user.name));
            out.insert(
                "emails".into(),
                json!([{"value": m.user.email.as_str(), "type": "work", "primary": true}]),
            );
            out.insert("active".into(), json!(m.deactivated_at.is_none()));
            out.insert("roles".into(), json!([{ "value": role_value(m.role) }]));
            (0, m.joined_at)
        }
    };
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": time(m.joined_at),
            "lastModified": time(modified),
            "location": format!("{base}/Users/{}", m.user.id),
            "version": user_etag(version, m),
        }),
    );
    Value::Object(out)
}

/// The Group resource of a team.
#[must_use]
pub fn render_group(
    base: &str,
    team: &Team,
    rec: Option<&GroupRecord>,
    members: &[Member],
) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([GROUP_SCHEMA]));
    out.insert("id".into(), json!(team.id.to_string()));
    if let Some(x) = rec.and_then(|r| r.external_id.as_ref()) {
        out.insert("externalId".into(), json!(x));
    }
    out.insert("displayName".into(), json!(team.name));
    let team_members: HashSet<UserId> = members.iter().map(|m| m.user.id).collect();
    let in_team = |v: &Value| {
        filter::get_ci(v, "value")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<UserId>().ok())
            .filter(|u| team_members.contains(u))
    };
    // Entries the identity provider sent, as sent, for people in the team; then the team's
    // other members.
    let mut list: Vec<Value> = Vec::new();
    let mut listed: HashSet<UserId> = HashSet::new();
    for e in rec.map(|r| r.members.as_slice()).unwrap_or_default() {
        if let Some(u) = in_team(e)
            && listed.insert(u)
        {
            list.push(e.clone());
        }
    }
    for m in members.iter().filter(|m| !listed.contains(&m.user.id)) {
        list.push(json!({
            "value": m.user.id.to_string(),
            "$ref": format!("{base}/Users/{}", m.user.id),
            "type": "User",
            "display": m.user.name,
        }));
    }
    if !list.is_empty() {
        out.insert("members".into(), Value::Array(list));
    }
    let (version, modified) = rec.map_or((0, team.created_at), |r| (r.version, r.updated_at));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": time(team.created_at),
            "lastModified": time(modified.max(team.created_at)),
            "location": format!("{base}/Groups/{}", team.id),
            "version": etag(version),
        }),
    );
    Value::Object(out)
}

/// Keeps only the requested attributes (`attributes`), or drops the excluded ones
/// (`excludedAttributes`); `id`, `schemas` and `userName`-like `returned: always` ones stay.
#[must_use]
pub fn project(resource: Value, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(mut obj) = resource else {
        return resource;
    };
    let names = |list: &[String]| -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|a| {
                let (_, rest) = filter::split_urn(a.trim());
                match rest.split_once('.') {
                    Some((n, s)) => (n.to_ascii_lowercase(), Some(s.to_ascii_lowercase())),
                    None => (rest.to_ascii_lowercase(), None),
                }
            })
            .collect()
    };
    // Returned whatever is asked: `id`, `schemas` and User `userName` (`returned: always`).
    const ALWAYS: [&str; 3] = ["id", "schemas", "username"];
    if !attributes.is_empty() {
        let want = names(attributes);
        obj.retain(|k, v| {
            let lk = k.to_ascii_lowercase();
            if ALWAYS.contains(&lk.as_str()) {
                return true;
            }
            let subs: Vec<&String> = want
                .iter()
                .filter(|(n, _)| *n == lk)
                .filter_map(|(_, s)| s.as_ref())
                .collect();
            let whole = want.iter().any(|(n, s)| *n == lk && s.is_none());
            if whole {
                return true;
            }
            if subs.is_empty() {
                return false;
            }
            keep_subs(v, &subs);
            true
        });
    } else if !excluded.is_empty() {
        let drop = names(excluded);
        obj.retain(|k, v| {
            let lk = k.to_ascii_lowercase();
            if ALWAYS.contains(&lk.as_str()) {
                return true;
            }
            if drop.iter().any(|(n, s)| *n == lk && s.is_none()) {
                return false;
            }
            for (_, s) in drop.iter().filter(|(n, _)| *n == lk) {
                if let Some(s) = s {
                    drop_sub(v, s);
                }
            }
            true
        });
    }
    Value::Object(obj)
}

fn keep_subs(v: &mut Value, subs: &[&String]) {
    match v {
        Value::Object(o) => o.retain(|k, _| subs.iter().any(|s| k.eq_ignore_ascii_case(s))),
        Value::Array(items) => items.iter_mut().for_each(|i| keep_subs(i, subs)),
        _ => {}
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Object(o) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
        Value::Array(items) => items.iter_mut().for_each(|i| drop_sub(i, sub)),
        _ => {}
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Matches in all.
    pub total: usize,
    /// 1-based index of the first.
    pub start_index: usize,
    /// The resources of the page.
    pub resources: Vec<Value>,
}

impl Page {
    /// The `ListResponse` document.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": self.total,
            "startIndex": self.start_index,
            "itemsPerPage": self.resources.len(),
            "Resources": self.resources,
        })
    }
}

/// Filters and pages `all`: `start_index` is 1-based (below 1 counts as 1), `count` is
/// capped at [`MAX_RESULTS`] (0 answers only the total).
#[must_use]
pub fn page(all: Vec<Value>, filter: Option<&Filter>, start_index: usize, count: usize) -> Page {
    let matching: Vec<Value> = all
        .into_iter()
        .filter(|r| filter.is_none_or(|f| f.matches(r)))
        .collect();
    let start = start_index.max(1);
    let resources = matching
        .iter()
        .skip(start - 1)
        .take(count.min(MAX_RESULTS))
        .cloned()
        .collect();
    Page {
        total: matching.len(),
        start_index: start,
        resources,
    }
}

// ---------------------------------------------------------------------------------------------
// Users

async fn all_members<S: TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
) -> Result<Vec<Member>, TenancyError> {
    let mut out: Vec<Member> = Vec::new();
    loop {
        let page = store
            .list_members(org, out.last().map(|m| m.user.id), 500)
            .await?;
        let done = page.len() < 500;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Every member as a User resource (in user-id order).
///
/// # Errors
/// [`TenancyError::Forbidden`]; storage errors.
pub async fn list_users<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
) -> Result<Vec<Value>, TenancyError> {
    caller.check_org(Permission::ViewMembers)?;
    let members = all_members(store, caller.org.id).await?;
    let records: HashMap<UserId, UserRecord> = store
        .user_records(caller.org.id)
        .await?
        .into_iter()
        .map(|r| (r.user, r))
        .collect();
    Ok(members
        .iter()
        .map(|m| render_user(base, m, records.get(&m.user.id)))
        .collect())
}

/// The User resources `filter` could match: when it is exactly `userName eq "…"` (the
/// identity providers' look-up before each creation), the member of that userName, found by
/// index ([`ScimStore::user_record_by_name`], or the email of a member without a record);
/// otherwise every member, as [`list_users`]. Either way [`page`] applies the filter to them.
///
/// # Errors
/// [`TenancyError::Forbidden`]; storage errors.
pub async fn list_users_for<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
    filter: Option<&Filter>,
) -> Result<Vec<Value>, TenancyError> {
    let Some(name) = filter.and_then(Filter::user_name_eq) else {
        return list_users(store, caller, base).await;
    };
    caller.check_org(Permission::ViewMembers)?;
    let org = caller.org.id;
    let mut found = Vec::new();
    if let Some(r) = store.user_record_by_name(org, name).await?
        && let Some(m) = store.get_member(org, r.user).await?
    {
        found.push(render_user(base, &m, Some(&r)));
    }
    if let Some(m) = recordless_member_named(store, org, name).await? {
        found.push(render_user(base, &m, None));
    }
    Ok(found)
}

/// The member of `org` without a record whose userName (their email, see [`render_user`]) is
/// `user_name` compared case-insensitively.
async fn recordless_member_named<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    org: OrgId,
    user_name: &str,
) -> Result<Option<Member>, TenancyError> {
    let key = user_name.to_lowercase();
    let Ok(email) = Email::parse(&key) else {
        return Ok(None);
    };
    if email.as_str() != key {
        return Ok(None);
    }
    let Some((user, _)) = store.find_user_by_email(&email).await? else {
        return Ok(None);
    };
    let Some(member) = store.get_member(org, user.id).await? else {
        return Ok(None);
    };
    Ok(store
        .user_record(org, user.id)
        .await?
        .is_none()
        .then_some(member))
}

/// One member as a User resource.
///
/// # Errors
/// [`TenancyError::NotFound`].
pub async fn get_user<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
    id: &str,
) -> Result<Value, TenancyError> {
    caller.check_org(Permission::ViewMembers)?;
    let (m, rec) = member_and_record(store, caller.org.id, id).await?;
    Ok(render_user(base, &m, rec.as_ref()))
}

async fn member_and_record<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    org: OrgId,
    id: &str,
) -> Result<(Member, Option<UserRecord>), TenancyError> {
    let user: UserId = id.parse().map_err(|_| TenancyError::NotFound("User"))?;
    let m = store
        .get_member(org, user)
        .await?
        .ok_or(TenancyError::NotFound("User"))?;
    let rec = store.user_record(org, user).await?;
    Ok((m, rec))
}

/// What a User document says, checked.
struct UserInput {
    record_attrs: Map<String, Value>,
    user_name: String,
    external_id: Option<String>,
    password: Option<String>,
}

fn user_input(body: &Value, require_schema: bool) -> Result<UserInput, ScimError> {
    if require_schema {
        check_schemas(body, USER_SCHEMA)?;
    }
    let mut attrs = schema::canonicalize(body, schema::USER_ATTRS)?;
    let user_name = match attrs.remove("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 && !s.contains('\0') => s,
        _ => {
            return Err(bad(
                "invalidValue",
                "`userName` must be a non-empty string of at most 256 characters, without U+0000",
            ));
        }
    };
    let password = match attrs.remove("password") {
        Some(Value::String(p)) => Some(p),
        _ => None,
    };
    let external_id = external_id(body)?;
    let primaries = attrs
        .get("emails")
        .and_then(Value::as_array)
        .map_or(0, |e| {
            e.iter().filter(|e| e["primary"] == json!(true)).count()
        });
    if primaries > 1 {
        return Err(bad("invalidValue", "at most one email may be primary"));
    }
    let size = serde_json::to_string(&attrs).map_or(0, |s| s.len());
    if size > 16 * 1024 {
        return Err(bad("invalidValue", "the resource is larger than 16 KiB"));
    }
    Ok(UserInput {
        record_attrs: attrs,
        user_name,
        external_id,
        password,
    })
}

/// `externalId`, common to every resource (not part of the declared schemas).
fn external_id(body: &Value) -> Result<Option<String>, ScimError> {
    match filter::get_ci(body, "externalId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 256 && !s.contains('\0') => Ok(Some(s.clone())),
        Some(_) => Err(bad(
            "invalidValue",
            "`externalId` must be a string of at most 256 characters, without U+0000",
        )),
    }
}

fn check_schemas(body: &Value, want: &str) -> Result<(), ScimError> {
    let ok = filter::get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(want)))
        });
    if ok {
        Ok(())
    } else {
        Err(bad(
            "invalidSyntax",
            format!("`schemas` must include {want}"),
        ))
    }
}

/// The product identity derived from a User document.
/// Name, login email, role (`None`: the document says nothing about it) and activation.
/// The address a document gives: its primary email, else another, else a `userName` that is
/// an address; `None` when it gives none that is usable.
fn usable_email(input: &UserInput) -> Option<Email> {
    let emails: Vec<&str> = input
        .record_attrs
        .get("emails")
        .and_then(Value::as_array)
        .map(|list| {
            let mut l: Vec<&Value> = list.iter().collect();
            l.sort_by_key(|e| e["primary"] != json!(true));
            l.into_iter().filter_map(|e| e["value"].as_str()).collect()
        })
        .unwrap_or_default();
    emails
        .iter()
        .find_map(|e| Email::parse(e).ok())
        .or_else(|| Email::parse(&input.user_name).ok())
}

fn derived(input: &UserInput, user: UserId) -> (String, Email, Option<OrgRole>, bool) {
    let a = &input.record_attrs;
    // No usable address: a placeholder in the reserved `.invalid` domain (RFC 2606), unique per
    // person, that can receive nothing.
    let email = usable_email(input).unwrap_or_else(|| {
        Email::parse(&format!("{}@scim.invalid", user.as_uuid().simple()))
            .unwrap_or_else(|_| unreachable_email())
    });
    let name_of = |k: &str| a.get("name").and_then(|n| n.get(k)).and_then(Value::as_str);
    let given_family = match (name_of("givenName"), name_of("familyName")) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
        (None, None) => None,
    };
    let name = a
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| name_of("formatted").map(str::to_owned))
        .or(given_family)
        .unwrap_or_else(|| input.user_name.clone());
    // A display name as an identity provider sends it, kept printable: control characters
    // (a tab, a line break, U+0000, which PostgreSQL's `text` cannot hold) become spaces.
    let printable = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        s.trim().chars().take(200).collect()
    };
    let name = [printable(&name), printable(&input.user_name)]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| "SCIM user".to_owned());
    // Only a document that carries roles changes the role: an identity provider that does not
    // manage roles never demotes anyone by leaving them out.
    let role = a
        .get("roles")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let admin = r.iter().any(|x| {
                x["value"]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case("admin"))
            });
            if admin { OrgRole::Admin } else { OrgRole::User }
        });
    let active = a.get("active").and_then(Value::as_bool).unwrap_or(true);
    (name, email, role, active)
}

#[allow(clippy::panic, reason = "a fixed, valid address")]
fn unreachable_email() -> Email {
    match Email::parse("nobody@scim.invalid") {
        Ok(e) => e,
        Err(_) => panic!("the placeholder address parses"),
    }
}

async fn check_user_name_free<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    org: OrgId,
    user_name: &str,
    except: Option<UserId>,
) -> Result<(), ScimError> {
    // Two look-ups by index, not a walk of the members: this runs before every creation and
    // replacement of a User.
    let taken_by_record = store
        .user_record_by_name(org, user_name)
        .await?
        .is_some_and(|r| Some(r.user) != except);
    let taken_by_member = !taken_by_record
        && recordless_member_named(store, org, user_name)
            .await?
            .is_some_and(|m| Some(m.user.id) != except);
    if taken_by_record || taken_by_member {
        return Err(ScimError::Uniqueness(format!(
            "userName `{user_name}` is already in use"
        )));
    }
    Ok(())
}

fn password_hash(
    caller: &Caller,
    hasher: &PasswordHasher,
    password: Option<&str>,
    email: &Email,
) -> Result<Option<String>, ScimError> {
    let Some(p) = password else {
        return Ok(None);
    };
    if p.len() > crate::accounts::MAX_PASSWORD_BYTES {
        return Err(bad("invalidValue", "the password is too long"));
    }
    check_password(
        &caller.org.security.passwords,
        p,
        &context_words(email.as_str(), &caller.org.name),
        false,
    )
    .map_err(|e| bad("invalidValue", e.to_string()))?;
    hasher
        .hash(p)
        .map(Some)
        .map_err(|e| ScimError::Tenancy(TenancyError::Invalid(e.to_string())))
}

/// Creates a member from a User document (`POST /Users`); then, as an invitation does, sends
/// the member alerts the seats now reach ([`crate::metering::alert_on_seats`]).
///
/// # Errors
/// [`ScimError`]: bad document, userName or email in use (409), member limit, authorization.
pub async fn create_user<
    S: TenancyStore
        + ScimStore
        + crate::metering::MeteringStore
        + crate::store::InvitationStore
        + ?Sized,
>(
    store: &S,
    caller: &Caller,
    hasher: &PasswordHasher,
    base: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    caller.check_org(Permission::InviteMembers)?;
    let input = user_input(body, true)?;
    check_user_name_free(store, caller.org.id, &input.user_name, None).await?;
    let id = UserId::new();
    let (name, email, role, active) = derived(&input, id);
    let role = role.unwrap_or(OrgRole::User);
    if store.find_user_by_email(&email).await?.is_some() {
        return Err(ScimError::Uniqueness(format!(
            "an account with the email {} exists; invite that person instead",
            email.as_str()
        )));
    }
    let hash = password_hash(caller, hasher, input.password.as_deref(), &email)?;
    let user = User {
        id,
        email: email.clone(),
        name: name.clone(),
        created_at: now,
    };
    let record = UserRecord {
        user: id,
        user_name: input.user_name,
        external_id: input.external_id,
        attributes: input.record_attrs,
        version: 1,
        updated_at: now,
    };
    let team = store.default_team(caller.org.id).await?;
    let limits = caller.org.limits();
    let journal = Journal::record(
        caller
            .audit(now, AuditAction::MemberAdded, Target::new("member", id, name.clone()))
            .with_metadata(Metadata::from_value(json!({
                "role": role.as_str(), "via": "scim", "active": active,
            }))?),
    )
    .publish(DomainEvent::new(caller.org.id, EventKind::UserCreated, now, json!({
        "userId": id, "email": email.as_str(), "role": role.as_str(), "via": "scim", "active": active,
    })));
    store
        .provision_member(
            caller.org.id,
            &user,
            hash.as_deref(),
            &record,
            role,
            active,
            team.id,
            &limits,
            Some(caller.user.id),
            journal,
        )
        .await
        .map_err(conflict_is_uniqueness)?;
    crate::metering::alert_on_seats(store, &caller.org, now).await;
    let m = Member {
        org: caller.org.id,
        user,
        role,
        joined_at: now,
        deactivated_at: (!active).then_some(now),
        all_teams: None,
    };
    Ok(render_user(base, &m, Some(&record)))
}

/// The store's [`TenancyError::Conflict`] from a SCIM write is a duplicate value (its version
/// races are [`TenancyError::Changed`], which stays a plain 409).
fn conflict_is_uniqueness(e: TenancyError) -> ScimError {
    match e {
        TenancyError::Conflict(m) => ScimError::Uniqueness(m),
        other => ScimError::Tenancy(other),
    }
}

fn check_version(if_match: Option<&str>, version: i64) -> Result<(), ScimError> {
    match if_match.map(str::trim) {
        None | Some("*") => Ok(()),
        Some(v) if v == etag(version) || v.trim_start_matches("W/") == format!("\"{version}\"") => {
            Ok(())
        }
        Some(_) => Err(ScimError::PreconditionFailed(etag(version))),
    }
}

/// [`check_version`] for a member's User resource, against [`user_etag`].
fn check_user_version(if_match: Option<&str>, version: i64, m: &Member) -> Result<(), ScimError> {
    let current = user_etag(version, m);
    match if_match.map(str::trim) {
        None | Some("*") => Ok(()),
        Some(v)
            if v == current || v.trim_start_matches("W/") == current.trim_start_matches("W/") =>
        {
            Ok(())
        }
        Some(_) => Err(ScimError::PreconditionFailed(current)),
    }
}

/// Replaces a member's User document (`PUT /Users/{id}`).
///
/// # Errors
/// [`ScimError`]: as [`create_user`], plus 404, 412 and the Owner's protection.
#[allow(clippy::too_many_arguments, reason = "the request's parts")]
pub async fn replace_user<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    hasher: &PasswordHasher,
    base: &str,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    let (m, rec) = member_and_record(store, caller.org.id, id).await?;
    check_user_version(if_match, rec.as_ref().map_or(0, |r| r.version), &m)?;
    write_user(store, caller, hasher, base, &m, rec, body, now).await
}

/// Applies a `PatchOp` to a member's User document (`PATCH /Users/{id}`).
///
/// # Errors
/// [`ScimError`]: as [`replace_user`], plus bad operations.
#[allow(clippy::too_many_arguments, reason = "the request's parts")]
pub async fn patch_user<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    hasher: &PasswordHasher,
    base: &str,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    let (m, rec) = member_and_record(store, caller.org.id, id).await?;
    check_user_version(if_match, rec.as_ref().map_or(0, |r| r.version), &m)?;
    let mut doc = render_user(base, &m, rec.as_ref());
    patch::apply(&mut doc, body)?;
    write_user(store, caller, hasher, base, &m, rec, &doc, now).await
}

/// The store's refusal of a SCIM write of a sign-in (email or password) whose account joined
/// another organization, or whose person became the Owner, after the service checked
/// [`credentials_are_the_orgs`]: nothing is written; read the member again.
#[must_use]
pub fn credentials_changed_hands() -> TenancyError {
    TenancyError::Changed(
        "the account now belongs to another organization too, or its person is the Owner; \
         its email, password and name are no longer this organization's to change"
            .into(),
    )
}

/// Whether the organization's identity provider may change `m`'s login email, password and
/// display name: the
/// account is one global sign-in, so only when this organization is the only one it belongs to,
/// and never the Owner's (whose account would otherwise be taken over by whoever holds a SCIM
/// token).
async fn credentials_are_the_orgs<S: TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
    m: &Member,
) -> Result<bool, ScimError> {
    if m.role == OrgRole::Owner {
        return Ok(false);
    }
    Ok(store
        .memberships(m.user.id)
        .await?
        .iter()
        .all(|ms| ms.org == org))
}

#[allow(clippy::too_many_arguments, reason = "the change's parts")]
async fn write_user<S: TenancyStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    hasher: &PasswordHasher,
    base: &str,
    m: &Member,
    rec: Option<UserRecord>,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    caller.check_org(Permission::ViewMembers)?;
    let input = user_input(body, false)?;
    check_user_name_free(store, caller.org.id, &input.user_name, Some(m.user.id)).await?;
    let (name, email, role, active) = derived(&input, m.user.id);
    // A document that gives no usable address (a replace with a `userName` that is not one, and
    // no `emails`) leaves the member's address as it is rather than lock them out behind a
    // placeholder.
    let email = if usable_email(&input).is_some() {
        email
    } else {
        m.user.email.clone()
    };
    let mut role = role.unwrap_or(m.role);
    let is_owner = m.role == OrgRole::Owner;
    if is_owner {
        // The Owner is never demoted or deactivated from the identity provider.
        role = OrgRole::Owner;
        if !active {
            return Err(ScimError::Protected {
                reason: "owner_protected",
                detail: "the Owner cannot be deactivated through SCIM".into(),
            });
        }
    }
    let role_change = (role != m.role).then_some(role);
    if let Some(new) = role_change {
        caller.check_org(Permission::ChangeRoles)?;
        check_role_change(&caller.subject, m.user.id, m.role, new).map_err(TenancyError::from)?;
    }
    let was_active = m.deactivated_at.is_none();
    let active_change = (active != was_active).then_some(active);
    if active_change.is_some() {
        caller.check_org(Permission::RemoveMembers)?;
        check_removal(&caller.subject, m.user.id, m.role).map_err(TenancyError::from)?;
    }
    let own = if email != m.user.email || input.password.is_some() || name != m.user.name {
        credentials_are_the_orgs(store, caller.org.id, m).await?
    } else {
        true
    };
    // The display name belongs to the account too, which every organization of the person
    // shows: an identity provider's spelling of it is kept only for an account this
    // organization alone holds; for any other it is left as the person set it (the rest of
    // the write, a deactivation say, still applies).
    let name = if own { name } else { m.user.name.clone() };
    if (email != m.user.email || input.password.is_some()) && !own {
        return Err(ScimError::Protected {
            reason: "credentials_not_owned",
            detail: "this account's email and password are the person's own (they are the Owner or belong \
             to another organization too); SCIM may change them only for accounts this \
             organization alone holds"
                .into(),
        });
    }
    // Looked up only for an account this organization alone holds: for any other the write
    // was refused above, whether or not the address has an account, so that these answers
    // cannot be used to find out which addresses have accounts elsewhere.
    if email != m.user.email
        && let Some((other, _)) = store.find_user_by_email(&email).await?
        && other.id != m.user.id
    {
        return Err(ScimError::Uniqueness(format!(
            "the email {} belongs to another account",
            email.as_str()
        )));
    }
    let hash = password_hash(caller, hasher, input.password.as_deref(), &email)?;
    let version = rec.as_ref().map_or(0, |r| r.version);
    let record = UserRecord {
        user: m.user.id,
        user_name: input.user_name,
        external_id: input.external_id,
        attributes: input.record_attrs,
        version: version + 1,
        updated_at: now,
    };
    let target = Target::new("member", m.user.id, name.clone());
    let mut changed: Vec<&str> = Vec::new();
    if name != m.user.name {
        changed.push("name");
    }
    if email != m.user.email {
        changed.push("email");
    }
    if hash.is_some() {
        changed.push("password");
    }
    let mut journal = Journal::record(
        caller
            .audit(now, AuditAction::MemberUpdated, target.clone())
            .with_metadata(Metadata::from_value(
                json!({"via": "scim", "changed": changed}),
            )?),
    );
    if let Some(new) = role_change {
        journal = journal.and_record(
            caller
                .audit(now, AuditAction::RoleChanged, target.clone())
                .with_metadata(Metadata::from_value(json!({
                    "from": m.role.as_str(), "to": new.as_str(), "via": "scim",
                }))?),
        );
    }
    if let Some(a) = active_change {
        let action = if a {
            AuditAction::MemberReactivated
        } else {
            AuditAction::MemberDeactivated
        };
        journal = journal.and_record(caller.audit(now, action, target.clone()));
    }
    if let Some(new) = role_change {
        journal = journal.publish(DomainEvent::new(
            caller.org.id,
            EventKind::RoleChanged,
            now,
            json!({
                "change": "role", "userId": m.user.id, "email": email.as_str(), "previousRole": m.role.as_str(),
                "role": new.as_str(), "changedBy": caller.user.id, "via": "scim",
            }),
        ));
    }
    let journal = journal.publish(DomainEvent::new(
        caller.org.id,
        EventKind::UserUpdated,
        now,
        json!({
            "userId": m.user.id, "email": email.as_str(), "role": role.as_str(), "active": active,
            "changed": changed, "via": "scim",
        }),
    ));
    let write = MemberWrite {
        org: caller.org.id,
        user: m.user.id,
        expected_version: rec.as_ref().map(|r| r.version),
        record: record.clone(),
        name: name.clone(),
        email: email.clone(),
        password_hash: hash,
        role: role_change.map(|to| (m.role, to)),
        active: active_change,
        by: Some(caller.user.id),
        now,
    };
    // Each session the write ends is recorded, as a sign-out by the Owner or an Admin is.
    let reason = if write.password_hash.is_some() {
        "password_set"
    } else {
        "member_deactivated"
    };
    let revoked = caller
        .audit(now, AuditAction::SessionRevoked, target.clone())
        .with_metadata(
            Metadata::from_value(json!({"reason": reason, "via": "scim"})).unwrap_or_default(),
        );
    let ended = |n: u64| crate::each_session(&revoked, n);
    store
        .write_member(&write, journal, &ended)
        .await
        .map_err(conflict_is_uniqueness)?;
    let after = Member {
        org: caller.org.id,
        user: User {
            id: m.user.id,
            email,
            name,
            created_at: m.user.created_at,
        },
        role,
        joined_at: m.joined_at,
        deactivated_at: if active {
            None
        } else {
            m.deactivated_at.or(Some(now))
        },
        all_teams: m.all_teams,
    };
    Ok(render_user(base, &after, Some(&record)))
}

/// Removes a member (`DELETE /Users/{id}`): the API's removal, with the person's resources
/// handed to the Owner so nothing is lost.
///
/// # Errors
/// [`TenancyError::NotFound`]; the Owner (and the token's creator) cannot be removed.
pub async fn delete_user<S: TenancyStore + MembershipStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let user: UserId = id.parse().map_err(|_| TenancyError::NotFound("User"))?;
    let owner = crate::orgs::owner_of(store, caller.org.id).await?;
    crate::members::remove(
        store,
        caller,
        user,
        Disposition::TransferToOwner(owner.user.id),
        now,
    )
    .await
    .map_err(|e| e.not_found_as("User"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Groups

/// Every team as a Group resource.
///
/// # Errors
/// [`TenancyError::Forbidden`]; storage errors.
pub async fn list_groups<S: TenancyStore + WorkspaceStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
) -> Result<Vec<Value>, TenancyError> {
    caller.check_org(Permission::ViewMembers)?;
    let teams = store.list_teams(caller.org.id).await?;
    let records = store.group_records(caller.org.id).await?;
    let mut out = Vec::with_capacity(teams.len());
    for t in &teams {
        let members: Vec<Member> = store
            .team_members(caller.org.id, t.id)
            .await?
            .into_iter()
            .filter_map(group_member)
            .collect();
        out.push(render_group(
            base,
            t,
            records.iter().find(|r| r.team == t.id),
            &members,
        ));
    }
    Ok(out)
}

async fn group_parts<S: TenancyStore + WorkspaceStore + ScimStore + ?Sized>(
    store: &S,
    org: OrgId,
    id: &str,
) -> Result<(Team, Option<GroupRecord>, Vec<Member>), TenancyError> {
    let team: TeamId = id.parse().map_err(|_| TenancyError::NotFound("Group"))?;
    let t = store
        .get_team(org, team)
        .await?
        .ok_or(TenancyError::NotFound("Group"))?;
    let rec = store.group_record(org, team).await?;
    let members = store
        .team_members(org, team)
        .await?
        .into_iter()
        .filter_map(group_member)
        .collect();
    Ok((t, rec, members))
}

/// A Group's members are those the identity provider (or an admin) put in the team: a role in
/// every team is the organization's to give, and not the group's to take away.
fn group_member(m: crate::teams::TeamMember) -> Option<Member> {
    m.assigned.map(|_| m.member)
}

/// One team as a Group resource.
///
/// # Errors
/// [`TenancyError::NotFound`].
pub async fn get_group<S: TenancyStore + WorkspaceStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
    id: &str,
) -> Result<Value, TenancyError> {
    caller.check_org(Permission::ViewMembers)?;
    let (t, rec, members) = group_parts(store, caller.org.id, id).await?;
    Ok(render_group(base, &t, rec.as_ref(), &members))
}

struct GroupInput {
    name: String,
    external_id: Option<String>,
    members: Vec<Value>,
}

fn group_input(body: &Value, require_schema: bool) -> Result<GroupInput, ScimError> {
    if require_schema {
        check_schemas(body, GROUP_SCHEMA)?;
    }
    let mut attrs = schema::canonicalize(body, schema::GROUP_ATTRS)?;
    let name = match attrs.remove("displayName") {
        Some(Value::String(s)) => valid_name("displayName", &s)?,
        _ => return Err(bad("invalidValue", "`displayName` is required")),
    };
    let external_id = external_id(body)?;
    let members = match attrs.remove("members") {
        Some(Value::Array(m)) => m,
        _ => Vec::new(),
    };
    if members.len() > 10_000 {
        return Err(bad("invalidValue", "at most 10000 members per request"));
    }
    Ok(GroupInput {
        name,
        external_id,
        members,
    })
}

/// The organization members a `members` list names (unknown values are kept in the record
/// but change nothing).
async fn named_members<S: TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
    entries: &[Value],
) -> Result<Vec<UserId>, TenancyError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for e in entries {
        let Some(u) = filter::get_ci(e, "value")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<UserId>().ok())
        else {
            continue;
        };
        if seen.insert(u) && store.get_member(org, u).await?.is_some() {
            out.push(u);
        }
    }
    Ok(out)
}

/// Creates a team from a Group document (`POST /Groups`).
///
/// # Errors
/// [`ScimError`]: bad document, name in use (409), authorization.
pub async fn create_group<S: TenancyStore + WorkspaceStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    caller.check_org(Permission::CreateTeam)?;
    let input = group_input(body, true)?;
    let add = named_members(store, caller.org.id, &input.members).await?;
    let team = Team {
        id: TeamId::new(),
        org: caller.org.id,
        name: input.name,
        is_default: false,
        created_at: now,
        archived_at: None,
    };
    let record = GroupRecord {
        team: team.id,
        external_id: input.external_id,
        members: input.members,
        version: 1,
        updated_at: now,
    };
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::TeamCreated,
                Target::new("team", team.id, team.name.clone()),
            )
            .in_team(team.id)
            .with_metadata(Metadata::from_value(
                json!({"via": "scim", "members": add.len()}),
            )?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::TeamCreated,
        now,
        json!({
            "teamId": team.id, "name": team.name, "members": add, "via": "scim",
        }),
    ));
    store
        .write_group(
            &GroupWrite {
                team: team.clone(),
                create: true,
                expected_version: None,
                record: record.clone(),
                add: add.clone(),
                remove: Vec::new(),
                by: Some(caller.user.id),
            },
            journal,
        )
        .await
        .map_err(conflict_is_uniqueness)?;
    let (t, rec, members) = group_parts(store, caller.org.id, &team.id.to_string()).await?;
    Ok(render_group(base, &t, rec.as_ref(), &members))
}

/// Replaces a Group document (`PUT /Groups/{id}`): name, externalId and the full member list.
///
/// # Errors
/// [`ScimError`].
#[allow(clippy::too_many_arguments, reason = "the request's parts")]
pub async fn replace_group<S: TenancyStore + WorkspaceStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    let (t, rec, members) = group_parts(store, caller.org.id, id).await?;
    check_version(if_match, rec.as_ref().map_or(0, |r| r.version))?;
    write_group(store, caller, base, t, rec, &members, body, now).await
}

/// Applies a `PatchOp` to a Group (`PATCH /Groups/{id}`), typically members added or removed.
///
/// # Errors
/// [`ScimError`].
#[allow(clippy::too_many_arguments, reason = "the request's parts")]
pub async fn patch_group<S: TenancyStore + WorkspaceStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    let (t, rec, members) = group_parts(store, caller.org.id, id).await?;
    check_version(if_match, rec.as_ref().map_or(0, |r| r.version))?;
    let mut doc = render_group(base, &t, rec.as_ref(), &members);
    // Entries naming no member of the organization are not rendered but were accepted: keep
    // them in the document the operations apply to, so a later remove of them succeeds. Entries
    // naming a member are rendered from the team as it is: a member taken off the team in the
    // product since stays off (merged back, they would be added again by any PATCH).
    if let Some(r) = rec.as_ref() {
        let members_named: HashSet<UserId> = named_members(store, caller.org.id, &r.members)
            .await?
            .into_iter()
            .collect();
        let unnamed = r.members.iter().filter(|e| {
            !filter::get_ci(e, "value")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<UserId>().ok())
                .is_some_and(|u| members_named.contains(&u))
        });
        for e in unnamed {
            let Some(Value::Array(list)) = doc
                .as_object_mut()
                .map(|o| o.entry("members").or_insert_with(|| json!([])))
            else {
                break;
            };
            if !list.iter().any(|x| x.get("value") == e.get("value")) {
                list.push(e.clone());
            }
        }
    }
    patch::apply(&mut doc, body)?;
    write_group(store, caller, base, t, rec, &members, &doc, now).await
}

#[allow(clippy::too_many_arguments, reason = "the change's parts")]
async fn write_group<S: TenancyStore + WorkspaceStore + ScimStore + ?Sized>(
    store: &S,
    caller: &Caller,
    base: &str,
    t: Team,
    rec: Option<GroupRecord>,
    current: &[Member],
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Value, ScimError> {
    caller.check(
        Permission::ManageTeamMembers,
        &rbac_core::Resource::team(t.org, t.id),
    )?;
    let input = group_input(body, false)?;
    let wanted = named_members(store, caller.org.id, &input.members).await?;
    let (wanted_set, current_set): (HashSet<UserId>, HashSet<UserId>) = (
        wanted.iter().copied().collect(),
        current.iter().map(|m| m.user.id).collect(),
    );
    let add: Vec<UserId> = wanted
        .iter()
        .filter(|u| !current_set.contains(u))
        .copied()
        .collect();
    let remove: Vec<UserId> = current
        .iter()
        .map(|m| m.user.id)
        .filter(|u| !wanted_set.contains(u))
        .collect();
    // An archived team keeps its people and takes no one new, as for invitations: the store
    // refuses `add` in its transaction (`teams::archived_team`).
    if input.name != t.name {
        caller.check(
            Permission::ManageTeam,
            &rbac_core::Resource::team(t.org, t.id),
        )?;
    }
    let version = rec.as_ref().map_or(0, |r| r.version);
    let record = GroupRecord {
        team: t.id,
        external_id: input.external_id,
        members: input.members,
        version: version + 1,
        updated_at: now,
    };
    let after = Team {
        name: input.name,
        ..t.clone()
    };
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::TeamUpdated,
                Target::new("team", t.id, after.name.clone()),
            )
            .in_team(t.id)
            .with_metadata(Metadata::from_value(json!({
                "via": "scim", "renamed": after.name != t.name, "added": add, "removed": remove,
            }))?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::TeamUpdated,
        now,
        json!({
            "teamId": t.id, "name": after.name, "added": add, "removed": remove, "via": "scim",
        }),
    ));
    store
        .write_group(
            &GroupWrite {
                team: after,
                create: false,
                expected_version: rec.as_ref().map(|r| r.version),
                record,
                add,
                remove,
                by: Some(caller.user.id),
            },
            journal,
        )
        .await
        .map_err(conflict_is_uniqueness)?;
    let (t, rec, members) = group_parts(store, caller.org.id, &t.id.to_string()).await?;
    Ok(render_group(base, &t, rec.as_ref(), &members))
}

/// Deletes a team (`DELETE /Groups/{id}`) through the API's rule: never the default team, and
/// only one that holds no resources.
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Invalid`], [`TenancyError::Conflict`].
pub async fn delete_group<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let team: TeamId = id.parse().map_err(|_| TenancyError::NotFound("Group"))?;
    if store.get_team(caller.org.id, team).await?.is_none() {
        return Err(TenancyError::NotFound("Group"));
    }
    crate::teams::delete(store, caller, team, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stores_conflict_is_a_uniqueness_conflict() {
        assert!(matches!(
            conflict_is_uniqueness(TenancyError::Conflict("userName taken".into())),
            ScimError::Uniqueness(_)
        ));
        assert!(matches!(
            conflict_is_uniqueness(TenancyError::Changed("changed meanwhile".into())),
            ScimError::Tenancy(TenancyError::Changed(_))
        ));
    }

    /// A display name keeps no control character (U+0000 among them, which PostgreSQL's
    /// `text` cannot hold): each becomes a space.
    #[test]
    fn a_display_name_is_kept_printable() {
        let body = json!({"schemas": [USER_SCHEMA], "userName": "ann@example.org",
                          "displayName": " Ann\u{0}Lee\tX\n"});
        let input = user_input(&body, true).unwrap();
        let (name, ..) = derived(&input, UserId::new());
        assert_eq!(name, "Ann Lee X");
        let body = json!({"schemas": [USER_SCHEMA], "userName": "ann@example.org",
                          "displayName": "\u{0}\u{1}"});
        let (name, ..) = derived(&user_input(&body, true).unwrap(), UserId::new());
        assert_eq!(name, "ann@example.org", "nothing printable: the userName");
    }

    /// U+0000 is refused in the strings kept in their own columns, whatever the store: a
    /// PostgreSQL `text` cannot hold it.
    #[test]
    fn a_nul_character_is_refused_in_user_name_and_external_id() {
        let doc = |user_name: &str, external_id: &str| {
            json!({"schemas": [USER_SCHEMA], "userName": user_name, "externalId": external_id,
                   "emails": [{"value": "ann@example.org", "primary": true}]})
        };
        assert!(user_input(&doc("ann@example.org", "ext-1"), true).is_ok());
        for body in [
            doc("ann\u{0}@example.org", "ext-1"),
            doc("ann@example.org", "ext\u{0}1"),
        ] {
            assert!(
                matches!(
                    user_input(&body, true),
                    Err(ScimError::BadRequest {
                        scim_type: "invalidValue",
                        ..
                    })
                ),
                "{body}"
            );
        }
    }
}
