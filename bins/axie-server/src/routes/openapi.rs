//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    api_keys, audit_log, auth, billing, credits, health, invitations, me, members, orgs, privacy,
    scim_tokens, security, teams, usage, webhooks, workspace,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Handler names repeat across modules (`list`, `create`): prefix each operation id with its tag.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let tag = op
                    .tags
                    .as_ref()
                    .and_then(|t| t.first())
                    .cloned()
                    .unwrap_or_default()
                    .replace('-', "_");
                if let Some(id) = &op.operation_id {
                    op.operation_id = Some(format!("{tag}_{id}"));
                }
            }
        }
    }
}

/// An RFC 9457 problem document, the body of every error answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the JSON built in error.rs")]
pub struct Problem {
    /// `urn:axie:problem:<code>`.
    #[schema(rename = "type")]
    r#type: String,
    /// The HTTP reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong, for people.
    detail: String,
    /// A stable machine-readable code.
    code: String,
}

/// Every operation documents the error answers any request can get, as problem documents:
/// malformed input, authentication and authorization, missing resources, conflicts, limits,
/// rate limits and server errors.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        const COMMON: [(&str, &str); 11] = [
            (
                "400",
                "Malformed request (bad JSON, query or path parameter)",
            ),
            ("401", "Not authenticated"),
            (
                "403",
                "Not allowed (permission, plan, IP allowlist, 2FA requirement)",
            ),
            ("404", "No such resource (or another organization's)"),
            ("405", "Method not allowed"),
            ("409", "Conflicts with the current state"),
            ("413", "Body too large"),
            (
                "415",
                "Unsupported media type (send `Content-Type: application/json`)",
            ),
            ("422", "Invalid input"),
            (
                "429",
                "Too many requests (login throttling, monthly API calls)",
            ),
            ("500", "Internal error (logged)"),
        ];
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in COMMON {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(description)
                                    .content(
                                        "application/problem+json",
                                        ContentBuilder::new()
                                            .schema(Some(Ref::from_schema_name("Problem")))
                                            .build(),
                                    )
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Axie Enterprise API", description = "Team management for AI chat interfaces: organizations, members, roles, API keys and a tamper-evident audit log. Errors are RFC 9457 problem documents."),
    paths(
        health::healthz, health::readyz, health::metrics, document,
        auth::login, auth::verify, auth::send_sms, auth::logout,
        auth::request_password_reset, auth::confirm_password_reset,
        security::status, security::begin_totp, security::activate_totp, security::disable, security::regenerate,
        security::set_phone, security::change_password, security::get, security::update, security::ip_check,
        security::end_member_sessions,
        security::reset_member_factor,
        me::me, me::update_profile, me::sessions, me::end_session,
        orgs::create, orgs::get, orgs::update, orgs::support_request, orgs::delete, orgs::update_access, orgs::explain,
        members::list, members::change_role, members::set_all_teams_role, members::remove, members::leave, members::propose_transfer, members::pending_transfer, members::withdraw_transfer, members::confirm_transfer,
        invitations::create, invitations::list, invitations::bulk_preview, invitations::bulk_confirm, invitations::resend, invitations::revoke, invitations::outbox,
        invitations::lookup, invitations::accept, invitations::signup,
        api_keys::list, api_keys::create, api_keys::revoke,
        scim_tokens::list, scim_tokens::create, scim_tokens::revoke,
        privacy::export, privacy::erase, privacy::erase_own, privacy::list, privacy::set,
        webhooks::create, webhooks::list, webhooks::update, webhooks::delete, webhooks::rotate, webhooks::test,
        webhooks::recover, webhooks::deliveries, webhooks::attempts, webhooks::resend, webhooks::event_types,
        audit_log::search, audit_log::export, audit_log::export_archive, audit_log::verify_archive, audit_log::verify, audit_log::checkpoint,
        orgs::change_plan,
        billing::plans, billing::get, billing::subscribe, billing::start_trial, billing::invoices,
        credits::list, credits::team, credits::purchase, credits::consume, credits::transfer, credits::reverse,
        credits::set_allocations, credits::configure, credits::entries, credits::chargeback,
        teams::get_pipeline, teams::set_pipeline, teams::remove_pipeline,
        teams::list, teams::create, teams::get, teams::update, teams::delete, teams::members, teams::set_member, teams::remove_member,
        workspace::list_chat_interfaces, workspace::create_chat_interface, workspace::get_chat_interface, workspace::update_chat_interface,
        workspace::delete_chat_interface, workspace::use_chat_interface,
        workspace::list_knowledge_bases, workspace::create_knowledge_base, workspace::get_knowledge_base, workspace::update_knowledge_base,
        workspace::delete_knowledge_base, workspace::list_documents, workspace::upload_document,
        workspace::get_document, workspace::delete_document, workspace::document_content,
        workspace::list_domains, workspace::create_domain, workspace::get_domain, workspace::delete_domain, workspace::verify_domain,
        workspace::transfer, workspace::copy, workspace::transfers, workspace::analytics, usage::usage, usage::uptime,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth, &UniqueOperationIds, &ProblemResponses),
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// Serves the OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
