//! Login and logout.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tenancy::{Principal, accounts};
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
        .secure(st.settings.server.cookie_secure)
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
    body: web::Json<LoginBody>,
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
        st.address_throttle.locked_until(ip, now),
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
            if matches!(e, tenancy::TenancyError::BadCredentials) {
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

/// Completes a login with a second factor; the session (and its id) is created only now.
#[utoipa::path(post, path = "/api/v1/auth/login/verify", tag = "auth", request_body = VerifyBody, responses(
    (status = 200, description = "Logged in", body = LoginResponse),
    (status = 401, description = "Unknown, used or expired challenge", content_type = "application/problem+json"),
    (status = 422, description = "Wrong, expired or already used code", content_type = "application/problem+json"),
    (status = 429, description = "Too many wrong codes", content_type = "application/problem+json"),
))]
pub async fn verify(
    st: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<VerifyBody>,
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
))]
pub async fn send_sms(
    st: web::Data<AppState>,
    body: web::Json<ChallengeBody>,
) -> Result<HttpResponse, ApiError> {
    tenancy::mfa::send_login_sms(&*st.store, &*st.sms, &body.challenge, st.clock.now()).await?;
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
