//! Authentication and per-route authorization, as actix extractors.
//!
//! Every route is declared in [`crate::routes::ROUTES`] with its [`Access`]. The
//! extractors look the matched route up there before the handler body runs, so a
//! route that is not declared cannot authenticate anyone.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use audit::{AuditAction, AuditStore, Journal, Outcome, RequestContext, Target};
use rbac_core::{OrgId, Permission};
use tenancy::{Caller, OrgStore, Principal, accounts};

use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::routes::{Access, route_access};
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "axie_session";

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("application state missing")))
}

/// Client IP (socket peer, or X-Forwarded-For from a trusted proxy), user agent and request id.
pub fn request_context(req: &HttpRequest, st: &AppState) -> RequestContext {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    // Every line of the header, in order: a proxy may add its own line after the client's.
    // Bytes that are not text spoil only the hop they are in (a client's forged hop, on a line
    // a proxy appends the real address to), not the hops a proxy wrote after them.
    let mut lines = req.headers().get_all("x-forwarded-for").peekable();
    let xff = lines.peek().is_some().then(|| {
        lines
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    });
    let ip = security_policy::client_ip(peer, xff.as_deref(), &st.trusted_proxies);
    let ua: String = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    RequestContext {
        ip: ip.to_string(),
        user_agent: ua,
        request_id,
    }
}

/// The secret from `Authorization: Bearer …` or the session cookie.
fn credential(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get("authorization") {
        // An unreadable header is no credential, and never falls back to the cookie (the
        // cross-site check lets requests with the header through).
        let (scheme, token) = h.to_str().ok()?.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned())
}

/// An authenticated principal, not tied to an organization (`/me`, logout).
#[derive(Debug)]
pub struct Authenticated {
    /// Who.
    pub principal: Principal,
    /// Request details for audit records.
    pub request: RequestContext,
    /// The route the request matched (`"GET /api/v1/me/sessions"`), for refusals on the record.
    pub route: String,
}

impl Authenticated {
    /// Refuses API keys: for actions on the person's own account (their sessions, joining
    /// another organization), which an organization-scoped key must not take. The refusal is
    /// written to the key's organization's audit log (`access.denied`, reason
    /// `interactive_only`, the route as target), like every refusal of a caller the server
    /// knows; a key whose creator can no longer act in that organization is refused unrecorded.
    ///
    /// # Errors
    /// 403 `interactive_only` for API keys; the audit store's error when the record cannot be
    /// written.
    pub async fn require_session(&self, st: &AppState) -> Result<(), ApiError> {
        let Principal::ApiKey { key, .. } = &self.principal else {
            return Ok(());
        };
        let refusal = ApiError::new(
            StatusCode::FORBIDDEN,
            "interactive_only",
            "API keys cannot perform this action; sign in",
        );
        let caller =
            match Caller::load(&*st.store, &self.principal, key.org, self.request.clone()).await {
                Ok(caller) => caller,
                Err(e @ tenancy::TenancyError::Store(_)) => return Err(e.into()),
                // Its creator can no longer act there (removed, deactivated, the plan): refused
                // as before, with nobody to record it as.
                Err(_) => return Err(refusal),
            };
        let target = Target::new("route", self.route.clone(), "");
        match record_refusal(st, &caller, target, "interactive_only".into()).await {
            Ok(()) => Err(refusal),
            Err(store) => Err(store.into()),
        }
    }
}

async fn authenticate(
    req: &HttpRequest,
) -> Result<(web::Data<AppState>, Principal, RequestContext, Access), ApiError> {
    let access = route_access(req)?;
    let st = state(req)?;
    let secret = credential(req).ok_or_else(ApiError::unauthenticated)?;
    let ctx = request_context(req, &st);
    let (ip, address) = if access == Access::AuthenticatedAnywhere {
        (None, accounts::ClientAddress::Anywhere(&ctx.ip))
    } else {
        (
            Some(ctx.ip.as_str()),
            accounts::ClientAddress::Checked(&ctx.ip),
        )
    };
    let principal = accounts::authenticate(&*st.store, &secret, address, st.clock.now()).await?;
    // An API key belongs to one organization, whose blocked countries hold for it everywhere
    // (a person's session is held to the allowlists only here, as at sign-in). Refused here,
    // outside the organization's routes, it is not audited, as the allowlist's refusals of
    // these routes are not.
    if let (Principal::ApiKey { key, .. }, Some(ip)) = (&principal, ip) {
        let org = st.store.get_org(key.org).await?;
        let ip: std::net::IpAddr = ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        if let Err(refusal) = admitted(&st, &org, ip) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                refusal.code(),
                refusal.to_string(),
            ));
        }
    }
    Ok((st, principal, ctx, access))
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pending = crate::extract::caller_pending(req);
        let req = req.clone();
        Box::pin(async move {
            let _pending = pending;
            let (_, principal, request, access) = authenticate(&req).await?;
            if !matches!(
                access,
                Access::Authenticated | Access::AuthenticatedAnywhere
            ) {
                return Err(ApiError::internal(std::io::Error::other(
                    "route declares org access but uses Authenticated",
                )));
            }
            let route = route_of(&req);
            Ok(Authenticated {
                principal,
                request,
                route,
            })
        })
    }
}

/// The caller resolved in the organization named by the `{org_id}` path segment,
/// with the route's declared permission already checked (and denials audited).
#[derive(Debug)]
pub struct OrgCaller(pub Caller);

impl FromRequest for OrgCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pending = crate::extract::caller_pending(req);
        let req = req.clone();
        Box::pin(async move {
            let _pending = pending;
            let Some(org) = req
                .match_info()
                .get("org_id")
                .and_then(|s| s.parse::<OrgId>().ok())
            else {
                // Anyone not signed in learns nothing more than that.
                authenticate(&req).await?;
                return Err(ApiError::not_found("organization"));
            };
            let access = route_access(&req)?;
            let st = state(&req)?;
            let secret = credential(&req).ok_or_else(ApiError::unauthenticated)?;
            let request = request_context(&req, &st);
            let now = st.clock.now();
            let resolved = if access == Access::Leaving {
                accounts::authenticate_to_leave(&*st.store, &secret, org, request.clone(), now)
                    .await
            } else {
                accounts::authenticate_in(&*st.store, &secret, org, request.clone(), now).await
            };
            let (caller, activity) = match resolved {
                Ok(resolved) => resolved,
                Err(e) => return Err(member_refused(&st, &req, &secret, org, request, e).await),
            };
            tracing::Span::current().record("org", tracing::field::display(org));
            if let Err(refusal) = admit_address(&st, &caller)
                && !settings_left_open(&req, refusal)
            {
                let e = ApiError::new(StatusCode::FORBIDDEN, refusal.code(), refusal.to_string());
                return Err(policy_denied(&st, &caller, &req, refusal.code(), e).await);
            }
            if let Err(e) = check_mfa(&st, &caller).await {
                return Err(policy_denied(&st, &caller, &req, "mfa_enrollment_required", e).await);
            }
            match access {
                Access::Member | Access::Leaving => {}
                Access::Org(perm) => enforce(&st, &caller, perm).await?,
                Access::Public | Access::Authenticated | Access::AuthenticatedAnywhere => {
                    return Err(ApiError::internal(std::io::Error::other(
                        "route is not declared as organization-scoped",
                    )));
                }
            }
            // Only a request the organization admits (its address, second factor and the
            // route's permission) keeps the session from going idle.
            activity.note(&*st.store, now).await?;
            // Programmatic calls (API keys) count against the plan's monthly API calls.
            if st.settings.plans.meter_api_calls {
                tenancy::metering::meter_api_call(&*st.store, &st.meter, &caller, st.clock.now())
                    .await?;
            }
            Ok(OrgCaller(caller))
        })
    }
}

/// A member's own credential refused in `org` (signed out, deactivated, excluded by the plan)
/// is written to its audit log as `access.denied` of the route, as other refusals are; the
/// refusal is returned (or the storage error when the record cannot be written).
async fn member_refused(
    st: &AppState,
    req: &HttpRequest,
    secret: &str,
    org: OrgId,
    request: audit::RequestContext,
    e: tenancy::TenancyError,
) -> ApiError {
    let record = accounts::member_refusal_record(
        &*st.store,
        secret,
        org,
        &e,
        route_target(req),
        request,
        st.clock.now(),
    )
    .await;
    match record {
        Ok(Some(record)) => {
            if let Some(reason) = e.member_refusal() {
                crate::prom::denial(reason);
            }
            match AuditStore::append(&*st.store, Journal::record(record)).await {
                Ok(_) => e.into(),
                Err(store) => store.into(),
            }
        }
        Ok(None) => e.into(),
        Err(store) => store.into(),
    }
}

/// After the grace period, members of an organization that requires 2FA and who have not
/// enrolled reach nothing of it; the enrolment endpoints under `/api/v1/me/mfa` stay open.
async fn check_mfa(st: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if !caller.org.security.mfa.required {
        return Ok(());
    }
    let enrolled = tenancy::mfa::enrolled(&*st.store, caller.user.id).await?;
    match tenancy::mfa::requirement(&caller.org, caller.member_since, enrolled, st.clock.now()) {
        security_policy::MfaRequirement::EnrolmentRequired => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mfa_enrollment_required",
            format!(
                "{} requires two-factor authentication and the grace period is over; set it up at /api/v1/me/mfa/totp",
                caller.org.name
            ),
        )),
        _ => Ok(()),
    }
}

/// The organization's address rules (`tenancy::security::admit_address`) for the caller's
/// address, placed by the server's GeoIP database when it has one.
pub(crate) fn admit_address(
    st: &AppState,
    caller: &Caller,
) -> Result<(), tenancy::security::AddressRefusal> {
    admitted(st, &caller.org, client_addr(caller))
}

/// [`admit_address`] for `org` and `ip`; a refusal for want of a GeoIP database (or of a
/// lookup) is logged for the operator, wherever it happens.
fn admitted(
    st: &AppState,
    org: &tenancy::Organization,
    ip: std::net::IpAddr,
) -> Result<(), tenancy::security::AddressRefusal> {
    let at = security_policy::Located::with(st.geoip.as_deref(), ip);
    tenancy::security::admit_address(org, ip, at).inspect_err(|r| {
        if matches!(r, tenancy::security::AddressRefusal::CountryUnverifiable(_)) {
            tracing::warn!(
                org = %org.id,
                client = %ip,
                "an organization blocks countries and the server cannot place its client's address (no `security.geoip_database`, a failed lookup, or a client address it could not read)"
            );
        }
    })
}

/// Whether a refusal gives way on this route: when the server cannot place addresses in
/// countries (its GeoIP database is gone), an organization that blocks countries would refuse
/// every request, so its security settings stay reachable (the allowlist and the permission
/// still apply) for an Owner or Admin to see the rule and lift it.
fn settings_left_open(req: &HttpRequest, refusal: tenancy::security::AddressRefusal) -> bool {
    matches!(
        refusal,
        tenancy::security::AddressRefusal::CountryUnverifiable(_)
    ) && req.match_pattern().as_deref() == Some(SECURITY_SETTINGS)
}

/// The route of an organization's security settings (`GET` and `PATCH`).
const SECURITY_SETTINGS: &str = "/api/v1/orgs/{org_id}/security";

/// The caller's address as the request context holds it.
pub(crate) fn client_addr(caller: &Caller) -> std::net::IpAddr {
    caller
        .request
        .ip
        .parse()
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// Checks an organization-level permission; a denial is written to the audit log.
pub async fn enforce(st: &AppState, caller: &Caller, perm: Permission) -> Result<(), ApiError> {
    match caller.check_org(perm) {
        Ok(_) => Ok(()),
        Err(e) => Err(audited(st, caller, perm.as_str(), e).await),
    }
}

/// The route a request matched, as an audit target (`"GET /api/v1/orgs/{org_id}/members"`).
pub fn route_target(req: &HttpRequest) -> Target {
    Target::new("route", route_of(req), "")
}

/// The route a request matched, as `"GET /api/v1/orgs/{org_id}/members"`.
fn route_of(req: &HttpRequest) -> String {
    format!(
        "{} {}",
        req.method(),
        req.match_pattern().unwrap_or_else(|| req.path().to_owned())
    )
}

/// Counts a refusal of `caller` and writes it to the audit log as `access.denied`, naming what
/// was refused and why.
///
/// # Errors
/// The audit store's error when the record cannot be written.
pub async fn record_refusal(
    st: &AppState,
    caller: &Caller,
    refused: Target,
    reason: String,
) -> Result<(), audit::AuditError> {
    crate::prom::denial(&reason);
    let mut record = caller
        .audit(st.clock.now(), AuditAction::AccessDenied, refused)
        .with_outcome(Outcome::Denied { reason });
    // The request refused, with the ids in its path: a refusal decided in the crates names
    // only the permission it lacked.
    if let Some(line) = crate::middleware::request_line()
        && let Ok(m) = audit::Metadata::from_value(serde_json::json!({ "request": line }))
    {
        record = record.with_metadata(m);
    }
    AuditStore::append(&*st.store, Journal::record(record))
        .await
        .map(drop)
}

/// Records a refusal by the organization's security policy (its IP allowlist or blocked
/// countries, its required 2FA) as `access.denied`, with the route that was refused, and returns the refusal (or the
/// storage error when the record cannot be written).
async fn policy_denied(
    st: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    reason: &str,
    refusal: ApiError,
) -> ApiError {
    match record_refusal(st, caller, route_target(req), reason.to_owned()).await {
        Ok(()) => refusal,
        Err(store) => store.into(),
    }
}

/// `result`, with its error mapped by [`audited`]: for reads, whose refusals (another team's
/// resource answered as not found, among them) are audited like a change's.
pub async fn or_audited<T>(
    st: &AppState,
    caller: &Caller,
    attempted: &str,
    result: Result<T, tenancy::TenancyError>,
) -> Result<T, ApiError> {
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(audited(st, caller, attempted, e).await),
    }
}

/// Maps a domain error to HTTP, first writing an `access.denied` record when it is an
/// authorization denial, so denials decided inside the crates are audited like route-level ones.
pub async fn audited(
    st: &AppState,
    caller: &Caller,
    attempted: &str,
    e: tenancy::TenancyError,
) -> ApiError {
    let Some(reason) = e.refusal_reason() else {
        return e.into();
    };
    match record_refusal(
        st,
        caller,
        Target::new("permission", attempted, ""),
        reason.to_owned(),
    )
    .await
    {
        Ok(()) => e.into(),
        // A refusal answered as "not found" stays that answer when its record cannot be
        // written: a 500 here, and a 404 for a missing one, would tell that it exists.
        Err(store) if e.is_not_found() => {
            tracing::error!(error = %store, attempted, "could not record a refusal");
            e.into()
        }
        Err(store) => store.into(),
    }
}
