//! Login and logout.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tenancy::{Principal, accounts, password_reset};
use utoipa::ToSchema;

use crate::auth::{Authenticated, SESSION_COOKIE, request_context};
use crate::error::ApiError;
use crate::routes::me::UserResponse;
use crate::state::AppState;

/// Email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Login email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Session token: also set as the `axie_session` cookie; API clients send it as `Authorization: Bearer`.
    pub token: String,
    /// Session id.
    pub session_id: String,
    /// Who logged in.
    pub user: UserResponse,
    /// Older sessions ended by the concurrent-session limit.
    pub ended_sessions: Vec<String>,
    /// Recovery codes left, when one was used to sign in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<u32>,
}

/// The password was right; a second factor is needed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecondFactorRequired {
    /// Always `true`.
    pub mfa_required: bool,
    /// Send this back to `/api/v1/auth/login/verify` with a code (valid 5 minutes, once).
    pub challenge: String,
    /// What the code may be: `totp`, `recovery_code`, and `sms` when a backup number is set.
    pub methods: Vec<String>,
}

fn session_answer(st: &AppState, out: &accounts::LoginOutcome) -> HttpResponse {
    let cookie = Cookie::build(SESSION_COOKIE, out.token.secret.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(st.settings.server.session_cookie_secure())
        .finish();
    HttpResponse::Ok().cookie(cookie).json(LoginResponse {
        token: out.token.secret.clone(),
        session_id: out.session.id.to_string(),
        user: UserResponse::from(&out.user),
        ended_sessions: out.ended.iter().map(ToString::to_string).collect(),
        recovery_codes_left: out.recovery_codes_left,
    })
}

fn client_ip(ctx: &audit::RequestContext) -> std::net::IpAddr {
    ctx.ip
        .parse()
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// Logs in with email and password. People with a second factor get a challenge (202)
/// instead of a session, to complete at `/api/v1/auth/login/verify`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, description = "Logged in", body = LoginResponse),
    (status = 202, description = "Password accepted; a second factor is required", body = SecondFactorRequired),
    (status = 401, description = "Wrong email or password", content_type = "application/problem+json"),
    (status = 429, description = "Too many failures for this account or address", content_type = "application/problem+json"),
))]
pub async fn login(
    st: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, &st);
    let now = st.clock.now();
    let ip = client_ip(&ctx);
    let result = accounts::login(
        &*st.store,
        &*st.store,
        &*st.store,
        &st.hasher,
        &body.email,
        &body.password,
        &Counters { st: &st, ip, now },
        ctx,
        now,
    )
    .await;
    match result {
        Ok(accounts::LoginResult::Session(out)) => Ok(session_answer(&st, &out)),
        Ok(accounts::LoginResult::SecondFactor {
            challenge,
            sms_available,
        }) => {
            let mut methods = vec!["totp".to_owned(), "recovery_code".to_owned()];
            if sms_available {
                methods.push("sms".to_owned());
            }
            Ok(HttpResponse::Accepted().json(SecondFactorRequired {
                mfa_required: true,
                challenge: challenge.secret.clone(),
                methods,
            }))
        }
        Err(e) => {
            // An address refused by every allowlist counts as a failure too: it is answered
            // without a password being checked, so its guesses would otherwise never stop.
            if matches!(
                e,
                tenancy::TenancyError::BadCredentials | tenancy::TenancyError::IpNotAllowed(_)
            ) {
                st.address_throttle.record_failure(ip, now);
            }
            Err(e.into())
        }
    }
}

/// The second step of a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The challenge from the first step.
    pub challenge: String,
    /// A code from the authenticator app.
    pub code: Option<String>,
    /// A recovery code (each works once).
    pub recovery_code: Option<String>,
    /// A code received by SMS.
    pub sms_code: Option<String>,
}

impl std::fmt::Debug for VerifyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyBody { … }")
    }
}

/// Exactly one factor from a body with `code`, `recovery_code` and `sms_code` fields.
pub(crate) fn one_factor(
    code: Option<&str>,
    recovery: Option<&str>,
    sms: Option<&str>,
) -> Result<tenancy::mfa::SecondFactor, ApiError> {
    use tenancy::mfa::SecondFactor;
    match (code, recovery, sms) {
        (Some(c), None, None) => Ok(SecondFactor::Totp(c.to_owned())),
        (None, Some(r), None) => Ok(SecondFactor::Recovery(r.to_owned())),
        (None, None, Some(s)) => Ok(SecondFactor::Sms(s.to_owned())),
        _ => Err(ApiError::bad_request(
            "send exactly one of `code`, `recovery_code` and `sms_code`",
        )),
    }
}

/// The server's in-memory login counters, for one login from `ip` at `now`.
struct Counters<'a> {
    st: &'a AppState,
    ip: std::net::IpAddr,
    now: chrono::DateTime<chrono::Utc>,
}

impl accounts::LoginCounters for Counters<'_> {
    fn address_locked_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.st.address_throttle.locked_until(self.ip, self.now)
    }
    fn unknown_locked_until(&self, email: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.st.name_throttle.locked_until(email, self.now)
    }
    fn count_unknown(&self, email: &str) {
        self.st.name_throttle.record_failure(email, self.now);
    }
    fn first_refusal(&self, account: &str, until: chrono::DateTime<chrono::Utc>) -> bool {
        let client = security_policy::client_key(self.ip).to_string();
        self.st
            .refusal_marks
            .first(account, &client, until, self.now)
    }
    fn refusal_unrecorded(&self, account: &str, until: chrono::DateTime<chrono::Utc>) {
        let client = security_policy::client_key(self.ip).to_string();
        self.st.refusal_marks.unmark(account, &client, until);
    }
    fn refusal_recorded(&self, _account: &str, _until: chrono::DateTime<chrono::Utc>) {
        // The first refusal of each locked account from an address counts against the address
        // (decided, like the record, without looking at the password): an address that goes
        // from locked account to locked account is locked itself, while someone retrying their
        // own counts once. Counted once its record is written: a refusal whose record could
        // not be written gives its mark back, and the next one would count again.
        self.st.address_throttle.record_failure(self.ip, self.now);
    }
}

/// Completes a login with a second factor; the session (and its id) is created only now.
#[utoipa::path(post, path = "/api/v1/auth/login/verify", tag = "auth", request_body = VerifyBody, responses(
    (status = 200, description = "Logged in", body = LoginResponse),
    (status = 401, description = "Unknown, used or expired challenge", content_type = "application/problem+json"),
    (status = 403, description = "Deactivated since the first step, or an address no organization admits", content_type = "application/problem+json"),
    (status = 422, description = "Wrong, expired or already used code", content_type = "application/problem+json"),
    (status = 429, description = "Too many wrong codes", content_type = "application/problem+json"),
))]
pub async fn verify(
    st: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<VerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let factor = one_factor(
        body.code.as_deref(),
        body.recovery_code.as_deref(),
        body.sms_code.as_deref(),
    )?;
    let ctx = request_context(&req, &st);
    let now = st.clock.now();
    // Wrong codes from one address count with its wrong passwords, whichever accounts they
    // are for.
    let ip = client_ip(&ctx);
    let out = tenancy::mfa::complete_login(
        &*st.store,
        &*st.store,
        &st.cipher,
        &body.challenge,
        &factor,
        st.address_throttle.locked_until(ip, now),
        ctx,
        now,
    )
    .await
    .inspect_err(|e| {
        if matches!(e, tenancy::TenancyError::Invalid(_)) {
            st.address_throttle.record_failure(ip, now);
        }
    })?;
    Ok(session_answer(&st, &out))
}

/// A pending login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeBody {
    /// The challenge from the first step.
    pub challenge: String,
}

impl std::fmt::Debug for ChallengeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengeBody { … }")
    }
}

/// Sends a one-time code by SMS to the backup number, for a pending login.
#[utoipa::path(post, path = "/api/v1/auth/login/sms", tag = "auth", request_body = ChallengeBody, responses(
    (status = 204, description = "Sent (valid 5 minutes, once)"),
    (status = 401, description = "Unknown, used or expired challenge", content_type = "application/problem+json"),
    (status = 404, description = "No backup number", content_type = "application/problem+json"),
    (status = 403, description = "Deactivated since the first step", content_type = "application/problem+json"),
    (status = 429, description = "A code was sent less than a minute ago", content_type = "application/problem+json"),
))]
pub async fn send_sms(
    st: web::Data<AppState>,
    body: crate::extract::Json<ChallengeBody>,
) -> Result<HttpResponse, ApiError> {
    tenancy::mfa::send_login_sms(
        &*st.store,
        &*st.sms,
        &st.cipher,
        &body.challenge,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends the current session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses(
    (status = 204, description = "Logged out"),
    (status = 400, description = "API keys cannot log out", content_type = "application/problem+json"),
    (status = 401, description = "Not logged in", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn logout(
    st: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let Principal::Session { user, session } = &auth.principal else {
        return Err(ApiError::bad_request(
            "API keys have no session to end; revoke the key instead",
        ));
    };
    accounts::logout(&*st.store, user, *session, auth.request, st.clock.now()).await?;
    let mut gone = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(st.settings.server.session_cookie_secure())
        .finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords and invitation tokens never reach logs.
        f.write_str("LoginBody { … }")
    }
}

/// "Forgot password": the address to send a reset link to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    /// The account's email address.
    pub email: String,
}

/// The same answer whether or not the address has an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetRequested {
    /// What happens next.
    pub message: String,
}

/// Asks for a password reset link by email. The answer never says whether the address has an
/// account; a link, when sent, works once and expires (`accounts.reset_expiry_minutes`).
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = ResetRequestBody, responses(
    (status = 202, description = "If the address has an account, a link is on its way", body = ResetRequested),
    (status = 422, description = "Not an email address", content_type = "application/problem+json"),
    (status = 429, description = "Too many requests from this client address", content_type = "application/problem+json"),
))]
pub async fn request_password_reset(
    st: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<ResetRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, &st);
    let (ip, now) = (client_ip(&ctx), st.clock.now());
    // Every request counts, whatever its answer: the cap per person stops an inbox being
    // flooded, this one a client asking for many people's links.
    if let Some(until) = st.reset_throttle.locked_until(ip, now) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many password reset requests from this address; try again later",
        )
        .with_retry_after((until - now).num_seconds()));
    }
    st.reset_throttle.record_failure(ip, now);
    tenancy::Email::parse(&body.email)?;
    // The answer goes out before the lookup: its timing says nothing about the address.
    let (store, settings, email) = (
        st.store.clone(),
        reset_settings(&st),
        body.into_inner().email,
    );
    let work = async move {
        if let Err(e) = password_reset::request(&*store, &email, &settings, &ctx, now).await {
            tracing::error!(error = %e, "a password reset request failed");
        }
    };
    // In the request's span, so its log lines keep the request id.
    actix_web::rt::spawn(tracing::Instrument::in_current_span(work));
    Ok(HttpResponse::Accepted().json(ResetRequested {
        message: "If an account uses this address, a link to set a new password is on its way."
            .into(),
    }))
}

/// The reset link's token and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The token from the link.
    pub token: String,
    /// The new password (the password rules of every organization of the person apply).
    pub new_password: String,
}

redacted_debug!(ResetBody);

/// A password set through a reset link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetDone {
    /// Sessions of the person that were ended.
    pub sessions_ended: u64,
}

/// Sets a new password with a reset link's token. Every session of the person ends; a second
/// factor, when enrolled, is still asked at the next sign-in.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = ResetBody, responses(
    (status = 200, description = "The new password is set", body = ResetDone),
    (status = 422, description = "Unknown, used or expired link, or a password the policy refuses (the link then stays usable)", content_type = "application/problem+json"),
))]
pub async fn confirm_password_reset(
    st: web::Data<AppState>,
    req: HttpRequest,
    body: crate::extract::Json<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, &st);
    let ended = password_reset::complete(
        &*st.store,
        &st.hasher,
        &body.token,
        &body.new_password,
        &ctx,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(ResetDone {
        sessions_ended: ended,
    }))
}

/// Reset link settings from configuration.
fn reset_settings(st: &AppState) -> password_reset::ResetSettings {
    let s = &st.settings;
    password_reset::ResetSettings {
        expiry: chrono::Duration::minutes(i64::from(s.accounts.reset_expiry_minutes)),
        reset_url: format!(
            "{}{}",
            s.server.public_url.trim_end_matches('/'),
            s.accounts.reset_path
        ),
        max_per_hour: s.accounts.resets_per_hour,
        sealer: tenancy::mail_secrets::MailSealer::new((*st.cipher).clone()),
    }
}
