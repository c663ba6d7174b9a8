//! Workspace resources: chat interfaces, knowledge bases and documents, custom domains,
//! transfers between teams, and analytics. Every rule is in `tenancy::assets`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, NaiveDate};
use futures::StreamExt;
use rbac_core::ResourceId;
use serde::{Deserialize, Serialize};
use tenancy::assets::{
    self, Analytics, Asset, AssetDetails, AssetKind, AssetTransfer, AssetUpdate, NewAsset,
};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{OrgCaller, audited, or_audited};
use crate::error::ApiError;
use crate::routes::teams::team_id;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

/// A workspace resource. Fields that do not apply to its kind are absent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetResponse {
    /// Resource id.
    pub id: String,
    /// `chat_interface`, `knowledge_base`, `document` or `domain`.
    pub kind: String,
    /// The team it belongs to.
    pub team_id: String,
    /// Display name.
    pub name: String,
    /// The resource it sits under (a document's knowledge base, a knowledge base's chat interface).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Creator's user id.
    pub created_by: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// When it was archived (RFC 3339); absent while in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    /// Description (chat interfaces, knowledge bases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Instructions (chat interfaces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Media type (documents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Size in bytes (documents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// SHA-256 of the content, hex (documents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Host name (domains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The TXT record to publish (domains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationResponse>,
}

/// How to prove a domain is yours.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationResponse {
    /// Publish a TXT record at this name…
    pub record_name: String,
    /// …with this value.
    pub record_value: String,
    /// When ownership was proven (RFC 3339); absent until then.
    pub verified_at: Option<String>,
}

impl From<&Asset> for AssetResponse {
    fn from(a: &Asset) -> Self {
        let mut r = Self {
            id: a.id.to_string(),
            kind: a.kind().as_str().to_owned(),
            team_id: a.team.to_string(),
            name: a.name.clone(),
            parent_id: a.parent.map(|p| p.to_string()),
            created_by: a.created_by.to_string(),
            created_at: a.created_at.to_rfc3339(),
            updated_at: a.updated_at.to_rfc3339(),
            archived_at: a.archived_at.map(|t| t.to_rfc3339()),
            description: None,
            instructions: None,
            content_type: None,
            size_bytes: None,
            sha256: None,
            hostname: None,
            verification: None,
        };
        match &a.details {
            AssetDetails::ChatInterface {
                description,
                instructions,
            } => {
                r.description = Some(description.clone());
                r.instructions = Some(instructions.clone());
            }
            AssetDetails::KnowledgeBase { description } => {
                r.description = Some(description.clone())
            }
            AssetDetails::Document {
                content_type,
                sha256,
            } => {
                r.content_type = Some(content_type.clone());
                r.size_bytes = Some(a.size_bytes);
                r.sha256 = Some(sha256.clone());
            }
            AssetDetails::Domain {
                hostname,
                verification_token,
                verified_at,
            } => {
                r.hostname = Some(hostname.clone());
                r.verification = Some(VerificationResponse {
                    record_name: assets::verification_record_name(hostname),
                    record_value: verification_token.clone(),
                    verified_at: verified_at.map(|t| t.to_rfc3339()),
                });
            }
        }
        r
    }
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AssetListQuery {
    /// Only this team's.
    pub team_id: Option<String>,
    /// `true` lists the archived ones instead of those in use (chat interfaces, knowledge bases).
    pub archived: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A new chat interface.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChatInterfaceBody {
    /// Name, for example "Customer Support".
    pub name: String,
    /// Team; the default team when omitted.
    pub team_id: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// System instructions.
    #[serde(default)]
    pub instructions: String,
}

/// A new knowledge base.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKnowledgeBaseBody {
    /// Name.
    pub name: String,
    /// Team; the chat interface's team when one is given, else the default team.
    pub team_id: Option<String>,
    /// The chat interface it belongs to (it then moves with it).
    pub chat_interface_id: Option<String>,
    /// What it holds.
    #[serde(default)]
    pub description: String,
}

/// A new custom domain.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomainBody {
    /// Host name, for example "chat.company.com".
    pub hostname: String,
    /// Team; the default team when omitted.
    pub team_id: Option<String>,
}

/// An edit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAssetBody {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New instructions (chat interfaces).
    pub instructions: Option<String>,
    /// `true` archives it (it stays readable, leaves the default listings, and is no longer
    /// edited, used or added to), `false` brings it back. On its own: not with other fields.
    pub archived: Option<bool>,
}

/// A transfer to another team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The receiving team.
    pub team_id: String,
    /// A new name, for example "Customer Service Agent - PROD".
    pub name: Option<String>,
    /// What to keep with the move ("Passed QA: 48/48 test conversations"): at most 2,000
    /// characters, line breaks and tabs but no other control characters.
    pub note: Option<String>,
}

/// One recorded transfer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferResponse {
    /// The resource.
    pub asset_id: String,
    /// From this team.
    pub from_team_id: String,
    /// To this team.
    pub to_team_id: String,
    /// Name before.
    pub from_name: String,
    /// Name after.
    pub to_name: String,
    /// Who moved it.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// The mover's note; null when none.
    pub note: Option<String>,
}

impl From<&AssetTransfer> for TransferResponse {
    fn from(t: &AssetTransfer) -> Self {
        Self {
            asset_id: t.asset.to_string(),
            from_team_id: t.from_team.to_string(),
            to_team_id: t.to_team.to_string(),
            from_name: t.from_name.clone(),
            to_name: t.to_name.clone(),
            by: t.by.to_string(),
            at: t.at.to_rfc3339(),
            note: t.note.clone(),
        }
    }
}

/// A transfer's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferResult {
    /// The resource after the move.
    pub asset: AssetResponse,
    /// The history entry.
    pub transfer: TransferResponse,
}

fn asset_id(kind: AssetKind, s: &str) -> Result<ResourceId, ApiError> {
    s.parse().map_err(|_| ApiError::not_found(kind.label()))
}

fn opt_team(s: Option<&str>) -> Result<Option<rbac_core::TeamId>, ApiError> {
    s.map(team_id).transpose()
}

async fn list_kind(
    st: &AppState,
    caller: &tenancy::Caller,
    kind: AssetKind,
    q: &AssetListQuery,
    parent: Option<ResourceId>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = page.limit()?;
    let after: Option<ResourceId> = page.cursor()?;
    let team = opt_team(q.team_id.as_deref())?;
    let archived = q.archived.unwrap_or(false);
    let found = assets::list(
        &*st.store, caller, kind, team, parent, archived, after, limit,
    )
    .await;
    let found = or_audited(st, caller, &format!("list_{}", kind.as_str()), found).await?;
    let items: Vec<AssetResponse> = found.iter().map(AssetResponse::from).collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |a| a.id.clone())))
}

async fn create_kind(
    st: &AppState,
    caller: &tenancy::Caller,
    new: NewAsset,
    attempted: &str,
) -> Result<HttpResponse, ApiError> {
    match assets::create(&*st.store, caller, new, st.clock.now()).await {
        Ok(a) => Ok(HttpResponse::Created().json(AssetResponse::from(&a))),
        Err(e) => Err(audited(st, caller, attempted, e).await),
    }
}

async fn get_kind(
    st: &AppState,
    caller: &tenancy::Caller,
    kind: AssetKind,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let a = assets::get(&*st.store, caller, kind, asset_id(kind, id)?).await;
    let a = or_audited(st, caller, &format!("view_{}", kind.as_str()), a).await?;
    Ok(HttpResponse::Ok().json(AssetResponse::from(&a)))
}

async fn update_kind(
    st: &AppState,
    caller: &tenancy::Caller,
    kind: AssetKind,
    id: &str,
    body: UpdateAssetBody,
) -> Result<HttpResponse, ApiError> {
    if let Some(archived) = body.archived {
        if body.name.is_some() || body.description.is_some() || body.instructions.is_some() {
            return Err(ApiError::bad_request(
                "`archived` goes on its own: archive or unarchive, then edit",
            ));
        }
        let id = asset_id(kind, id)?;
        let attempted = if archived { "archive" } else { "unarchive" };
        return match assets::set_archived(&*st.store, caller, kind, id, archived, st.clock.now())
            .await
        {
            Ok(a) => Ok(HttpResponse::Ok().json(AssetResponse::from(&a))),
            Err(e) => Err(audited(st, caller, &format!("{attempted}_{}", kind.as_str()), e).await),
        };
    }
    let change = AssetUpdate {
        name: body.name,
        description: body.description,
        instructions: body.instructions,
    };
    let id = asset_id(kind, id)?;
    match assets::update(&*st.store, caller, kind, id, change, st.clock.now()).await {
        Ok(a) => Ok(HttpResponse::Ok().json(AssetResponse::from(&a))),
        Err(e) => Err(audited(st, caller, &format!("edit_{}", kind.as_str()), e).await),
    }
}

async fn delete_kind(
    st: &AppState,
    caller: &tenancy::Caller,
    kind: AssetKind,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let id = asset_id(kind, id)?;
    match assets::delete(&*st.store, &*st.blobs, caller, kind, id, st.clock.now()).await {
        Ok(_) => Ok(HttpResponse::NoContent().finish()),
        Err(e) => Err(audited(st, caller, &format!("delete_{}", kind.as_str()), e).await),
    }
}

macro_rules! item_routes {
    ($kind:expr, $tag:literal, $path:literal, $get:ident, $update:ident, $delete:ident) => {
        /// One resource of this kind.
        #[utoipa::path(get, path = $path, tag = $tag,
            params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Resource id")),
            responses(
                (status = 200, description = "The resource", body = AssetResponse),
                (status = 404, description = "No such resource, or not yours to see", content_type = "application/problem+json"),
            ), security(("bearer" = [])))]
        pub async fn $get(
            st: web::Data<AppState>,
            OrgCaller(caller): OrgCaller,
            path: web::Path<(String, String)>,
        ) -> Result<HttpResponse, ApiError> {
            get_kind(&st, &caller, $kind, &path.1).await
        }

        /// Edits the resource, or archives it or brings it back (`archived`).
        #[utoipa::path(patch, path = $path, tag = $tag,
            params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Resource id")),
            request_body = UpdateAssetBody,
            responses(
                (status = 200, description = "Updated", body = AssetResponse),
                (status = 400, description = "`archived` with other fields", content_type = "application/problem+json"),
                (status = 403, description = "Not allowed", content_type = "application/problem+json"),
                (status = 409, description = "Changed concurrently, or archived (unarchive it first)", content_type = "application/problem+json"),
            ), security(("bearer" = [])))]
        pub async fn $update(
            st: web::Data<AppState>,
            OrgCaller(caller): OrgCaller,
            path: web::Path<(String, String)>,
            body: crate::extract::Json<UpdateAssetBody>,
        ) -> Result<HttpResponse, ApiError> {
            update_kind(&st, &caller, $kind, &path.1, body.into_inner()).await
        }

        /// Deletes the resource and everything under it.
        #[utoipa::path(delete, path = $path, tag = $tag,
            params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Resource id")),
            responses(
                (status = 204, description = "Deleted"),
                (status = 403, description = "Not allowed", content_type = "application/problem+json"),
                (status = 404, description = "No such resource", content_type = "application/problem+json"),
            ), security(("bearer" = [])))]
        pub async fn $delete(
            st: web::Data<AppState>,
            OrgCaller(caller): OrgCaller,
            path: web::Path<(String, String)>,
        ) -> Result<HttpResponse, ApiError> {
            delete_kind(&st, &caller, $kind, &path.1).await
        }
    };
}

item_routes!(
    AssetKind::ChatInterface,
    "chat-interfaces",
    "/api/v1/orgs/{org_id}/chat-interfaces/{asset_id}",
    get_chat_interface,
    update_chat_interface,
    delete_chat_interface
);
item_routes!(
    AssetKind::KnowledgeBase,
    "knowledge-bases",
    "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}",
    get_knowledge_base,
    update_knowledge_base,
    delete_knowledge_base
);

/// Lists chat interfaces the caller may see.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/chat-interfaces", tag = "chat-interfaces",
    params(("org_id" = String, Path, description = "Organization id"), AssetListQuery),
    responses((status = 200, description = "One page", body = inline(Page<AssetResponse>))),
    security(("bearer" = [])))]
pub async fn list_chat_interfaces(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<AssetListQuery>,
) -> Result<HttpResponse, ApiError> {
    list_kind(&st, &caller, AssetKind::ChatInterface, &q, None).await
}

/// Creates a chat interface; every member of its team sees it at once.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/chat-interfaces", tag = "chat-interfaces",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateChatInterfaceBody,
    responses(
        (status = 201, description = "Created", body = AssetResponse),
        (status = 403, description = "Not allowed or plan limit reached", content_type = "application/problem+json"),
        (status = 409, description = "The team is archived, or a later stage of the organization's pipeline (a chat interface comes into it only by a transfer from the stage before)", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create_chat_interface(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<CreateChatInterfaceBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewAsset {
        team: opt_team(body.team_id.as_deref())?,
        name: body.name,
        parent: None,
        details: AssetDetails::ChatInterface {
            description: body.description,
            instructions: body.instructions,
        },
    };
    create_kind(&st, &caller, new, "create_chat_interface").await
}

/// Usage recorded by one use.
#[derive(Debug, Serialize, ToSchema)]
pub struct UseResponse {
    /// The chat interface.
    pub chat_interface_id: String,
    /// The metric counted.
    pub metric: String,
}

/// Uses a chat interface (one conversation turn), counted in analytics.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/chat-interfaces/{asset_id}/use", tag = "chat-interfaces",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Chat interface id")),
    responses(
        (status = 200, description = "Counted", body = UseResponse),
        (status = 404, description = "No such chat interface", content_type = "application/problem+json"),
        (status = 409, description = "Archived", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn use_chat_interface(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = asset_id(AssetKind::ChatInterface, &path.1)?;
    match assets::use_chat_interface(&*st.store, &caller, id, st.clock.now()).await {
        Ok(a) => Ok(HttpResponse::Ok().json(UseResponse {
            chat_interface_id: a.id.to_string(),
            metric: assets::METRIC_MESSAGES.to_owned(),
        })),
        Err(e) => Err(audited(&st, &caller, "use_chat_interface", e).await),
    }
}

/// Lists knowledge bases the caller may see.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/knowledge-bases", tag = "knowledge-bases",
    params(("org_id" = String, Path, description = "Organization id"), AssetListQuery),
    responses((status = 200, description = "One page", body = inline(Page<AssetResponse>))),
    security(("bearer" = [])))]
pub async fn list_knowledge_bases(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<AssetListQuery>,
) -> Result<HttpResponse, ApiError> {
    list_kind(&st, &caller, AssetKind::KnowledgeBase, &q, None).await
}

/// Creates a knowledge base, optionally belonging to a chat interface.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/knowledge-bases", tag = "knowledge-bases",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateKnowledgeBaseBody,
    responses(
        (status = 201, description = "Created", body = AssetResponse),
        (status = 403, description = "Not allowed or plan limit reached", content_type = "application/problem+json"),
        (status = 409, description = "Its chat interface or team is archived", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create_knowledge_base(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<CreateKnowledgeBaseBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewAsset {
        team: opt_team(body.team_id.as_deref())?,
        name: body.name,
        parent: body
            .chat_interface_id
            .as_deref()
            .map(|p| asset_id(AssetKind::ChatInterface, p))
            .transpose()?,
        details: AssetDetails::KnowledgeBase {
            description: body.description,
        },
    };
    create_kind(&st, &caller, new, "create_knowledge_base").await
}

/// Lists a knowledge base's documents.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}/documents", tag = "documents",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Knowledge base id"), AssetListQuery),
    responses((status = 200, description = "One page", body = inline(Page<AssetResponse>))),
    security(("bearer" = [])))]
pub async fn list_documents(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    q: crate::extract::Query<AssetListQuery>,
) -> Result<HttpResponse, ApiError> {
    let kb = asset_id(AssetKind::KnowledgeBase, &path.1)?;
    list_kind(&st, &caller, AssetKind::Document, &q, Some(kb)).await
}

/// Upload parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The document's name, for example "pricing-faq.md".
    pub name: String,
}

/// Uploads a document: the request body is the content, `Content-Type` its media type.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}/documents", tag = "documents",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Knowledge base id"), UploadQuery),
    request_body(content = String, content_type = "application/octet-stream", description = "The document's bytes; send its real media type as Content-Type"),
    responses(
        (status = 201, description = "Stored", body = AssetResponse),
        (status = 403, description = "Not allowed, or document/storage limit reached", content_type = "application/problem+json"),
        (status = 409, description = "The knowledge base is archived", content_type = "application/problem+json"),
        (status = 408, description = "The upload stalled for `server.body_timeout_secs`", content_type = "application/problem+json"),
        (status = 413, description = "Larger than the upload limit", content_type = "application/problem+json"),
        (status = 422, description = "Empty or of a type not accepted", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn upload_document(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: crate::extract::Query<UploadQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let kb = asset_id(AssetKind::KnowledgeBase, &path.1)?;
    let max = st.documents.max_bytes;
    let mut bytes = web::BytesMut::new();
    // A large upload may take long; one that stalls between two chunks is cut off.
    let idle = crate::extract::body_timeout(&req);
    loop {
        let next = tokio::time::timeout(idle, payload.next())
            .await
            .map_err(|_| crate::extract::body_too_slow(idle))?;
        let Some(chunk) = next else { break };
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("documents may be at most {max} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    match assets::upload_document(
        &*st.store,
        &*st.blobs,
        &st.documents,
        &caller,
        kb,
        &q.name,
        content_type,
        &bytes,
        st.clock.now(),
    )
    .await
    {
        Ok(a) => Ok(HttpResponse::Created().json(AssetResponse::from(&a))),
        Err(e) => Err(audited(&st, &caller, "upload_document", e).await),
    }
}

/// One document's metadata.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/documents/{asset_id}", tag = "documents",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document", body = AssetResponse),
        (status = 404, description = "No such document", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn get_document(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    get_kind(&st, &caller, AssetKind::Document, &path.1).await
}

/// A document's content, with its media type.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/documents/{asset_id}/content", tag = "documents",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "The bytes, with the content type they were uploaded with", content_type = "*/*"),
        (status = 404, description = "No such document", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn document_content(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = asset_id(AssetKind::Document, &path.1)?;
    let content =
        assets::document_content(&*st.store, &*st.blobs, &caller, id, st.clock.now()).await;
    let (a, bytes) = or_audited(&st, &caller, "download_document", content).await?;
    let media = match &a.details {
        AssetDetails::Document { content_type, .. } => content_type.clone(),
        _ => "application/octet-stream".to_owned(),
    };
    // Saved under the document's name (RFC 6266's `filename*`, any name; `filename`, a
    // plain-ASCII fallback, for clients that read only that).
    let disposition = actix_web::http::header::ContentDisposition {
        disposition: actix_web::http::header::DispositionType::Attachment,
        parameters: vec![
            actix_web::http::header::DispositionParam::Filename(
                a.name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_graphic() && c != '"' && c != '\\' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect(),
            ),
            actix_web::http::header::DispositionParam::FilenameExt(
                actix_web::http::header::ExtendedValue {
                    charset: actix_web::http::header::Charset::Ext("UTF-8".to_owned()),
                    language_tag: None,
                    value: a.name.clone().into_bytes(),
                },
            ),
        ],
    };
    Ok(HttpResponse::Ok()
        .content_type(media)
        .insert_header(disposition)
        .body(bytes))
}

/// Deletes a document (its uploader, team admins, the Owner and Admins).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/documents/{asset_id}", tag = "documents",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Document id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not allowed", content_type = "application/problem+json"),
        (status = 404, description = "No such document", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn delete_document(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    delete_kind(&st, &caller, AssetKind::Document, &path.1).await
}

/// Lists custom domains.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/domains", tag = "domains",
    params(("org_id" = String, Path, description = "Organization id"), AssetListQuery),
    responses((status = 200, description = "One page", body = inline(Page<AssetResponse>))),
    security(("bearer" = [])))]
pub async fn list_domains(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<AssetListQuery>,
) -> Result<HttpResponse, ApiError> {
    list_kind(&st, &caller, AssetKind::Domain, &q, None).await
}

/// Adds a custom domain; the answer says which TXT record proves it is yours.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/domains", tag = "domains",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateDomainBody,
    responses(
        (status = 201, description = "Added, unverified", body = AssetResponse),
        (status = 403, description = "Not allowed or plan limit reached", content_type = "application/problem+json"),
        (status = 409, description = "Already added", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create_domain(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<CreateDomainBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewAsset {
        team: opt_team(body.team_id.as_deref())?,
        name: String::new(),
        parent: None,
        details: AssetDetails::Domain {
            hostname: body.hostname,
            verification_token: String::new(),
            verified_at: None,
        },
    };
    create_kind(&st, &caller, new, "manage_domains").await
}

/// One custom domain.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/domains/{asset_id}", tag = "domains",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Domain id")),
    responses(
        (status = 200, description = "The domain", body = AssetResponse),
        (status = 404, description = "No such domain", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn get_domain(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    get_kind(&st, &caller, AssetKind::Domain, &path.1).await
}

/// Removes a custom domain.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/domains/{asset_id}", tag = "domains",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Domain id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such domain", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn delete_domain(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    delete_kind(&st, &caller, AssetKind::Domain, &path.1).await
}

/// Checks the domain's TXT record now.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/domains/{asset_id}/verify", tag = "domains",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Domain id")),
    responses(
        (status = 200, description = "Verified", body = AssetResponse),
        (status = 409, description = "The record is not published (yet)", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn verify_domain(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = asset_id(AssetKind::Domain, &path.1)?;
    match assets::verify_domain(&*st.store, &*st.domains, &caller, id, st.clock.now()).await {
        Ok(a) => Ok(HttpResponse::Ok().json(AssetResponse::from(&a))),
        Err(e) => Err(audited(&st, &caller, "manage_domains", e).await),
    }
}

/// Moves a resource (with everything under it) to another team; needs admin rights on both.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/assets/{asset_id}/transfer", tag = "transfers",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Resource id")),
    request_body = TransferBody,
    responses(
        (status = 200, description = "Moved", body = TransferResult),
        (status = 403, description = "Not an admin of both teams", content_type = "application/problem+json"),
        (status = 409, description = "Archived target, moved concurrently, or a chat interface's quality gate: a later stage of the organization's pipeline takes it only from the stage before", content_type = "application/problem+json"),
        (status = 422, description = "The same team, not a top-level resource, a bad name or note", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn transfer(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ResourceId = path.1.parse().map_err(|_| ApiError::not_found("asset"))?;
    let to = team_id(&body.team_id)?;
    match assets::transfer(
        &*st.store,
        &caller,
        id,
        to,
        body.name.as_deref(),
        body.note.as_deref(),
        st.clock.now(),
    )
    .await
    {
        Ok((a, t)) => Ok(HttpResponse::Ok().json(TransferResult {
            asset: AssetResponse::from(&a),
            transfer: TransferResponse::from(&t),
        })),
        Err(e) => Err(audited(&st, &caller, "transfer_asset", e).await),
    }
}

/// Where a copy goes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyBody {
    /// The team that receives the copy; the source's team when omitted.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The copy's name; the source's name with " (copy)" when omitted.
    #[serde(default)]
    pub name: Option<String>,
}

/// Copies a chat interface or knowledge base with everything in use under it (documents'
/// bytes included; archived knowledge bases are left out) into a team: templates kept in one
/// team, copied into others.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/assets/{asset_id}/copy", tag = "transfers",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Resource id")),
    request_body = CopyBody,
    responses(
        (status = 201, description = "Copied: the copy of the resource asked for", body = AssetResponse),
        (status = 403, description = "Not allowed to create in the team, or a plan limit reached", content_type = "application/problem+json"),
        (status = 404, description = "No such resource or team", content_type = "application/problem+json"),
        (status = 409, description = "The team is archived, or a chat interface copied into a later stage of the organization's pipeline", content_type = "application/problem+json"),
        (status = 422, description = "A document or domain, or a bad name", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn copy(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<CopyBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ResourceId = path.1.parse().map_err(|_| ApiError::not_found("asset"))?;
    let to = opt_team(body.team_id.as_deref())?;
    match assets::copy(
        &*st.store,
        &*st.blobs,
        &caller,
        id,
        to,
        body.name.as_deref(),
        st.clock.now(),
    )
    .await
    {
        Ok(copies) => match copies.first() {
            Some(top) => Ok(HttpResponse::Created().json(AssetResponse::from(top))),
            None => Err(ApiError::not_found("asset")),
        },
        Err(e) => Err(audited(&st, &caller, "copy_asset", e).await),
    }
}

/// A resource's transfer history, oldest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/assets/{asset_id}/transfers", tag = "transfers",
    params(("org_id" = String, Path, description = "Organization id"), ("asset_id" = String, Path, description = "Resource id")),
    responses((status = 200, description = "History", body = Vec<TransferResponse>)),
    security(("bearer" = [])))]
pub async fn transfers(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: ResourceId = path.1.parse().map_err(|_| ApiError::not_found("asset"))?;
    let h = assets::history(&*st.store, &caller, id).await;
    let h = or_audited(&st, &caller, "view_transfers", h).await?;
    Ok(HttpResponse::Ok().json(h.iter().map(TransferResponse::from).collect::<Vec<_>>()))
}

/// Analytics parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// Only this team.
    pub team_id: Option<String>,
    /// First day (YYYY-MM-DD, UTC); default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (YYYY-MM-DD, UTC); default today.
    pub to: Option<NaiveDate>,
}

/// Usage analytics.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsResponse {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Daily counts per team and resource.
    pub daily: Vec<UsageRow>,
    /// Totals per team and metric.
    pub teams: Vec<TeamTotal>,
    /// Totals per resource and metric.
    pub resources: Vec<ResourceTotal>,
    /// Documents and bytes stored per team.
    pub storage: Vec<StorageRow>,
}

/// One day's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRow {
    /// Day (YYYY-MM-DD).
    pub day: String,
    /// Team id.
    pub team_id: String,
    /// Resource id, when the usage was of one.
    pub resource_id: Option<String>,
    /// Metric.
    pub metric: String,
    /// Count.
    pub count: u64,
}

/// A team's total.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamTotal {
    /// Team id.
    pub team_id: String,
    /// Metric.
    pub metric: String,
    /// Total.
    pub count: u64,
}

/// A resource's total.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceTotal {
    /// Resource id.
    pub resource_id: String,
    /// Metric.
    pub metric: String,
    /// Total.
    pub count: u64,
}

/// Storage of one team.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageRow {
    /// Team id.
    pub team_id: String,
    /// Documents.
    pub documents: u64,
    /// Bytes.
    pub bytes: u64,
}

impl From<&Analytics> for AnalyticsResponse {
    fn from(a: &Analytics) -> Self {
        let mut resources: Vec<ResourceTotal> = Vec::new();
        for u in &a.usage {
            let Some(r) = u.asset else { continue };
            let id = r.to_string();
            match resources
                .iter_mut()
                .find(|t| t.resource_id == id && t.metric == u.metric)
            {
                Some(t) => t.count += u.count,
                None => resources.push(ResourceTotal {
                    resource_id: id,
                    metric: u.metric.clone(),
                    count: u.count,
                }),
            }
        }
        Self {
            from: a.from.to_string(),
            to: a.to.to_string(),
            daily: a
                .usage
                .iter()
                .map(|u| UsageRow {
                    day: u.day.to_string(),
                    team_id: u.team.to_string(),
                    resource_id: u.asset.map(|r| r.to_string()),
                    metric: u.metric.clone(),
                    count: u.count,
                })
                .collect(),
            teams: a
                .teams
                .iter()
                .map(|t| TeamTotal {
                    team_id: t.team.to_string(),
                    metric: t.metric.clone(),
                    count: t.count,
                })
                .collect(),
            resources,
            storage: a
                .storage
                .iter()
                .map(|s| StorageRow {
                    team_id: s.team.to_string(),
                    documents: s.documents,
                    bytes: s.bytes,
                })
                .collect(),
        }
    }
}

/// Usage analytics of the teams the caller sees; the viewing is audited.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/analytics", tag = "analytics",
    params(("org_id" = String, Path, description = "Organization id"), AnalyticsQuery),
    responses(
        (status = 200, description = "Analytics", body = AnalyticsResponse),
        (status = 404, description = "No such team", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn analytics(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let today = st.clock.now().date_naive();
    let to = q.to.unwrap_or(today);
    let from = q.from.unwrap_or(to - Duration::days(29));
    let team = opt_team(q.team_id.as_deref())?;
    match assets::analytics(&*st.store, &caller, team, from, to, st.clock.now()).await {
        Ok(a) => Ok(HttpResponse::Ok().json(AnalyticsResponse::from(&a))),
        Err(e) => Err(audited(&st, &caller, "view_analytics", e).await),
    }
}
