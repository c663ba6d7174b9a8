//! Security: one's own second factor and password; the organization's security settings,
//! IP allowlist check, and ending a member's sessions. The rules are in `tenancy::mfa`,
//! `tenancy::security` and `security-policy`.

use actix_web::{HttpResponse, web};
use rbac_core::UserId;
use security_policy::{Located, PasswordPolicy, SessionPolicy};
use serde::{Deserialize, Serialize};
use tenancy::mfa::{self, Change, MfaMethod, MfaStore};
use tenancy::security::{self, SecurityUpdate};
use tenancy::{Principal, SecuritySettings};
use utoipa::ToSchema;

use crate::auth::{Authenticated, OrgCaller, audited};
use crate::error::ApiError;
use crate::routes::auth::one_factor;
use crate::state::AppState;

/// My second factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatus {
    /// Whether TOTP is active.
    pub enabled: bool,
    /// Whether an enrolment is waiting for its first code.
    pub pending: bool,
    /// The SMS backup number, partly hidden.
    pub phone: Option<String>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

/// A started enrolment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentResponse {
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code (SVG image).
    pub qr_svg: String,
}

/// A code from the authenticator app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// Six digits.
    pub code: String,
}

/// Proof of the second factor for a change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofBody {
    /// A code from the authenticator app.
    pub code: Option<String>,
    /// Or a recovery code.
    pub recovery_code: Option<String>,
}

/// A new SMS backup number, with proof.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneBody {
    /// International format (+15551234567); `null` removes it.
    pub phone: Option<String>,
    /// A code from the authenticator app.
    pub code: String,
    /// The current password.
    pub password: String,
}

/// A code from the authenticator app and the current password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateBody {
    /// Six digits.
    pub code: String,
    /// The current password.
    pub password: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Each works once; keep them somewhere safe.
    pub recovery_codes: Vec<String>,
}

/// TOTP switched on.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpActivated {
    /// Each works once; keep them somewhere safe.
    pub recovery_codes: Vec<String>,
    /// The person's other sessions, opened with the password alone, ended now.
    pub other_sessions_ended: u64,
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The current password.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

redacted_debug!(
    CodeBody,
    ProofBody,
    PhoneBody,
    RegenerateBody,
    PasswordBody,
    DisableBody,
    ConfirmBody
);

async fn person<'a>(st: &AppState, auth: &'a Authenticated) -> Result<&'a tenancy::User, ApiError> {
    auth.require_session(st).await?;
    Ok(auth.principal.user())
}

fn mask(phone: &str) -> String {
    let n = phone.chars().count();
    phone
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 2 < n && i > 2 { '•' } else { c })
        .collect()
}

/// My second-factor status.
#[utoipa::path(get, path = "/api/v1/me/mfa", tag = "me", responses(
    (status = 200, description = "Status", body = MfaStatus),
), security(("bearer" = [])))]
pub async fn status(
    st: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let user = person(&st, &auth).await?;
    let rec = st.store.mfa(user.id).await?;
    Ok(HttpResponse::Ok().json(match rec {
        Some(r) => MfaStatus {
            enabled: r.enabled_at.is_some(),
            pending: r.enabled_at.is_none(),
            phone: r.phone.as_deref().map(mask),
            recovery_codes_left: r.recovery_codes_left,
        },
        None => MfaStatus {
            enabled: false,
            pending: false,
            phone: None,
            recovery_codes_left: 0,
        },
    }))
}

/// The current password, confirming a change to how the account signs in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The current password.
    pub password: String,
}

/// Starts TOTP enrolment, confirmed with the current password: scan the QR code (or type the
/// secret), then activate with a code.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "me", request_body = ConfirmBody, responses(
    (status = 201, description = "Pending until activated", body = TotpEnrolmentResponse),
    (status = 401, description = "Wrong password", content_type = "application/problem+json"),
    (status = 409, description = "Already on", content_type = "application/problem+json"),
    (status = 429, description = "Too many wrong passwords", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn begin_totp(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    let user = person(&st, &auth).await?;
    let e = mfa::begin_totp(
        &*st.store,
        &st.cipher,
        &st.hasher,
        user,
        &body.password,
        &st.settings.security.totp_issuer,
        &auth.request,
        st.clock.now(),
    )
    .await?;
    let qr = qrcode::QrCode::new(e.otpauth_uri.as_bytes())
        .map_err(|err| ApiError::internal(std::io::Error::other(err.to_string())))?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(HttpResponse::Created().json(TotpEnrolmentResponse {
        secret: e.secret_base32,
        otpauth_uri: e.otpauth_uri,
        qr_svg: svg,
    }))
}

/// Activates TOTP with a first code; answers the recovery codes, once.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/activate", tag = "me", request_body = CodeBody, responses(
    (status = 200, description = "On; the person's other sessions ended", body = TotpActivated),
    (status = 404, description = "No pending enrolment", content_type = "application/problem+json"),
    (status = 422, description = "Wrong code", content_type = "application/problem+json"),
    (status = 429, description = "Too many wrong codes: locked for a while", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn activate_totp(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let user = person(&st, &auth).await?;
    let current = match &auth.principal {
        Principal::Session { session, .. } => Some(*session),
        Principal::ApiKey { .. } => None,
    };
    let (codes, ended) = mfa::activate_totp(
        &*st.store,
        &st.cipher,
        user,
        current,
        &body.code,
        &auth.request,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(TotpActivated {
        recovery_codes: codes,
        other_sessions_ended: ended,
    }))
}

async fn change(
    st: &AppState,
    auth: &Authenticated,
    proof: &tenancy::mfa::SecondFactor,
    what: Change,
) -> Result<Option<Vec<String>>, ApiError> {
    let user = person(st, auth).await?;
    Ok(mfa::change(
        &*st.store,
        &st.cipher,
        &st.hasher,
        user,
        proof,
        what,
        &auth.request,
        st.clock.now(),
    )
    .await?)
}

/// Proof for turning two-factor authentication off: a code and the current password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    /// A code from the authenticator app.
    pub code: Option<String>,
    /// Or a recovery code.
    pub recovery_code: Option<String>,
    /// The current password.
    pub password: String,
}

/// Turns two-factor authentication off, confirmed with a code and the current password
/// (refused while an organization requires 2FA, or while the password is one its policy allows
/// only with 2FA).
#[utoipa::path(post, path = "/api/v1/me/mfa/disable", tag = "me", request_body = DisableBody, responses(
    (status = 204, description = "Off"),
    (status = 401, description = "Wrong password", content_type = "application/problem+json"),
    (status = 409, description = "Required by an organization, or the password is too short without 2FA", content_type = "application/problem+json"),
    (status = 422, description = "Wrong code", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn disable(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<DisableBody>,
) -> Result<HttpResponse, ApiError> {
    let proof = one_factor(body.code.as_deref(), body.recovery_code.as_deref(), None)?;
    let what = Change::Disable {
        password: body.password.clone(),
    };
    change(&st, &auth, &proof, what).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replaces the recovery codes, confirmed with a code and the current password.
#[utoipa::path(post, path = "/api/v1/me/mfa/recovery-codes", tag = "me", request_body = RegenerateBody, responses(
    (status = 200, description = "New codes; the old ones no longer work", body = RecoveryCodes),
    (status = 401, description = "Wrong password", content_type = "application/problem+json"),
    (status = 422, description = "Wrong code", content_type = "application/problem+json"),
    (status = 429, description = "Too many wrong passwords or codes", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn regenerate(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<RegenerateBody>,
) -> Result<HttpResponse, ApiError> {
    let proof = tenancy::mfa::SecondFactor::Totp(body.code.clone());
    let what = Change::RegenerateRecoveryCodes {
        password: body.password.clone(),
    };
    let codes = change(&st, &auth, &proof, what).await?.unwrap_or_default();
    Ok(HttpResponse::Ok().json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Sets or removes the SMS backup number, confirmed with a code and the current password.
#[utoipa::path(put, path = "/api/v1/me/mfa/phone", tag = "me", request_body = PhoneBody, responses(
    (status = 204, description = "Set"),
    (status = 401, description = "Wrong password", content_type = "application/problem+json"),
    (status = 422, description = "Wrong code or not a phone number", content_type = "application/problem+json"),
    (status = 429, description = "Too many wrong passwords or codes", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn set_phone(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<PhoneBody>,
) -> Result<HttpResponse, ApiError> {
    let proof = tenancy::mfa::SecondFactor::Totp(body.code.clone());
    let what = Change::SetPhone {
        phone: body.phone.clone(),
        password: body.password.clone(),
    };
    change(&st, &auth, &proof, what).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The password change's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    /// Other sessions of mine that were ended.
    pub other_sessions_ended: u64,
}

/// Changes my password; my other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", request_body = PasswordBody, responses(
    (status = 200, description = "Changed", body = PasswordChanged),
    (status = 401, description = "Wrong current password", content_type = "application/problem+json"),
    (status = 422, description = "The new password breaks the policy", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn change_password(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let user = person(&st, &auth).await?;
    let current = match &auth.principal {
        Principal::Session { session, .. } => Some(*session),
        Principal::ApiKey { .. } => None,
    };
    let ended = security::change_password(
        &*st.store,
        &st.hasher,
        user,
        current,
        &body.current_password,
        &body.new_password,
        &auth.request,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(PasswordChanged {
        other_sessions_ended: ended,
    }))
}

/// The organization's 2FA settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MfaSettings {
    /// Every member must use a second factor.
    pub required: bool,
    /// Since when (RFC 3339).
    pub required_since: Option<String>,
    /// Days members may work without one once required.
    pub grace_days: u32,
    /// Allowed methods: `totp`, `sms`.
    pub methods: Vec<String>,
}

/// Session settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSettings {
    /// Minutes after login a session ends.
    pub absolute_timeout_minutes: u32,
    /// Minutes without a request after which a session ends.
    pub idle_timeout_minutes: u32,
    /// Live sessions per person; a further login ends the oldest.
    pub max_concurrent: u32,
}

/// Password settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordSettings {
    /// Minimum length without a second factor.
    pub min_length: usize,
    /// Minimum length with one.
    pub min_length_with_2fa: usize,
    /// Maximum length.
    pub max_length: usize,
}

/// An allowlist entry with its label.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowlistEntryResponse {
    /// The network (CIDR).
    pub network: String,
    /// What it is ("Office network"); null when it has no label.
    pub label: Option<String>,
}

/// An allowlist entry as written: a network (`"203.0.113.0/24"`), or a network with its label
/// (`{"network": "203.0.113.0/24", "label": "Office network"}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AllowlistItemBody {
    /// A network (CIDR, or an address).
    Network(String),
    /// A network and its label.
    Labelled(LabelledNetwork),
}

/// A network and its label.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelledNetwork {
    /// The network (CIDR, or an address).
    pub network: String,
    /// At most 64 characters, no control, bidirectional formatting or zero-width characters;
    /// empty or null: none.
    pub label: Option<String>,
}

/// The security settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityResponse {
    /// Sessions.
    pub sessions: SessionSettings,
    /// Passwords.
    pub passwords: PasswordSettings,
    /// Allowed networks (CIDR).
    pub ip_allowlist: Vec<String>,
    /// The same networks, in the same order, each with its label (`null`: none).
    pub ip_allowlist_entries: Vec<AllowlistEntryResponse>,
    /// `true` when the list is empty: requests from every address are allowed.
    pub ip_allowlist_allows_everyone: bool,
    /// Countries (ISO 3166-1 alpha-2) whose requests are refused; `[]` blocks none.
    pub blocked_countries: Vec<String>,
    /// `true` when the server has a GeoIP database to place addresses in countries; without
    /// one, countries cannot be blocked, and a list saved earlier refuses every request but
    /// those of these settings.
    pub geoip_available: bool,
    /// Two-factor authentication.
    pub mfa: MfaSettings,
    /// Days audit records are kept; `null` keeps them forever.
    pub audit_retention_days: Option<u32>,
}

impl SecurityResponse {
    fn new(s: &SecuritySettings, st: &AppState) -> Self {
        Self {
            sessions: SessionSettings {
                absolute_timeout_minutes: s.sessions.absolute_timeout_minutes,
                idle_timeout_minutes: s.sessions.idle_timeout_minutes,
                max_concurrent: s.sessions.max_concurrent,
            },
            passwords: PasswordSettings {
                min_length: s.passwords.min_length,
                min_length_with_2fa: s.passwords.min_length_with_2fa,
                max_length: s.passwords.max_length,
            },
            ip_allowlist: s.ip_allowlist.iter().map(ToString::to_string).collect(),
            ip_allowlist_entries: s
                .ip_allowlist
                .iter()
                .map(|e| AllowlistEntryResponse {
                    network: e.to_string(),
                    label: s.label_of(e).map(str::to_owned),
                })
                .collect(),
            ip_allowlist_allows_everyone: s.ip_allowlist.is_empty(),
            blocked_countries: s
                .blocked_countries
                .iter()
                .map(|c| c.alpha2().to_owned())
                .collect(),
            geoip_available: st.geoip.is_some(),
            mfa: MfaSettings {
                required: s.mfa.required,
                required_since: s.mfa.required_since.map(|t| t.to_rfc3339()),
                grace_days: s.mfa.grace_days,
                methods: s
                    .mfa
                    .methods
                    .iter()
                    .map(|m| m.as_str().to_owned())
                    .collect(),
            },
            audit_retention_days: s.audit_retention_days,
        }
    }
}

/// The organization's security settings.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/security", tag = "security",
    params(("org_id" = String, Path, description = "Organization id")),
    responses((status = 200, description = "Settings", body = SecurityResponse)),
    security(("bearer" = [])))]
pub async fn get(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SecurityResponse::new(&caller.org.security, &st)))
}

/// A change to the security settings; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityPatch {
    /// `{absolute_timeout_minutes, idle_timeout_minutes, max_concurrent}`.
    #[schema(value_type = Option<Object>)]
    pub sessions: Option<SessionPolicy>,
    /// `{min_length, min_length_with_2fa, max_length}`.
    #[schema(value_type = Option<Object>)]
    pub passwords: Option<PasswordPolicy>,
    /// CIDRs (IPv4 and IPv6), each a string or `{"network", "label"}`; `[]` allows everyone. It
    /// replaces the list and its labels. A list that excludes your own address is refused.
    pub ip_allowlist: Option<Vec<AllowlistItemBody>>,
    /// Countries to block, as ISO 3166-1 alpha-2 codes (`["RU", "KP"]`); `[]` blocks none.
    /// Needs the server's GeoIP database; a list with your own address's country is refused.
    pub blocked_countries: Option<Vec<String>>,
    /// Require a second factor of every member.
    pub mfa_required: Option<bool>,
    /// Grace period in days (default 7).
    pub mfa_grace_days: Option<u32>,
    /// Allowed methods (`totp` must stay).
    pub mfa_methods: Option<Vec<String>>,
    /// Audit retention in days (30 to 3650; `0` keeps records forever). Owner only.
    pub audit_retention_days: Option<u32>,
}

/// Changes the security settings (Owner and Admins); audited; applies to existing sessions at once.
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/security", tag = "security",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = SecurityPatch,
    responses(
        (status = 200, description = "Saved", body = SecurityResponse),
        (status = 403, description = "Not the Owner or an Admin, or `audit_retention_days` from an Admin (the Owner's)", content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", content_type = "application/problem+json"),
        (status = 422, description = "Invalid (an unknown 2FA method, a bad network, an address with host bits, over 1,000 allowlist entries, a label over 64 characters or with control, bidirectional or zero-width characters); the allowlist or the blocked countries would exclude your own address; or countries without a GeoIP database", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn update(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<SecurityPatch>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let methods = body
        .mfa_methods
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    MfaMethod::parse(m).ok_or_else(|| {
                        ApiError::invalid_input(format!(
                            "unknown 2FA method `{m}`; use `totp` or `sms`"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let change = SecurityUpdate {
        sessions: body.sessions,
        passwords: body.passwords,
        ip_allowlist: body.ip_allowlist.map(|items| {
            items
                .into_iter()
                .map(|i| match i {
                    AllowlistItemBody::Network(n) => security::AllowlistItem::new(n),
                    AllowlistItemBody::Labelled(l) => security::AllowlistItem {
                        network: l.network,
                        label: l.label,
                    },
                })
                .collect()
        }),
        blocked_countries: body.blocked_countries,
        mfa_required: body.mfa_required,
        mfa_grace_days: body.mfa_grace_days,
        mfa_methods: methods,
        audit_retention_days: body.audit_retention_days,
    };
    let ip = crate::auth::client_addr(&caller);
    let at = Located::with(st.geoip.as_deref(), ip);
    match security::update(&*st.store, &caller, change, ip, at, st.clock.now()).await {
        Ok(s) => Ok(HttpResponse::Ok().json(SecurityResponse::new(&s, &st))),
        Err(e) => Err(audited(&st, &caller, "update_security_policy", e).await),
    }
}

/// An address to test.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpCheckBody {
    /// IPv4 or IPv6 address.
    pub ip: String,
}

/// The answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct IpCheckResponse {
    /// The address as understood (IPv4-mapped IPv6 shown as IPv4).
    pub ip: String,
    /// Whether requests from it would be allowed (by the allowlist and the blocked countries).
    pub allowed: bool,
    /// `true` when the list is empty and everyone is allowed.
    pub allowlist_empty: bool,
    /// The country (ISO 3166-1 alpha-2) the server's GeoIP database places it in; `null` when
    /// it places it in none or the server has no database.
    pub country: Option<String>,
    /// Why it would be refused: `ip_not_allowed`, `country_blocked` or `country_unverifiable`.
    pub refused_because: Option<String>,
}

/// Tells whether an address would be allowed by the IP allowlist and the blocked countries.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/security/ip-check", tag = "security",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = IpCheckBody,
    responses((status = 200, description = "Verdict", body = IpCheckResponse)),
    security(("bearer" = [])))]
pub async fn ip_check(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<IpCheckBody>,
) -> Result<HttpResponse, ApiError> {
    let ip: std::net::IpAddr = body
        .ip
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{}` is not an IP address", body.ip)))?;
    let ip = security_policy::normalize(ip);
    let verdict = security::ip_check(&caller, ip, Located::with(st.geoip.as_deref(), ip))?;
    Ok(HttpResponse::Ok().json(IpCheckResponse {
        ip: ip.to_string(),
        allowed: verdict.refusal.is_none(),
        allowlist_empty: verdict.allowlist_empty,
        country: verdict.located.country().map(|c| c.alpha2().to_owned()),
        refused_because: verdict.refusal.map(|r| r.code().to_owned()),
    }))
}

/// How many sessions ended (or, for someone in other organizations too, were signed out of
/// this one).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    /// Count.
    pub ended: u64,
}

/// Resets a member's lost second factor (the Owner, and Admins for Users; with a session, not an
/// API key): the authenticator, recovery codes and backup number are removed, their sessions
/// end, their password is cleared (they set a new one through "forgot password" and enrol
/// again), and they are mailed. Not the Owner's (the operator's `reset-owner`), not one's own,
/// and only for an active member who belongs to this organization alone.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{user_id}/mfa/reset", tag = "security",
    params(("org_id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Reset; the member was mailed"),
        (status = 403, description = "Not the Owner or an Admin, an API key, the Owner's factor, an Admin's by an Admin, or one's own", content_type = "application/problem+json"),
        (status = 404, description = "No such member, or no second factor", content_type = "application/problem+json"),
        (status = 409, description = "The member is deactivated, belongs to another organization too, or their email address changed meanwhile (try again)", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn reset_member_factor(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user: UserId = path.1.parse().map_err(|_| ApiError::not_found("member"))?;
    match tenancy::mfa::reset_member_factor(&*st.store, &st.hasher, &caller, user, st.clock.now())
        .await
    {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(e) => Err(audited(&st, &caller, "reset_member_factor", e).await),
    }
}

/// Signs a member out of the organization (Owner and Admins): every session of theirs is
/// refused here from now on. Someone who belongs to no other organization has their sessions
/// ended; someone who does stays signed in there.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/members/{user_id}/sessions", tag = "security",
    params(("org_id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Signed out: how many sessions were ended, or signed out of this organization alone", body = SessionsEnded),
        (status = 404, description = "No such member", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn end_member_sessions(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user: UserId = path.1.parse().map_err(|_| ApiError::not_found("member"))?;
    match security::end_member_sessions(&*st.store, &caller, user, st.clock.now()).await {
        Ok(n) => Ok(HttpResponse::Ok().json(SessionsEnded { ended: n })),
        Err(e) => Err(audited(&st, &caller, "end_member_sessions", e).await),
    }
}
