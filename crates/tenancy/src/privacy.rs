//! GDPR: a person's personal data exported as JSON (right of access), erased (right to be
//! forgotten) without breaking the audit chain, and consent records granted and withdrawn.
//!
//! The audit chain hashes only pseudonymous fields (ids, actions, times), so erasure blanks the
//! names, addresses and user agents that identify the person and keeps every record: the chain
//! still verifies and the history still says *that* something happened, not *who* did it.

use async_trait::async_trait;
use audit::{
    AuditAction, AuditQuery, AuditStore, DomainEvent, EventKind, Journal, Metadata, Target,
};
use chrono::{DateTime, Utc};
use rbac_core::{ConsentId, Credential, DenyReason, OrgId, Permission, UserId, check_removal};
use serde::Serialize;
use serde_json::{Value, json};

use crate::assets::{AssetFilter, AssetKind};
use crate::caller::Caller;
use crate::error::TenancyError;
use crate::members::{Disposition, RemovalReport};
use crate::store::{MembershipStore, TenancyStore, WorkspaceStore};

/// Audit records at most included in one export (newest first; the export says when it is cut).
pub const MAX_EXPORTED_AUDIT_RECORDS: usize = 10_000;

/// Purposes at most that one person decides on in one organization: the decisions a person
/// can pile up are bounded (a decision that restates the current one records nothing).
pub const MAX_CONSENT_PURPOSES: usize = 50;

/// A consent decision being made: what [`PrivacyStore::record_consent`] keeps, with the id it
/// gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDecision {
    /// The organization asking.
    pub org: OrgId,
    /// The person deciding.
    pub user: UserId,
    /// What for (a slug).
    pub purpose: String,
    /// Granted (`true`) or withdrawn (`false`).
    pub granted: bool,
    /// When.
    pub at: DateTime<Utc>,
}

impl ConsentDecision {
    /// The decision as kept, under `id`.
    #[must_use]
    pub fn kept_as(&self, id: ConsentId) -> ConsentRecord {
        ConsentRecord {
            id,
            org: self.org,
            user: self.user,
            purpose: self.purpose.clone(),
            granted: self.granted,
            at: self.at,
        }
    }
}

/// One consent decision, kept forever (the current state is the newest per purpose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    /// The decision's id, given by the store in the decision's transaction
    /// ([`ConsentId::next_after`] the person's newest): one person's decisions are in id order.
    pub id: ConsentId,
    /// The organization asking.
    pub org: OrgId,
    /// The person deciding.
    pub user: UserId,
    /// What for, a slug such as `product_analytics` or `marketing_email`.
    pub purpose: String,
    /// Granted (`true`) or withdrawn (`false`).
    pub granted: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ErasureReport {
    /// The membership's removal (resources handed to the Owner, keys and sessions ended).
    pub removal: RemovalReport,
    /// Audit records whose personal annotations were blanked.
    pub audit_records_erased: u64,
    /// Whether the account itself was anonymized (the person had no other organization).
    pub account_anonymized: bool,
    /// Stored event bodies that named them (webhook deliveries, queued or sent, and the
    /// event outbox), rewritten by [`scrub_event_json`]. Zero for a store that keeps none.
    pub event_bodies_erased: u64,
}

/// A person's addresses in an organization, for an erasure: `current` (the account's), then
/// the addresses of the invitations to the organization they accepted (`accepted`: address and
/// when they accepted; an identity provider may have changed the address since), unless the
/// address went to someone else since: another account holds it now (`held`), or the
/// organization invited someone at it after they accepted (`others`: the address and when it
/// was sent, of the invitations to these addresses they did not accept). Their own earlier,
/// unaccepted invitations to an address do not count against it. Both stores' erasures ask it.
#[must_use]
pub fn addresses_to_erase(
    current: &str,
    accepted: &[(String, Option<DateTime<Utc>>)],
    others: &[(String, DateTime<Utc>)],
    held: &[String],
) -> Vec<String> {
    let mut addresses = vec![current.to_owned()];
    for (a, _) in accepted {
        // When they last accepted an invitation at this address.
        let since = accepted
            .iter()
            .filter(|(b, _)| b == a)
            .filter_map(|(_, at)| *at)
            .max();
        let reissued = others
            .iter()
            .any(|(b, sent)| b == a && since.is_some_and(|s| *sent > s));
        if !held.contains(a) && !reissued && !addresses.contains(a) {
            addresses.push(a.clone());
        }
    }
    addresses
}

/// The address that replaces an erased person's email wherever it was kept: one per person,
/// and never deliverable (`.invalid`, RFC 2606).
#[must_use]
pub fn erased_address(user: UserId) -> String {
    format!("erased-{}{ERASED_DOMAIN}", user.as_uuid().simple())
}

/// The domain of every [`erased_address`], with its `@`.
pub const ERASED_DOMAIN: &str = "@erased.invalid";

/// An event body (a webhook payload, queued or already sent, or an outbox event's data) with a
/// person's identity taken out: every JSON string that is exactly their `email` becomes
/// [`erased_address`], and a `"byName"` that is exactly their `name` becomes
/// [`audit::ERASED`] when the body's `"by"` is their id (so a namesake's events keep theirs).
/// The rest of the text is kept byte for byte. `None` when the body names neither.
///
/// The body is compact JSON as `serde_json` writes it, where every quote inside a string is
/// escaped: a quoted token matches a whole string value, except after an escaped quote
/// (`"\"ivy@example.org"`), which our event bodies never hold.
#[must_use]
pub fn scrub_event_json(
    body: &str,
    user: UserId,
    email: &str,
    name: &str,
) -> Option<ScrubbedEvent> {
    let [email_token, name_field] = event_search_tokens(email, name);
    let by_them = format!("\"by\":{}", Value::from(user.to_string()));
    let had_email = body.contains(&email_token);
    let had_name = body.contains(&name_field) && body.contains(&by_them);
    if !had_email && !had_name {
        return None;
    }
    let mut out = body.to_owned();
    if had_email {
        out = out.replace(&email_token, &Value::from(erased_address(user)).to_string());
    }
    if had_name {
        out = out.replace(
            &name_field,
            &format!("\"byName\":{}", Value::from(audit::ERASED)),
        );
    }
    Some(ScrubbedEvent {
        body: out,
        had_email,
        had_name,
    })
}

/// The fields of an event body that hold a person's id, each with the field beside it that
/// holds the address they had when the event was made (`user.created`, `user.updated`,
/// `member.removed`, `role.changed`, …: `userId` and `email`; `user.created`'s inviter:
/// `invitedById` and `invitedBy`).
const ADDRESSES_BY_ID: [(&str, &str); 2] = [("userId", "email"), ("invitedById", "invitedBy")];

/// The addresses an event body gives the person by their id ([`ADDRESSES_BY_ID`]), anywhere in
/// it (an event's data, or a webhook envelope's `data`), each once: the addresses they had when
/// the event was made. An identity provider may have changed the address since, which then
/// neither their account nor their invitations show any more; an erasure scrubs these too
/// ([`scrub_event_json`] for each). Empty when the body is not JSON or does not name them.
#[must_use]
pub fn addresses_given_by_id(body: &str, user: UserId) -> Vec<String> {
    given_by_id(body, user, &ADDRESSES_BY_ID)
}

/// The field of an event body that holds the id of the person who acted, and the field beside
/// it that holds their name at the time (workspace events: `by` and `byName`).
const NAMES_BY_ID: [(&str, &str); 1] = [("by", "byName")];

/// The names an event body gives the person as its actor by their id ([`NAMES_BY_ID`]),
/// anywhere in it, each once: the names they had when the events were made, which may not be
/// their name now (they renamed themselves since). An erasure scrubs these too.
#[must_use]
pub fn names_given_by_id(body: &str, user: UserId) -> Vec<String> {
    given_by_id(body, user, &NAMES_BY_ID)
}

/// The values of the second fields of `pairs` in every object of `body` whose first field is
/// `user`'s id, each once.
fn given_by_id(body: &str, user: UserId, pairs: &[(&str, &str)]) -> Vec<String> {
    fn walk(v: &Value, id: &str, pairs: &[(&str, &str)], out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (id_field, value_field) in pairs {
                    if o.get(*id_field).and_then(Value::as_str) == Some(id)
                        && let Some(a) = o.get(*value_field).and_then(Value::as_str)
                        && !out.iter().any(|b| b == a)
                    {
                        out.push(a.to_owned());
                    }
                }
                o.values().for_each(|v| walk(v, id, pairs, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, id, pairs, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let id = user.to_string();
    // Only bodies that hold the id as a whole string are parsed.
    if !body.contains(&Value::from(id.as_str()).to_string()) {
        return out;
    }
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        walk(&v, &id, pairs, &mut out);
    }
    out
}

/// An event body [`scrub_event_json`] rewrote, and what of the person it carried (what a
/// templated message made from the event can hold: [`scrub_message_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubbedEvent {
    /// The body without them.
    pub body: String,
    /// It held their email.
    pub had_email: bool,
    /// It named them as its actor (`byName`).
    pub had_name: bool,
}

/// The texts that find, among stored event bodies, those [`scrub_event_json`] may change:
/// the person's email as a JSON string, and their `"byName"` field, as `serde_json` writes
/// them (a store searches with these, then lets `scrub_event_json` decide).
#[must_use]
pub fn event_search_tokens(email: &str, name: &str) -> [String; 2] {
    [
        Value::from(email).to_string(),
        format!("\"byName\":{}", Value::from(name)),
    ]
}

/// The texts that find, among stored event bodies, those that give the person an address or a
/// name by their id ([`addresses_given_by_id`], [`names_given_by_id`]): each id field with
/// their id, as `serde_json` writes it.
#[must_use]
pub fn id_search_tokens(user: UserId) -> Vec<String> {
    let id = Value::from(user.to_string());
    ADDRESSES_BY_ID
        .iter()
        .chain(NAMES_BY_ID.iter())
        .map(|(field, _)| format!("\"{field}\":{id}"))
        .collect()
}

/// How the subjects of the mails that name their sender begin (invitations they sent,
/// ownership transfers they proposed or withdrew), for a sender called `name`: an erasure of
/// theirs finds these mails by their subject (while nobody else in the organization has the
/// name), as some hold no address of theirs.
#[must_use]
pub fn subjects_naming(name: &str) -> [String; 3] {
    [
        crate::invitations::subject_prefix(name),
        crate::members::transfer_proposed_prefix(name),
        crate::members::transfer_withdrawn_prefix(name),
    ]
}

/// A SCIM group's `members` entries without those naming `user` (`"value"`: their id), which
/// carry the name the identity provider gave them (`"display"`); `None` when none names them.
/// An erasure writes what this returns.
#[must_use]
pub fn group_members_without(members: &[Value], user: UserId) -> Option<Vec<Value>> {
    let id = user.to_string();
    let theirs = |m: &Value| m.get("value").and_then(Value::as_str) == Some(id.as_str());
    members
        .iter()
        .any(theirs)
        .then(|| members.iter().filter(|m| !theirs(m)).cloned().collect())
}

/// Storage of consents and the erasure transaction.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Appends a consent decision with its audit record, in one transaction that also reads
    /// the person's decisions (serialized with their other decisions): a decision that
    /// restates the person's newest one for the purpose writes nothing, neither decision nor
    /// audit record, and returns that newest one; otherwise the decision is kept under
    /// [`ConsentId::next_after`] the person's newest id, and returned.
    ///
    /// # Errors
    /// [`TenancyError::Invalid`] for a purpose beyond the person's [`MAX_CONSENT_PURPOSES`]
    /// (nothing written); [`TenancyError::Store`].
    async fn record_consent(
        &self,
        consent: &ConsentDecision,
        journal: Journal,
    ) -> Result<Recorded, TenancyError>;

    /// At most `limit` consent decisions of `org`, of one person or everyone, oldest first
    /// (by id), after the keyset cursor `after`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn consents(
        &self,
        org: OrgId,
        user: Option<UserId>,
        after: Option<ConsentId>,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>, TenancyError>;

    /// In one transaction: removes the member (their resources disposed of as `disposition`
    /// says, checked as [`MembershipStore::remove_member`] checks it,
    /// API keys deactivated, sessions ended when it was their last organization, SCIM record
    /// deleted), blanks the personal annotations of every audit record of `org` naming them
    /// (as actor or target, or by their email), anonymizes the account when they belong to no
    /// other organization (email, name, password, second factor), and commits `journal`.
    /// With no `disposition` the person is a former member (they left or were removed, their
    /// resources disposed of then): nothing is removed, what `org` holds of them is blanked
    /// alike, and the account, no longer the organization's, is left as it is; someone who is
    /// a member (again) is refused with [`TenancyError::Conflict`].
    /// `by`, the Owner or Admin erasing someone else, must still be one under the
    /// organization's lock, as for [`MembershipStore::remove_member`]; `None` for a person
    /// erasing themselves. The journal `sessions` makes from the number of sessions the
    /// removal ended or signed out of `org` commits with `journal`, as for a removal.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`]; [`TenancyError::Invalid`] for a bad transfer target;
    /// [`TenancyError::Conflict`] for a [`Disposition::TransferToOwner`] to a former Owner;
    /// [`TenancyError::Forbidden`] (`acting_role_changed`) when `by` no longer administers.
    #[allow(
        clippy::too_many_arguments,
        reason = "the erasure, its author and its two journals"
    )]
    async fn erase_member(
        &self,
        org: OrgId,
        user: UserId,
        disposition: Option<Disposition>,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
        sessions: crate::SessionsEndedJournal<'_>,
    ) -> Result<ErasureReport, TenancyError>;
}

fn valid_purpose(p: &str) -> Result<String, TenancyError> {
    let ok = !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(p.to_owned())
    } else {
        Err(TenancyError::Invalid(
            "a consent purpose is 1 to 64 lower-case letters, digits, `_` or `-`".into(),
        ))
    }
}

/// What [`PrivacyStore::record_consent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The decision was appended with its audit record, as this.
    Appended(ConsentRecord),
    /// The person's newest decision for the purpose was the same: nothing was written.
    Unchanged(ConsentRecord),
}

/// The refusal of a purpose beyond the person's [`MAX_CONSENT_PURPOSES`].
#[must_use]
pub fn too_many_purposes() -> TenancyError {
    TenancyError::Invalid(format!(
        "a person decides on at most {MAX_CONSENT_PURPOSES} consent purposes in an organization"
    ))
}

/// Records the caller's own consent decision for `purpose` (a person decides for themselves,
/// in a session). Restating the current decision records nothing and answers with it (a PUT
/// of what is there).
///
/// # Errors
/// [`TenancyError::Invalid`] for a bad purpose, or one beyond [`MAX_CONSENT_PURPOSES`];
/// [`TenancyError::Forbidden`] with an API key.
pub async fn set_consent<S: PrivacyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    purpose: &str,
    granted: bool,
    now: DateTime<Utc>,
) -> Result<ConsentRecord, TenancyError> {
    if caller.subject.credential != Credential::Session {
        return Err(TenancyError::Forbidden(DenyReason::InteractiveOnly));
    }
    let record = ConsentDecision {
        org: caller.org.id,
        user: caller.user.id,
        purpose: valid_purpose(purpose)?,
        granted,
        at: now,
    };
    let journal = Journal::record(
        caller
            .audit(
                now,
                if granted {
                    AuditAction::ConsentGranted
                } else {
                    AuditAction::ConsentWithdrawn
                },
                Target::new("user", caller.user.id, caller.user.name.clone()),
            )
            .with_metadata(Metadata::from_value(json!({
                "purpose": record.purpose, "granted": granted,
            }))?),
    );
    match store.record_consent(&record, journal).await? {
        Recorded::Appended(kept) | Recorded::Unchanged(kept) => Ok(kept),
    }
}

/// Whether `decision` restates `newest`, the person's newest decision for its purpose.
#[must_use]
pub fn restates(newest: Option<&ConsentRecord>, decision: &ConsentDecision) -> bool {
    newest.is_some_and(|n| n.purpose == decision.purpose && n.granted == decision.granted)
}

/// Consent decisions, oldest first, a page of at most `limit` (1 to 500) after the cursor
/// `after`: one's own (in a session), or, for the Owner and Admins, anyone's in the
/// organization.
///
/// # Errors
/// [`TenancyError::Forbidden`] for a User asking about someone else.
pub async fn consents<S: PrivacyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    user: Option<UserId>,
    after: Option<ConsentId>,
    limit: usize,
) -> Result<Vec<ConsentRecord>, TenancyError> {
    if user.is_none_or(|u| !is_own(caller, u)) {
        check_admin(caller)?;
    }
    store
        .consents(caller.org.id, user, after, limit.clamp(1, 500))
        .await
}

/// Every decision of `user` in `org`, oldest first, read page by page.
async fn all_consents_of<S: PrivacyStore + ?Sized>(
    store: &S,
    org: OrgId,
    user: UserId,
) -> Result<Vec<ConsentRecord>, TenancyError> {
    let mut all = Vec::new();
    loop {
        let page = store
            .consents(
                org,
                Some(user),
                all.last().map(|c: &ConsentRecord| c.id),
                500,
            )
            .await?;
        let done = page.len() < 500;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// Whether `user` is the caller, in a session: an API key (a team's key handed to a client,
/// say) or a SCIM token is not the person who made it, and reads only what its rights as an
/// administrator allow.
fn is_own(caller: &Caller, user: UserId) -> bool {
    user == caller.user.id && caller.scim_token.is_none() && caller.api_key.is_none()
}

fn check_admin(caller: &Caller) -> Result<(), TenancyError> {
    caller.check_org(Permission::RemoveMembers)?;
    if !caller.subject.role.is_admin() {
        return Err(TenancyError::Forbidden(DenyReason::RoleLacksPermission {
            role: caller.subject.role,
        }));
    }
    Ok(())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// Everything the organization holds about a member, as one JSON document (GDPR Art. 15):
/// account, membership and teams, the invitations they accepted (with the address each was
/// sent to), API keys, resources they created, consents, the mail sent to them (without bodies,
/// at most 1,000, `mail_truncated` past that), their SCIM record, and the audit records where
/// they act or are the target. The person may export their own; the Owner and Admins anyone's.
/// Sessions (person-level, across organizations) and the second factor (when it was set up,
/// the SMS backup number) are included only in one's own export. Someone else's audit records come only to a caller who
/// may read the whole audit log ([`Caller::check_whole_audit_log`]) and to the Owner (who
/// also reads an archived log, and answers for the organization's data on any plan); otherwise
/// the document
/// says they were withheld (`audit_records_withheld`). The export is audited.
///
/// A former member (who left or was removed) whom the organization's audit log names is
/// exported too, by the Owner or an Admin, as [`erase`] erases them: `membership` is `null`
/// and `account` holds only their id (the account is no longer the organization's), with the
/// rest the organization still holds (invitations they accepted, API keys, resources they
/// created, consents, audit records).
///
/// # Errors
/// [`TenancyError::NotFound`] (neither a member nor named in the log);
/// [`TenancyError::Forbidden`].
pub async fn export<S>(
    store: &S,
    caller: &Caller,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<Value, TenancyError>
where
    S: TenancyStore
        + WorkspaceStore
        + PrivacyStore
        + AuditStore
        + audit::MailOutbox
        + crate::mfa::MfaStore
        + crate::scim::ScimStore
        + crate::InvitationStore
        + ?Sized,
{
    let own = is_own(caller, user);
    if !own {
        check_admin(caller)?;
    }
    let org = caller.org.id;
    let m = store.get_member(org, user).await?;
    if m.is_none() && !named_in_log(store, org, user).await? {
        return Err(TenancyError::NotFound("member"));
    }
    let teams = store.team_roles(org, user).await?;
    let mut keys = Vec::new();
    loop {
        let page = store
            .list_api_keys(
                org,
                Some(user),
                keys.last().map(|k: &crate::ApiKey| k.id),
                500,
            )
            .await?;
        let done = page.len() < 500;
        keys.extend(page);
        if done {
            break;
        }
    }
    let mut resources = Vec::new();
    for kind in AssetKind::ALL {
        let filter = AssetFilter {
            kind,
            teams: None,
            parent: None,
            archived: None,
        };
        let mut after = None;
        loop {
            let page = store.list_assets(org, &filter, after, 500).await?;
            after = page.last().map(|a| a.id);
            let done = page.len() < 500;
            resources.extend(page.into_iter().filter(|a| a.created_by == user).map(|a| {
                json!({"id": a.id, "kind": kind.as_str(), "name": a.name, "team_id": a.team,
                       "created_at": time(a.created_at), "updated_at": time(a.updated_at)})
            }));
            if done {
                break;
            }
        }
    }
    let invitations = store.invitations_accepted_by(org, user).await?;
    // Someone else's records are the audit log's: an Admin reads them here only when they may
    // read the whole log (not once it is archived by a downgrade, which only the Owner reads,
    // nor on a plan without it). A person's own always come, and the Owner's exports carry
    // them on any plan.
    let audit_readable = own
        || caller.subject.role == rbac_core::OrgRole::Owner
        || caller.check_whole_audit_log().is_ok();
    let (events, truncated) = if audit_readable {
        audit_records(
            store,
            org,
            &user.to_string(),
            &keys.iter().map(|k| k.id.to_string()).collect::<Vec<_>>(),
            &invitations
                .iter()
                .map(|i| i.id.to_string())
                .collect::<Vec<_>>(),
        )
        .await?
    } else {
        (Vec::new(), false)
    };
    let consents = all_consents_of(store, org, user).await?;
    // Mail the organization sent them: at their account's address, and at an address they
    // were invited at until they accepted (after that, mail there is whoever holds it then:
    // an identity provider may have moved them, and the address reissued to someone else);
    // what, when, whether it went; not the bodies, which hold links for them alone.
    let mut addresses: Vec<(String, Option<DateTime<Utc>>)> = invitations
        .iter()
        .map(|i| {
            (
                i.email.to_string(),
                Some(i.accepted_at.unwrap_or(i.created_at)),
            )
        })
        .collect();
    if let Some(m) = &m {
        addresses.push((m.user.email.to_string(), None));
    }
    let (mail, mail_truncated) = mail_to(store, org, &addresses).await?;
    let scim = store.user_record(org, user).await?.map(|r| {
        json!({"userName": r.user_name, "externalId": r.external_id, "attributes": r.attributes})
    });
    let account = m.as_ref().map_or_else(
        || json!({"id": user}),
        |m| {
            json!({"id": m.user.id, "email": m.user.email.as_str(), "name": m.user.name,
                   "created_at": time(m.user.created_at)})
        },
    );
    let membership = m.as_ref().map(|m| {
        json!({"role": m.role.as_str(), "joined_at": time(m.joined_at),
               "active": m.deactivated_at.is_none(),
               "all_teams_role": m.all_teams.map(|r| r.as_str()),
               "teams": teams.iter().map(|(t, r)| json!({"team_id": t, "role": r.as_str()})).collect::<Vec<_>>()})
    });
    let mut doc = json!({
        "generated_at": time(now),
        "organization": {"id": org, "name": caller.org.name},
        "account": account,
        "membership": membership,
        "invitations_accepted": invitations.iter().map(|i| json!({"id": i.id, "email": i.email.as_str(),
            "role": i.role.as_str(), "invited_by": i.invited_by, "sent_at": time(i.created_at),
            "accepted_at": i.accepted_at.map(time)})).collect::<Vec<_>>(),
        "api_keys": keys.iter().map(|k| json!({"id": k.id, "name": k.name, "prefix": k.prefix,
            "created_at": time(k.created_at), "last_used_at": k.last_used_at.map(time),
            "revoked_at": k.revoked_at.map(time)})).collect::<Vec<_>>(),
        "resources_created": resources,
        "consents": consents.iter().map(|c| json!({"purpose": c.purpose, "granted": c.granted, "at": time(c.at)})).collect::<Vec<_>>(),
        "mail": mail,
        "mail_truncated": mail_truncated,
        "scim": scim,
        "audit_records": events,
        "audit_records_truncated": truncated,
        "audit_records_withheld": !audit_readable,
    });
    if own {
        // Their second factor, as only they see it: when it was set up and the backup number.
        doc["second_factor"] = match store.mfa(user).await? {
            Some(f) if f.enabled_at.is_some() => json!({
                "enabled_at": f.enabled_at.map(time), "sms_backup_number": f.phone,
            }),
            _ => Value::Null,
        };
        let sessions = store.list_sessions(user).await?;
        doc["sessions"] = sessions
            .iter()
            .map(|s| {
                json!({"created_at": time(s.created_at), "last_seen_at": time(s.last_seen_at),
                            "ip": s.ip, "user_agent": s.user_agent})
            })
            .collect();
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::PersonalDataProcessed,
                Target::new(
                    "user",
                    user,
                    m.as_ref().map(|m| m.user.name.clone()).unwrap_or_default(),
                ),
            )
            .with_metadata(Metadata::from_value(
                json!({"operation": "export", "own": own, "former_member": m.is_none()}),
            )?),
    );
    store.append(journal).await?;
    Ok(doc)
}

/// The audit records naming `subject` as actor (in person or through one of `keys`) or as
/// target, or naming one of the `invitations` they accepted (sent to their address), newest
/// first, capped. A record's network address and user agent are the actor's: they are
/// exported only where the person acted, not where someone acted on them.
async fn audit_records<S: AuditStore + ?Sized>(
    store: &S,
    org: OrgId,
    subject: &str,
    keys: &[String],
    invitations: &[String],
) -> Result<(Vec<Value>, bool), TenancyError> {
    let mut out: Vec<audit::AuditEvent> = Vec::new();
    let actors: Vec<&str> = std::iter::once(subject)
        .chain(keys.iter().map(String::as_str))
        .collect();
    // As the actor, as the target under the kinds a person is recorded as, and through the
    // invitations they accepted.
    let lookups = actors
        .iter()
        .map(|a| (Some(*a), None))
        .chain(["member", "user"].map(|k| (None, Some((k, subject)))))
        .chain(
            invitations
                .iter()
                .map(|i| (None, Some(("invitation", i.as_str())))),
        );
    // Each lookup reads its own newest records up to one past the cap: the newest of all are
    // among them (a lookup's older records cannot outrank its newer ones), and the one past
    // tells that some were left out. What is kept is cut back to that after each lookup.
    for (actor, target) in lookups {
        let mut q = AuditQuery {
            limit: audit::MAX_PAGE,
            actor_id: actor.map(str::to_owned),
            target_kind: target.map(|(kind, _)| kind.to_owned()),
            target_id: target.map(|(_, id)| id.to_owned()),
            ..AuditQuery::default()
        };
        // Once the cap is passed, records older than the last one kept cannot enter.
        let floor = out.get(MAX_EXPORTED_AUDIT_RECORDS).map(|e| e.seq);
        let mut read = 0;
        loop {
            let page = store.search(org, &q).await?;
            let full = page.len() == q.limit as usize;
            q.before_seq = page.last().map(|e| e.seq);
            read += page.len();
            // Not the refusals the person was answered "not found" for: the export would tell
            // them that what they asked for exists.
            out.extend(
                page.into_iter()
                    .filter(|e| !audit::hidden_from_its_actor(e.event.action, &e.event.outcome)),
            );
            if !full
                || read > MAX_EXPORTED_AUDIT_RECORDS
                || q.before_seq.zip(floor).is_some_and(|(b, f)| b <= f)
            {
                break;
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.seq));
        out.dedup_by_key(|e| e.seq);
        out.truncate(MAX_EXPORTED_AUDIT_RECORDS + 1);
    }
    let truncated = out.len() > MAX_EXPORTED_AUDIT_RECORDS;
    out.truncate(MAX_EXPORTED_AUDIT_RECORDS);
    Ok((
        out.iter()
            .map(|e| {
                let theirs = actors.contains(&e.event.actor.id.as_str());
                json!({"seq": e.seq, "occurred_at": time(e.event.occurred_at),
                       "action": e.event.action.as_str(), "text": audit::render_line(e),
                       "ip": theirs.then_some(&e.event.context.ip),
                       "user_agent": theirs.then_some(&e.event.context.user_agent)})
            })
            .collect(),
        truncated,
    ))
}

/// Erases a member (GDPR Art. 17): removed from the organization with their resources handed
/// to the Owner, their name, email, addresses and user agents blanked in every audit record of
/// the organization (the chain still verifies), and, when they belong to no other organization,
/// their account anonymized. The Owner and Admins may erase others under the removal rules (never
/// the Owner, never oneself). Audited with the person's id only.
///
/// A former member (one who left or was removed, and so is found in the organization's audit
/// log but not among its members) is erased too, since what the organization holds of them
/// stays after they go: their names, addresses and user agents in its records, mail,
/// invitations and event bodies are blanked as for a member; there is nothing to remove, and
/// their account, no longer the organization's, is left as it is.
///
/// # Errors
/// [`TenancyError::NotFound`] (neither a member nor in the organization's log),
/// [`TenancyError::Forbidden`], [`TenancyError::RoleRule`].
pub async fn erase<S: TenancyStore + MembershipStore + PrivacyStore + AuditStore + ?Sized>(
    store: &S,
    caller: &Caller,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<ErasureReport, TenancyError> {
    check_admin(caller)?;
    let Some(m) = store.get_member(caller.org.id, user).await? else {
        return erase_former(store, caller, user, now).await;
    };
    // Never the Owner, never oneself: the removal rules.
    check_removal(&caller.subject, user, m.role)?;
    let owner = crate::orgs::owner_of(store, caller.org.id).await?;
    let journal = Journal::record(
        caller
            .audit(now, AuditAction::PersonalDataProcessed, Target::new("user", user, audit::ERASED))
            .with_metadata(Metadata::from_value(json!({"operation": "erase"}))?),
    )
    .and_record(
        caller
            .audit(now, AuditAction::MemberRemoved, Target::new("member", user, audit::ERASED))
            .with_metadata(Metadata::from_value(json!({
                "role": m.role.as_str(), "resources": {"transfer_to": owner.user.id}, "erasure": true,
            }))?),
    )
    .publish(DomainEvent::new(caller.org.id, EventKind::UserDeleted, now, json!({
        "userId": user, "role": m.role.as_str(), "removedBy": caller.user.id, "erased": true,
    })));
    let revoked = caller
        .audit(
            now,
            AuditAction::SessionRevoked,
            Target::new("member", user, audit::ERASED),
        )
        .with_metadata(Metadata::from_value(json!({"reason": "member_erased"}))?);
    store
        .erase_member(
            caller.org.id,
            user,
            Some(Disposition::TransferToOwner(owner.user.id)),
            now,
            Some(caller.user.id),
            journal,
            &|n| crate::each_session(&revoked, n),
        )
        .await
}

/// The most mails an export lists; past it, `mail_truncated` says so.
const EXPORT_MAX_MAILS: usize = 1_000;

/// The mail of `org` sent to one of `addresses`, each up to its time (`None`: any time), newest
/// first, at most [`EXPORT_MAX_MAILS`], and whether there were more.
async fn mail_to<S: audit::MailOutbox + ?Sized>(
    store: &S,
    org: OrgId,
    addresses: &[(String, Option<DateTime<Utc>>)],
) -> Result<(Vec<Value>, bool), TenancyError> {
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store.list_mails(Some(org), before.as_deref(), 500).await?;
        for m in page.iter().filter(|m| {
            addresses.iter().any(|(a, until)| {
                a.eq_ignore_ascii_case(m.to.as_str()) && until.is_none_or(|u| m.created_at <= u)
            })
        }) {
            if out.len() == EXPORT_MAX_MAILS {
                return Ok((out, true));
            }
            out.push(json!({"to": m.to, "subject": m.subject, "kind": m.kind,
                            "queued_at": time(m.created_at), "sent_at": m.sent_at.map(time)}));
        }
        match page.last() {
            Some(last) if page.len() == 500 => before = Some(last.id.clone()),
            _ => return Ok((out, false)),
        }
    }
}

/// Whether `org`'s audit log names `user`, as the actor or as the member or person acted on:
/// someone who was a member (an id from elsewhere is not).
async fn named_in_log<S: AuditStore + ?Sized>(
    store: &S,
    org: OrgId,
    user: UserId,
) -> Result<bool, TenancyError> {
    let id = user.to_string();
    let lookups = [
        (Some(id.clone()), None),
        (None, Some("member")),
        (None, Some("user")),
    ];
    for (actor_id, kind) in lookups {
        let q = AuditQuery {
            actor_id,
            target_kind: kind.map(str::to_owned),
            target_id: kind.map(|_| id.clone()),
            limit: 1,
            ..AuditQuery::default()
        };
        if !store.search(org, &q).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`erase`] for someone who is no longer a member: refused (`NotFound`) unless the
/// organization's audit log names them, as actor or as the member or person acted on, so that
/// an id from elsewhere erases nothing here.
async fn erase_former<S: MembershipStore + PrivacyStore + AuditStore + ?Sized>(
    store: &S,
    caller: &Caller,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<ErasureReport, TenancyError> {
    if !named_in_log(store, caller.org.id, user).await? {
        return Err(TenancyError::NotFound("member"));
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::PersonalDataProcessed,
                Target::new("user", user, audit::ERASED),
            )
            .with_metadata(Metadata::from_value(
                json!({"operation": "erase", "former_member": true}),
            )?),
    );
    store
        .erase_member(
            caller.org.id,
            user,
            None,
            now,
            Some(caller.user.id),
            journal,
            &|_| Journal::default(),
        )
        .await
}

/// A member asks this organization to forget them (GDPR Art. 17, self-service): what [`erase`]
/// does for an admin's request, for themselves. They leave, what they created goes to the
/// Owner, their name, email, addresses and user agents are blanked in the organization's audit
/// records (the chain still verifies), and their account is anonymized when they belong to no
/// other organization. The records of the request name them by id only, without the request's
/// address or user agent. The Owner hands over ownership first.
///
/// Being irreversible, it asks for the person's `password` again, as a password change does: a
/// session left open on a shared machine cannot erase its owner. A wrong one counts against
/// the login throttle and is recorded as a failed `privacy.personal_data` in each of
/// the person's organizations.
///
/// # Errors
/// [`TenancyError::Forbidden`] through an API key or SCIM token; [`TenancyError::Conflict`]
/// for the Owner; [`TenancyError::BadCredentials`] for a wrong password;
/// [`TenancyError::Throttled`] while the login throttle locks the account.
pub async fn erase_own<S: TenancyStore + MembershipStore + PrivacyStore + ?Sized>(
    store: &S,
    hasher: &security_policy::PasswordHasher,
    caller: &Caller,
    password: &str,
    now: DateTime<Utc>,
) -> Result<ErasureReport, TenancyError> {
    crate::members::check_leaving(caller)?;
    crate::security::confirm_password(
        store,
        hasher,
        &caller.user,
        password,
        AuditAction::PersonalDataProcessed,
        &caller.request,
        now,
    )
    .await?;
    let (org, user) = (caller.org.id, caller.user.id);
    let owner = crate::orgs::owner_of(store, org).await?;
    let actor = audit::Actor::user(user, audit::ERASED);
    let role = caller.subject.role.as_str();
    let revoked = audit::NewAuditEvent::new(
        org,
        now,
        actor.clone(),
        AuditAction::SessionRevoked,
        Target::new("member", user, audit::ERASED),
    )
    .with_metadata(Metadata::from_value(json!({"reason": "member_erased"}))?);
    let journal = Journal::record(
        audit::NewAuditEvent::new(
            org,
            now,
            actor.clone(),
            AuditAction::PersonalDataProcessed,
            Target::new("user", user, audit::ERASED),
        )
        .with_metadata(Metadata::from_value(
            json!({"operation": "erase", "requested_by": "self"}),
        )?),
    )
    .and_record(
        audit::NewAuditEvent::new(
            org,
            now,
            actor,
            AuditAction::MemberLeft,
            Target::new("organization", org, caller.org.name.clone()),
        )
        .with_metadata(Metadata::from_value(json!({
            "role": role, "resources": {"transfer_to": owner.user.id}, "erasure": true,
        }))?),
    )
    .publish(DomainEvent::new(
        org,
        EventKind::UserDeleted,
        now,
        json!({
            "userId": user, "role": role, "removedBy": user, "erased": true,
        }),
    ));
    store
        .erase_member(
            org,
            user,
            Some(Disposition::TransferToOwner(owner.user.id)),
            now,
            None,
            journal,
            &|n| crate::each_session(&revoked, n),
        )
        .await
}

/// A templated webhook body (`{"text": "…"}`, made by `webhooks::template::body` from an
/// event) with the person's `emails` and `names` replaced wherever they occur in the text, as
/// the template wrote them (with `&`, `<` and `>` escaped); in a message the template cut
/// ([`CUT_MESSAGE_CHARS`]), also what the cut left of one at its end. The message is kept
/// within that length, cut with `…` if the erased addresses made it longer. Pass everything
/// to take out at once: the cut is recognised from the message as stored. `None` when the
/// body is not such a message or does not name them. Pass only what the event itself carried
/// of them (what [`scrub_event_json`] took out of its data): the name is matched as text, so
/// it must be the name of the event's actor, not a namesake's or a resource's.
#[must_use]
pub fn scrub_message_json(
    body: &str,
    user: UserId,
    emails: &[&str],
    names: &[&str],
) -> Option<String> {
    let Value::Object(map) = serde_json::from_str::<Value>(body).ok()? else {
        return None;
    };
    let text = match (map.len(), map.get("text")) {
        (1, Some(Value::String(t))) => t,
        _ => return None,
    };
    let escaped = |s: &&str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let needles: Vec<(String, String)> = emails
        .iter()
        .map(|e| (escaped(e), erased_address(user)))
        .chain(names.iter().map(|n| (escaped(n), audit::ERASED.to_owned())))
        .filter(|(n, _)| !n.is_empty())
        .collect();
    let mut out = text.clone();
    for (needle, with) in &needles {
        out = replace_whole(&out, needle, with);
    }
    // Back within the length (an erased address is longer than most addresses: also a
    // message the template did not cut may now be longer), then, in a message the template
    // cut, whatever the cut left of a name or address at its end.
    if out.chars().count() > CUT_MESSAGE_CHARS {
        out = out.chars().take(CUT_MESSAGE_CHARS - 1).collect();
        out.push('…');
    }
    if was_cut(text) {
        for (needle, with) in &needles {
            out = replace_cut_tail(&out, needle, with);
        }
    }
    (out != *text).then(|| json!({ "text": out }).to_string())
}

/// Whether `text` is a templated message the template cut: it ends in `…` and has at least
/// half of [`CUT_MESSAGE_CHARS`] (cut at exactly that length, it may have lost or gained
/// characters to an earlier erasure since; a template ending in `…` on its own is far
/// shorter).
fn was_cut(text: &str) -> bool {
    text.ends_with('…') && text.chars().count() >= CUT_MESSAGE_CHARS / 2
}

/// The length, in characters, of a templated message that was cut
/// (`webhooks::template::MAX_RENDERED_CHARS`; `tenancy` does not depend on `webhooks`, and
/// `store-sea`'s tests check that the two agree).
pub const CUT_MESSAGE_CHARS: usize = 40_000;

/// A message cut at its longest (`webhooks::template::render` cuts it to
/// [`CUT_MESSAGE_CHARS`] characters ending in `…`; the caller applies this only to such a
/// message, [`was_cut`]) may end in the first part of `needle`: that part, starting where a
/// whole match could start, is replaced by `with` too, and the text before it shortened so
/// the message stays within [`CUT_MESSAGE_CHARS`]. A cut message ending in a word that merely begins like
/// the name loses that word: an erasure takes out too much rather than leave part of a name.
fn replace_cut_tail(text: &str, needle: &str, with: &str) -> String {
    const CUT: char = '…';
    let Some(body) = text.strip_suffix(CUT) else {
        return text.to_owned();
    };
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let first = needle.chars().next();
    // The longest proper prefix first: "Ann Ar" of "Ann Archer", not "A".
    let cut = needle
        .char_indices()
        .rev()
        .filter(|(i, _)| *i > 0)
        .map(|(i, _)| &needle[..i])
        .find(|part| {
            body.strip_suffix(part).is_some_and(|before| {
                let prev = before.chars().next_back();
                if needle.contains('@') {
                    !(word(prev) || matches!(prev, Some('.' | '_' | '%' | '+' | '-')))
                } else {
                    !(word(first) && word(prev))
                }
            })
        });
    let Some(part) = cut else {
        return text.to_owned();
    };
    let kept = &body[..body.len() - part.len()];
    let room = CUT_MESSAGE_CHARS.saturating_sub(with.chars().count() + 1);
    let kept: String = kept.chars().take(room).collect();
    format!("{kept}{with}{CUT}")
}

/// Whether `text` names the address `email` whole (not as part of a longer address, see
/// [`replace_whole`]): which mail an erasure removes as being about the person.
#[must_use]
pub fn mentions_address(text: &str, email: &str) -> bool {
    !email.is_empty() && text.contains(email) && replace_whole(text, email, "") != text
}

/// `text` with each whole occurrence of `needle` replaced by `with`: a name not run into a
/// letter or digit on an edge where the name has one (the name "Ann" is taken out of "by
/// Ann." but not out of "Annual"), an address (a needle with `@`) not part of a longer one
/// ("(ann@example.org)", "ann@example.org." but not "jo.ann@example.org",
/// "mary-ann@example.org" or "ann@example.org.uk").
fn replace_whole(text: &str, needle: &str, with: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let address = needle.contains('@');
    // What may precede or follow an address inside a longer one.
    let in_local = |c: Option<char>| word(c) || matches!(c, Some('.' | '_' | '%' | '+' | '-'));
    let (first, last) = (needle.chars().next(), needle.chars().next_back());
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (at, _) in text.match_indices(needle) {
        if at < from {
            continue; // inside the previous replacement's match
        }
        let end = at + needle.len();
        let before = text[..at].chars().next_back();
        let mut rest = text[end..].chars();
        let after = rest.next();
        let longer = if address {
            in_local(before)
                || word(after)
                || after == Some('-')
                || (after == Some('.') && word(rest.next()))
        } else {
            (word(first) && word(before)) || (word(last) && word(after))
        };
        if longer {
            continue;
        }
        out.push_str(&text[from..at]);
        out.push_str(with);
        from = end;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_given_to_someone_else_since_is_not_erased() {
        let t = |m: i64| DateTime::from_timestamp(1_763_893_815 + 60 * m, 0).unwrap_or_default();
        let s = |a: &str| a.to_owned();
        assert_eq!(addresses_to_erase("now@x", &[], &[], &[]), ["now@x"]);
        let accepted = [
            (s("old@x"), Some(t(10))),
            (s("reused@x"), Some(t(10))),
            (s("held@x"), Some(t(10))),
            (s("now@x"), Some(t(10))),
        ];
        let others = [
            // Their own first invitation, which expired: sent before they accepted.
            (s("old@x"), t(0)),
            // A new hire invited at their old address afterwards.
            (s("reused@x"), t(20)),
        ];
        assert_eq!(
            addresses_to_erase("now@x", &accepted, &others, &[s("held@x")]),
            ["now@x", "old@x"]
        );
    }

    /// The export keeps the newest records of all where the person acted or was acted on,
    /// capped: a long history as the actor does not crowd out newer records naming them as the
    /// target, and the cap is exact and said.
    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn the_capped_export_keeps_the_newest_records_of_every_lookup() {
        use audit::{Actor, Journal, NewAuditEvent, Target};
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Busy").await;
        let at = Utc::now();
        let acted = |i: usize| {
            NewAuditEvent::new(
                org.id,
                at,
                Actor::user(owner.id, "Owner"),
                AuditAction::ChatInterfaceUpdated,
                Target::new("chat_interface", i, "Helpdesk"),
            )
        };
        // Three times the cap as the actor (more than any one lookup reads), then three
        // records naming the person as their target, the newest of all.
        let mut n = 0;
        while n < 3 * MAX_EXPORTED_AUDIT_RECORDS {
            let mut j = Journal::record(acted(n));
            for i in n + 1..n + 5_000 {
                j = j.and_record(acted(i));
            }
            store.append(j).await.unwrap();
            n += 5_000;
        }
        let head = store.head(org.id).await.unwrap().unwrap().0;
        for k in 0..3 {
            store
                .append(Journal::record(NewAuditEvent::new(
                    org.id,
                    at,
                    Actor::system(),
                    AuditAction::RoleChanged,
                    Target::new("member", owner.id, format!("Owner {k}")),
                )))
                .await
                .unwrap();
        }
        let (records, truncated) = audit_records(&store, org.id, &owner.id.to_string(), &[], &[])
            .await
            .unwrap();
        assert!(truncated);
        assert_eq!(records.len(), MAX_EXPORTED_AUDIT_RECORDS);
        let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs[..3],
            [head + 3, head + 2, head + 1],
            "the target's records first"
        );
        assert!(
            seqs.windows(2).all(|w| w[0] == w[1] + 1),
            "the newest, none skipped"
        );
        assert!(records[0]["ip"].is_null(), "not the person's own action");
    }

    #[test]
    fn scrubbing_takes_out_the_email_and_the_actor_name_and_keeps_the_rest() {
        let ivy = UserId::new();
        let body = json!({
            "event": "chat_interface.updated",
            "data": {"name": "Ivy Quill", "by": ivy, "byName": "Ivy Quill", "email": "ivy@example.org",
                     "note": "ask ivy@example.org", "invitedBy": "ivy@example.org"},
        })
        .to_string();
        let scrubbed = scrub_event_json(&body, ivy, "ivy@example.org", "Ivy Quill").unwrap();
        assert!(scrubbed.had_email && scrubbed.had_name);
        let out = scrubbed.body;
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"]["byName"], audit::ERASED);
        assert_eq!(v["data"]["email"], erased_address(ivy).as_str());
        assert_eq!(v["data"]["invitedBy"], erased_address(ivy).as_str());
        // A resource that happens to carry the name, and text that merely mentions the
        // address, are not the person's identity fields and stay.
        assert_eq!(v["data"]["name"], "Ivy Quill");
        assert_eq!(v["data"]["note"], "ask ivy@example.org");
        assert_eq!(v["event"], "chat_interface.updated");
        // Byte for byte apart from the two replacements.
        let back = out
            .replace(
                &format!("\"{}\"", erased_address(ivy)),
                "\"ivy@example.org\"",
            )
            .replace("\"byName\":\"[erased]\"", "\"byName\":\"Ivy Quill\"");
        assert_eq!(back, body);
    }

    #[test]
    fn an_address_given_by_id_is_found_wherever_it_is_and_only_beside_their_id() {
        let (ivy, other) = (UserId::new(), UserId::new());
        // A webhook envelope: the address they had then, as member and as inviter.
        let body = json!({
            "event": "user.created",
            "data": {"userId": other, "email": "pat@example.org", "invitedById": ivy,
                     "invitedBy": "ivy.old@example.org"},
            "more": [{"userId": ivy, "email": "ivy.older@example.org"},
                     {"userId": ivy, "email": "ivy.old@example.org"}],
        })
        .to_string();
        assert_eq!(
            addresses_given_by_id(&body, ivy),
            ["ivy.old@example.org", "ivy.older@example.org"]
        );
        assert_eq!(addresses_given_by_id(&body, other), ["pat@example.org"]);
        assert!(addresses_given_by_id(&body, UserId::new()).is_empty());
        assert!(addresses_given_by_id("not json", ivy).is_empty());
        // The search tokens find the body by either id field.
        let tokens = id_search_tokens(ivy);
        assert!(tokens.iter().any(|t| body.contains(t.as_str())));
        let as_member = json!({"userId": ivy, "email": "x@example.org"}).to_string();
        assert!(tokens.iter().any(|t| as_member.contains(t.as_str())));
        assert!(
            !tokens
                .iter()
                .any(|t| json!({"owner": ivy}).to_string().contains(t.as_str()))
        );
        // And by the actor's id, which gives the name they had then.
        let renamed = json!({"data": {"by": ivy, "byName": "Ivy Old", "name": "Bot"},
                             "more": [{"by": other, "byName": "Ivy Older"}]})
        .to_string();
        assert!(tokens.iter().any(|t| renamed.contains(t.as_str())));
        assert_eq!(names_given_by_id(&renamed, ivy), ["Ivy Old"]);
        assert_eq!(names_given_by_id(&renamed, other), ["Ivy Older"]);
        let scrubbed = scrub_event_json(&renamed, ivy, "ivy@example.org", "Ivy Old").unwrap();
        assert!(scrubbed.had_name && !scrubbed.had_email);
        assert!(!scrubbed.body.contains("Ivy Old\""), "{}", scrubbed.body);
        assert!(scrubbed.body.contains("Ivy Older"), "another's name stays");
    }

    #[test]
    fn a_namesakes_events_keep_their_name() {
        let (ivy, other) = (UserId::new(), UserId::new());
        let body = json!({"data": {"by": other, "byName": "Ivy Quill"}}).to_string();
        assert_eq!(
            scrub_event_json(&body, ivy, "ivy@example.org", "Ivy Quill"),
            None
        );
    }

    #[test]
    fn a_templated_message_loses_the_name_and_the_address_in_its_text() {
        let ivy = UserId::new();
        // The template escapes `<` in what it fills in.
        let body =
            json!({"text": "Ivy &lt;Q&gt; Quill (ivy@example.org) edited Support"}).to_string();
        let out = scrub_message_json(&body, ivy, &["ivy@example.org"], &["Ivy <Q> Quill"]).unwrap();
        assert_eq!(
            out,
            json!({"text": format!("[erased] ({}) edited Support", erased_address(ivy))})
                .to_string()
        );
        // Not a message body: left to `scrub_event_json`.
        assert_eq!(
            scrub_message_json(r#"{"text":"Ivy Quill","x":1}"#, ivy, &[], &["Ivy Quill"]),
            None
        );
        // Only what the event carried of them: an invitation naming her address, acted by
        // someone else, keeps its actor's name.
        let body = json!({"text": "Ivy Quill invited ivy@example.org"}).to_string();
        assert_eq!(
            scrub_message_json(&body, ivy, &["ivy@example.org"], &[]),
            Some(json!({"text": format!("Ivy Quill invited {}", erased_address(ivy))}).to_string())
        );
    }

    #[test]
    fn a_message_cut_inside_the_name_or_address_loses_the_part_it_kept() {
        let ann = UserId::new();
        // A cut message: `CUT_MESSAGE_CHARS` characters ending in `…`, what it ends in at its end.
        let padded = |text: &str| {
            let pad = CUT_MESSAGE_CHARS - 1 - text.chars().count();
            format!("{}{text}…", "x".repeat(pad))
        };
        let cut = |text: &str| json!({ "text": padded(text) }).to_string();
        let scrub =
            |text: &str| scrub_message_json(&cut(text), ann, &["ann@example.org"], &["Ann Archer"]);
        // The scrubbed message stays within the length and ends as `end` with `…`.
        let ends = |out: Option<String>, end: &str| {
            let out = out.expect("scrubbed");
            let text = serde_json::from_str::<Value>(&out).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned();
            let tail: String = text.chars().skip(CUT_MESSAGE_CHARS - 80).collect();
            assert!(text.chars().count() <= CUT_MESSAGE_CHARS, "{tail}");
            assert!(tail.ends_with(&format!("{end}…")), "{tail}");
        };
        ends(
            scrub("Note: Ann Archer wrote to Ann Ar"),
            "xNote: [erased] wrote to [erased]",
        );
        // The erased address is longer than what it replaces by more than "mail ", which the
        // cut then takes instead.
        ends(scrub("mail ann@exa"), &format!("xx{}", erased_address(ann)));
        // Escaped as the template writes it: a name with `&` cut inside its `&amp;`. The
        // marker is a character longer than what it replaces: the space before it gives way.
        ends(
            scrub_message_json(&cut("by Ann &am"), ann, &[], &["Ann & Co"]),
            "xby[erased]",
        );
        // A whole address earlier in the message and a name the cut split: both go, and the
        // message (longer by the erased address) is kept within the length.
        let head = "ann@example.org wrote ";
        let tail = " by Ann Ar";
        let pad = CUT_MESSAGE_CHARS - 1 - head.len() - tail.len();
        let both = json!({ "text": format!("{head}{}{tail}…", "y".repeat(pad)) }).to_string();
        let both = scrub_message_json(&both, ann, &["ann@example.org"], &["Ann Archer"]);
        // (The erased address made it longer: cut again, it loses the split name with the
        // end of the text.)
        ends(both.clone(), "yyy");
        let both = both.unwrap();
        assert!(both.contains(&format!("{} wrote", erased_address(ann))));
        assert!(!both.contains("Ann"));
        // Erased before (a message shortened by an earlier erasure's name) is still cut.
        let shorter =
            json!({ "text": format!("{}by Ann Ar…", "x".repeat(CUT_MESSAGE_CHARS - 60)) })
                .to_string();
        ends(
            scrub_message_json(&shorter, ann, &[], &["Ann Archer"]),
            "xby [erased]",
        );
        // Not cut by the template but close to the length: the longer erased address takes
        // it past, so it is cut now.
        let near = format!("{} ann@example.org", "z".repeat(CUT_MESSAGE_CHARS - 20));
        let near = json!({ "text": near }).to_string();
        let near = scrub_message_json(&near, ann, &["ann@example.org"], &[]);
        let text =
            serde_json::from_str::<Value>(near.as_deref().expect("scrubbed")).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned();
        assert_eq!(text.chars().count(), CUT_MESSAGE_CHARS);
        assert!(text.ends_with('…') && !text.contains("ann@"));
        // Not the start of a match: a longer word, a longer address.
        assert_eq!(scrub("JoAnn Ar"), None);
        assert_eq!(scrub("jo.ann@ex"), None);
        // Not cut: a message that merely ends in the start of the name keeps it, also when
        // its template ends in `…`.
        for text in ["Greetings from Ann Ar", "Greetings from Ann Ar…", "and a…"] {
            let whole = json!({ "text": text }).to_string();
            assert_eq!(
                scrub_message_json(&whole, ann, &["ann@example.org"], &["Ann Archer"]),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn a_name_in_a_message_is_taken_out_only_as_a_whole() {
        let ann = UserId::new();
        let body = json!({"text": "Ann renamed Annual plan for Joann (ann@example.org, joann@example.org). Ann!"})
            .to_string();
        let out = scrub_message_json(&body, ann, &["ann@example.org"], &["Ann"]).unwrap();
        assert_eq!(
            out,
            json!({"text": format!(
                "[erased] renamed Annual plan for Joann ({}, joann@example.org). [erased]!",
                erased_address(ann)
            )})
            .to_string()
        );
        assert_eq!(replace_whole("AnnAnn Ann", "Ann", "X"), "AnnAnn X");
        assert!(mentions_address("mail ann@example.org.", "ann@example.org"));
        assert!(!mentions_address(
            "mail mary-ann@example.org",
            "ann@example.org"
        ));
        assert!(!mentions_address("anything", ""));
        let a = "ann@example.org";
        for longer in [
            "jo.ann@example.org",
            "mary-ann@example.org",
            "ann+x@example.org",
            "ann@example.org.uk",
            "ann@example.org-x.com",
            "xann@example.org",
        ] {
            assert_eq!(replace_whole(longer, a, "X"), longer);
        }
        assert_eq!(
            replace_whole(
                "<ann@example.org>, ann@example.org. (ann@example.org)",
                a,
                "X"
            ),
            "<X>, X. (X)"
        );
        assert_eq!(replace_whole("-Ann-", "-Ann-", "X"), "X");
        assert_eq!(
            replace_whole("a-Ann-b", "-Ann-", "X"),
            "aXb",
            "edges that are not letters"
        );
    }

    #[test]
    fn a_body_that_does_not_name_them_is_left_alone() {
        let body =
            json!({"data": {"byName": "Ivy Quillon", "email": "ivy@example.org.uk"}}).to_string();
        assert_eq!(
            scrub_event_json(&body, UserId::new(), "ivy@example.org", "Ivy Quill"),
            None
        );
    }

    #[test]
    fn names_with_quotes_are_matched_as_json_writes_them() {
        let ivy = UserId::new();
        let body = json!({"by": ivy, "byName": "Ivy \"Q\" Quill"}).to_string();
        let out = scrub_event_json(&body, ivy, "x@example.org", "Ivy \"Q\" Quill").map(|s| s.body);
        assert_eq!(
            out,
            Some(json!({"by": ivy, "byName": "[erased]"}).to_string())
        );
    }
}
