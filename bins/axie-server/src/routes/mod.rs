//! Every route of the API, declared once with its access rule.
//!
//! [`ROUTES`] is the single source: the app registers exactly these routes, the
//! auth extractors refuse to run on a route missing from it, and a test checks
//! that the OpenAPI document covers the same set.

use actix_web::http::Method;
use actix_web::{HttpRequest, Resource, web};
use rbac_core::Permission;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// `Debug` that prints only the type's name, for request bodies holding passwords, codes or
/// tokens (they may reach a log through an extractor's error).
macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), " { … }"))
            }
        }
    )*};
}

pub mod api_keys;
pub mod audit_log;
pub mod auth;
pub mod billing;
pub mod credits;
pub mod health;
pub mod invitations;
pub mod me;
pub mod members;
pub mod openapi;
pub mod orgs;
pub mod privacy;
pub mod scim_tokens;
pub mod security;
pub mod teams;
pub mod usage;
pub mod webhooks;
pub mod workspace;

/// Who may call a route, checked before the handler body runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Any authenticated principal (session or API key), no organization, from an address one
    /// of the person's organizations' allowlists admits (`accounts::authenticate`; an API key's
    /// organization's, whose blocked countries apply too, `auth::authenticate`).
    Authenticated,
    /// [`Access::Authenticated`] from any address: signing out, and listing and ending one's
    /// own sessions, which must work from wherever the person is.
    AuthenticatedAnywhere,
    /// Any member of the path's organization; the domain crate checks the resource.
    Member,
    /// A member leaving the path's organization, or taking it over (reading and confirming a
    /// transfer of ownership addressed to them): [`Access::Member`], and also a member whose
    /// organization's plan no longer admits members (`accounts::authenticate_to_leave`), as on
    /// Free and Pro, where only the Owner acts: a transfer proposed there can be completed.
    Leaving,
    /// Members of the path's organization holding this organization-level permission.
    Org(Permission),
}

/// One declared route.
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern as actix matches it.
    pub path: &'static str,
    /// Access rule.
    pub access: Access,
    register: fn(Resource) -> Resource,
}

macro_rules! routes {
    ($($method:ident $path:literal => $handler:path, $access:expr;)*) => {
        /// Every route.
        pub static ROUTES: &[RouteSpec] = &[
            $(RouteSpec {
                method: stringify!($method),
                path: $path,
                access: $access,
                register: |r| r.route(web::method(Method::$method).to($handler)),
            },)*
        ];
    };
}

use Access::{Authenticated, AuthenticatedAnywhere, Leaving, Member, Org, Public};
use Permission as P;

routes! {
    GET "/healthz" => health::healthz, Public;
    GET "/readyz" => health::readyz, Public;
    GET "/metrics" => health::metrics, Public;
    GET "/api/v1/openapi.json" => openapi::document, Public;
    POST "/api/v1/auth/login" => auth::login, Public;
    POST "/api/v1/auth/login/verify" => auth::verify, Public;
    POST "/api/v1/auth/login/sms" => auth::send_sms, Public;
    POST "/api/v1/auth/password-reset" => auth::request_password_reset, Public;
    POST "/api/v1/auth/password-reset/confirm" => auth::confirm_password_reset, Public;
    POST "/api/v1/auth/logout" => auth::logout, AuthenticatedAnywhere;
    GET "/api/v1/me/mfa" => security::status, Authenticated;
    POST "/api/v1/me/mfa/totp" => security::begin_totp, Authenticated;
    POST "/api/v1/me/mfa/totp/activate" => security::activate_totp, Authenticated;
    POST "/api/v1/me/mfa/disable" => security::disable, Authenticated;
    POST "/api/v1/me/mfa/recovery-codes" => security::regenerate, Authenticated;
    PUT "/api/v1/me/mfa/phone" => security::set_phone, Authenticated;
    POST "/api/v1/me/password" => security::change_password, Authenticated;
    GET "/api/v1/me" => me::me, Authenticated;
    PATCH "/api/v1/me" => me::update_profile, Authenticated;
    GET "/api/v1/me/sessions" => me::sessions, AuthenticatedAnywhere;
    DELETE "/api/v1/me/sessions/{session_id}" => me::end_session, AuthenticatedAnywhere;
    POST "/api/v1/orgs" => orgs::create, Authenticated;
    GET "/api/v1/orgs/{org_id}" => orgs::get, Org(P::ViewSettings);
    PATCH "/api/v1/orgs/{org_id}" => orgs::update, Org(P::UpdateSettings);
    POST "/api/v1/orgs/{org_id}/support-requests" => orgs::support_request, Org(P::UpdateSettings);
    POST "/api/v1/orgs/{org_id}/delete" => orgs::delete, Org(P::DeleteOrganization);
    PUT "/api/v1/orgs/{org_id}/feature-access" => orgs::update_access, Org(P::UpdateFeatureAccess);
    GET "/api/v1/orgs/{org_id}/explain" => orgs::explain, Member;
    GET "/api/v1/orgs/{org_id}/security" => security::get, Org(P::ViewSecurityPolicy);
    PATCH "/api/v1/orgs/{org_id}/security" => security::update, Org(P::UpdateSecurityPolicy);
    POST "/api/v1/orgs/{org_id}/security/ip-check" => security::ip_check, Org(P::ViewSecurityPolicy);
    DELETE "/api/v1/orgs/{org_id}/members/{user_id}/sessions" => security::end_member_sessions, Org(P::RemoveMembers);
    POST "/api/v1/orgs/{org_id}/members/{user_id}/mfa/reset" => security::reset_member_factor, Org(P::RemoveMembers);
    GET "/api/v1/orgs/{org_id}/members" => members::list, Org(P::ViewMembers);
    PATCH "/api/v1/orgs/{org_id}/members/{user_id}" => members::change_role, Org(P::ChangeRoles);
    PUT "/api/v1/orgs/{org_id}/members/{user_id}/all-teams-role" => members::set_all_teams_role, Org(P::ChangeRoles);
    POST "/api/v1/orgs/{org_id}/members/{user_id}/remove" => members::remove, Org(P::RemoveMembers);
    POST "/api/v1/orgs/{org_id}/leave" => members::leave, Leaving;
    GET "/api/v1/orgs/{org_id}/members/{user_id}/personal-data" => privacy::export, Member;
    POST "/api/v1/orgs/{org_id}/members/{user_id}/erasure" => privacy::erase, Org(P::RemoveMembers);
    POST "/api/v1/orgs/{org_id}/erasure" => privacy::erase_own, Leaving;
    GET "/api/v1/orgs/{org_id}/consents" => privacy::list, Member;
    PUT "/api/v1/orgs/{org_id}/consents/{purpose}" => privacy::set, Member;
    POST "/api/v1/orgs/{org_id}/ownership-transfer" => members::propose_transfer, Org(P::TransferOwnership);
    GET "/api/v1/orgs/{org_id}/ownership-transfer" => members::pending_transfer, Leaving;
    DELETE "/api/v1/orgs/{org_id}/ownership-transfer" => members::withdraw_transfer, Org(P::TransferOwnership);
    POST "/api/v1/orgs/{org_id}/ownership-transfer/confirm" => members::confirm_transfer, Leaving;
    GET "/api/v1/orgs/{org_id}/invitations" => invitations::list, Org(P::InviteMembers);
    POST "/api/v1/orgs/{org_id}/invitations" => invitations::create, Org(P::InviteMembers);
    POST "/api/v1/orgs/{org_id}/invitations/bulk" => invitations::bulk_preview, Org(P::InviteMembers);
    POST "/api/v1/orgs/{org_id}/invitations/bulk/{preview_id}/confirm" => invitations::bulk_confirm, Org(P::InviteMembers);
    POST "/api/v1/orgs/{org_id}/invitations/{invitation_id}/resend" => invitations::resend, Org(P::InviteMembers);
    DELETE "/api/v1/orgs/{org_id}/invitations/{invitation_id}" => invitations::revoke, Org(P::InviteMembers);
    GET "/api/v1/orgs/{org_id}/outbox" => invitations::outbox, Org(P::InviteMembers);
    POST "/api/v1/invitations/lookup" => invitations::lookup, Public;
    POST "/api/v1/invitations/accept" => invitations::accept, Authenticated;
    POST "/api/v1/invitations/signup" => invitations::signup, Public;
    GET "/api/v1/orgs/{org_id}/api-keys" => api_keys::list, Member;
    POST "/api/v1/orgs/{org_id}/api-keys" => api_keys::create, Member;
    DELETE "/api/v1/orgs/{org_id}/api-keys/{key_id}" => api_keys::revoke, Member;
    GET "/api/v1/orgs/{org_id}/scim-tokens" => scim_tokens::list, Org(P::UpdateSettings);
    POST "/api/v1/orgs/{org_id}/scim-tokens" => scim_tokens::create, Org(P::UpdateSettings);
    DELETE "/api/v1/orgs/{org_id}/scim-tokens/{token_id}" => scim_tokens::revoke, Org(P::UpdateSettings);
    GET "/api/v1/orgs/{org_id}/pipeline" => teams::get_pipeline, Member;
    PUT "/api/v1/orgs/{org_id}/pipeline" => teams::set_pipeline, Org(P::CreateTeam);
    DELETE "/api/v1/orgs/{org_id}/pipeline" => teams::remove_pipeline, Org(P::CreateTeam);
    GET "/api/v1/orgs/{org_id}/teams" => teams::list, Member;
    POST "/api/v1/orgs/{org_id}/teams" => teams::create, Org(P::CreateTeam);
    GET "/api/v1/orgs/{org_id}/teams/{team_id}" => teams::get, Member;
    PATCH "/api/v1/orgs/{org_id}/teams/{team_id}" => teams::update, Member;
    DELETE "/api/v1/orgs/{org_id}/teams/{team_id}" => teams::delete, Member;
    GET "/api/v1/orgs/{org_id}/teams/{team_id}/members" => teams::members, Member;
    PUT "/api/v1/orgs/{org_id}/teams/{team_id}/members/{user_id}" => teams::set_member, Member;
    DELETE "/api/v1/orgs/{org_id}/teams/{team_id}/members/{user_id}" => teams::remove_member, Member;
    GET "/api/v1/orgs/{org_id}/chat-interfaces" => workspace::list_chat_interfaces, Member;
    POST "/api/v1/orgs/{org_id}/chat-interfaces" => workspace::create_chat_interface, Member;
    GET "/api/v1/orgs/{org_id}/chat-interfaces/{asset_id}" => workspace::get_chat_interface, Member;
    PATCH "/api/v1/orgs/{org_id}/chat-interfaces/{asset_id}" => workspace::update_chat_interface, Member;
    DELETE "/api/v1/orgs/{org_id}/chat-interfaces/{asset_id}" => workspace::delete_chat_interface, Member;
    POST "/api/v1/orgs/{org_id}/chat-interfaces/{asset_id}/use" => workspace::use_chat_interface, Member;
    GET "/api/v1/orgs/{org_id}/knowledge-bases" => workspace::list_knowledge_bases, Member;
    POST "/api/v1/orgs/{org_id}/knowledge-bases" => workspace::create_knowledge_base, Member;
    GET "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}" => workspace::get_knowledge_base, Member;
    PATCH "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}" => workspace::update_knowledge_base, Member;
    DELETE "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}" => workspace::delete_knowledge_base, Member;
    GET "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}/documents" => workspace::list_documents, Member;
    POST "/api/v1/orgs/{org_id}/knowledge-bases/{asset_id}/documents" => workspace::upload_document, Member;
    GET "/api/v1/orgs/{org_id}/documents/{asset_id}" => workspace::get_document, Member;
    DELETE "/api/v1/orgs/{org_id}/documents/{asset_id}" => workspace::delete_document, Member;
    GET "/api/v1/orgs/{org_id}/documents/{asset_id}/content" => workspace::document_content, Member;
    GET "/api/v1/orgs/{org_id}/domains" => workspace::list_domains, Member;
    POST "/api/v1/orgs/{org_id}/domains" => workspace::create_domain, Member;
    GET "/api/v1/orgs/{org_id}/domains/{asset_id}" => workspace::get_domain, Member;
    DELETE "/api/v1/orgs/{org_id}/domains/{asset_id}" => workspace::delete_domain, Member;
    POST "/api/v1/orgs/{org_id}/domains/{asset_id}/verify" => workspace::verify_domain, Member;
    POST "/api/v1/orgs/{org_id}/assets/{asset_id}/transfer" => workspace::transfer, Member;
    POST "/api/v1/orgs/{org_id}/assets/{asset_id}/copy" => workspace::copy, Member;
    GET "/api/v1/orgs/{org_id}/assets/{asset_id}/transfers" => workspace::transfers, Member;
    GET "/api/v1/orgs/{org_id}/analytics" => workspace::analytics, Member;
    GET "/api/v1/orgs/{org_id}/usage" => usage::usage, Org(P::ViewBilling);
    GET "/api/v1/orgs/{org_id}/uptime" => usage::uptime, Org(P::ViewSettings);
    GET "/api/v1/webhooks/event-types" => webhooks::event_types, Authenticated;
    GET "/api/v1/orgs/{org_id}/webhooks" => webhooks::list, Org(P::ManageWebhooks);
    POST "/api/v1/orgs/{org_id}/webhooks" => webhooks::create, Org(P::ManageWebhooks);
    PATCH "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}" => webhooks::update, Org(P::ManageWebhooks);
    DELETE "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}" => webhooks::delete, Org(P::ManageWebhooks);
    POST "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/rotate-secret" => webhooks::rotate, Org(P::ManageWebhooks);
    POST "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/test" => webhooks::test, Org(P::ManageWebhooks);
    POST "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/recover" => webhooks::recover, Org(P::ManageWebhooks);
    GET "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/deliveries" => webhooks::deliveries, Org(P::ManageWebhooks);
    GET "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/attempts" => webhooks::attempts, Org(P::ManageWebhooks);
    POST "/api/v1/orgs/{org_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend" => webhooks::resend, Org(P::ManageWebhooks);
    GET "/api/v1/orgs/{org_id}/audit-events" => audit_log::search, Org(P::ViewAuditLog);
    GET "/api/v1/orgs/{org_id}/audit-events/export" => audit_log::export, Org(P::ExportData);
    GET "/api/v1/orgs/{org_id}/audit-archive/export" => audit_log::export_archive, Member;
    POST "/api/v1/orgs/{org_id}/audit-archive/verify" => audit_log::verify_archive, Member;
    PUT "/api/v1/orgs/{org_id}/plan" => orgs::change_plan, Org(P::ManageBilling);
    GET "/api/v1/plans" => billing::plans, Authenticated;
    GET "/api/v1/orgs/{org_id}/billing" => billing::get, Org(P::ViewBilling);
    PUT "/api/v1/orgs/{org_id}/billing/subscription" => billing::subscribe, Org(P::ManageBilling);
    POST "/api/v1/orgs/{org_id}/billing/trial" => billing::start_trial, Org(P::ManageBilling);
    GET "/api/v1/orgs/{org_id}/billing/invoices" => billing::invoices, Org(P::ViewBilling);
    GET "/api/v1/orgs/{org_id}/credits" => credits::list, Org(P::ViewBilling);
    PUT "/api/v1/orgs/{org_id}/credits/allocations" => credits::set_allocations, Org(P::ManageBilling);
    POST "/api/v1/orgs/{org_id}/credits/purchases" => credits::purchase, Org(P::ManageBilling);
    POST "/api/v1/orgs/{org_id}/credits/transfers" => credits::transfer, Org(P::ManageBilling);
    POST "/api/v1/orgs/{org_id}/credits/operations/{operation_id}/reversal" => credits::reverse, Org(P::ManageBilling);
    PUT "/api/v1/orgs/{org_id}/credits/accounts/{account}" => credits::configure, Org(P::ManageBilling);
    GET "/api/v1/orgs/{org_id}/credits/entries" => credits::entries, Member;
    GET "/api/v1/orgs/{org_id}/credits/chargeback" => credits::chargeback, Org(P::ViewBilling);
    GET "/api/v1/orgs/{org_id}/teams/{team_id}/credits" => credits::team, Member;
    POST "/api/v1/orgs/{org_id}/teams/{team_id}/credits/consumptions" => credits::consume, Member;
    POST "/api/v1/orgs/{org_id}/audit-events/verify" => audit_log::verify, Org(P::ViewAuditLog);
    POST "/api/v1/orgs/{org_id}/audit-events/checkpoints" => audit_log::checkpoint, Org(P::ViewAuditLog);
}

/// The prefix of every organization route.
const ORG_PREFIX: &str = "/api/v1/orgs/{org_id}";

/// Registers every route, grouping methods of one path into one resource.
///
/// actix tries a request against the registered patterns in order, a regular expression for
/// each one with a parameter, so the organization routes (most of them) sit in one scope for
/// the prefix, with a nested scope per next segment (`/teams`, `/members`, …): a request is
/// matched against a handful of patterns instead of all of them. The patterns that match are
/// the declared ones (`route_access` and the `Allow` header look them up as such).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut heads: Vec<&str> = Vec::new();
    for rest in ROUTES.iter().filter_map(|r| under_org(r.path)) {
        let head = first_segment(rest);
        if !heads.contains(&head) {
            heads.push(head);
        }
    }
    let mut org = web::scope(ORG_PREFIX);
    for head in heads {
        let mut inner: Vec<&str> = Vec::new();
        for rest in ROUTES.iter().filter_map(|r| under_org(r.path)) {
            if first_segment(rest) == head && !inner.contains(&&rest[head.len()..]) {
                inner.push(&rest[head.len()..]);
            }
        }
        if head.is_empty() {
            org = org.service(resource(ORG_PREFIX, ""));
        } else {
            let prefix = format!("{ORG_PREFIX}{head}");
            let mut scope = web::scope(head);
            for sub in inner {
                scope = scope.service(resource(&prefix, sub));
            }
            org = org.service(scope);
        }
    }
    cfg.service(org);
    let mut seen: Vec<&str> = Vec::new();
    for spec in ROUTES.iter().filter(|r| under_org(r.path).is_none()) {
        if !seen.contains(&spec.path) {
            seen.push(spec.path);
            cfg.service(resource("", spec.path));
        }
    }
}

/// What follows the organization prefix in `path`, if it is an organization route.
fn under_org(path: &'static str) -> Option<&'static str> {
    path.strip_prefix(ORG_PREFIX)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `/teams` of `/teams/{team_id}/members`; empty for an empty path.
fn first_segment(path: &str) -> &str {
    // The second slash's index in `path` is one more than in `path[1..]`.
    match path.get(1..).and_then(|p| p.find('/')) {
        Some(i) => &path[..i + 1],
        None => path,
    }
}

/// The resource `sub` inside a scope at `prefix`, with every method declared for the whole path.
fn resource(prefix: &str, sub: &str) -> Resource {
    let full = format!("{prefix}{sub}");
    ROUTES
        .iter()
        .filter(|r| r.path == full)
        .fold(web::resource(sub.to_owned()), |res, r| (r.register)(res))
}

/// The methods declared for a path pattern, for the `Allow` header of a 405 (RFC 9110).
#[must_use]
pub fn allowed_methods(pattern: &str) -> String {
    ROUTES
        .iter()
        .filter(|r| r.path == pattern)
        .map(|r| r.method)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The declared access of the route that matched `req`.
///
/// # Errors
/// A 500 when the route is not declared (a programming error the route test catches).
pub fn route_access(req: &HttpRequest) -> Result<Access, ApiError> {
    let pattern = req.match_pattern().unwrap_or_default();
    ROUTES
        .iter()
        .find(|r| r.path == pattern && r.method == req.method().as_str())
        .map(|r| r.access)
        .ok_or_else(|| {
            ApiError::internal(std::io::Error::other(format!(
                "route `{pattern}` has no declared access"
            )))
        })
}

/// Keyset pagination parameters shared by every list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size.
    ///
    /// # Errors
    /// 400 when outside 1..=200.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit.unwrap_or(50) {
            l @ 1..=200 => Ok(l),
            _ => Err(ApiError::bad_request("`limit` must be between 1 and 200")),
        }
    }

    /// The cursor parsed as an id.
    ///
    /// # Errors
    /// 400 for a malformed cursor.
    pub fn cursor<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|_| ApiError::bad_request("`cursor` is not valid"))
            })
            .transpose()
    }
}

/// A page of results.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page; a full page gets a cursor made from its last item.
    pub fn new(items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Self {
        let next_cursor = if items.len() == limit as usize {
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use utoipa::OpenApi;

    /// The scopes `configure` builds match every declared route with its declared pattern.
    #[actix_web::test]
    async fn every_route_matches_as_declared() {
        use actix_web::test;
        let app = test::init_service(actix_web::App::new().configure(configure)).await;
        for r in ROUTES {
            let path = r
                .path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "p1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(r.method.as_bytes()).unwrap();
            let req = test::TestRequest::default()
                .method(method)
                .uri(&path)
                .to_request();
            let res = test::call_service(&app, req).await;
            assert_eq!(
                res.request().match_pattern().as_deref(),
                Some(r.path),
                "{} {path}",
                r.method
            );
            assert_ne!(
                res.status(),
                actix_web::http::StatusCode::METHOD_NOT_ALLOWED
            );
        }
        let unknown = test::TestRequest::get()
            .uri("/api/v1/orgs/p1/no-such-thing")
            .to_request();
        let res = test::call_service(&app, unknown).await;
        assert_eq!(res.status(), actix_web::http::StatusCode::NOT_FOUND);
        assert_eq!(first_segment("/teams/{team_id}/members"), "/teams");
        assert_eq!(first_segment("/teams"), "/teams");
        assert_eq!(first_segment(""), "");
    }

    #[test]
    fn every_route_is_declared_once_and_documented() {
        let declared: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_lowercase(), r.path.to_owned()))
            .collect();
        assert_eq!(declared.len(), ROUTES.len(), "a route is declared twice");
        let doc = openapi::ApiDoc::openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ] {
                if op.is_some() {
                    documented.insert((method.to_owned(), path.clone()));
                }
            }
        }
        assert_eq!(
            declared, documented,
            "ROUTES and the OpenAPI document disagree"
        );
    }

    #[test]
    fn only_signing_out_and_ones_own_sessions_are_open_from_any_address() {
        let anywhere: Vec<_> = ROUTES
            .iter()
            .filter(|r| r.access == Access::AuthenticatedAnywhere)
            .map(|r| (r.method, r.path))
            .collect();
        assert_eq!(
            anywhere,
            [
                ("POST", "/api/v1/auth/logout"),
                ("GET", "/api/v1/me/sessions"),
                ("DELETE", "/api/v1/me/sessions/{session_id}"),
            ]
        );
    }

    #[test]
    fn only_health_docs_login_password_reset_and_invitation_links_are_public() {
        let public: Vec<_> = ROUTES
            .iter()
            .filter(|r| r.access == Access::Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(
            public,
            [
                "/healthz",
                "/readyz",
                "/metrics",
                "/api/v1/openapi.json",
                "/api/v1/auth/login",
                "/api/v1/auth/login/verify",
                "/api/v1/auth/login/sms",
                "/api/v1/auth/password-reset",
                "/api/v1/auth/password-reset/confirm",
                "/api/v1/invitations/lookup",
                "/api/v1/invitations/signup"
            ]
        );
        for r in ROUTES {
            let org_scoped = r.path.contains("{org_id}");
            assert_eq!(
                org_scoped,
                matches!(r.access, Access::Member | Access::Leaving | Access::Org(_)),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
}
