//! Organizations, people, memberships, teams, sessions and API keys.

use billing_limits::Plan;
use chrono::{DateTime, Utc};
use rbac_core::{ApiKeyId, FeatureAccess, OrgId, OrgRole, SessionId, TeamId, TeamRole, UserId};
use security_policy::{IpAllowlistEntry, PasswordPolicy, SessionPolicy};
use serde::{Deserialize, Serialize};

use crate::error::TenancyError;

/// A validated email address in one canonical form: the local part in Unicode NFC and lower
/// case, the domain mapped by IDNA (UTS 46: lower case, NFC, full-width forms folded, an
/// `xn--` label decoded), so that one address written two ways is one address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates the shape `local@domain.tld` and brings it to its canonical form (matching is
    /// case-insensitive, and blind to how Unicode text or a domain name is spelt).
    ///
    /// # Errors
    /// [`TenancyError::Invalid`] naming the input.
    pub fn parse(s: &str) -> Result<Self, TenancyError> {
        let s = s.trim();
        let bad = || {
            TenancyError::Invalid(format!(
                "`{}` is not a valid email address",
                s.chars().take(100).collect::<String>()
            ))
        };
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let local = icu_normalizer::ComposingNormalizerBorrowed::new_nfc()
            .normalize(local)
            .to_lowercase();
        let (domain, mapped) = idna::domain_to_unicode(domain);
        if mapped.is_err() {
            return Err(bad());
        }
        let (local, domain) = (local.as_str(), domain.as_str());
        if local.len() + 1 + domain.len() > 254 {
            return Err(bad());
        }
        if local.is_empty() || local.len() > 64 || local.contains('@') || domain.len() < 3 {
            return Err(bad());
        }
        if !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        if !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    /// An address as a store kept it, when it no longer parses: one accepted by an earlier
    /// version of [`Email::parse`] that the current one refuses (a domain IDNA refuses, say).
    /// Not checked again, so that such a row stays readable rather than failing every read
    /// that includes it; stores use it only as the fallback of [`Email::parse`].
    #[must_use]
    pub fn stored(s: String) -> Self {
        Self(s)
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The enterprise guide's "Company Information".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CompanyProfile {
    /// Company name.
    pub company_name: String,
    /// Contact email.
    pub contact_email: Option<Email>,
    /// Billing address (Owner-only to read).
    pub billing_address: String,
    /// Tax id (Owner-only to read).
    pub tax_id: String,
}

/// An organization's security settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SecuritySettings {
    /// Session lifetimes and limits.
    pub sessions: SessionPolicy,
    /// Password rules.
    pub passwords: PasswordPolicy,
    /// Allowed client networks; empty means everyone.
    pub ip_allowlist: Vec<IpAllowlistEntry>,
    /// People's labels of allowlist entries ("Office network"), by the entry's network as text
    /// (`203.0.113.0/24`); only entries of the list have one.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub ip_allowlist_labels: std::collections::BTreeMap<String, String>,
    /// Countries whose requests the organization refuses, placed by the server's GeoIP
    /// database (`security_policy::check_country`); empty blocks none.
    #[serde(default)]
    pub blocked_countries: Vec<security_policy::Country>,
    /// Two-factor authentication requirement.
    pub mfa: crate::mfa::MfaPolicy,
    /// Days audit records are kept (`None`: forever). Older ones are removed under a signed
    /// retention anchor, so the rest of the chain still verifies.
    #[serde(default)]
    pub audit_retention_days: Option<u32>,
}

impl SecuritySettings {
    /// The label of an allowlist entry, if it has one.
    #[must_use]
    pub fn label_of(&self, entry: &IpAllowlistEntry) -> Option<&str> {
        self.ip_allowlist_labels
            .get(&entry.to_string())
            .map(String::as_str)
    }
}

/// An organization (an enterprise account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// Subscription plan.
    pub plan: Plan,
    /// Company information.
    pub profile: CompanyProfile,
    /// Feature-access settings.
    pub access: FeatureAccess,
    /// Security settings.
    pub security: SecuritySettings,
    /// Since when the audit log is archived: the organization left the Enterprise plan, so the
    /// log is read-only and only the Owner may export it, until it upgrades again.
    #[serde(default)]
    pub audit_archived_at: Option<DateTime<Utc>>,
    /// Negotiated limits replacing the plan's (set by the operator, `set-limits`), a deal for
    /// the plan [`Self::limit_overrides_plan`].
    #[serde(default)]
    pub limit_overrides: billing_limits::LimitOverrides,
    /// The plan the negotiated limits were made for (the plan the organization was on when the
    /// operator set them): they apply only while the organization is on it, so an Enterprise
    /// deal's seats do not follow it to Free or Pro, nor a Pro deal's limits to an Enterprise
    /// trial; and they apply again when it comes back. `None` with no deal.
    #[serde(default)]
    pub limit_overrides_plan: Option<billing_limits::Plan>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Organization {
    /// The limits that apply: the plan's, with the organization's negotiated overrides while
    /// it is on the plan they were made for ([`Self::limit_overrides_plan`]).
    #[must_use]
    pub fn limits(&self) -> billing_limits::PlanLimits {
        let plan = billing_limits::PlanLimits::deployed(self.plan);
        match self.limit_overrides_plan {
            Some(made_for) if made_for != self.plan => plan,
            _ => self.limit_overrides.apply(plan),
        }
    }

    /// Whether members other than the Owner may use the organization: not when its member limit
    /// is one (Free and Pro), as after a downgrade from Enterprise ("team members lose access,
    /// except the owner"); upgrading again gives them access back.
    #[must_use]
    pub fn admits_members(&self) -> bool {
        self.limits().members.is_none_or(|m| m > 1)
    }
}

/// A person with an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Login email.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A person's membership of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The organization.
    pub org: OrgId,
    /// The person.
    pub user: User,
    /// Their role.
    pub role: OrgRole,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// When they were deactivated (`None`: active). A deactivated member keeps membership and
    /// resources but cannot act in the organization.
    #[serde(default)]
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Their role in every team, those created later included (see
    /// [`rbac_core::Subject::all_teams`]); `None`: explicit team roles only.
    #[serde(default)]
    pub all_teams: Option<TeamRole>,
}

/// One of a person's memberships, with their team roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The organization.
    pub org: OrgId,
    /// Its name.
    pub org_name: String,
    /// The person's role.
    pub role: OrgRole,
    /// The person's team roles.
    pub teams: Vec<(TeamId, TeamRole)>,
    /// The person's role in every team.
    #[serde(default)]
    pub all_teams: Option<TeamRole>,
    /// `false` while the membership is deactivated.
    #[serde(default = "active")]
    pub active: bool,
}

/// One of a person's memberships with what resolving them as a caller there needs: the
/// organization itself, their role, dates and team roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerMembership {
    /// The organization.
    pub org: Organization,
    /// The person's role.
    pub role: OrgRole,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// When they were deactivated (`None`: active).
    pub deactivated_at: Option<DateTime<Utc>>,
    /// The person's team roles there, in team id order.
    pub teams: Vec<(TeamId, TeamRole)>,
    /// The person's role in every team there.
    pub all_teams: Option<TeamRole>,
}

const fn active() -> bool {
    true
}

/// A team: an isolated workspace inside an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// Its organization.
    pub org: OrgId,
    /// Display name, unique in the organization.
    pub name: String,
    /// The workspace every member joins; a single-workspace enterprise has only this one.
    pub is_default: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When archived: resources stay readable, nothing new is created in it.
    pub archived_at: Option<DateTime<Utc>>,
}

/// A login session (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Whose session.
    pub user: UserId,
    /// Login time.
    pub created_at: DateTime<Utc>,
    /// Last request.
    pub last_seen_at: DateTime<Utc>,
    /// Client address at login.
    pub ip: String,
    /// Client user agent at login.
    pub user_agent: String,
    /// Organizations whose Owner or Admin signed the person out while the session stayed good
    /// in another organization of theirs
    /// ([`TenancyStore::end_sessions_in`](crate::TenancyStore::end_sessions_in)): the session
    /// is refused in these (until the person signs in again) and stays valid in the others;
    /// once it covers every organization where they are active, it is refused everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signed_out_of: Vec<rbac_core::OrgId>,
}

/// What signing a live session out of an organization does to it ([`Session::sign_out_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOut {
    /// It would be good nowhere: it ends.
    End,
    /// It stays good elsewhere: it is refused in the organization from now on.
    Refuse,
    /// Refused there already, and still good elsewhere: nothing changes.
    Already,
}

impl Session {
    /// What signing this live session out of `org` does, given the other organizations where
    /// its person holds an active membership (`active_elsewhere`): it ends when none of them
    /// would still take it (also when it was refused in `org` before), is refused in `org`
    /// otherwise, and is left alone when it is so already. The rule of
    /// [`TenancyStore::end_sessions_in`](crate::TenancyStore::end_sessions_in).
    #[must_use]
    pub fn sign_out_of(&self, org: OrgId, active_elsewhere: &[OrgId]) -> SignOut {
        if active_elsewhere
            .iter()
            .all(|o| self.signed_out_of.contains(o))
        {
            SignOut::End
        } else if self.signed_out_of.contains(&org) {
            SignOut::Already
        } else {
            SignOut::Refuse
        }
    }
}

/// What an API key reaches, decided by the team it is created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Created in the organization's default team: the organization's key, acting with its
    /// creator's rights across the organization.
    Organization,
    /// Created in any other team (a client's, say): that team's key, acting only in it, with
    /// its creator's role there, and outside teams as no more than an organization User
    /// (`rbac_core::Subject::confined_to`).
    Team,
}

impl KeyScope {
    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "organization",
            Self::Team => "team",
        }
    }

    /// Parses [`Self::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Organization, Self::Team]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// An API key (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Its organization.
    pub org: OrgId,
    /// Its team.
    pub team: TeamId,
    /// What it reaches: set at creation from its team.
    pub scope: KeyScope,
    /// Who created it; the key acts with this person's current rights (within its scope).
    pub created_by: UserId,
    /// Display name ("Production API").
    pub name: String,
    /// Visible prefix of the secret.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked or deactivated.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Validates a display name: 1..=100 characters after trimming, no control characters.
///
/// # Errors
/// [`TenancyError::Invalid`] naming the field.
pub fn valid_name(field: &str, s: &str) -> Result<String, TenancyError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
        return Err(TenancyError::Invalid(format!(
            "`{field}` must be 1 to 100 printable characters"
        )));
    }
    Ok(t.to_owned())
}

/// Free text of several lines (a note, a message), trimmed: 1 to `max` characters, line
/// breaks and tabs allowed but no other control character.
///
/// # Errors
/// [`TenancyError::Invalid`] naming the field.
pub fn valid_lines(field: &str, s: &str, max: usize) -> Result<String, TenancyError> {
    let t = s.trim();
    if t.is_empty()
        || t.chars().count() > max
        || t.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(TenancyError::Invalid(format!(
            "`{field}` must be 1 to {max} characters, line breaks and tabs but no other control characters"
        )));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session ends once no organization where its person is active would take it, even one
    /// it was refused in before; otherwise it is refused once.
    #[test]
    fn a_session_signed_out_ends_only_when_good_nowhere() {
        let (a, b, c) = (OrgId::new(), OrgId::new(), OrgId::new());
        let at = Utc::now();
        let s = |out: Vec<OrgId>| Session {
            id: SessionId::new(),
            user: UserId::new(),
            created_at: at,
            last_seen_at: at,
            ip: String::new(),
            user_agent: String::new(),
            signed_out_of: out,
        };
        assert_eq!(s(vec![]).sign_out_of(a, &[]), SignOut::End, "in no other");
        assert_eq!(s(vec![]).sign_out_of(a, &[b]), SignOut::Refuse);
        assert_eq!(s(vec![a]).sign_out_of(a, &[b]), SignOut::Already);
        assert_eq!(
            s(vec![b]).sign_out_of(a, &[b]),
            SignOut::End,
            "refused in B"
        );
        assert_eq!(
            s(vec![a]).sign_out_of(a, &[]),
            SignOut::End,
            "left the others"
        );
        assert_eq!(
            s(vec![b]).sign_out_of(a, &[b, c]),
            SignOut::Refuse,
            "good in C"
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Sarah@Company.COM ").unwrap().as_str(),
            "sarah@company.com"
        );
        for bad in [
            "",
            "sarah",
            "sarah@",
            "@company.com",
            "a@b",
            "a b@c.com",
            "a@.com",
            "a@com.",
            "a@b..com",
            "a@b_c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// One address written two ways is one address: composed or decomposed, a domain in
    /// capitals, in full-width forms or as its `xn--` label.
    #[test]
    fn an_address_has_one_form_however_it_is_written() {
        let canonical = Email::parse("zoë@münchen.de").unwrap();
        for other in [
            "zoe\u{308}@münchen.de",
            "ZOË@MÜNCHEN.DE",
            "Zoe\u{308}@Mu\u{308}nchen.de",
            "zoë@xn--mnchen-3ya.de",
            "zoë@ｍüｎｃｈｅｎ．ｄｅ",
        ] {
            assert_eq!(Email::parse(other).unwrap(), canonical, "{other:?}");
        }
        assert_eq!(canonical.as_str(), "zo\u{eb}@m\u{fc}nchen.de");
        assert_eq!(
            Email::parse("sarah@company.com").unwrap().as_str(),
            "sarah@company.com"
        );
        // A domain IDNA refuses is no address.
        assert!(Email::parse("a@xn--a.com").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            valid_name("name", "  Production API ").unwrap(),
            "Production API"
        );
        assert!(valid_name("name", "   ").is_err());
        assert!(valid_name("name", &"x".repeat(101)).is_err());
        assert!(valid_name("name", "a\u{7}b").is_err());
    }
}
