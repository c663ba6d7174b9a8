//! Teams: isolated workspaces of an organization, and their members.

use actix_web::{HttpResponse, web};
use rbac_core::{TeamId, TeamRole, UserId};
use serde::{Deserialize, Serialize};
use tenancy::Team;
use tenancy::teams::{self, TeamMember, TeamUpdate};
use utoipa::ToSchema;

use crate::auth::{OrgCaller, audited, or_audited};
use crate::error::ApiError;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

/// A team.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamResponse {
    /// Team id.
    pub id: String,
    /// Name, unique in the organization.
    pub name: String,
    /// Whether this is the organization's default team (every member joins it).
    pub is_default: bool,
    /// When archived (RFC 3339); archived teams are read-only.
    pub archived_at: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

impl From<&Team> for TeamResponse {
    fn from(t: &Team) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            is_default: t.is_default,
            archived_at: t.archived_at.map(|a| a.to_rfc3339()),
            created_at: t.created_at.to_rfc3339(),
        }
    }
}

/// A member of a team.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberResponse {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Organization role: `owner`, `admin` or `user`.
    pub org_role: String,
    /// Role in the team, `admin`, `member` or `viewer`: the higher of `assigned_role` and
    /// `all_teams_role`.
    pub team_role: String,
    /// The role given to them in this team; `null` when they are in it only through their
    /// role in every team.
    pub assigned_role: Option<String>,
    /// Their role in every team of the organization, if they have one.
    pub all_teams_role: Option<String>,
    /// Whether their account in the organization is deactivated.
    pub deactivated: bool,
}

impl From<&TeamMember> for TeamMemberResponse {
    fn from(m: &TeamMember) -> Self {
        Self {
            user_id: m.member.user.id.to_string(),
            email: m.member.user.email.to_string(),
            name: m.member.user.name.clone(),
            org_role: m.member.role.as_str().to_owned(),
            team_role: m.role.as_str().to_owned(),
            assigned_role: m.assigned.map(|r| r.as_str().to_owned()),
            all_teams_role: m.member.all_teams.map(|r| r.as_str().to_owned()),
            deactivated: m.member.deactivated_at.is_some(),
        }
    }
}

/// The teams the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    /// Teams by name.
    pub items: Vec<TeamResponse>,
}

/// A new team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamBody {
    /// Name, for example "Development" or "Client A".
    pub name: String,
}

/// A change to a team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeamBody {
    /// New name.
    pub name: Option<String>,
    /// `true` archives (read-only), `false` restores.
    pub archived: Option<bool>,
}

/// A team role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRoleBody {
    /// `admin`, `member` or `viewer`.
    pub role: String,
}

pub(crate) fn team_id(s: &str) -> Result<TeamId, ApiError> {
    s.parse().map_err(|_| ApiError::not_found("team"))
}

/// Lists teams (the Owner and Admins see all; Users the teams they belong to).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/teams", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id")),
    responses((status = 200, description = "Teams", body = TeamList)),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    let items = teams::list(&*st.store, &caller).await?;
    Ok(HttpResponse::Ok().json(TeamList {
        items: items.iter().map(TeamResponse::from).collect(),
    }))
}

/// Creates a team (Owner and Admins).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/teams", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateTeamBody,
    responses(
        (status = 201, description = "Created", body = TeamResponse),
        (status = 403, description = "Not allowed", content_type = "application/problem+json"),
        (status = 409, description = "Name taken", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<CreateTeamBody>,
) -> Result<HttpResponse, ApiError> {
    match teams::create(&*st.store, &caller, &body.name, st.clock.now()).await {
        Ok(t) => Ok(HttpResponse::Created().json(TeamResponse::from(&t))),
        Err(e) => Err(audited(&st, &caller, "create_team", e).await),
    }
}

/// One team.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/teams/{team_id}", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id")),
    responses(
        (status = 200, description = "The team", body = TeamResponse),
        (status = 404, description = "No such team, or not yours to see", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn get(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let t = teams::get(&*st.store, &caller, team_id(&path.1)?).await;
    let t = or_audited(&st, &caller, "view_team", t).await?;
    Ok(HttpResponse::Ok().json(TeamResponse::from(&t)))
}

/// Renames, archives or restores a team (its admins, the Owner and Admins).
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/teams/{team_id}", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id")),
    request_body = UpdateTeamBody,
    responses(
        (status = 200, description = "Updated", body = TeamResponse),
        (status = 403, description = "Not allowed", content_type = "application/problem+json"),
        (status = 409, description = "Name taken", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn update(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<UpdateTeamBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let change = TeamUpdate {
        name: body.name,
        archived: body.archived,
    };
    match teams::update(
        &*st.store,
        &caller,
        team_id(&path.1)?,
        change,
        st.clock.now(),
    )
    .await
    {
        Ok(t) => Ok(HttpResponse::Ok().json(TeamResponse::from(&t))),
        Err(e) => Err(audited(&st, &caller, "update_team", e).await),
    }
}

/// Deletes an empty team (not the default one).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/teams/{team_id}", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The team still holds resources or API keys, or is a stage of the organization's pipeline", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn delete(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    match teams::delete(&*st.store, &caller, team_id(&path.1)?, st.clock.now()).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(e) => Err(audited(&st, &caller, "delete_team", e).await),
    }
}

/// Members of a team with their team roles, ordered by user id.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/teams/{team_id}/members", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id"), PageQuery),
    responses((status = 200, description = "One page of the team's members", body = inline(Page<TeamMemberResponse>))),
    security(("bearer" = [])))]
pub async fn members(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    q: crate::extract::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let after: Option<UserId> = q.cursor()?;
    let m = teams::members(&*st.store, &caller, team_id(&path.1)?, after, limit).await;
    let m = or_audited(&st, &caller, "view_team_members", m).await?;
    let items = m.iter().map(TeamMemberResponse::from).collect();
    Ok(
        HttpResponse::Ok().json(Page::new(items, limit, |m: &TeamMemberResponse| {
            m.user_id.clone()
        })),
    )
}

fn user_id(s: &str) -> Result<UserId, ApiError> {
    s.parse().map_err(|_| ApiError::not_found("member"))
}

/// Gives an organization member a role in the team (team admins, the Owner and Admins).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/teams/{team_id}/members/{user_id}", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id"), ("user_id" = String, Path, description = "User id")),
    request_body = TeamRoleBody,
    responses(
        (status = 204, description = "Set"),
        (status = 404, description = "No such team or member", content_type = "application/problem+json"),
        (status = 409, description = "The team is archived and the person is not in it", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn set_member(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String, String)>,
    body: crate::extract::Json<TeamRoleBody>,
) -> Result<HttpResponse, ApiError> {
    let role = TeamRole::parse(&body.role)
        .ok_or_else(|| ApiError::bad_request("`role` must be `admin`, `member` or `viewer`"))?;
    let (t, u) = (team_id(&path.1)?, user_id(&path.2)?);
    match teams::set_member(&*st.store, &caller, t, u, Some(role), st.clock.now()).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(e) => Err(audited(&st, &caller, "manage_team_members", e).await),
    }
}

/// Takes a member out of the team (they stay in the organization).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/teams/{team_id}/members/{user_id}", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed from the team"),
        (status = 404, description = "No such team or team member", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn remove_member(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, u) = (team_id(&path.1)?, user_id(&path.2)?);
    match teams::set_member(&*st.store, &caller, t, u, None, st.clock.now()).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(e) => Err(audited(&st, &caller, "manage_team_members", e).await),
    }
}

/// One stage of the organization's pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageResponse {
    /// The team's id; null for a team the caller does not see (an organization User sees the
    /// teams they belong to).
    pub team_id: Option<String>,
    /// Its name; null for a team the caller does not see.
    pub name: Option<String>,
    /// Whether it is archived (null for a team the caller does not see): nothing moves into
    /// it until it is restored.
    pub archived: Option<bool>,
}

/// The organization's pipeline of teams (quality gates).
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineResponse {
    /// The stages, first first: a chat interface is created only in the first (or outside the
    /// pipeline) and comes into each later stage only from the one before it.
    pub stages: Vec<StageResponse>,
    /// Who set it.
    pub updated_by: String,
    /// When (RFC 3339).
    pub updated_at: String,
}

/// A new pipeline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineBody {
    /// 2 to 10 team ids of the organization, in order (for example Development, Testing,
    /// Production).
    pub stages: Vec<String>,
}

async fn pipeline_response(
    st: &AppState,
    caller: &tenancy::Caller,
    p: &tenancy::pipeline::Pipeline,
) -> Result<PipelineResponse, ApiError> {
    let teams = teams::list(&*st.store, caller).await?;
    Ok(PipelineResponse {
        stages: p
            .stages
            .iter()
            .map(|id| {
                let t = teams.iter().find(|t| t.id == *id);
                StageResponse {
                    team_id: t.map(|t| t.id.to_string()),
                    name: t.map(|t| t.name.clone()),
                    archived: t.map(|t| t.archived_at.is_some()),
                }
            })
            .collect(),
        updated_by: p.updated_by.to_string(),
        updated_at: p.updated_at.to_rfc3339(),
    })
}

/// The organization's pipeline of teams (the guide's "Development → Testing → Production":
/// agents pass through each stage), for any member.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/pipeline", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The pipeline", body = PipelineResponse),
        (status = 404, description = "The organization has no pipeline", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn get_pipeline(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    let p = tenancy::pipeline::get(&*st.store, &caller)
        .await?
        .ok_or_else(|| ApiError::not_found("pipeline"))?;
    Ok(HttpResponse::Ok().json(pipeline_response(&st, &caller, &p).await?))
}

/// Sets the organization's pipeline (Owner and Admins): from then on a chat interface is
/// created only in the first stage (or outside the pipeline), moves forward one stage at a
/// time by transfer, and may go back to the first stage at any time. Recorded as
/// `team.pipeline_set`.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/pipeline", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = PipelineBody,
    responses(
        (status = 200, description = "Set", body = PipelineResponse),
        (status = 403, description = "Not the Owner or an Admin", content_type = "application/problem+json"),
        (status = 404, description = "A team not of this organization", content_type = "application/problem+json"),
        (status = 409, description = "An archived team", content_type = "application/problem+json"),
        (status = 422, description = "Fewer than 2 or more than 10 teams, or one twice", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn set_pipeline(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<PipelineBody>,
) -> Result<HttpResponse, ApiError> {
    let stages = body
        .stages
        .iter()
        .map(|s| team_id(s))
        .collect::<Result<Vec<_>, _>>()?;
    match tenancy::pipeline::set(&*st.store, &caller, &stages, st.clock.now()).await {
        Ok(p) => Ok(HttpResponse::Ok().json(pipeline_response(&st, &caller, &p).await?)),
        Err(e) => Err(audited(&st, &caller, "set_pipeline", e).await),
    }
}

/// Removes the organization's pipeline (Owner and Admins): nothing is gated any more.
/// Recorded as `team.pipeline_removed`.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/pipeline", tag = "teams",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not the Owner or an Admin", content_type = "application/problem+json"),
        (status = 404, description = "The organization has no pipeline", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn remove_pipeline(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    match tenancy::pipeline::remove(&*st.store, &caller, st.clock.now()).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(e) => Err(audited(&st, &caller, "remove_pipeline", e).await),
    }
}
