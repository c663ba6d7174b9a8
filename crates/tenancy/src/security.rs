//! Editing an organization's security settings, checking addresses against its IP
//! allowlist, changing one's password, and ending a member's sessions.

use std::net::IpAddr;

use audit::{AuditAction, DomainEvent, EventKind, Journal, Metadata, RequestContext, Target};
use chrono::{DateTime, Utc};
use rbac_core::{Permission, UserId};
use security_policy::{
    CountryDecision, IpDecision, Located, PasswordHasher, PasswordPolicy, SessionPolicy,
    check_country, check_ip, check_password, context_words, parse_allowlist, parse_countries,
};
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::mfa::{MfaMethod, MfaStore, enrolled};
use crate::model::{SecuritySettings, User};
use crate::store::TenancyStore;

/// Largest grace period that can be set, in days.
pub const MAX_GRACE_DAYS: u32 = 90;

/// A change to the security settings; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityUpdate {
    /// Session timeouts and the concurrent-session limit.
    pub sessions: Option<SessionPolicy>,
    /// Password rules.
    pub passwords: Option<PasswordPolicy>,
    /// The IP allowlist as CIDR text (IPv4 and IPv6), each entry with its label if any; empty
    /// allows everyone. It replaces the list and its labels.
    pub ip_allowlist: Option<Vec<AllowlistItem>>,
    /// Blocked countries as ISO 3166-1 alpha-2 codes; empty blocks none.
    pub blocked_countries: Option<Vec<String>>,
    /// Require a second factor of every member.
    pub mfa_required: Option<bool>,
    /// Days members may work without one once required.
    pub mfa_grace_days: Option<u32>,
    /// Methods members may use (TOTP must be among them).
    pub mfa_methods: Option<Vec<MfaMethod>>,
    /// Audit retention in days, [`MIN_RETENTION_DAYS`] to [`MAX_RETENTION_DAYS`]; `0` keeps
    /// records forever. Only the Owner changes it.
    pub audit_retention_days: Option<u32>,
}

/// One allowlist entry as a person writes it: a network and, if they like, a label
/// (`security_policy::parse_allowlist_label`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowlistItem {
    /// `203.0.113.0/24`, `198.51.100.50`, `2001:db8::/32`.
    pub network: String,
    /// "Office network".
    pub label: Option<String>,
}

impl AllowlistItem {
    /// An entry without a label.
    #[must_use]
    pub fn new(network: impl Into<String>) -> Self {
        Self {
            network: network.into(),
            label: None,
        }
    }

    /// The entry with `label`.
    #[must_use]
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// The shortest audit retention period.
pub const MIN_RETENTION_DAYS: u32 = 30;
/// The longest audit retention period (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// Applies a change to the security settings. An allowlist that would exclude the caller's own
/// address, or a blocked country the caller is in (`client_at`, where the server places their
/// address), is refused, so an administrator cannot lock themselves out; so is blocking
/// countries on a server that cannot place addresses (no GeoIP database), where the rule would
/// refuse every request. Every change is audited with the fields it touched, and takes effect
/// on the next request of every session.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Invalid`] for bad values, a self-excluding
/// allowlist or country list, or countries without a database; [`TenancyError::Conflict`] when
/// the settings changed concurrently.
pub async fn update<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    change: SecurityUpdate,
    client_ip: IpAddr,
    client_at: Located,
    now: DateTime<Utc>,
) -> Result<SecuritySettings, TenancyError> {
    caller.check_org(Permission::UpdateSecurityPolicy)?;
    let before = caller.org.security.clone();
    let mut after = before.clone();
    let mut fields: Vec<&str> = Vec::new();
    let invalid = |e: security_policy::SecurityError| TenancyError::Invalid(e.to_string());
    if let Some(p) = change.sessions {
        p.validate().map_err(invalid)?;
        after.sessions = p;
        fields.push("sessions");
    }
    if let Some(p) = change.passwords {
        p.validate().map_err(invalid)?;
        after.passwords = p;
        fields.push("passwords");
    }
    if let Some(items) = &change.ip_allowlist {
        let networks: Vec<String> = items.iter().map(|i| i.network.clone()).collect();
        let parsed = parse_allowlist(&networks).map_err(invalid)?;
        let mut labels = std::collections::BTreeMap::new();
        for (entry, item) in parsed.iter().zip(items) {
            if let Some(label) = item.label.as_deref()
                && let Some(label) =
                    security_policy::parse_allowlist_label(label).map_err(invalid)?
            {
                labels.insert(entry.to_string(), label);
            }
        }
        if check_ip(&parsed, client_ip) == IpDecision::Denied {
            return Err(TenancyError::Invalid(format!(
                "this allowlist does not include your own address {client_ip}; saving it would lock you out"
            )));
        }
        after.ip_allowlist = parsed;
        fields.push("ip_allowlist");
        if labels != before.ip_allowlist_labels {
            fields.push("ip_allowlist_labels");
        }
        after.ip_allowlist_labels = labels;
    }
    if let Some(codes) = &change.blocked_countries {
        let parsed = parse_countries(codes).map_err(invalid)?;
        match check_country(&parsed, client_at) {
            CountryDecision::Blocked(c) => {
                return Err(TenancyError::Invalid(format!(
                    "your own address {client_ip} is in {} ({c}); blocking it would lock you out",
                    c.name()
                )));
            }
            CountryDecision::Unverifiable => {
                return Err(TenancyError::Invalid(format!(
                    "this server cannot tell which country {client_ip} is in (it has no GeoIP database, its database cannot look the address up, or it could not read your address), so it cannot block countries; its operator sets one up with `security.geoip_database`"
                )));
            }
            CountryDecision::Allowed | CountryDecision::AllowedNoList => {}
        }
        after.blocked_countries = parsed;
        fields.push("blocked_countries");
    }
    if let Some(required) = change.mfa_required {
        // Turning it on starts the grace period now. (A requirement without its start, written
        // by hand, stays as it is: `mfa::requirement` holds it in force since the epoch, and
        // re-dating it would give every member not enrolled a fresh grace period.)
        if required != before.mfa.required {
            after.mfa.required = required;
            after.mfa.required_since = required.then_some(now);
        }
        fields.push("mfa.required");
    }
    if let Some(days) = change.mfa_grace_days {
        if days > MAX_GRACE_DAYS {
            return Err(TenancyError::Invalid(format!(
                "the grace period is at most {MAX_GRACE_DAYS} days"
            )));
        }
        after.mfa.grace_days = days;
        fields.push("mfa.grace_days");
    }
    if let Some(methods) = change.mfa_methods {
        if !methods.contains(&MfaMethod::Totp) {
            return Err(TenancyError::Invalid(
                "authenticator apps (`totp`) must stay allowed; SMS is only a backup".into(),
            ));
        }
        let mut m: Vec<MfaMethod> = Vec::with_capacity(methods.len());
        for method in methods {
            if !m.contains(&method) {
                m.push(method);
            }
        }
        after.mfa.methods = m;
        fields.push("mfa.methods");
    }
    if let Some(days) = change.audit_retention_days {
        if caller.subject.role != rbac_core::OrgRole::Owner {
            return Err(retention_refused(Some(caller.subject.role)));
        }
        if days != 0 && !(MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&days) {
            return Err(TenancyError::Invalid(format!(
                "the audit retention is {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} days, or 0 to keep records forever"
            )));
        }
        after.audit_retention_days = (days != 0).then_some(days);
        fields.push("audit_retention_days");
    }
    if after == before {
        return Ok(after);
    }
    // What each changed setting was and became, for the compliance reader of the log (a
    // lowered password length or a longer session is otherwise only a field name).
    let mut changes = serde_json::Map::new();
    let (old, new) = (
        serde_json::to_value(&before).map_err(|e| crate::StoreError::msg(e.to_string()))?,
        serde_json::to_value(&after).map_err(|e| crate::StoreError::msg(e.to_string()))?,
    );
    for field in &fields {
        if *field == "ip_allowlist_labels" {
            changes.insert(
                (*field).to_owned(),
                labels_change(&before.ip_allowlist_labels, &after.ip_allowlist_labels),
            );
            continue;
        }
        let pointer = format!("/{}", field.replace('.', "/"));
        let (from, to) = (old.pointer(&pointer), new.pointer(&pointer));
        if from != to {
            let change = match (from, to) {
                (Some(Value::Array(from)), Some(Value::Array(to))) => list_change(from, to),
                _ => json!({ "from": from, "to": to }),
            };
            changes.insert((*field).to_owned(), change);
        }
    }
    let strings = |l: &[security_policy::IpAllowlistEntry]| -> Vec<Value> {
        l.iter().map(|e| Value::String(e.to_string())).collect()
    };
    let countries: Vec<Value> = after
        .blocked_countries
        .iter()
        .map(|c| Value::String(c.to_string()))
        .collect();
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::SecurityPolicyUpdated,
                Target::new("organization", caller.org.id, caller.org.name.clone()),
            )
            .with_metadata(Metadata::from_value(within_bounds(json!({
                "fields": fields,
                "changes": changes,
                "ip_allowlist": listed(&strings(&after.ip_allowlist)),
                "blocked_countries": listed(&countries),
                "mfa_required": after.mfa.required,
                "audit_retention_days": after.audit_retention_days,
            })))?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::SettingsUpdated,
        now,
        json!({ "fields": fields, "updatedBy": caller.user.id }),
    ));
    store
        .update_security(
            caller.org.id,
            Some(caller.user.id),
            &before,
            &after,
            journal,
        )
        .await?;
    // A lowered concurrent-session limit ends the members' oldest sessions beyond it now (a
    // session limit exists to bound how many devices hold a way in), each recorded. After the
    // change's own transaction: should it fail, the change stands (and is answered as made),
    // and the limit still holds at each member's next sign-in.
    if after.sessions.max_concurrent < before.sessions.max_concurrent
        && let Err(e) =
            end_sessions_beyond_limit(store, caller, after.sessions.max_concurrent, now).await
    {
        tracing::warn!(org = %caller.org.id, error = %e, "a lowered session limit could not end the sessions beyond it; it applies at each member's next sign-in");
    }
    Ok(after)
}

/// Ends, for each member of the caller's organization, their oldest usable sessions beyond its
/// concurrent-session limit, as a sign-in would: sessions past their timeouts (the strictest of
/// the person's organizations', which refuse them already) are not counted, so an expired newer
/// one never costs the member the one in use. Each ending is its own transaction with its
/// `auth.session_revoked` record (`session_limit`), in this organization; a member whose
/// sessions cannot be read or ended is logged and passed over. A sign-in that read the old
/// limit just before the change may still add a session beyond the new one, until that
/// person's next sign-in. Returns how many sessions were ended.
async fn end_sessions_beyond_limit<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    max: u32,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    const PAGE: u32 = 200;
    let mut ended = 0;
    let mut after = None;
    loop {
        let page = store.list_members(caller.org.id, after, PAGE).await?;
        for m in &page {
            match end_member_sessions_beyond(store, caller, &m.user, max, now).await {
                Ok(n) => ended += n,
                Err(e) => {
                    tracing::warn!(org = %caller.org.id, user = %m.user.id, error = %e, "a member's sessions beyond a lowered limit could not be ended");
                }
            }
        }
        if page.len() < PAGE as usize {
            return Ok(ended);
        }
        after = page.last().map(|m| m.user.id);
    }
}

/// [`end_sessions_beyond_limit`] for one member.
async fn end_member_sessions_beyond<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    user: &User,
    max: u32,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    let sessions = store.list_sessions(user.id).await?;
    if sessions.len() <= max as usize {
        return Ok(0);
    }
    let policy = crate::accounts::policy_for(store, user, None).await?;
    let mut usable: Vec<&crate::Session> = sessions
        .iter()
        .filter(|s| {
            security_policy::check_session(&policy, s.created_at, s.last_seen_at, now)
                == security_policy::SessionStatus::Active
        })
        .collect();
    usable.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
    let mut ended = 0;
    for s in usable.iter().skip(max as usize) {
        let record = caller
            .audit(
                now,
                AuditAction::SessionRevoked,
                Target::new("session", s.id, ""),
            )
            .with_metadata(Metadata::from_value(json!({
                "reason": "session_limit", "userId": user.id, "limit": max,
            }))?);
        match store
            .end_session(user.id, s.id, now, Journal::record(record))
            .await
        {
            Ok(()) => ended += 1,
            Err(TenancyError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ended)
}

/// At most this many entries of a list go into an audit record (whose metadata is bounded,
/// `audit::MAX_METADATA_BYTES`); a longer one is recorded by its count and first entries.
const LISTED: usize = 20;

/// `items`, or its count and first [`LISTED`] entries when it is longer.
fn listed(items: &[Value]) -> Value {
    if items.len() <= LISTED {
        Value::Array(items.to_vec())
    } else {
        json!({ "count": items.len(), "first": &items[..LISTED] })
    }
}

/// A change's record within `audit::MAX_METADATA_BYTES`: each list in it is already cut to its
/// first entries ([`listed`]), but a change of every setting at once, with long IPv6 networks,
/// can still pass the bound, and a valid change must not be refused for its record's size. So
/// the details go, least needed first, until it fits: the settings as they are now (the
/// allowlist and countries) become counts, then the networks of changed labels, then what the
/// lists gained and lost; what each field was and became stays.
fn within_bounds(mut meta: Value) -> Value {
    let size = |v: &Value| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    let count = |v: &Value| match v {
        Value::Array(a) => json!({ "count": a.len() }),
        Value::Object(o) if o.contains_key("count") => json!({ "count": o["count"] }),
        other => other.clone(),
    };
    for key in ["ip_allowlist", "blocked_countries"] {
        if size(&meta) <= audit::MAX_METADATA_BYTES {
            return meta;
        }
        if let Some(v) = meta.get_mut(key) {
            *v = count(v);
        }
    }
    if size(&meta) > audit::MAX_METADATA_BYTES
        && let Some(Value::Object(labels)) = meta.pointer_mut("/changes/ip_allowlist_labels")
    {
        labels.remove("set_networks");
        labels.remove("removed_networks");
    }
    for key in ["ip_allowlist", "blocked_countries"] {
        for side in ["added", "removed"] {
            if size(&meta) <= audit::MAX_METADATA_BYTES {
                return meta;
            }
            if let Some(v) = meta.pointer_mut(&format!("/changes/{key}/{side}")) {
                *v = count(v);
            }
        }
    }
    meta
}

/// How many allowlist labels a change set (new or different) and removed, with the first
/// few networks of each: the labels' text stays out of the record, which must stay small
/// whatever the labels (an allowlist of a thousand labelled networks is relabelled an entry at
/// a time, and the networks it admits are recorded in full beside it).
fn labels_change(
    from: &std::collections::BTreeMap<String, String>,
    to: &std::collections::BTreeMap<String, String>,
) -> Value {
    const NAMED: usize = 5;
    let set: Vec<&String> = to
        .iter()
        .filter(|(k, v)| from.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let removed: Vec<&String> = from.keys().filter(|k| !to.contains_key(*k)).collect();
    json!({
        "set": set.len(), "set_networks": &set[..set.len().min(NAMED)],
        "removed": removed.len(), "removed_networks": &removed[..removed.len().min(NAMED)],
    })
}

/// What a list setting gained and lost (each [`listed`]): an allowlist of hundreds of networks
/// is edited an entry at a time, and its record says which.
fn list_change(from: &[Value], to: &[Value]) -> Value {
    let added: Vec<Value> = to.iter().filter(|x| !from.contains(x)).cloned().collect();
    let removed: Vec<Value> = from.iter().filter(|x| !to.contains(x)).cloned().collect();
    json!({ "added": listed(&added), "removed": listed(&removed) })
}

/// The refusal of a change of the audit retention by someone who is not the Owner (`role`:
/// their role, if they still have one), also when they stopped being the Owner after the
/// service looked.
#[must_use]
pub fn retention_refused(role: Option<rbac_core::OrgRole>) -> TenancyError {
    TenancyError::Forbidden(rbac_core::DenyReason::RoleLacksPermission {
        role: role.unwrap_or(rbac_core::OrgRole::User),
    })
}

/// What [`clear_network_rules_as_system`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRulesCleared {
    /// The IP allowlist as it was (CIDR text); empty when there was none.
    pub ip_allowlist: Vec<String>,
    /// The blocked countries as they were.
    pub blocked_countries: Vec<security_policy::Country>,
}

/// Clears an organization's IP allowlist and blocked countries, as its operator (the server's
/// `clear-network-rules` command): the way back for an organization whose rules lock out its
/// Owner (an Admin's allowlist of their own address, an Owner's home address that changed,
/// a country blocked by mistake), who could otherwise reach nothing of it, its security settings
/// included. Recorded as `security_policy.updated` by the system, with what was removed; nothing
/// is written when there was nothing to clear. The Owner's own access (password, second factor)
/// is `orgs::reset_owner_as_system`'s.
///
/// # Errors
/// [`TenancyError::NotFound`] for an unknown organization; [`TenancyError::Conflict`] when its
/// settings changed meanwhile (run it again).
pub async fn clear_network_rules_as_system<S: TenancyStore + ?Sized>(
    store: &S,
    org: rbac_core::OrgId,
    now: DateTime<Utc>,
) -> Result<NetworkRulesCleared, TenancyError> {
    let o = store.get_org(org).await?;
    let before = o.security.clone();
    let cleared = NetworkRulesCleared {
        ip_allowlist: before
            .ip_allowlist
            .iter()
            .map(ToString::to_string)
            .collect(),
        blocked_countries: before.blocked_countries.clone(),
    };
    if cleared.ip_allowlist.is_empty() && cleared.blocked_countries.is_empty() {
        return Ok(cleared);
    }
    let after = SecuritySettings {
        ip_allowlist: Vec::new(),
        ip_allowlist_labels: std::collections::BTreeMap::new(),
        blocked_countries: Vec::new(),
        ..before.clone()
    };
    let (mut fields, mut changes) = (Vec::new(), serde_json::Map::new());
    if !cleared.ip_allowlist.is_empty() {
        fields.push("ip_allowlist");
        let was: Vec<Value> = cleared
            .ip_allowlist
            .iter()
            .map(|e| Value::String(e.clone()))
            .collect();
        changes.insert("ip_allowlist".into(), list_change(&was, &[]));
    }
    if !before.ip_allowlist_labels.is_empty() {
        fields.push("ip_allowlist_labels");
        changes.insert(
            "ip_allowlist_labels".into(),
            labels_change(
                &before.ip_allowlist_labels,
                &std::collections::BTreeMap::new(),
            ),
        );
    }
    if !cleared.blocked_countries.is_empty() {
        fields.push("blocked_countries");
        let was: Vec<Value> = cleared
            .blocked_countries
            .iter()
            .map(|c| Value::String(c.to_string()))
            .collect();
        changes.insert("blocked_countries".into(), list_change(&was, &[]));
    }
    let journal = Journal::record(
        audit::NewAuditEvent::new(
            org,
            now,
            audit::Actor::system(),
            AuditAction::SecurityPolicyUpdated,
            Target::new("organization", org, o.name.clone()),
        )
        .with_metadata(Metadata::from_value(json!({
            "fields": fields,
            "changes": changes,
            "ip_allowlist": [],
            "blocked_countries": [],
            "by": "operator",
        }))?),
    )
    .publish(DomainEvent::new(
        org,
        EventKind::SettingsUpdated,
        now,
        json!({ "fields": fields, "updatedBy": null }),
    ));
    store
        .update_security(org, None, &before, &after, journal)
        .await?;
    Ok(cleared)
}

/// Why an organization refuses requests from an address ([`admit_address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRefusal {
    /// Outside the IP allowlist.
    IpNotAllowed(IpAddr),
    /// In a blocked country.
    CountryBlocked(security_policy::Country),
    /// Countries are blocked, and the server cannot place the address (no GeoIP database, or
    /// a failed lookup).
    CountryUnverifiable(IpAddr),
}

impl AddressRefusal {
    /// The stable reason code, as audited and in the API's problem type.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::IpNotAllowed(_) => "ip_not_allowed",
            Self::CountryBlocked(_) => "country_blocked",
            Self::CountryUnverifiable(_) => "country_unverifiable",
        }
    }
}

impl std::fmt::Display for AddressRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IpNotAllowed(ip) => write!(
                f,
                "requests from {ip} are not allowed by this organization's IP allowlist"
            ),
            Self::CountryBlocked(c) => write!(
                f,
                "this organization blocks requests from {} ({c})",
                c.name()
            ),
            Self::CountryUnverifiable(ip) => write!(
                f,
                "this organization blocks requests from some countries, and this server cannot tell which country {ip} is in (it has no GeoIP database, or its database cannot look the address up); its operator sets one up with `security.geoip_database`, and until then only the organization's security settings can be reached"
            ),
        }
    }
}

/// Whether the organization admits requests from `ip`, which the server places at `at`: inside
/// its IP allowlist (an empty one admits every address) and not in a country it blocks. Applies
/// to everything of the organization (its routes, SCIM); signing in is held to the allowlists
/// only (`accounts`), since a person's sign-in serves all of their organizations.
///
/// # Errors
/// The first rule that refuses.
pub fn admit_address(
    org: &crate::Organization,
    ip: IpAddr,
    at: Located,
) -> Result<(), AddressRefusal> {
    if !check_ip(&org.security.ip_allowlist, ip).is_allowed() {
        return Err(AddressRefusal::IpNotAllowed(ip));
    }
    match check_country(&org.security.blocked_countries, at) {
        CountryDecision::Blocked(c) => Err(AddressRefusal::CountryBlocked(c)),
        CountryDecision::Unverifiable => Err(AddressRefusal::CountryUnverifiable(ip)),
        CountryDecision::Allowed | CountryDecision::AllowedNoList => Ok(()),
    }
}

/// What the organization's rules say of an address ([`ip_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressVerdict {
    /// The allowlist is empty: it admits every address.
    pub allowlist_empty: bool,
    /// Where the server places the address.
    pub located: Located,
    /// Why requests from it would be refused; `None` when they would be admitted.
    pub refusal: Option<AddressRefusal>,
}

/// Whether `ip`, which the server places at `at`, may reach the organization, by its allowlist
/// and its blocked countries ([`admit_address`]).
///
/// # Errors
/// [`TenancyError::Forbidden`] without the right to view the security policy.
pub fn ip_check(caller: &Caller, ip: IpAddr, at: Located) -> Result<AddressVerdict, TenancyError> {
    caller.check_org(Permission::ViewSecurityPolicy)?;
    Ok(AddressVerdict {
        allowlist_empty: caller.org.security.ip_allowlist.is_empty(),
        located: at,
        refusal: admit_address(&caller.org, ip, at).err(),
    })
}

/// Changes one's own password after checking the current one. The new one must meet the
/// strictest password policy of the person's organizations (with the shorter minimum when a
/// second factor is on); every other session of theirs ends.
///
/// A wrong current password counts against the login throttle and is recorded as a failed
/// password change in each of the person's organizations.
///
/// # Errors
/// [`TenancyError::BadCredentials`] for a wrong current password; [`TenancyError::Throttled`]
/// while the login throttle locks the account; [`TenancyError::Password`].
#[allow(
    clippy::too_many_arguments,
    reason = "the change's parts, as they arrive"
)]
pub async fn change_password<S: TenancyStore + MfaStore + ?Sized>(
    store: &S,
    hasher: &PasswordHasher,
    user: &User,
    current_session: Option<rbac_core::SessionId>,
    current: &str,
    new: &str,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    confirm_password(
        store,
        hasher,
        user,
        current,
        AuditAction::PasswordChanged,
        request,
        now,
    )
    .await?;
    let has_2fa = enrolled(store, user.id).await?;
    let orgs = check_against_policies(store, user, new, has_2fa).await?;
    let hash = hasher
        .hash_off_thread(new)
        .await
        .map_err(|e| TenancyError::Invalid(e.to_string()))?;
    // Anyone holding another session of this person is signed out with the old password, in
    // the change's transaction; each organization's record says how many sessions ended.
    let records = |ended: u64| {
        let mut j = Journal::default();
        for org in &orgs {
            let event = |action| crate::mfa::personal_record(org.id, user, action, request, now);
            j = j.and_record(event(AuditAction::PasswordChanged));
            if ended > 0 {
                j = j.and_record(
                    event(AuditAction::SessionRevoked).with_metadata(
                        Metadata::from_value(
                            json!({"sessions": ended, "reason": "password_changed"}),
                        )
                        .unwrap_or_default(),
                    ),
                );
            }
        }
        j
    };
    store
        .change_password_hash(user.id, &hash, current_session, now, &records)
        .await
}

/// Checks that `password` is the person's current one, against the login's own throttle:
/// whoever holds a session cannot try more passwords this way than at the sign-in page. A
/// wrong one counts as a failed login and is recorded as a failed `action` in each of the
/// person's organizations.
///
/// # Errors
/// [`TenancyError::BadCredentials`]; [`TenancyError::Throttled`] while the account is locked
/// (unless from an address the person signed in from recently, as at the sign-in page).
pub(crate) async fn confirm_password<S: TenancyStore + ?Sized>(
    store: &S,
    hasher: &PasswordHasher,
    user: &User,
    password: &str,
    action: AuditAction,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    if password.len() > crate::accounts::MAX_PASSWORD_BYTES {
        return Err(TenancyError::BadCredentials);
    }
    let (_, stored) = store
        .find_user_by_email(&user.email)
        .await?
        .ok_or(TenancyError::BadCredentials)?;
    let throttle = store.login_throttle(user.id).await?;
    let lock = security_policy::locked_until(throttle.as_ref(), now);
    let familiar = match lock {
        Some(_) => {
            crate::accounts::lock_admits(store, user.id, throttle.as_ref(), &request.ip, now)
                .await?
        }
        None => false,
    };
    if let Some(until) = lock
        && !familiar
    {
        return Err(TenancyError::Throttled(until));
    }
    if matches!(
        hasher.verify_off_thread(stored.as_deref(), password).await,
        security_policy::Verification::Match { .. }
    ) {
        return Ok(());
    }
    let failed = crate::mfa::personal_journal_with(store, user, action, request, now, |r| {
        r.with_outcome(audit::Outcome::Failure {
            reason: "bad_current_password".into(),
        })
    })
    .await?;
    store
        .count_login_failure(
            user.id,
            &security_policy::LoginThrottlePolicy::default(),
            now,
            familiar,
            failed,
        )
        .await?;
    Err(TenancyError::BadCredentials)
}

/// Checks `password` against the password policy of every organization of the person (the
/// default policy when they have none), with the shorter minimum when `has_2fa`. Returns the
/// organizations.
///
/// # Errors
/// [`TenancyError::Password`] naming the first rule it breaks.
pub(crate) async fn check_against_policies<S: TenancyStore + ?Sized>(
    store: &S,
    user: &User,
    password: &str,
    has_2fa: bool,
) -> Result<Vec<crate::model::Organization>, TenancyError> {
    let mut orgs = Vec::new();
    for m in store.memberships(user.id).await? {
        orgs.push(store.get_org(m.org).await?);
    }
    for org in &orgs {
        check_password(
            &org.security.passwords,
            password,
            &context_words(user.email.as_str(), &org.name),
            has_2fa,
        )?;
    }
    if orgs.is_empty() {
        check_password(
            &PasswordPolicy::default(),
            password,
            &context_words(user.email.as_str(), ""),
            has_2fa,
        )?;
    }
    Ok(orgs)
}

/// Signs a member out of the organization (the Owner and Admins, for example when a laptop is
/// lost): every live session of theirs is refused here from now on. Sessions belong to the
/// person: one that stays good in another organization where they are active is only refused
/// here ([`crate::Session::signed_out_of`]); the others end
/// ([`TenancyStore::end_sessions_in`]). Their API keys are untouched; a session is ended
/// everywhere by the person (`DELETE /me/sessions/{id}`) or by a change of their password.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::NotFound`] for non-members;
/// [`TenancyError::RoleRule`]-like refusals as `Forbidden` for the Owner's sessions.
pub async fn end_member_sessions<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    target: UserId,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    caller.check_org(Permission::RemoveMembers)?;
    let member = store
        .get_member(caller.org.id, target)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    if member.role == rbac_core::OrgRole::Owner && caller.subject.role != rbac_core::OrgRole::Owner
    {
        return Err(crate::members::owner_sign_out_refused(caller.subject.role));
    }
    let revoked = caller.audit(
        now,
        AuditAction::SessionRevoked,
        Target::new("member", target, member.user.name.clone()),
    );
    let records = |ended: u64| crate::each_session(&revoked, ended);
    // The caller's standing, and the target's role, are checked again under the store's locks.
    let by = caller.scim_token.is_none().then_some(caller.user.id);
    store
        .end_sessions_in(caller.org.id, target, by, now, &records)
        .await
}

/// Applies `org`'s audit retention period: records older than it are removed under a signed
/// retention anchor (see `audit::prune_before`), the removal is itself recorded
/// (`audit.pruned`, by the system, in the removal's transaction), and a checkpoint of the new
/// head is signed. Returns how many records were removed (`0` without a retention period, for
/// an archived log, or when nothing is old enough). `audit_store` is the organization's audit
/// log as checkpoints are to be taken of it (the store itself, or the store with a witness of
/// its checkpoints, `audit::Witnessed`).
///
/// # Errors
/// [`TenancyError::Conflict`] when the records to be removed do not verify (nothing is removed:
/// they are the evidence); storage errors.
pub async fn apply_audit_retention<S: TenancyStore>(
    store: &S,
    audit_store: &dyn audit::AuditStore,
    org: rbac_core::OrgId,
    checkpoint_key: &[u8],
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    let o = store.get_org(org).await?;
    // An archived log (the organization left Enterprise) is kept whole for its Owner.
    let Some(days) = o
        .security
        .audit_retention_days
        .filter(|_| o.audit_archived_at.is_none())
    else {
        return Ok(0);
    };
    let cutoff = now - chrono::Duration::days(i64::from(days));
    // Committed with the removal: how many records went, and through which one.
    let record = |anchor: &audit::Anchor, removed: u64| -> Result<Journal, audit::AuditError> {
        Ok(Journal::record(
            audit::NewAuditEvent::new(
                org,
                now,
                audit::Actor::system(),
                AuditAction::AuditPruned,
                Target::new("organization", org, o.name.clone()),
            )
            .with_metadata(Metadata::from_value(json!({
                "retention_days": days, "removed": removed, "through_seq": anchor.seq,
            }))?),
        ))
    };
    let Some((_, removed)) =
        audit::prune_before(audit_store, org, cutoff, checkpoint_key, now, &record).await?
    else {
        return Ok(0);
    };
    audit::take_checkpoint(audit_store, org, checkpoint_key, now).await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_of_everything_at_once_goes_through_with_its_record() {
        use audit::AuditStore;
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Everything").await;
        let ip: IpAddr = "::1".parse().unwrap();
        let now = Utc::now();
        // A thousand of the longest networks, labelled at length, and twenty countries.
        let list = |p: u32| -> Vec<AllowlistItem> {
            (0..999)
                .map(|i| {
                    // Four digits in every group: nothing for the canonical form to shorten.
                    AllowlistItem::new(format!(
                        "ffff:ffff:ffff:ffff:ffff:ffff:{p:04x}:{:04x}/128",
                        0x1000 + i
                    ))
                    .labelled("é".repeat(64))
                })
                .chain([AllowlistItem::new("::1/128")])
                .collect()
        };
        let codes = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let first = SecurityUpdate {
            ip_allowlist: Some(list(0x1111)),
            blocked_countries: Some(codes(&[
                "AD", "AE", "AF", "AG", "AL", "AM", "AO", "AR", "AT", "AU", "AZ", "BA", "BB", "BD",
                "BE", "BF", "BG", "BH", "BI", "BJ",
            ])),
            ..SecurityUpdate::default()
        };
        let caller = store.session_caller_in(org.id, owner.clone()).await;
        update(&store, &caller, first, ip, Located::Nowhere, now)
            .await
            .unwrap();
        // Then every one of them swapped, with the sessions, passwords and 2FA changed.
        let second = SecurityUpdate {
            sessions: Some(security_policy::SessionPolicy {
                absolute_timeout_minutes: 600,
                idle_timeout_minutes: 45,
                max_concurrent: 5,
            }),
            passwords: Some(security_policy::PasswordPolicy {
                min_length: 16,
                min_length_with_2fa: 10,
                max_length: 128,
            }),
            ip_allowlist: Some(list(0x2222)),
            blocked_countries: Some(codes(&[
                "BN", "BO", "BR", "BS", "BT", "BW", "BY", "BZ", "CA", "CD", "CF", "CG", "CH", "CI",
                "CL", "CM", "CN", "CO", "CR", "CU",
            ])),
            mfa_required: Some(true),
            mfa_grace_days: Some(14),
            ..SecurityUpdate::default()
        };
        let caller = store.session_caller_in(org.id, owner).await;
        update(&store, &caller, second, ip, Located::Nowhere, now)
            .await
            .unwrap();
        let records = store
            .audit()
            .search(
                org.id,
                &audit::AuditQuery {
                    action: Some(audit::ActionFilter::parse("security_policy.updated")),
                    limit: 1,
                    ..audit::AuditQuery::default()
                },
            )
            .await
            .unwrap();
        let meta = records[0].event.metadata.to_map();
        assert_eq!(meta.get("ip_allowlist"), Some(&json!({ "count": 1_000 })));
        assert!(meta.contains_key("changes"));
    }

    #[test]
    fn a_change_of_everything_at_once_is_recorded_within_bounds() {
        // The longest networks: a thousand IPv6 /128 addresses swapped for a thousand others,
        // labelled; forty countries swapped too; sessions and passwords changed.
        let net = |p: u32, i: u32| {
            Value::String(format!("ffff:ffff:ffff:ffff:ffff:ffff:{p:04x}:{i:04x}/128"))
        };
        let old: Vec<Value> = (0..1_000).map(|i| net(1, i)).collect();
        let new: Vec<Value> = (0..1_000).map(|i| net(2, i)).collect();
        let countries =
            |p: &str| -> Vec<Value> { (0..20).map(|i| json!(format!("{p}{i}"))).collect() };
        let labels_before: std::collections::BTreeMap<String, String> = old
            .iter()
            .map(|n| (n.as_str().unwrap().to_owned(), "é".repeat(64)))
            .collect();
        let labels_after: std::collections::BTreeMap<String, String> = new
            .iter()
            .map(|n| (n.as_str().unwrap().to_owned(), "é".repeat(64)))
            .collect();
        let meta = json!({
            "fields": ["sessions", "passwords", "ip_allowlist", "ip_allowlist_labels", "blocked_countries",
                       "mfa.required", "mfa.grace_days", "mfa.methods", "audit_retention_days"],
            "changes": {
                "sessions": {"from": {"absolute_timeout_minutes": 480, "idle_timeout_minutes": 30, "max_concurrent": 3},
                             "to": {"absolute_timeout_minutes": 600, "idle_timeout_minutes": 45, "max_concurrent": 5}},
                "passwords": {"from": {"min_length": 15, "min_length_with_2fa": 8, "max_length": 64},
                              "to": {"min_length": 16, "min_length_with_2fa": 10, "max_length": 128}},
                "ip_allowlist": list_change(&old, &new),
                "ip_allowlist_labels": labels_change(&labels_before, &labels_after),
                "blocked_countries": list_change(&countries("A"), &countries("B")),
                "mfa": {"from": true, "to": false},
            },
            "ip_allowlist": listed(&new),
            "blocked_countries": listed(&countries("B")),
            "mfa_required": false,
            "audit_retention_days": 90,
        });
        assert!(serde_json::to_vec(&meta).unwrap().len() > audit::MAX_METADATA_BYTES);
        let fitted = within_bounds(meta.clone());
        assert!(serde_json::to_vec(&fitted).unwrap().len() <= audit::MAX_METADATA_BYTES);
        assert!(Metadata::from_value(fitted.clone()).is_ok());
        // What each field was and became stays; the lists' details went first.
        assert_eq!(fitted["changes"]["sessions"], meta["changes"]["sessions"]);
        assert_eq!(fitted["ip_allowlist"], json!({ "count": 1_000 }));
        assert_eq!(fitted["changes"]["ip_allowlist_labels"]["set"], 1_000);
        // A record that fits is kept as it is.
        let small = json!({ "fields": ["ip_allowlist"], "ip_allowlist": ["10.0.0.0/8"] });
        assert_eq!(within_bounds(small.clone()), small);
    }
}
