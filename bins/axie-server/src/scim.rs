//! The SCIM 2.0 service provider at `/scim/v2/{org_id}` (RFC 7644): authentication by SCIM
//! bearer token, the IP allowlist, SCIM's own error documents and `application/scim+json`.
//! The resources, schemas, filters and PATCH live in `tenancy::scim`; this file only speaks HTTP.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::{Value, json};
use tenancy::scim::{self, Filter, GROUP_SCHEMA, Page, ScimError, USER_SCHEMA};
use tenancy::{Caller, TenancyError};

use crate::auth::{record_refusal, request_context, route_target};
use crate::state::AppState;

const CONTENT_TYPE: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM error document.
#[derive(Debug)]
pub struct ScimFailure {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
    /// The methods a 405's resource takes (its `Allow` header).
    allow: Option<&'static str>,
}

impl std::fmt::Display for ScimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

fn fail(
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: impl Into<String>,
) -> ScimFailure {
    ScimFailure {
        status,
        scim_type,
        detail: detail.into(),
        allow: None,
    }
}

impl ResponseError for ScimFailure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"scim\""));
        }
        if let Some(methods) = self.allow {
            res.insert_header((header::ALLOW, methods));
        }
        res.body(body.to_string())
    }
}

/// A SCIM request's body, at most `server.body_limit_bytes`, arriving within
/// `server.body_timeout_secs` (else 408). A larger one is answered 413 in
/// SCIM's error format (RFC 7644 §3.12), as every other SCIM error is, instead of the rest of
/// the API's problem document. Nothing is read until [`ScimBody::read`], which handlers call
/// once the token is checked: a request without a good one costs no body read and is answered
/// 401 whatever it sends.
struct ScimBody(futures::future::LocalBoxFuture<'static, Result<web::Bytes, ScimFailure>>);

impl ScimBody {
    /// Reads the body.
    async fn read(self) -> Result<web::Bytes, ScimFailure> {
        self.0.await
    }
}

impl actix_web::FromRequest for ScimBody {
    type Error = ScimFailure;
    type Future = std::future::Ready<Result<Self, ScimFailure>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        use futures::StreamExt as _;
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(1 << 20, |st| st.settings.server.body_limit_bytes);
        let too_large = move || {
            fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the request body is larger than {limit} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        let in_time = crate::extract::body_timeout(req);
        std::future::ready(Ok(ScimBody(Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let deadline = tokio::time::Instant::now() + in_time;
            let too_slow = || {
                fail(
                    StatusCode::REQUEST_TIMEOUT,
                    None,
                    format!(
                        "the request body did not arrive within {} s",
                        in_time.as_secs()
                    ),
                )
            };
            let mut body = web::BytesMut::new();
            while let Some(chunk) = tokio::time::timeout_at(deadline, payload.next())
                .await
                .map_err(|_| too_slow())?
            {
                let chunk = chunk.map_err(|e| {
                    fail(
                        StatusCode::BAD_REQUEST,
                        None,
                        format!("the request body could not be read: {e}"),
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        }))))
    }
}

impl From<TenancyError> for ScimFailure {
    fn from(e: TenancyError) -> Self {
        use StatusCode as S;
        match e {
            TenancyError::Unauthenticated | TenancyError::BadCredentials => fail(
                S::UNAUTHORIZED,
                None,
                "a valid SCIM bearer token is required",
            ),
            TenancyError::NotFound(what) | TenancyError::Hidden(what, _) => {
                fail(S::NOT_FOUND, None, format!("{what} not found"))
            }
            TenancyError::Forbidden(reason) => fail(S::FORBIDDEN, None, reason.to_string()),
            // RFC 7644 §3.12 defines `scimType` for 400 answers only.
            TenancyError::RoleRule(r) => fail(S::FORBIDDEN, None, r.to_string()),
            // A state conflict (the organization's ownership changed under a removal) or a
            // concurrent write (a version race): 409, but not `uniqueness`, which RFC 7644 keeps
            // for a duplicate value; the SCIM service turns its uniqueness conflicts into
            // `ScimError::Uniqueness` itself.
            TenancyError::Conflict(m) | TenancyError::Changed(m) | TenancyError::Archived(m) => {
                fail(S::CONFLICT, None, m)
            }
            TenancyError::Invalid(m) => fail(S::BAD_REQUEST, Some("invalidValue"), m),
            TenancyError::Password(p) => fail(S::BAD_REQUEST, Some("invalidValue"), p.to_string()),
            e @ (TenancyError::LimitReached { .. } | TenancyError::Deactivated) => {
                fail(S::FORBIDDEN, None, e.to_string())
            }
            other => {
                tracing::error!(error = %other, "SCIM request failed");
                fail(
                    S::INTERNAL_SERVER_ERROR,
                    None,
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        match e {
            ScimError::Tenancy(t) => t.into(),
            ScimError::BadRequest { scim_type, detail } => {
                fail(StatusCode::BAD_REQUEST, Some(scim_type), detail)
            }
            ScimError::Protected { detail, .. } => {
                fail(StatusCode::BAD_REQUEST, Some("mutability"), detail)
            }
            ScimError::Uniqueness(m) => fail(StatusCode::CONFLICT, Some("uniqueness"), m),
            ScimError::PreconditionFailed(v) => fail(
                StatusCode::PRECONDITION_FAILED,
                None,
                format!("the resource changed; its version is {v}"),
            ),
        }
    }
}

type Reply = Result<HttpResponse, ScimFailure>;

/// The SCIM scope, registered before the API's fallback.
pub fn scope() -> actix_web::Scope {
    // Discovery documents are read-only: other methods answer 405.
    web::scope("/scim/v2/{org_id}")
        .service(
            web::resource("/ServiceProviderConfig")
                .route(web::get().to(service_provider_config))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/ResourceTypes")
                .route(web::get().to(resource_types))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/ResourceTypes/{id}")
                .route(web::get().to(resource_type))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/Schemas")
                .route(web::get().to(schemas))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/Schemas/{id}")
                .route(web::get().to(schema_by_id))
                .default_service(web::to(|| not_allowed("GET"))),
        )
        .service(
            web::resource("/Users")
                .route(web::get().to(list_users))
                .route(web::post().to(create_user))
                .default_service(web::to(|| not_allowed("GET, POST"))),
        )
        .service(
            web::resource("/Users/.search")
                .route(web::post().to(search_users))
                .default_service(web::to(|| not_allowed("POST"))),
        )
        .service(
            web::resource("/Users/{id}")
                .route(web::get().to(get_user))
                .route(web::put().to(replace_user))
                .route(web::patch().to(patch_user))
                .route(web::delete().to(delete_user))
                .default_service(web::to(|| not_allowed("GET, PUT, PATCH, DELETE"))),
        )
        .service(
            web::resource("/Groups")
                .route(web::get().to(list_groups))
                .route(web::post().to(create_group))
                .default_service(web::to(|| not_allowed("GET, POST"))),
        )
        .service(
            web::resource("/Groups/.search")
                .route(web::post().to(search_groups))
                .default_service(web::to(|| not_allowed("POST"))),
        )
        .service(
            web::resource("/Groups/{id}")
                .route(web::get().to(get_group))
                .route(web::put().to(replace_group))
                .route(web::patch().to(patch_group))
                .route(web::delete().to(delete_group))
                .default_service(web::to(|| not_allowed("GET, PUT, PATCH, DELETE"))),
        )
        .service(
            web::resource("/.search")
                .route(web::post().to(search_all))
                .default_service(web::to(|| not_allowed("POST"))),
        )
        .default_service(web::to(scim_not_found))
}

/// A method the resource does not take: a SCIM error document naming those it takes.
async fn not_allowed(methods: &'static str) -> Reply {
    Err(ScimFailure {
        allow: Some(methods),
        ..fail(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("this resource takes {methods}"),
        )
    })
}

async fn scim_not_found() -> Reply {
    Err(fail(StatusCode::NOT_FOUND, None, "no such SCIM endpoint"))
}

fn org_id(req: &HttpRequest) -> Result<rbac_core::OrgId, ScimFailure> {
    req.match_info()
        .get("org_id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, None, "organization not found"))
}

fn base(st: &AppState, org: rbac_core::OrgId) -> String {
    format!(
        "{}/scim/v2/{org}",
        st.settings.server.public_url.trim_end_matches('/')
    )
}

/// The caller behind the bearer token, checked against the organization's IP allowlist, its
/// blocked countries and its required 2FA.
async fn caller(req: &HttpRequest, st: &AppState) -> Result<(Caller, String), ScimFailure> {
    let org = org_id(req)?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or_else(|| {
            fail(
                StatusCode::UNAUTHORIZED,
                None,
                "a SCIM bearer token is required",
            )
        })?;
    let ctx = request_context(req, st);
    let c = scim::authenticate(&*st.store, org, token, ctx, st.clock.now())
        .await
        .inspect_err(|e| {
            // A valid token of an organization whose plan lost SCIM: counted, but there is no
            // caller to record it for.
            if let TenancyError::Forbidden(r) = e {
                crate::prom::denial(r.code());
            }
        })?;
    if let Err(refusal) = crate::auth::admit_address(st, &c) {
        record_refusal(st, &c, route_target(req), refusal.code().to_owned())
            .await
            .map_err(|e| ScimFailure::from(TenancyError::from(e)))?;
        return Err(fail(StatusCode::FORBIDDEN, None, refusal.to_string()));
    }
    // The token acts for its creator, so it is held to the 2FA the organization requires of
    // them: once their grace period is over without 2FA, it stops working as their sessions and
    // API keys do.
    if c.org.security.mfa.required {
        let enrolled = tenancy::mfa::enrolled(&*st.store, c.user.id).await?;
        if matches!(
            tenancy::mfa::requirement(&c.org, c.member_since, enrolled, st.clock.now()),
            security_policy::MfaRequirement::EnrolmentRequired
        ) {
            record_refusal(
                st,
                &c,
                route_target(req),
                "mfa_enrollment_required".to_owned(),
            )
            .await
            .map_err(|e| ScimFailure::from(TenancyError::from(e)))?;
            return Err(fail(
                StatusCode::FORBIDDEN,
                None,
                format!(
                    "{} requires two-factor authentication, which the token's creator has not set \
                     up, and the grace period is over",
                    c.org.name
                ),
            ));
        }
    }
    Ok((c, base(st, org)))
}

/// Passes a SCIM operation's outcome through, first writing an `access.denied` record when the
/// operation was refused (removing or deactivating the Owner, a sign-in that is not the
/// organization's to change, a permission the token's creator lacks), so SCIM refusals are
/// audited like the API's.
async fn checked<T>(
    st: &AppState,
    c: &Caller,
    req: &HttpRequest,
    outcome: Result<T, impl Into<ScimError>>,
) -> Result<T, ScimFailure> {
    match outcome.map_err(Into::into) {
        Err(ScimError::Tenancy(e)) => match e.refusal_reason() {
            Some(reason) => match record_refusal(st, c, route_target(req), reason.to_owned()).await
            {
                Ok(()) => Err(e.into()),
                Err(store) => Err(TenancyError::from(store).into()),
            },
            None => Err(e.into()),
        },
        Err(e @ ScimError::Protected { reason, .. }) => {
            match record_refusal(st, c, route_target(req), reason.to_owned()).await {
                Ok(()) => Err(e.into()),
                Err(store) => Err(TenancyError::from(store).into()),
            }
        }
        other => other.map_err(Into::into),
    }
}

fn json_body(body: &[u8]) -> Result<Value, ScimFailure> {
    let v = serde_json::from_slice(body).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("the body is not JSON: {e}"),
        )
    })?;
    // No database keeps text with a NUL (`crate::extract`).
    if crate::extract::holds_nul(&v) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            "the body holds a NUL character (U+0000), which no text may contain".to_owned(),
        ));
    }
    Ok(v)
}

fn reply(status: StatusCode, body: &Value) -> HttpResponse {
    reply_for(status, body, body)
}

/// [`reply`] with `body`, its `ETag` and `Location` headers taken from `resource` (whole, where
/// `body` may be projected without its `meta`).
fn reply_for(status: StatusCode, body: &Value, resource: &Value) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
    if let Some(v) = resource["meta"]["version"].as_str()
        && let Ok(h) = HeaderValue::from_str(v)
    {
        res.insert_header((header::ETAG, h));
    }
    if status == StatusCode::CREATED
        && let Some(l) = resource["meta"]["location"].as_str()
        && let Ok(h) = HeaderValue::from_str(l)
    {
        res.insert_header((header::LOCATION, h));
    }
    res.body(body.to_string())
}

fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

// ---- discovery -------------------------------------------------------------------------------

async fn service_provider_config(req: HttpRequest, st: web::Data<AppState>) -> Reply {
    let (_, base) = caller(&req, &st).await?;
    Ok(reply(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/axie/axie-enterprise/blob/main/docs/scim.md",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": scim::MAX_RESULTS},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A SCIM token created by the organization's Owner or an Admin (POST /api/v1/orgs/{org_id}/scim-tokens).",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
        }),
    ))
}

fn resource_type_doc(base: &str, name: &str) -> Value {
    let (endpoint, schema, description) = if name == "User" {
        ("/Users", USER_SCHEMA, "An organization member")
    } else {
        ("/Groups", GROUP_SCHEMA, "A team of the organization")
    };
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}")},
    })
}

async fn resource_types(req: HttpRequest, st: web::Data<AppState>) -> Reply {
    let (_, base) = caller(&req, &st).await?;
    let all = vec![
        resource_type_doc(&base, "User"),
        resource_type_doc(&base, "Group"),
    ];
    Ok(reply(
        StatusCode::OK,
        &scim::page(all, None, 1, scim::MAX_RESULTS).to_json(),
    ))
}

async fn resource_type(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (_, base) = caller(&req, &st).await?;
    match path.1.as_str() {
        n @ ("User" | "Group") => Ok(reply(StatusCode::OK, &resource_type_doc(&base, n))),
        _ => Err(fail(StatusCode::NOT_FOUND, None, "no such resource type")),
    }
}

async fn schemas(req: HttpRequest, st: web::Data<AppState>) -> Reply {
    let (_, base) = caller(&req, &st).await?;
    let all = vec![
        scim::schema::schema_resource(USER_SCHEMA, &base),
        scim::schema::schema_resource(GROUP_SCHEMA, &base),
    ];
    Ok(reply(
        StatusCode::OK,
        &scim::page(all, None, 1, scim::MAX_RESULTS).to_json(),
    ))
}

async fn schema_by_id(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (_, base) = caller(&req, &st).await?;
    let id = path.1.as_str();
    if id == USER_SCHEMA || id == GROUP_SCHEMA {
        Ok(reply(
            StatusCode::OK,
            &scim::schema::schema_resource(id, &base),
        ))
    } else {
        Err(fail(StatusCode::NOT_FOUND, None, "no such schema"))
    }
}

// ---- queries ---------------------------------------------------------------------------------

/// `filter`, `startIndex`, `count`, `attributes`, `excludedAttributes` from the query string or
/// a `SearchRequest` body.
struct Query {
    filter: Option<Filter>,
    start_index: usize,
    count: usize,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number(v: Option<&str>, name: &str, default: usize) -> Result<usize, ScimFailure> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) => Ok(usize::try_from(n.max(0)).unwrap_or(0)),
            Err(_) => Err(fail(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("`{name}` must be an integer"),
            )),
        },
    }
}

fn query_from_request(req: &HttpRequest) -> Result<Query, ScimFailure> {
    if crate::extract::query_holds_nul(req) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            "the query string holds a NUL character (U+0000), which no text may contain".to_owned(),
        ));
    }
    let pairs: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .map_err(|e| {
                fail(
                    StatusCode::BAD_REQUEST,
                    Some("invalidSyntax"),
                    e.to_string(),
                )
            })?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    Ok(Query {
        filter: get("filter")
            .map(Filter::parse)
            .transpose()
            .map_err(ScimError::from)?,
        start_index: number(get("startIndex"), "startIndex", 1)?,
        count: number(get("count"), "count", scim::DEFAULT_COUNT)?,
        attributes: get("attributes").map(split_list).unwrap_or_default(),
        excluded: get("excludedAttributes")
            .map(split_list)
            .unwrap_or_default(),
    })
}

fn query_from_body(body: &[u8]) -> Result<Query, ScimFailure> {
    let v = json_body(body)?;
    let list = |k: &str| -> Vec<String> {
        match scim::filter::get_ci(&v, k) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => split_list(s),
            _ => Vec::new(),
        }
    };
    let num = |k: &str, d: usize| match scim::filter::get_ci(&v, k) {
        Some(Value::Number(n)) => n
            .as_i64()
            .map_or(d, |n| usize::try_from(n.max(0)).unwrap_or(0)),
        _ => d,
    };
    Ok(Query {
        filter: scim::filter::get_ci(&v, "filter")
            .and_then(Value::as_str)
            .map(Filter::parse)
            .transpose()
            .map_err(ScimError::from)?,
        start_index: num("startIndex", 1),
        count: num("count", scim::DEFAULT_COUNT),
        attributes: list("attributes"),
        excluded: list("excludedAttributes"),
    })
}

fn list_reply(all: Vec<Value>, q: &Query) -> HttpResponse {
    let Page {
        total,
        start_index,
        resources,
    } = scim::page(all, q.filter.as_ref(), q.start_index, q.count);
    let page = Page {
        total,
        start_index,
        resources: resources
            .into_iter()
            .map(|r| scim::project(r, &q.attributes, &q.excluded))
            .collect(),
    };
    reply(StatusCode::OK, &page.to_json())
}

/// One resource, projected as the request's query asks. The query is read before anything is
/// done (a write that committed must not answer a malformed query with an error).
fn single(status: StatusCode, resource: Value, q: &Query) -> HttpResponse {
    let body = scim::project(resource.clone(), &q.attributes, &q.excluded);
    reply_for(status, &body, &resource)
}

// ---- Users -----------------------------------------------------------------------------------

async fn list_users(req: HttpRequest, st: web::Data<AppState>) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let q = query_from_request(&req)?;
    let all = checked(
        &st,
        &c,
        &req,
        scim::list_users_for(&*st.store, &c, &base, q.filter.as_ref()).await,
    )
    .await?;
    Ok(list_reply(all, &q))
}

async fn search_users(req: HttpRequest, st: web::Data<AppState>, body: ScimBody) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let body = body.read().await?;
    let q = query_from_body(&body)?;
    let all = checked(
        &st,
        &c,
        &req,
        scim::list_users_for(&*st.store, &c, &base, q.filter.as_ref()).await,
    )
    .await?;
    Ok(list_reply(all, &q))
}

async fn get_user(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let q = query_from_request(&req)?;
    let user = checked(
        &st,
        &c,
        &req,
        scim::get_user(&*st.store, &c, &base, &path.1).await,
    )
    .await?;
    Ok(single(StatusCode::OK, user, &q))
}

async fn create_user(req: HttpRequest, st: web::Data<AppState>, body: ScimBody) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let body = body.read().await?;
    let q = query_from_request(&req)?;
    let doc = json_body(&body)?;
    let user = checked(
        &st,
        &c,
        &req,
        scim::create_user(&*st.store, &c, &st.hasher, &base, &doc, st.clock.now()).await,
    )
    .await?;
    Ok(single(StatusCode::CREATED, user, &q))
}

/// How a PUT or PATCH changes a resource.
#[derive(Clone, Copy)]
enum Change {
    /// PUT: the document replaces the resource.
    Replace,
    /// PATCH: the document's operations apply to it.
    Patch,
}

async fn replace_user(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: ScimBody,
) -> Reply {
    change_user(req, st, path, body, Change::Replace).await
}

async fn patch_user(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: ScimBody,
) -> Reply {
    change_user(req, st, path, body, Change::Patch).await
}

async fn change_user(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: ScimBody,
    change: Change,
) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let body = body.read().await?;
    let q = query_from_request(&req)?;
    let doc = json_body(&body)?;
    let (store, id, version, now) = (&*st.store, &path.1, if_match(&req), st.clock.now());
    let version = version.as_deref();
    let outcome = match change {
        Change::Replace => {
            scim::replace_user(store, &c, &st.hasher, &base, id, &doc, version, now).await
        }
        Change::Patch => {
            scim::patch_user(store, &c, &st.hasher, &base, id, &doc, version, now).await
        }
    };
    let user = checked(&st, &c, &req, outcome).await?;
    Ok(single(StatusCode::OK, user, &q))
}

async fn delete_user(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (c, _) = caller(&req, &st).await?;
    checked(
        &st,
        &c,
        &req,
        scim::delete_user(&*st.store, &c, &path.1, st.clock.now()).await,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- Groups ----------------------------------------------------------------------------------

async fn list_groups(req: HttpRequest, st: web::Data<AppState>) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let q = query_from_request(&req)?;
    let all = checked(
        &st,
        &c,
        &req,
        scim::list_groups(&*st.store, &c, &base).await,
    )
    .await?;
    Ok(list_reply(all, &q))
}

async fn search_groups(req: HttpRequest, st: web::Data<AppState>, body: ScimBody) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let body = body.read().await?;
    let q = query_from_body(&body)?;
    let all = checked(
        &st,
        &c,
        &req,
        scim::list_groups(&*st.store, &c, &base).await,
    )
    .await?;
    Ok(list_reply(all, &q))
}

async fn search_all(req: HttpRequest, st: web::Data<AppState>, body: ScimBody) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let body = body.read().await?;
    let q = query_from_body(&body)?;
    let mut all = checked(&st, &c, &req, scim::list_users(&*st.store, &c, &base).await).await?;
    all.extend(
        checked(
            &st,
            &c,
            &req,
            scim::list_groups(&*st.store, &c, &base).await,
        )
        .await?,
    );
    Ok(list_reply(all, &q))
}

async fn get_group(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let q = query_from_request(&req)?;
    let group = checked(
        &st,
        &c,
        &req,
        scim::get_group(&*st.store, &c, &base, &path.1).await,
    )
    .await?;
    Ok(single(StatusCode::OK, group, &q))
}

async fn create_group(req: HttpRequest, st: web::Data<AppState>, body: ScimBody) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let body = body.read().await?;
    let q = query_from_request(&req)?;
    let doc = json_body(&body)?;
    let group = checked(
        &st,
        &c,
        &req,
        scim::create_group(&*st.store, &c, &base, &doc, st.clock.now()).await,
    )
    .await?;
    Ok(single(StatusCode::CREATED, group, &q))
}

async fn replace_group(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: ScimBody,
) -> Reply {
    change_group(req, st, path, body, Change::Replace).await
}

async fn patch_group(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: ScimBody,
) -> Reply {
    change_group(req, st, path, body, Change::Patch).await
}

async fn change_group(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: ScimBody,
    change: Change,
) -> Reply {
    let (c, base) = caller(&req, &st).await?;
    let body = body.read().await?;
    let q = query_from_request(&req)?;
    let doc = json_body(&body)?;
    let (store, id, version, now) = (&*st.store, &path.1, if_match(&req), st.clock.now());
    let version = version.as_deref();
    let outcome = match change {
        Change::Replace => scim::replace_group(store, &c, &base, id, &doc, version, now).await,
        Change::Patch => scim::patch_group(store, &c, &base, id, &doc, version, now).await,
    };
    let group = checked(&st, &c, &req, outcome).await?;
    Ok(single(StatusCode::OK, group, &q))
}

async fn delete_group(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (c, _) = caller(&req, &st).await?;
    checked(
        &st,
        &c,
        &req,
        scim::delete_group(&*st.store, &c, &path.1, st.clock.now()).await,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use tenancy::TenancyError;
    use tenancy::scim::ScimError;

    use super::ScimFailure;

    #[test]
    fn a_state_conflict_outside_the_scim_service_is_not_a_uniqueness_conflict() {
        let raced = ScimFailure::from(tenancy::members::ownership_changed());
        assert_eq!(raced.status, StatusCode::CONFLICT);
        assert_eq!(raced.scim_type, None);
        let duplicate = ScimFailure::from(ScimError::Uniqueness("userName is taken".into()));
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        assert_eq!(duplicate.scim_type, Some("uniqueness"));
        let wrapped = ScimFailure::from(ScimError::Tenancy(TenancyError::Conflict("x".into())));
        assert_eq!(wrapped.scim_type, None);
        // A version race in the store, passed through by the service's write paths.
        let changed = ScimFailure::from(ScimError::Tenancy(TenancyError::Changed("x".into())));
        assert_eq!(changed.status, StatusCode::CONFLICT);
        assert_eq!(changed.scim_type, None);
    }
}
