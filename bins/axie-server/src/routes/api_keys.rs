//! API keys: create (secret shown once), list, revoke.

use actix_web::{HttpResponse, web};
use rbac_core::ApiKeyId;
use serde::{Deserialize, Serialize};
use tenancy::ApiKey;
use tenancy::api_keys::{self, CreateApiKeyRequest};
use utoipa::ToSchema;

use crate::auth::{OrgCaller, audited};
use crate::error::ApiError;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyBody {
    /// Display name, for example "Production API".
    pub name: String,
    /// Team id; the default team when omitted. A key created in the default team is the
    /// organization's (`scope: organization`); one created in any other team acts only in that
    /// team (`scope: team`).
    pub team_id: Option<String>,
}

/// An API key's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    /// Key id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Visible prefix of the secret.
    pub prefix: String,
    /// Team id.
    pub team_id: String,
    /// `organization` (created in the default team: its creator's rights across the
    /// organization) or `team` (only in its team, with its creator's role there, and outside
    /// teams no more than an organization User).
    pub scope: String,
    /// Creator's user id.
    pub created_by: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last use (RFC 3339).
    pub last_used_at: Option<String>,
    /// Revocation time (RFC 3339).
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyResponse {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            team_id: k.team.to_string(),
            scope: k.scope.as_str().to_owned(),
            created_by: k.created_by.to_string(),
            created_at: k.created_at.to_rfc3339(),
            last_used_at: k.last_used_at.map(|t| t.to_rfc3339()),
            revoked_at: k.revoked_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// A created key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The secret: send as `Authorization: Bearer <secret>`. It is not stored and cannot be shown again.
    pub secret: String,
}

/// Creates an API key.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/api-keys", tag = "api-keys",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateApiKeyBody,
    responses(
        (status = 201, description = "Created; the secret is in the body once", body = CreatedApiKeyResponse),
        (status = 403, description = "Not allowed or plan limit reached", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<CreateApiKeyBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let team = body
        .team_id
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|_| ApiError::not_found("team"))?;
    let req = CreateApiKeyRequest {
        name: body.name,
        team,
    };
    let (key, token) = match api_keys::create(&*st.store, &caller, req, st.clock.now()).await {
        Ok(created) => created,
        Err(e) => return Err(audited(&st, &caller, "create_api_key", e).await),
    };
    Ok(HttpResponse::Created().json(CreatedApiKeyResponse {
        key: ApiKeyResponse::from(&key),
        secret: token.secret.clone(),
    }))
}

/// Lists API keys (Users see their own).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/api-keys", tag = "api-keys",
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses((status = 200, description = "One page of keys", body = inline(Page<ApiKeyResponse>))),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let after: Option<ApiKeyId> = q.cursor()?;
    let keys = api_keys::list(&*st.store, &caller, after, limit).await?;
    let items: Vec<ApiKeyResponse> = keys.iter().map(ApiKeyResponse::from).collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |k| k.id.clone())))
}

/// Revokes an API key.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/api-keys/{key_id}", tag = "api-keys",
    params(("org_id" = String, Path, description = "Organization id"), ("key_id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not allowed", content_type = "application/problem+json"),
        (status = 404, description = "No such active key", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn revoke(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: ApiKeyId = path.1.parse().map_err(|_| ApiError::not_found("API key"))?;
    if let Err(e) = api_keys::revoke(&*st.store, &caller, id, st.clock.now()).await {
        return Err(audited(&st, &caller, "revoke_api_key", e).await);
    }
    Ok(HttpResponse::NoContent().finish())
}
