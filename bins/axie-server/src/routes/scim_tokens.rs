//! SCIM tokens: the bearer tokens an identity provider uses at `/scim/v2/{org_id}`
//! (Owner or Admin, in a session, Enterprise plan; the secret is shown once).

use actix_web::{HttpResponse, web};
use rbac_core::ScimTokenId;
use serde::{Deserialize, Serialize};
use tenancy::scim::{self, ScimToken};
use utoipa::ToSchema;

use crate::auth::{OrgCaller, audited};
use crate::error::ApiError;
use crate::state::AppState;

/// A new SCIM token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScimTokenBody {
    /// A label, for example "Okta".
    pub name: String,
}

/// A SCIM token's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScimTokenResponse {
    /// Token id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Visible start of the secret.
    pub prefix: String,
    /// Creator's user id (the token stops working when they are no longer Owner or Admin).
    pub created_by: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last use (RFC 3339).
    pub last_used_at: Option<String>,
    /// Revocation time (RFC 3339).
    pub revoked_at: Option<String>,
}

impl From<&ScimToken> for ScimTokenResponse {
    fn from(t: &ScimToken) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            created_by: t.created_by.to_string(),
            created_at: t.created_at.to_rfc3339(),
            last_used_at: t.last_used_at.map(|x| x.to_rfc3339()),
            revoked_at: t.revoked_at.map(|x| x.to_rfc3339()),
        }
    }
}

/// A created token with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedScimTokenResponse {
    /// The token.
    #[serde(flatten)]
    pub token: ScimTokenResponse,
    /// The secret for the identity provider's `Authorization: Bearer` header; not stored.
    pub secret: String,
    /// The SCIM base URL to configure in the identity provider.
    pub scim_base_url: String,
}

/// Creates a SCIM token.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/scim-tokens", tag = "scim",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateScimTokenBody,
    responses(
        (status = 201, description = "Created; the secret is in the body once", body = CreatedScimTokenResponse),
        (status = 403, description = "Not the Owner or an Admin in a session, or not the Enterprise plan", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<CreateScimTokenBody>,
) -> Result<HttpResponse, ApiError> {
    let (token, secret) =
        match scim::create_token(&*st.store, &caller, &body.name, st.clock.now()).await {
            Ok(t) => t,
            Err(e) => return Err(audited(&st, &caller, "create_scim_token", e).await),
        };
    Ok(HttpResponse::Created().json(CreatedScimTokenResponse {
        token: ScimTokenResponse::from(&token),
        secret: secret.secret.clone(),
        scim_base_url: format!(
            "{}/scim/v2/{}",
            st.settings.server.public_url.trim_end_matches('/'),
            caller.org.id
        ),
    }))
}

/// Lists the organization's SCIM tokens, revoked ones included.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/scim-tokens", tag = "scim",
    params(("org_id" = String, Path, description = "Organization id")),
    responses((status = 200, description = "The tokens", body = Vec<ScimTokenResponse>)),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    let tokens = match scim::list_tokens(&*st.store, &caller).await {
        Ok(t) => t,
        Err(e) => return Err(audited(&st, &caller, "list_scim_tokens", e).await),
    };
    let items: Vec<ScimTokenResponse> = tokens.iter().map(ScimTokenResponse::from).collect();
    Ok(HttpResponse::Ok().json(items))
}

/// Revokes a SCIM token.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/scim-tokens/{token_id}", tag = "scim",
    params(("org_id" = String, Path, description = "Organization id"), ("token_id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live token", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn revoke(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: ScimTokenId = path
        .1
        .parse()
        .map_err(|_| ApiError::not_found("SCIM token"))?;
    if let Err(e) = scim::revoke_token(&*st.store, &caller, id, st.clock.now()).await {
        return Err(audited(&st, &caller, "revoke_scim_token", e).await);
    }
    Ok(HttpResponse::NoContent().finish())
}
