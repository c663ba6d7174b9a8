//! GDPR: personal-data export, erasure, and consent records.

use actix_web::{HttpResponse, web};
use rbac_core::{ConsentId, UserId};
use serde::{Deserialize, Serialize};
use tenancy::privacy::{self, ConsentRecord, ErasureReport};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{OrgCaller, audited};
use crate::error::ApiError;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

fn user_id(s: &str) -> Result<UserId, ApiError> {
    s.parse().map_err(|_| ApiError::not_found("member"))
}

/// Exports everything the organization holds about a member as JSON (the member themselves, or
/// the Owner and Admins). The export is audited.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members/{user_id}/personal-data", tag = "privacy",
    params(("org_id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The personal data (account, membership, API keys, resources created, consents, SCIM record, audit records; sessions in one's own export)", body = Object),
        (status = 403, description = "Not the person, the Owner or an Admin", content_type = "application/problem+json"),
        (status = 404, description = "Not a member", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn export(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&path.1)?;
    match privacy::export(&*st.store, &caller, user, st.clock.now()).await {
        Ok(doc) => Ok(HttpResponse::Ok()
            .insert_header((
                "content-disposition",
                format!("attachment; filename=\"personal-data-{user}.json\""),
            ))
            .json(doc)),
        Err(e) => Err(audited(&st, &caller, "export_personal_data", e).await),
    }
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureResponse {
    /// Resources handed to the Owner.
    pub resources_transferred: u64,
    /// API keys deactivated.
    pub api_keys_deactivated: u64,
    /// SCIM tokens they created, revoked.
    pub scim_tokens_revoked: u64,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Audit records whose personal annotations were blanked (the chain still verifies).
    pub audit_records_erased: u64,
    /// Whether the account was anonymized (no other organization).
    pub account_anonymized: bool,
    /// Stored webhook payloads and outbox events that named them, rewritten without them.
    pub event_bodies_erased: u64,
}

/// The confirmation an erasure of oneself asks for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureConfirmation {
    /// The current password.
    pub password: String,
}

redacted_debug!(ErasureConfirmation);

impl From<&ErasureReport> for ErasureResponse {
    fn from(r: &ErasureReport) -> Self {
        Self {
            resources_transferred: r.removal.transferred,
            api_keys_deactivated: r.removal.api_keys_deactivated,
            scim_tokens_revoked: r.removal.scim_tokens_revoked,
            sessions_ended: r.removal.sessions_ended,
            audit_records_erased: r.audit_records_erased,
            account_anonymized: r.account_anonymized,
            event_bodies_erased: r.event_bodies_erased,
        }
    }
}

/// Erases a member (right to be forgotten): removed with their resources handed to the Owner,
/// their name, email, addresses and user agents blanked in the audit log, their account
/// anonymized when they belong to no other organization. A former member (who left or was
/// removed, and whom the audit log names) is erased alike, without a removal, their account
/// left as it is. Irreversible.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/members/{user_id}/erasure", tag = "privacy",
    params(("org_id" = String, Path, description = "Organization id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Erased", body = ErasureResponse),
        (status = 403, description = "Not allowed (the Owner and oneself cannot be erased)", content_type = "application/problem+json"),
        (status = 404, description = "Neither a member nor a former one", content_type = "application/problem+json"),
        (status = 409, description = "Joined again while being erased as a former member", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn erase(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = user_id(&path.1)?;
    match privacy::erase(&*st.store, &caller, user, st.clock.now()).await {
        Ok(r) => Ok(HttpResponse::Ok().json(ErasureResponse::from(&r))),
        Err(e) => Err(audited(&st, &caller, "erase_member", e).await),
    }
}

/// Leaves the organization and asks it to forget you (right to be forgotten): what you created
/// goes to the Owner, your name, email, addresses and user agents are blanked in its audit log,
/// and your account is anonymized when you belong to no other organization. Irreversible.
/// Sessions only; the Owner transfers ownership first.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/erasure", tag = "privacy",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = ErasureConfirmation,
    responses(
        (status = 200, description = "Erased", body = ErasureResponse),
        (status = 401, description = "Wrong password", content_type = "application/problem+json"),
        (status = 403, description = "Through an API key", content_type = "application/problem+json"),
        (status = 409, description = "The Owner", content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn erase_own(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<ErasureConfirmation>,
) -> Result<HttpResponse, ApiError> {
    match privacy::erase_own(
        &*st.store,
        &st.hasher,
        &caller,
        &body.password,
        st.clock.now(),
    )
    .await
    {
        Ok(r) => Ok(HttpResponse::Ok().json(ErasureResponse::from(&r))),
        Err(e) => Err(audited(&st, &caller, "erase_own", e).await),
    }
}

/// A consent decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentResponse {
    /// The decision's id.
    pub id: String,
    /// The person.
    pub user_id: String,
    /// What for.
    pub purpose: String,
    /// Granted or withdrawn.
    pub granted: bool,
    /// When (RFC 3339).
    pub at: String,
}

impl From<&ConsentRecord> for ConsentResponse {
    fn from(c: &ConsentRecord) -> Self {
        Self {
            id: c.id.to_string(),
            user_id: c.user.to_string(),
            purpose: c.purpose.clone(),
            granted: c.granted,
            at: c.at.to_rfc3339(),
        }
    }
}

/// Whose consents to list, and which page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsentQuery {
    /// One person (default: the caller). `all` lists everyone's (Owner and Admins).
    pub user_id: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists consent decisions, oldest first, a page at a time: one's own, or (Owner and Admins)
/// anyone's.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/consents", tag = "privacy",
    params(("org_id" = String, Path, description = "Organization id"), ConsentQuery),
    responses((status = 200, description = "One page of decisions", body = inline(Page<ConsentResponse>))),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<ConsentQuery>,
) -> Result<HttpResponse, ApiError> {
    let who = match q.user_id.as_deref() {
        None => Some(caller.user.id),
        Some("all") => None,
        Some(id) => Some(user_id(id)?),
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit()?, page.cursor::<ConsentId>()?);
    match privacy::consents(&*st.store, &caller, who, after, limit as usize).await {
        Ok(list) => {
            let items: Vec<ConsentResponse> = list.iter().map(ConsentResponse::from).collect();
            Ok(HttpResponse::Ok().json(Page::new(items, limit, |c| c.id.clone())))
        }
        Err(e) => Err(audited(&st, &caller, "list_consents", e).await),
    }
}

/// A decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// `true` grants, `false` withdraws.
    pub granted: bool,
}

/// Grants or withdraws one's own consent for a purpose (in a session). Audited.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/consents/{purpose}", tag = "privacy",
    params(("org_id" = String, Path, description = "Organization id"), ("purpose" = String, Path, description = "A slug, for example marketing_email")),
    request_body = ConsentBody,
    responses(
        (status = 200, description = "Recorded; or, restating the current decision, that decision (nothing recorded)", body = ConsentResponse),
        (status = 422, description = "Bad purpose, or one purpose more than the 50 a person may decide on", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn set(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<ConsentBody>,
) -> Result<HttpResponse, ApiError> {
    match privacy::set_consent(&*st.store, &caller, &path.1, body.granted, st.clock.now()).await {
        Ok(c) => Ok(HttpResponse::Ok().json(ConsentResponse::from(&c))),
        Err(e) => Err(audited(&st, &caller, "set_consent", e).await),
    }
}
