//! An organization's settings and the permission explainer.

use actix_web::{HttpResponse, web};
use rbac_core::{Decision, Permission, Resource};
use serde::{Deserialize, Serialize};
use tenancy::orgs::{self, UpdateProfileRequest};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Authenticated, OrgCaller, audited};
use crate::error::ApiError;
use crate::state::AppState;

/// Organization settings as the caller may see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgResponse {
    /// Organization id ("enterpriseId").
    pub id: String,
    /// Name.
    pub name: String,
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// Company name.
    pub company_name: String,
    /// Contact email.
    pub contact_email: Option<String>,
    /// Billing address (empty unless the caller may see billing).
    pub billing_address: String,
    /// Tax id (empty unless the caller may see billing).
    pub tax_id: String,
    /// Feature-access settings.
    #[schema(value_type = Object)]
    pub feature_access: serde_json::Value,
    /// Since when the audit log is archived (the organization left the Enterprise plan; the
    /// Owner may export it at `/audit-archive/export`), RFC 3339.
    pub audit_archived_at: Option<String>,
}

fn response(caller: &tenancy::Caller, profile: &tenancy::CompanyProfile) -> OrgResponse {
    OrgResponse {
        id: caller.org.id.to_string(),
        name: caller.org.name.clone(),
        plan: caller.org.plan.as_str().to_owned(),
        company_name: profile.company_name.clone(),
        contact_email: profile.contact_email.as_ref().map(ToString::to_string),
        billing_address: profile.billing_address.clone(),
        tax_id: profile.tax_id.clone(),
        feature_access: serde_json::to_value(caller.org.access).unwrap_or_default(),
        audit_archived_at: caller.org.audit_archived_at.map(|t| t.to_rfc3339()),
    }
}

/// A new organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgBody {
    /// Its name (also the company name, until changed).
    pub name: String,
}

/// A new organization, as its Owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOrgResponse {
    /// Organization id ("enterpriseId").
    pub id: String,
    /// Name.
    pub name: String,
    /// `free`: upgrade with `PUT /api/v1/orgs/{org_id}/plan` or start a trial.
    pub plan: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// Creates an organization with the signed-in person as its Owner, on the Free plan (a session
/// is needed: API keys belong to one organization).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "organizations",
    request_body = CreateOrgBody,
    responses(
        (status = 201, description = "Created; the caller is its Owner", body = CreatedOrgResponse),
        (status = 403, description = "An API key", content_type = "application/problem+json"),
        (status = 409, description = "The account owns the most organizations it may create", content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<CreateOrgBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require_session(&st).await?;
    let org = orgs::create_for_user(
        &*st.store,
        auth.principal.user(),
        &auth.request,
        &body.name,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/orgs/{}", org.id),
        ))
        .json(CreatedOrgResponse {
            id: org.id.to_string(),
            name: org.name,
            plan: org.plan.as_str().to_owned(),
            created_at: org.created_at.to_rfc3339(),
        }))
}

/// Reads the organization's settings.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}", tag = "organizations",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "Settings", body = OrgResponse),
        (status = 404, description = "No such organization for the caller", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn get(OrgCaller(caller): OrgCaller) -> HttpResponse {
    HttpResponse::Ok().json(response(&caller, &orgs::visible_profile(&caller)))
}

/// A partial update of company information.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgBody {
    /// The organization's name, as mail, invitations and reports call it.
    pub name: Option<String>,
    /// Company name.
    pub company_name: Option<String>,
    /// Contact email; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub contact_email: Option<Option<String>>,
    /// Billing address (Owner only).
    pub billing_address: Option<String>,
    /// Tax id (Owner only).
    pub tax_id: Option<String>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Updates company information.
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}", tag = "organizations",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = UpdateOrgBody,
    responses(
        (status = 200, description = "Updated settings", body = OrgResponse),
        (status = 403, description = "Not allowed", content_type = "application/problem+json"),
        (status = 422, description = "Invalid value", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn update(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<UpdateOrgBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let renamed = body.name.as_deref().map(|n| n.trim().to_owned());
    let req = UpdateProfileRequest {
        name: body.name,
        company_name: body.company_name,
        contact_email: body.contact_email,
        billing_address: body.billing_address,
        tax_id: body.tax_id,
    };
    match orgs::update_profile(&*st.store, &caller, req, st.clock.now()).await {
        Ok(profile) => {
            let mut shown = response(&caller, &profile);
            if let Some(n) = renamed {
                shown.name = n;
            }
            Ok(HttpResponse::Ok().json(shown))
        }
        Err(e) => Err(audited(&st, &caller, "update_company_settings", e).await),
    }
}

/// The confirmation of an organization's deletion.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOrgBody {
    /// The organization's name, exactly as it is.
    pub confirm_name: String,
    /// The Owner's password.
    pub password: String,
}

redacted_debug!(DeleteOrgBody);

/// Deletes the organization for good (the Owner, signed in; not with an API key): its members,
/// teams, resources, API keys, invitations, SCIM tokens, webhooks, subscription, invoices,
/// credits, usage and consents, and its audit log (export it first). People's accounts stay.
/// The Owner and the Admins are told by mail.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/delete", tag = "organizations",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = DeleteOrgBody,
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Wrong password", content_type = "application/problem+json"),
        (status = 403, description = "Not the Owner, or an API key", content_type = "application/problem+json"),
        (status = 409, description = "Ownership moved meanwhile", content_type = "application/problem+json"),
        (status = 422, description = "The name does not match", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn delete(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<DeleteOrgBody>,
) -> Result<HttpResponse, ApiError> {
    let now = st.clock.now();
    match orgs::delete(
        &*st.store,
        &st.hasher,
        &caller,
        &body.confirm_name,
        &body.password,
        now,
    )
    .await
    {
        Ok(documents) => {
            // Committed: the deleted documents' bytes go now (a failure only orphans bytes).
            tenancy::assets::remove_document_blobs(&*st.blobs, &documents).await;
            // Its audit log went with it: the operator's log keeps the deletion.
            tracing::warn!(
                org = %caller.org.id, name = %caller.org.name, by = %caller.user.id,
                "organization deleted by its Owner"
            );
            Ok(HttpResponse::NoContent().finish())
        }
        Err(e) => Err(audited(&st, &caller, "delete_organization", e).await),
    }
}

/// What to explain.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// A permission name, for example `create_api_key`.
    pub permission: String,
    /// The team of the resource (omit for organization-level actions).
    pub team_id: Option<String>,
    /// Who created the resource (for the Limited permissions).
    pub creator_id: Option<String>,
}

/// The decision and its reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainResponse {
    /// Whether it is allowed.
    pub allowed: bool,
    /// The decision with its typed reason.
    #[schema(value_type = Object)]
    pub decision: Decision,
    /// A sentence for people.
    pub explanation: String,
}

/// May I do this, and if not, why not?
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/explain", tag = "organizations",
    params(("org_id" = String, Path, description = "Organization id"), ExplainQuery),
    responses(
        (status = 200, description = "The decision", body = ExplainResponse),
        (status = 400, description = "Unknown permission or id", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn explain(
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<ExplainQuery>,
) -> Result<HttpResponse, ApiError> {
    let perm = Permission::parse(&q.permission)
        .ok_or_else(|| ApiError::bad_request(format!("unknown permission `{}`", q.permission)))?;
    let team = q
        .team_id
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|_| ApiError::bad_request("`team_id` is not a team id"))?;
    let creator = q
        .creator_id
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|_| ApiError::bad_request("`creator_id` is not a user id"))?;
    let decision = caller.decide(
        perm,
        &Resource {
            org: caller.org.id,
            team,
            creator,
        },
    );
    let explanation = match decision {
        Decision::Allow(g) => format!("allowed ({g:?})"),
        Decision::Deny(r) => format!("denied: {r}"),
    };
    Ok(HttpResponse::Ok().json(ExplainResponse {
        allowed: decision.is_allowed(),
        decision,
        explanation,
    }))
}

/// The feature-access settings ("who can …"): each `admins_only` or `admins_and_users`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureAccessBody {
    /// Who can create API keys.
    pub create_api_keys: String,
    /// Who can manage domains.
    pub manage_domains: String,
    /// Who can view audit logs.
    pub view_audit_logs: String,
    /// Who can export data.
    pub export_data: String,
}

fn audience(field: &str, v: &str) -> Result<rbac_core::Audience, ApiError> {
    match v {
        "admins_only" => Ok(rbac_core::Audience::AdminsOnly),
        "admins_and_users" => Ok(rbac_core::Audience::AdminsAndUsers),
        other => Err(ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("`{field}` must be `admins_only` or `admins_and_users`, not `{other}`"),
        )),
    }
}

/// Replaces the feature-access settings.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/feature-access", tag = "organizations",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = FeatureAccessBody,
    responses(
        (status = 200, description = "The new settings", body = FeatureAccessBody),
        (status = 403, description = "Not allowed, or not on the Enterprise plan", content_type = "application/problem+json"),
        (status = 409, description = "The settings changed meanwhile (another administrator's change committed first); reload and try again", content_type = "application/problem+json"),
        (status = 422, description = "Invalid value", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn update_access(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<FeatureAccessBody>,
) -> Result<HttpResponse, ApiError> {
    let access = rbac_core::FeatureAccess {
        create_api_keys: audience("create_api_keys", &body.create_api_keys)?,
        manage_domains: audience("manage_domains", &body.manage_domains)?,
        view_audit_logs: audience("view_audit_logs", &body.view_audit_logs)?,
        export_data: audience("export_data", &body.export_data)?,
    };
    orgs::update_access(&*st.store, &caller, access, st.clock.now()).await?;
    Ok(HttpResponse::Ok().json(body.into_inner()))
}

/// A plan change.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// `monthly` (default) or `annual`; see `PUT /billing/subscription`.
    pub cycle: Option<String>,
}

/// Changes the plan (the Owner). Leaving Enterprise archives the audit log (read-only, the Owner
/// may export it); returning to Enterprise makes it live again. Audited; `enterprise.updated`.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/plan", tag = "organizations",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = PlanBody,
    responses(
        (status = 200, description = "The organization on its new plan", body = OrgResponse),
        (status = 400, description = "Unknown plan or cycle", content_type = "application/problem+json"),
        (status = 402, description = "The payment provider refused the charge; nothing changed", content_type = "application/problem+json"),
        (status = 403, description = "Not the Owner", content_type = "application/problem+json"),
        (status = 409, description = "Already on that plan and cycle, or changed meanwhile", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn change_plan(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<PlanBody>,
) -> Result<HttpResponse, ApiError> {
    let (plan, cycle) = super::billing::parse_plan(&body.plan, body.cycle.as_deref())?;
    let changed = tenancy::billing::put_plan(
        &*st.store,
        st.payments(),
        &caller,
        plan,
        cycle,
        st.clock.now(),
    )
    .await;
    let org = match changed {
        Ok(true) => tenancy::OrgStore::get_org(&*st.store, caller.org.id)
            .await
            .map_err(ApiError::from)?,
        Ok(false) => caller.org.clone(),
        Err(e) => return Err(audited(&st, &caller, "change_plan", e).await),
    };
    let after = tenancy::Caller { org, ..caller };
    let profile = after.org.profile.clone();
    Ok(HttpResponse::Ok().json(response(&after, &profile)))
}

/// A request to the support desk.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportRequestBody {
    /// `critical` (production down), `high`, `medium` or `low`.
    pub priority: String,
    /// One line, 1 to 100 printable characters.
    pub subject: String,
    /// What happens: 1 to 10,000 characters.
    pub body: String,
}

/// A request as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportTicketResponse {
    /// Its reference (`SUP-…`), in both mails.
    pub reference: String,
    /// `critical`, `high`, `medium` or `low`.
    pub priority: String,
    /// When the first answer is due (RFC 3339): on Enterprise, the priority's response time
    /// (critical: 2 hours around the clock; high, medium, low: 4, 8, 24 business hours, Monday
    /// to Friday 9:00-17:00 CET/CEST, but for the desk's closed days, `support.closed_days`);
    /// null on the other plans.
    pub response_due_at: Option<String>,
}

/// Writes to the support desk (the guide's "Priority Support"; Owner and Admins): the desk
/// gets the request with the plan and priority in its subject (`[ENTERPRISE][CRITICAL] …`)
/// and the organization and author in its body, the author a copy; audited as
/// `support.requested`; about 20 an hour per organization.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/support-requests", tag = "organizations",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = SupportRequestBody,
    responses(
        (status = 201, description = "Sent", body = SupportTicketResponse),
        (status = 403, description = "Not the Owner or an Admin", content_type = "application/problem+json"),
        (status = 422, description = "An unknown priority, a bad subject or body", content_type = "application/problem+json"),
        (status = 429, description = "The organization sent 20 requests within the hour (`Retry-After`)", content_type = "application/problem+json"),
        (status = 503, description = "This server takes no support requests (`support.email` is not set)", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn support_request(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<SupportRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let priority = billing_limits::catalogue::Priority::parse(&body.priority).ok_or_else(|| {
        ApiError::invalid_input(format!(
            "unknown priority `{}`; use critical, high, medium or low",
            body.priority
        ))
    })?;
    if st.settings.support.email.is_empty() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "support_unavailable",
            "this server takes no support requests: its operator has not set `support.email`",
        ));
    }
    let request = tenancy::support::SupportRequest {
        priority,
        subject: body.subject,
        body: body.body,
    };
    match tenancy::support::request(
        &*st.store,
        &caller,
        &request,
        &st.settings.support.email,
        &st.settings.support.closed_days,
        st.clock.now(),
    )
    .await
    {
        Ok(t) => Ok(HttpResponse::Created().json(SupportTicketResponse {
            reference: t.reference,
            priority: t.priority.as_str().into(),
            response_due_at: t.response_due_at.map(|d| d.to_rfc3339()),
        })),
        Err(tenancy::TenancyError::Throttled(until)) => Err(ApiError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "support_throttled",
            format!(
                "this organization sent {} support requests within the hour; the next may go at {}",
                tenancy::support::REQUESTS_PER_HOUR,
                until.to_rfc3339()
            ),
        )
        .with_retry_after((until - st.clock.now()).num_seconds())),
        Err(e) => Err(audited(&st, &caller, "support_request", e).await),
    }
}
