//! The caller: who they are, where they belong, what they may do; their sessions.

use actix_web::{HttpResponse, web};
use rbac_core::{Permission, SessionId};
use serde::Serialize;
use tenancy::{AccountStore, Principal, Session, User, accounts, me};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

/// A person.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            name: u.name.clone(),
        }
    }
}

/// A change to my profile.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// My display name: 1 to 100 printable characters (trimmed).
    pub name: String,
}

/// Renames me in every organization of mine (`member.updated` in each, sent as
/// `user.updated`). A session only: an API key acts for its creator, it is not them.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", request_body = ProfileBody, responses(
    (status = 200, description = "My profile as changed", body = UserResponse),
    (status = 403, description = "An API key (`interactive_only`)", content_type = "application/problem+json"),
    (status = 409, description = "Renamed meanwhile", content_type = "application/problem+json"),
    (status = 422, description = "Empty, overlong or unprintable name", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn update_profile(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require_session(&st).await?;
    let renamed = me::rename(
        &*st.store,
        auth.principal.user(),
        &body.name,
        &auth.request,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(&renamed)))
}

/// A team role.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamRoleResponse {
    /// Team id.
    pub team_id: String,
    /// `admin`, `member` or `viewer`.
    pub role: String,
}

/// One membership and its effective permissions.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipResponse {
    /// Organization id.
    pub org_id: String,
    /// Organization name.
    pub org_name: String,
    /// `owner`, `admin` or `user`.
    pub role: String,
    /// Team roles.
    pub teams: Vec<TeamRoleResponse>,
    /// The role in every team, those created later included (`null`: only `teams`).
    pub all_teams_role: Option<String>,
    /// Permissions on every resource.
    pub permissions: Vec<String>,
    /// Permissions only on resources the caller created.
    pub limited_permissions: Vec<String>,
    /// This organization's two-factor requirement for the caller.
    pub mfa: MfaRequirementResponse,
}

/// Where the caller stands with an organization's 2FA requirement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequirementResponse {
    /// Whether the organization requires a second factor.
    pub required: bool,
    /// `satisfied`, `grace` (works normally until the deadline) or `enrollment_required`.
    pub status: String,
    /// End of the grace period (RFC 3339), while in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Seconds left in the grace period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<i64>,
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// Who.
    pub user: UserResponse,
    /// `session` or `api_key`.
    pub credential: String,
    /// The API key's id, when called with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// Memberships (an API key sees only its organization).
    pub memberships: Vec<MembershipResponse>,
}

fn names(p: &[Permission]) -> Vec<String> {
    p.iter().map(|p| p.as_str().to_owned()).collect()
}

/// Who am I, and what may I do?
#[utoipa::path(get, path = "/api/v1/me", tag = "me", responses(
    (status = 200, description = "The caller", body = MeResponse),
    (status = 401, description = "Not authenticated", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn me(st: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let views = me::memberships(&*st.store, &auth.principal).await?;
    let now = st.clock.now();
    let user_id = auth.principal.user().id;
    let enrolled = tenancy::mfa::enrolled(&*st.store, user_id).await?;
    let mut requirements = Vec::with_capacity(views.len());
    for v in &views {
        let org = tenancy::OrgStore::get_org(&*st.store, v.org).await?;
        let joined = tenancy::OrgStore::get_member(&*st.store, v.org, user_id)
            .await?
            .map_or(now, |m| m.joined_at);
        let r = tenancy::mfa::requirement(&org, joined, enrolled, now);
        requirements.push(MfaRequirementResponse {
            required: org.security.mfa.required,
            status: match r {
                security_policy::MfaRequirement::Satisfied => "satisfied",
                security_policy::MfaRequirement::Grace { .. } => "grace",
                security_policy::MfaRequirement::EnrolmentRequired => "enrollment_required",
            }
            .to_owned(),
            deadline: match r {
                security_policy::MfaRequirement::Grace { deadline } => Some(deadline.to_rfc3339()),
                _ => None,
            },
            seconds_left: match r {
                security_policy::MfaRequirement::Grace { deadline } => {
                    Some((deadline - now).num_seconds())
                }
                _ => None,
            },
        });
    }
    let (credential, api_key_id) = match &auth.principal {
        Principal::Session { .. } => ("session", None),
        Principal::ApiKey { key, .. } => ("api_key", Some(key.id.to_string())),
    };
    Ok(HttpResponse::Ok().json(MeResponse {
        user: UserResponse::from(auth.principal.user()),
        credential: credential.to_owned(),
        api_key_id,
        memberships: views
            .into_iter()
            .zip(requirements)
            .map(|(v, mfa)| MembershipResponse {
                org_id: v.org.to_string(),
                org_name: v.org_name,
                role: v.role.as_str().to_owned(),
                teams: v
                    .teams
                    .iter()
                    .map(|(t, r)| TeamRoleResponse {
                        team_id: t.to_string(),
                        role: r.as_str().to_owned(),
                    })
                    .collect(),
                all_teams_role: v.all_teams.map(|r| r.as_str().to_owned()),
                permissions: names(&v.permissions),
                limited_permissions: names(&v.limited),
                mfa,
            })
            .collect(),
    }))
}

/// A live session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Session id.
    pub id: String,
    /// Login time (RFC 3339).
    pub created_at: String,
    /// Last activity (RFC 3339).
    pub last_seen_at: String,
    /// Address at login.
    pub ip: String,
    /// User agent at login.
    pub user_agent: String,
    /// Whether this is the session making the request.
    pub current: bool,
    /// Organizations whose Owner or an Admin signed this session out of them: refused there
    /// (401 `signed_out`) until the person signs in again, valid in their other organizations.
    pub signed_out_of: Vec<String>,
}

fn session_response(s: &Session, current: Option<SessionId>) -> SessionResponse {
    SessionResponse {
        id: s.id.to_string(),
        created_at: s.created_at.to_rfc3339(),
        last_seen_at: s.last_seen_at.to_rfc3339(),
        ip: s.ip.clone(),
        user_agent: s.user_agent.clone(),
        current: Some(s.id) == current,
        signed_out_of: s.signed_out_of.iter().map(ToString::to_string).collect(),
    }
}

/// My live sessions, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "me", params(PageQuery), responses(
    (status = 200, description = "One page of live sessions, newest first", body = inline(Page<SessionResponse>)),
    (status = 401, description = "Not authenticated", content_type = "application/problem+json"),
), security(("bearer" = [])))]
pub async fn sessions(
    st: web::Data<AppState>,
    auth: Authenticated,
    q: crate::extract::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_session(&st).await?;
    let limit = q.limit()?;
    let before: Option<SessionId> = q.cursor()?;
    let current = match &auth.principal {
        Principal::Session { session, .. } => Some(*session),
        Principal::ApiKey { .. } => None,
    };
    let list = match st
        .store
        .list_sessions_page(auth.principal.user().id, before, limit)
        .await
    {
        Ok(l) => l,
        // The cursor names no session of mine.
        Err(tenancy::TenancyError::NotFound(_)) if before.is_some() => {
            return Err(ApiError::bad_request("`cursor` is not valid"));
        }
        Err(e) => return Err(e.into()),
    };
    let items: Vec<SessionResponse> = list.iter().map(|s| session_response(s, current)).collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |s| s.id.clone())))
}

/// Ends one of my sessions.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{session_id}", tag = "me",
    params(("session_id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such live session of mine", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn end_session(
    st: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_session(&st).await?;
    let id: SessionId = path.parse().map_err(|_| ApiError::not_found("session"))?;
    accounts::logout(
        &*st.store,
        auth.principal.user(),
        id,
        auth.request,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
