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
    /// `false` while deactivated (by the identity provider through SCIM): the member keeps
    /// their resources but cannot sign in to or act in the organization.
    pub active: bool,
    /// When they last signed in (RFC 3339; `null` if never). Shown to the Owner and Admins
    /// only, for the monthly check for inactive users.
    pub last_sign_in_at: Option<String>,
    /// Whether they have two-factor authentication on; `null` for callers other than the
    /// Owner and Admins.
    pub mfa_enabled: Option<bool>,
    /// Their role in every team, those created later included (`viewer`, `member` or
    /// `admin`; `null`: only the teams they were added to). An explicit team role counts
    /// where it is higher.
    pub all_teams_role: Option<String>,
}

/// Lists members, ordered by user id; to the Owner and Admins with when each last signed in
/// and whether they have 2FA on.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members", tag = "members",
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses((status = 200, description = "One page of members", body = inline(Page<MemberResponse>))),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let after: Option<UserId> = q.cursor()?;
    let members = orgs::list_members(&*st.store, &caller, after, limit).await?;
    let status = orgs::member_status(&*st.store, &caller, &members).await?;
    let items: Vec<MemberResponse> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = status.as_ref().and_then(|s| s.get(i));
            MemberResponse {
                user_id: m.user.id.to_string(),
                email: m.user.email.to_string(),
                name: m.user.name.clone(),
                role: m.role.as_str().to_owned(),
                joined_at: m.joined_at.to_rfc3339(),
                active: m.deactivated_at.is_none(),
                last_sign_in_at: s.and_then(|s| s.last_sign_in_at).map(|t| t.to_rfc3339()),
                mfa_enabled: s.map(|s| s.mfa_enabled),
                all_teams_role: m.all_teams.map(|r| r.as_str().to_owned()),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |m| m.user_id.clone())))
}

/// A new role.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleBody {
    /// `admin` or `user`.
    pub role: String,
}

fn member_id(path: &(String, String)) -> Result<UserId, ApiError> {
    path.1.parse().map_err(|_| ApiError::not_found("member"))
}

/// Promotes or demotes a member; the change applies to their next request.
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/members/{user_id}", tag = "members",
    params(("org_id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "Member's user id")),
    request_body = ChangeRoleBody,
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "A role rule forbids it", content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn change_role(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<ChangeRoleBody>,
) -> Result<HttpResponse, ApiError> {
    let target = member_id(&path)?;
    let role = rbac_core::OrgRole::parse(&body.role)
        .ok_or_else(|| ApiError::invalid_input(format!("unknown role `{}`", body.role)))?;
    if let Err(e) =
        tenancy::members::change_role(&*st.store, &caller, target, role, st.clock.now()).await
    {
        return Err(crate::auth::audited(&st, &caller, "change_roles", e).await);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A member's role in every team.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllTeamsRoleBody {
    /// `viewer` (the guide's Finance: view only, all teams), `member` (its executives:
    /// Member in all teams) or `admin`; `null` to keep only the teams they were added to.
    /// Required: an empty body does not take the role away.
    #[serde(deserialize_with = "nullable")]
    #[schema(required = true)]
    pub role: Option<String>,
}

/// A field that must be present, possibly as `null`.
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(d)
}

/// Gives a member a role in every team of the organization, those created later included, or
/// takes it away; the change applies to their next request.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/members/{user_id}/all-teams-role", tag = "members",
    params(("org_id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "Member's user id")),
    request_body = AllTeamsRoleBody,
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "A role rule forbids it", content_type = "application/problem+json"),
        (status = 404, description = "No such member", content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", content_type = "application/problem+json"),
        (status = 422, description = "Unknown role", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn set_all_teams_role(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<AllTeamsRoleBody>,
) -> Result<HttpResponse, ApiError> {
    let target = member_id(&path)?;
    let role = body
        .role
        .as_deref()
        .map(|r| {
            rbac_core::TeamRole::parse(r)
                .ok_or_else(|| ApiError::invalid_input(format!("unknown team role `{r}`")))
        })
        .transpose()?;
    if let Err(e) =
        tenancy::members::set_all_teams_role(&*st.store, &caller, target, role, st.clock.now())
            .await
    {
        return Err(crate::auth::audited(&st, &caller, "change_roles", e).await);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// What to do with a removed member's resources.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    /// `transfer` (recommended) or `delete`.
    pub resources: String,
    /// The member who receives the resources, with `transfer`.
    pub transfer_to: Option<String>,
}

/// The removal's effects.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovalResponse {
    /// Resources handed over.
    pub transferred: u64,
    /// The member's resources deleted (transferred + deleted = every resource they created).
    pub deleted: u64,
    /// Other people's resources deleted with them (documents inside a deleted knowledge base).
    pub cascaded: u64,
    /// API keys deactivated.
    pub api_keys_deactivated: u64,
    /// SCIM tokens the member created, revoked.
    pub scim_tokens_revoked: u64,
    /// Sessions ended.
    pub sessions_ended: u64,
}

/// Removes a member: access revoked at once, API keys deactivated, sessions ended.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{user_id}/remove", tag = "members",
    params(("org_id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "Member's user id")),
    request_body = RemoveBody,
    responses(
        (status = 200, description = "Removed", body = RemovalResponse),
        (status = 403, description = "The Owner, or yourself", content_type = "application/problem+json"),
        (status = 409, description = "The recipient, a User, has no role in a team where the member's resources are", content_type = "application/problem+json"),
        (status = 422, description = "The recipient is not another active member", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn remove(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<RemoveBody>,
) -> Result<HttpResponse, ApiError> {
    use tenancy::members::Disposition;
    let target = member_id(&path)?;
    let disposition = match (body.resources.as_str(), body.transfer_to.as_deref()) {
        ("delete", None) => Disposition::Delete,
        ("transfer", Some(to)) => Disposition::TransferTo(
            to.parse()
                .map_err(|_| ApiError::bad_request("`transfer_to` is not a user id"))?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "use {\"resources\": \"delete\"} or {\"resources\": \"transfer\", \"transfer_to\": \"usr_…\"}",
            ));
        }
    };
    match tenancy::members::remove(&*st.store, &caller, target, disposition, st.clock.now()).await {
        Ok(r) => {
            // The removal committed; the deleted documents' bytes go now (a failure only orphans bytes).
            tenancy::assets::remove_document_blobs(&*st.blobs, &r.deleted_documents).await;
            Ok(HttpResponse::Ok().json(RemovalResponse {
                transferred: r.transferred,
                cascaded: r.cascaded,
                deleted: r.deleted,
                api_keys_deactivated: r.api_keys_deactivated,
                scim_tokens_revoked: r.scim_tokens_revoked,
                sessions_ended: r.sessions_ended,
            }))
        }
        Err(e) => Err(crate::auth::audited(&st, &caller, "remove_members", e).await),
    }
}

/// Leaves the organization: access ends at once, your API keys there are deactivated, and
/// what you created stays with the organization, handed to the Owner. The Owner transfers
/// ownership first. Sessions only (not API keys).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/leave", tag = "members",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "Left", body = RemovalResponse),
        (status = 403, description = "Through an API key", content_type = "application/problem+json"),
        (status = 409, description = "The Owner", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn leave(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    match tenancy::members::leave(&*st.store, &caller, st.clock.now()).await {
        Ok(r) => Ok(HttpResponse::Ok().json(RemovalResponse {
            transferred: r.transferred,
            cascaded: r.cascaded,
            deleted: r.deleted,
            api_keys_deactivated: r.api_keys_deactivated,
            scim_tokens_revoked: r.scim_tokens_revoked,
            sessions_ended: r.sessions_ended,
        })),
        Err(e) => Err(crate::auth::audited(&st, &caller, "leave", e).await),
    }
}

/// Whom to hand ownership to, confirmed with the Owner's password.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The member who becomes Owner once they confirm.
    pub to_user_id: String,
    /// The Owner's password: ownership is permanent, so a session alone does not hand it over.
    pub password: String,
}

redacted_debug!(TransferBody);

/// A pending transfer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferResponse {
    /// Current Owner.
    pub from_user_id: String,
    /// Proposed Owner.
    pub to_user_id: String,
    /// Confirmation deadline (RFC 3339).
    pub expires_at: String,
}

/// The Owner proposes an ownership transfer (permanent once confirmed).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/ownership-transfer", tag = "members",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = TransferBody,
    responses(
        (status = 201, description = "Proposed; waits for the new Owner", body = TransferResponse),
        (status = 401, description = "Wrong password", content_type = "application/problem+json"),
        (status = 403, description = "Only the Owner, to another member", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn propose_transfer(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let to: UserId = body
        .to_user_id
        .parse()
        .map_err(|_| ApiError::not_found("member"))?;
    let t = match tenancy::members::propose_transfer(
        &*st.store,
        &st.hasher,
        &caller,
        to,
        &body.password,
        st.clock.now(),
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return Err(crate::auth::audited(&st, &caller, "transfer_ownership", e).await),
    };
    Ok(HttpResponse::Created().json(TransferResponse {
        from_user_id: t.from.to_string(),
        to_user_id: t.to.to_string(),
        expires_at: t.expires_at.to_rfc3339(),
    }))
}

/// The pending ownership transfer, shown to the Owner who proposed it and to the member it
/// waits for (signed in; not to API keys).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/ownership-transfer", tag = "members",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The pending transfer", body = TransferResponse),
        (status = 404, description = "No unexpired transfer from or to you", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn pending_transfer(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    let t = tenancy::members::pending_transfer(&*st.store, &caller, st.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("ownership transfer"))?;
    Ok(HttpResponse::Ok().json(TransferResponse {
        from_user_id: t.from.to_string(),
        to_user_id: t.to.to_string(),
        expires_at: t.expires_at.to_rfc3339(),
    }))
}

/// The Owner withdraws the transfer they proposed, before it is confirmed.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/ownership-transfer", tag = "members",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 204, description = "Withdrawn; the member it waited for is told by mail"),
        (status = 403, description = "Only the Owner, signed in", content_type = "application/problem+json"),
        (status = 404, description = "No unexpired transfer of yours is pending", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn withdraw_transfer(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    match tenancy::members::withdraw_transfer(&*st.store, &caller, st.clock.now()).await {
        Ok(_) => Ok(HttpResponse::NoContent().finish()),
        Err(e) => Err(crate::auth::audited(&st, &caller, "withdraw_ownership_transfer", e).await),
    }
}

/// The proposed Owner confirms the transfer; the old Owner becomes Admin.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/ownership-transfer/confirm", tag = "members",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "Ownership transferred", body = TransferResponse),
        (status = 404, description = "No pending transfer to you", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn confirm_transfer(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    let t = match tenancy::members::confirm_transfer(&*st.store, &caller, st.clock.now()).await {
        Ok(t) => t,
        Err(e) => {
            return Err(crate::auth::audited(&st, &caller, "confirm_ownership_transfer", e).await);
        }
    };
    Ok(HttpResponse::Ok().json(TransferResponse {
        from_user_id: t.from.to_string(),
        to_user_id: t.to.to_string(),
        expires_at: t.expires_at.to_rfc3339(),
    }))
}
