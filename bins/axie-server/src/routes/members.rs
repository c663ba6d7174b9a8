//! Members of an organization.

use actix_web::{HttpResponse, web};
use rbac_core::UserId;
use serde::Serialize;
use tenancy::orgs;
use utoipa::ToSchema;

use crate::auth::OrgCaller;
use crate::error::ApiError;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `owner`, `admin` or `user`.
    pub role: String,
    /// When they joined (RFC 3339).
    pub joined_at: String,
}

/// Lists members, ordered by user id.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members", tag = "members",
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses((status = 200, description = "One page of members", body = inline(Page<MemberResponse>))),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let after: Option<UserId> = q.cursor()?;
    let members = orgs::list_members(&*st.store, &caller, after, limit).await?;
    let items: Vec<MemberResponse> = members
        .iter()
        .map(|m| MemberResponse {
            user_id: m.user.id.to_string(),
            email: m.user.email.to_string(),
            name: m.user.name.clone(),
            role: m.role.as_str().to_owned(),
            joined_at: m.joined_at.to_rfc3339(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |m| m.user_id.clone())))
}
