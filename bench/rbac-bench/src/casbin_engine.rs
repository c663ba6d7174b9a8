//! The policy of `docs/permissions.md` as a casbin 2.x model: RBAC with domains plus ABAC attributes.

use casbin::{Adapter, CoreApi, DefaultModel, Enforcer, MemoryAdapter};
use rbac_core::{Audience, FeatureAccess, OrgRole, Permission, TeamRole};
use serde::Serialize;

use crate::fixture::{Fixture, TEAM_PERMISSIONS};

/// The casbin model.
///
/// * `r.sub` user id, `r.dom` the user's organization, `r.act` the permission;
/// * `r.res` the map `{org, team, creator}` (empty string when absent);
/// * `r.env` the map precomputed per organization and credential:
///   `api_key`, the plan features `audit_logs`, `advanced_rbac`, `webhooks`, and
///   the effective settings `create_api_keys`, `manage_domains`,
///   `view_audit_logs`, `export_data` (true for "Admins + Users").
///
/// A policy line `p = scope, role, act, cond, sess, gate` grants `act` to an
/// organization role (`scope` `org`, looked up with `g` in the organization's
/// domain) or to a team role (`scope` `team`, looked up with `g2` in the
/// resource's team's domain), under a condition (`-`, `creator`, or a setting
/// name read from `r.env`), a session requirement (`session` or `-`) and a plan
/// gate (`-` or a plan feature read from `r.env`). A User on a team-level
/// permission without a team acts as a team `member`.
pub const MODEL: &str = r#"
[request_definition]
r = sub, dom, act, res, env

[policy_definition]
p = scope, role, act, cond, sess, gate

[role_definition]
g = _, _, _
g2 = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.act == p.act && r.dom == r.res.org && (p.sess == "-" || !r.env.api_key) && (p.gate == "-" || r.env[p.gate]) && (p.cond == "-" || (p.cond == "creator" && r.res.creator == r.sub) || (p.cond != "creator" && r.env[p.cond])) && ((p.scope == "org" && g(r.sub, p.role, r.dom)) || (p.scope == "team" && r.res.team != "" && g2(r.sub, p.role, r.res.team)) || (p.scope == "team" && r.res.team == "" && p.role == "member" && g(r.sub, "user", r.dom)))
"#;

/// `r.res`: the resource's attributes.
#[derive(Debug, Clone, Serialize, Hash)]
pub struct CasbinResource {
    org: String,
    team: String,
    creator: String,
}

/// `r.env`: per organization and credential, precomputed in Rust.
#[derive(Debug, Clone, Copy, Serialize, Hash)]
pub struct CasbinEnv {
    api_key: bool,
    audit_logs: bool,
    advanced_rbac: bool,
    webhooks: bool,
    create_api_keys: bool,
    manage_domains: bool,
    view_audit_logs: bool,
    export_data: bool,
}

const fn interactive_only(p: Permission) -> bool {
    matches!(
        p,
        Permission::ManageBilling
            | Permission::TransferOwnership
            | Permission::DeleteOrganization
            | Permission::CreateApiKey
            | Permission::InviteMembers
            | Permission::ChangeRoles
            | Permission::UpdateSecurityPolicy
            | Permission::UpdateFeatureAccess
    )
}

const fn plan_gate(p: Permission) -> &'static str {
    match p {
        Permission::ViewAuditLog => "audit_logs",
        Permission::UpdateFeatureAccess => "advanced_rbac",
        Permission::ManageWebhooks => "webhooks",
        _ => "-",
    }
}

/// The `p` lines, written out from the matrix in `docs/permissions.md`.
#[must_use]
pub fn policy_lines() -> Vec<Vec<String>> {
    use Permission as P;
    let mut lines = Vec::new();
    let mut line = |scope: &str, role: &str, act: Permission, cond: &str| {
        let sess = if interactive_only(act) {
            "session"
        } else {
            "-"
        };
        lines.push(
            [scope, role, act.as_str(), cond, sess, plan_gate(act)]
                .map(str::to_owned)
                .to_vec(),
        );
    };
    // Owner: everything.
    for p in Permission::ALL {
        line("org", "owner", p, "-");
    }
    // Admin: everything but the Owner-only four.
    for p in Permission::ALL {
        if !matches!(
            p,
            P::ViewBilling | P::ManageBilling | P::TransferOwnership | P::DeleteOrganization
        ) {
            line("org", "admin", p, "-");
        }
    }
    // User, organization level.
    line("org", "user", P::ViewMembers, "-");
    line("org", "user", P::ViewSettings, "-");
    line("org", "user", P::ViewAuditLog, "view_audit_logs");
    line("org", "user", P::ExportData, "export_data");
    // Team Admin: every team-level permission; two follow their setting.
    for p in TEAM_PERMISSIONS {
        let cond = match p {
            P::CreateApiKey => "create_api_keys",
            P::ManageDomains => "manage_domains",
            _ => "-",
        };
        line("team", "admin", p, cond);
    }
    // Member.
    for p in [
        P::ViewChatInterface,
        P::UseChatInterface,
        P::CreateChatInterface,
        P::EditChatInterface,
        P::ViewKnowledgeBase,
        P::CreateKnowledgeBase,
        P::UploadDocument,
        P::ViewAnalytics,
        P::ViewDomains,
        P::ViewTeam,
    ] {
        line("team", "member", p, "-");
    }
    for p in [
        P::ManageKnowledgeBase,
        P::DeleteDocument,
        P::ViewApiKey,
        P::RevokeApiKey,
    ] {
        line("team", "member", p, "creator");
    }
    line("team", "member", P::CreateApiKey, "create_api_keys");
    line("team", "member", P::ManageDomains, "manage_domains");
    // Viewer: reads; only their own API keys.
    for p in [
        P::ViewChatInterface,
        P::UseChatInterface,
        P::ViewKnowledgeBase,
        P::ViewAnalytics,
        P::ViewDomains,
        P::ViewTeam,
    ] {
        line("team", "viewer", p, "-");
    }
    line("team", "viewer", P::ViewApiKey, "creator");
    lines
}

/// The settings that apply: the stored ones with `advanced_rbac`, else the
/// documented defaults (create_api_keys "Admins + Users", the rest "Admins only").
fn effective(access: FeatureAccess, advanced_rbac: bool) -> [bool; 4] {
    if advanced_rbac {
        let u = |a| a == Audience::AdminsAndUsers;
        [
            u(access.create_api_keys),
            u(access.manage_domains),
            u(access.view_audit_logs),
            u(access.export_data),
        ]
    } else {
        [true, false, false, false]
    }
}

/// casbin with the fixture loaded as `g`/`g2` lines and per-request arguments prebuilt.
pub struct CasbinEngine {
    enforcer: Enforcer,
    resources: Vec<CasbinResource>,
    /// Two per organization: session, then API key.
    envs: Vec<CasbinEnv>,
    /// The user keys and organization keys, by index.
    user_keys: Vec<String>,
    org_of_user: Vec<u32>,
    org_keys: Vec<String>,
}

/// One request's arguments, borrowed from the engine.
pub type CasbinArgs<'a> = (&'a str, &'a str, &'a str, &'a CasbinResource, &'a CasbinEnv);

impl CasbinEngine {
    /// Loads the model, the policy and the fixture's role assignments.
    ///
    /// # Panics
    /// If the model or a policy line is rejected.
    #[must_use]
    pub fn new(fx: &Fixture) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("tokio: {e}"));
        let enforcer = rt.block_on(async {
            let model = DefaultModel::from_str(MODEL)
                .await
                .unwrap_or_else(|e| panic!("model: {e}"));
            let mut adapter = MemoryAdapter::default();
            adapter
                .add_policies("p", "p", policy_lines())
                .await
                .unwrap_or_else(|e| panic!("p: {e}"));
            let mut g = Vec::with_capacity(fx.users.len());
            let mut g2 = Vec::new();
            for u in &fx.users {
                let role = match u.role {
                    OrgRole::Owner => "owner",
                    OrgRole::Admin => "admin",
                    OrgRole::User => "user",
                };
                g.push(vec![
                    u.key.clone(),
                    role.into(),
                    fx.tenants[u.tenant].key.clone(),
                ]);
                for &(t, r) in &u.teams {
                    let r = match r {
                        TeamRole::Admin => "admin",
                        TeamRole::Member => "member",
                        TeamRole::Viewer => "viewer",
                    };
                    g2.push(vec![u.key.clone(), r.into(), fx.teams[t].key.clone()]);
                }
            }
            adapter
                .add_policies("g", "g", g)
                .await
                .unwrap_or_else(|e| panic!("g: {e}"));
            adapter
                .add_policies("g", "g2", g2)
                .await
                .unwrap_or_else(|e| panic!("g2: {e}"));
            Enforcer::new(model, adapter)
                .await
                .unwrap_or_else(|e| panic!("enforcer: {e}"))
        });

        let resources = fx
            .targets
            .iter()
            .map(|t| CasbinResource {
                org: fx.tenants[t.tenant].key.clone(),
                team: t.team.map(|x| fx.teams[x].key.clone()).unwrap_or_default(),
                creator: t
                    .creator
                    .map(|u| fx.users[u].key.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let envs = fx
            .tenants
            .iter()
            .flat_map(|t| {
                let [
                    create_api_keys,
                    manage_domains,
                    view_audit_logs,
                    export_data,
                ] = effective(t.ctx.access, t.ctx.plan.advanced_rbac);
                [false, true].map(|api_key| CasbinEnv {
                    api_key,
                    audit_logs: t.ctx.plan.audit_logs,
                    advanced_rbac: t.ctx.plan.advanced_rbac,
                    webhooks: t.ctx.plan.webhooks,
                    create_api_keys,
                    manage_domains,
                    view_audit_logs,
                    export_data,
                })
            })
            .collect();
        Self {
            enforcer,
            resources,
            envs,
            user_keys: fx.users.iter().map(|u| u.key.clone()).collect(),
            org_of_user: fx
                .users
                .iter()
                .map(|u| u32::try_from(u.tenant).unwrap_or(u32::MAX))
                .collect(),
            org_keys: fx.tenants.iter().map(|t| t.key.clone()).collect(),
        }
    }

    /// The arguments of every fixture request, same order.
    #[must_use]
    pub fn args<'a>(&'a self, fx: &Fixture) -> Vec<CasbinArgs<'a>> {
        fx.requests
            .iter()
            .map(|r| {
                let org = self.org_of_user[r.user as usize] as usize;
                (
                    self.user_keys[r.user as usize].as_str(),
                    self.org_keys[org].as_str(),
                    r.perm.as_str(),
                    &self.resources[r.target as usize],
                    &self.envs[org * 2 + usize::from(r.api_key)],
                )
            })
            .collect()
    }

    /// Decides one request.
    ///
    /// # Panics
    /// If casbin reports an evaluation error.
    #[must_use]
    pub fn decide(&self, args: CasbinArgs<'_>) -> bool {
        self.enforcer
            .enforce(args)
            .unwrap_or_else(|e| panic!("casbin: {e}"))
    }
}
