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
}

/// Logs in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, description = "Logged in", body = LoginResponse),
    (status = 401, description = "Wrong email or password", content_type = "application/problem+json"),
))]
pub async fn login(
    st: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req, &st);
    let out = accounts::login(
        &*st.store,
        &*st.store,
        &st.hasher,
        &body.email,
        &body.password,
        ctx,
        st.clock.now(),
    )
    .await?;
    let cookie = Cookie::build(SESSION_COOKIE, out.token.secret.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(st.settings.server.cookie_secure)
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(LoginResponse {
        token: out.token.secret.clone(),
        session_id: out.session.id.to_string(),
        user: UserResponse::from(&out.user),
        ended_sessions: out.ended.iter().map(ToString::to_string).collect(),
    }))
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
