//! Webhook endpoints, test events, deliveries, attempts, resend and recovery.

use actix_web::{HttpResponse, web};
use rbac_core::EndpointId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use webhooks::{Acting, Delivery, DeliveryStatus, Endpoint, EndpointInput, WebhookStore};

use crate::auth::OrgCaller;
use crate::error::ApiError;
use crate::state::AppState;

fn acting(caller: &tenancy::Caller) -> Acting {
    Acting {
        actor: caller.actor(),
        context: caller.request.clone(),
    }
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// Destination URL (also taken as `webhook_url`, the guide's name for it).
    #[serde(alias = "webhook_url")]
    pub url: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Event types to send (dotted names); omit or empty for all.
    pub events: Option<Vec<String>>,
    /// Whether to deliver (default true).
    pub enabled: Option<bool>,
    /// A message template for a chat tool's incoming webhook (Slack, Microsoft Teams): each
    /// delivery is then `{"text": …}` with `{{user}}`, `{{name}}`, `{{event}}`, `{{timestamp}}`
    /// or any text field of the event's `data` filled in, for example
    /// `"🎉 New chat interface created by {{user}}: {{name}}"`. `null` removes it (the event
    /// document again); omitted leaves it.
    #[serde(default, deserialize_with = "some_value")]
    #[schema(value_type = Option<String>)]
    pub message: Option<Option<String>>,
}

/// A field that is present, `null` included, as `Some`.
fn some_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl From<EndpointBody> for EndpointInput {
    fn from(b: EndpointBody) -> Self {
        EndpointInput {
            url: b.url,
            description: b.description,
            events: b.events,
            enabled: b.enabled,
            message: b.message,
        }
    }
}

/// An endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointResponse {
    /// Endpoint id.
    pub id: String,
    /// URL.
    pub url: String,
    /// Description.
    pub description: String,
    /// Event filter (empty = all).
    pub events: Vec<String>,
    /// Enabled.
    pub enabled: bool,
    /// Why it was disabled automatically.
    pub disabled_reason: Option<String>,
    /// Failed deliveries in a row.
    pub consecutive_failures: u32,
    /// The message template, if deliveries are `{"text": …}` messages.
    pub message: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

impl From<&Endpoint> for EndpointResponse {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url.as_str().to_owned(),
            description: e.description.clone(),
            events: e.events.iter().map(|k| k.as_str().to_owned()).collect(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            consecutive_failures: e.consecutive_failures,
            message: e.message.clone(),
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

/// An endpoint with its signing secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointResponse,
    /// `whsec_…`: verify `X-Webhook-Signature` / `webhook-signature` with it. Not shown again.
    pub secret: String,
}

fn endpoint_id(s: &str) -> Result<EndpointId, ApiError> {
    s.parse()
        .map_err(|_| ApiError::not_found("webhook endpoint"))
}

/// Creates an endpoint; the signing secret is in the answer once.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = EndpointBody,
    responses(
        (status = 201, description = "Created", body = EndpointWithSecret),
        (status = 403, description = "Not allowed, not on the Enterprise plan, or the organization has the most endpoints it may have (`limit_reached`)", content_type = "application/problem+json"),
        (status = 422, description = "Bad URL or event type", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let (ep, secret) = webhooks::create(
        &*st.store,
        &st.cipher,
        &acting(&caller),
        caller.org.id,
        body.into_inner().into(),
        st.settings.webhooks.https_only,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(EndpointWithSecret {
        endpoint: EndpointResponse::from(&ep),
        secret: secret.to_whsec(),
    }))
}

/// Lists endpoints.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/webhooks", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), crate::routes::PageQuery),
    responses((status = 200, description = "Endpoints ordered by id", body = inline(crate::routes::Page<EndpointResponse>))), security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<crate::routes::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let after: Option<EndpointId> = q.cursor()?;
    let eps = st.store.list_endpoints(caller.org.id, after, limit).await?;
    let items: Vec<EndpointResponse> = eps.iter().map(EndpointResponse::from).collect();
    Ok(HttpResponse::Ok().json(crate::routes::Page::new(items, limit, |e| e.id.clone())))
}

/// Changes an endpoint (re-enabling resets its failure count).
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    request_body = EndpointBody,
    responses((status = 200, description = "Updated", body = EndpointResponse)), security(("bearer" = [])))]
pub async fn update(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let ep = webhooks::update(
        &*st.store,
        &acting(&caller),
        caller.org.id,
        endpoint_id(&path.1)?,
        body.into_inner().into(),
        st.settings.webhooks.https_only,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(EndpointResponse::from(&ep)))
}

/// Deletes an endpoint and its pending deliveries.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted")), security(("bearer" = [])))]
pub async fn delete(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    webhooks::delete(
        &*st.store,
        &acting(&caller),
        caller.org.id,
        endpoint_id(&path.1)?,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// How long the old secret stays valid.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// Hours during which deliveries carry both signatures (default 24, at most 168).
    pub grace_hours: Option<u32>,
}

/// The new secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretResponse {
    /// `whsec_…`, shown once.
    pub secret: String,
}

/// Rotates the signing secret; the previous one keeps signing during the grace period.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/rotate-secret", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    request_body = RotateBody,
    responses((status = 200, description = "Rotated", body = SecretResponse),
        (status = 409, description = "Rotated by another request meanwhile; nothing was changed", content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn rotate(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<RotateBody>,
) -> Result<HttpResponse, ApiError> {
    let hours = body.grace_hours.unwrap_or(24);
    if hours > 168 {
        return Err(ApiError::invalid_input("`grace_hours` is at most 168"));
    }
    let secret = webhooks::rotate(
        &*st.store,
        &st.cipher,
        &acting(&caller),
        caller.org.id,
        endpoint_id(&path.1)?,
        chrono::Duration::hours(i64::from(hours)),
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(SecretResponse {
        secret: secret.to_whsec(),
    }))
}

/// Sends a `webhook.test` event to this endpoint (an enabled one: a disabled endpoint is sent
/// nothing).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/test", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    responses((status = 202, description = "Queued"),
        (status = 409, description = "The endpoint is disabled (`endpoint_disabled`)", content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn test(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    webhooks::send_test(
        &*st.store,
        &acting(&caller),
        caller.org.id,
        endpoint_id(&path.1)?,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Delivery filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    /// Delivery id.
    pub id: String,
    /// Event id (the `X-Webhook-Id` of every attempt).
    pub event_id: String,
    /// Event type.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts in the current round.
    pub attempts: u32,
    /// Next attempt (RFC 3339), for pending ones.
    pub next_attempt_at: String,
    /// Queued at (RFC 3339).
    pub created_at: String,
}

impl From<&Delivery> for DeliveryResponse {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.clone(),
            event_id: d.event_id.to_string(),
            event: d.kind.as_str().to_owned(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.to_rfc3339(),
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

/// A page of deliveries with the endpoint's totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<DeliveryResponse>,
    /// Cursor for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Deliveries per status.
    #[schema(value_type = Object)]
    pub counts: serde_json::Value,
}

/// Lists an endpoint's deliveries with success and failure counts.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/deliveries", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id"), DeliveryQuery),
    responses((status = 200, description = "Deliveries", body = DeliveryPage)), security(("bearer" = [])))]
pub async fn deliveries(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    q: crate::extract::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let ep = endpoint_id(&path.1)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            DeliveryStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status `{s}`")))
        })
        .transpose()?;
    let limit = match q.limit.unwrap_or(50) {
        l @ 1..=200 => l,
        _ => return Err(ApiError::bad_request("`limit` must be between 1 and 200")),
    };
    let items = st
        .store
        .list_deliveries(caller.org.id, ep, status, q.cursor.as_deref(), limit)
        .await?;
    let counts = st.store.delivery_counts(caller.org.id, ep).await?;
    let counts = serde_json::Value::Object(
        counts
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), serde_json::json!(n)))
            .collect(),
    );
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|d| d.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(DeliveryPage {
        items: items.iter().map(DeliveryResponse::from).collect(),
        next_cursor,
        counts,
    }))
}

/// One attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    /// Number (keeps counting across resends).
    pub number: u32,
    /// When (RFC 3339).
    pub at: String,
    /// Response status.
    pub status: Option<u16>,
    /// Milliseconds to the response.
    pub duration_ms: u64,
    /// Transport error.
    pub error: Option<String>,
    /// First KiB of the response body.
    pub response_body: String,
}

/// Lists a delivery's attempts.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/attempts", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "Attempts in order", body = [AttemptResponse])), security(("bearer" = [])))]
pub async fn attempts(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let list = st
        .store
        .list_attempts(caller.org.id, endpoint_id(&path.1)?, &path.2)
        .await?;
    Ok(HttpResponse::Ok().json(
        list.into_iter()
            .map(|a| AttemptResponse {
                number: a.number,
                at: a.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                status: a.status,
                duration_ms: a.duration_ms,
                error: a.error,
                response_body: a.response_body,
            })
            .collect::<Vec<_>>(),
    ))
}

/// How many deliveries were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequeueResponse {
    /// Count.
    pub requeued: u64,
}

async fn requeue(
    st: &AppState,
    caller: &tenancy::Caller,
    ep: EndpointId,
    one: Option<&str>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<u64, ApiError> {
    Ok(webhooks::requeue(
        &*st.store,
        &acting(caller),
        caller.org.id,
        ep,
        one,
        since,
        st.clock.now(),
    )
    .await?)
}

/// Sends one delivery again (with a fresh attempt budget).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued", body = RequeueResponse)), security(("bearer" = [])))]
pub async fn resend(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let n = requeue(&st, &caller, endpoint_id(&path.1)?, Some(&path.2), None).await?;
    Ok(HttpResponse::Accepted().json(RequeueResponse { requeued: n }))
}

/// From when to recover.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// RFC 3339 time; failed deliveries queued since then are sent again.
    pub since: String,
}

/// Queues again every failed delivery of the endpoint since a time.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/recover", tag = "webhooks",
    params(("org_id" = String, Path, description = "Organization id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    request_body = RecoverBody,
    responses((status = 202, description = "Queued", body = RequeueResponse)), security(("bearer" = [])))]
pub async fn recover(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<RecoverBody>,
) -> Result<HttpResponse, ApiError> {
    let since = chrono::DateTime::parse_from_rfc3339(&body.since)
        .map_err(|_| ApiError::bad_request("`since` must be an RFC 3339 time"))?
        .to_utc();
    let n = requeue(&st, &caller, endpoint_id(&path.1)?, None, Some(since)).await?;
    Ok(HttpResponse::Accepted().json(RequeueResponse { requeued: n }))
}

/// One event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeResponse {
    /// Dotted name.
    pub name: String,
    /// Meaning.
    pub description: String,
    /// Whether the product emits it today.
    pub emitted: bool,
    /// JSON Schema (2020-12) of the request body.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

/// Every webhook event type with the JSON Schema of its payload.
#[utoipa::path(get, path = "/api/v1/webhooks/event-types", tag = "webhooks",
    responses((status = 200, description = "The catalogue", body = [EventTypeResponse])), security(("bearer" = [])))]
pub async fn event_types(_auth: crate::auth::Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(
        webhooks::event_types()
            .into_iter()
            .map(|t| EventTypeResponse {
                name: t.name.to_owned(),
                description: t.description.to_owned(),
                emitted: t.emitted,
                schema: t.schema,
            })
            .collect::<Vec<_>>(),
    )
}
