//! The policy of `docs/permissions.md` as a schema-less cedar-policy 4.x policy set.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use rbac_core::{Audience, OrgRole, Permission, TeamRole};

use crate::fixture::Fixture;

/// The policy set. Deny is the default; `forbid` encodes the guards that beat every grant.
///
/// Action groups are `Action` entities ([`ACTION_GROUPS`]), so `action in
/// Action::"member"` is one ancestor lookup rather than a set built per request.
///
/// Entities: `Org` (`plan_*` and the raw stored `users_*` settings, true for
/// "Admins + Users"), `User` (`org`, `role`; parents are `TeamGroup`s),
/// `Team` (`org`, `admins`, `members`, `viewers` groups), `Resource` (`org`,
/// optional `team`, optional `creator`). Context: `{ api_key: Bool }`.
pub const POLICIES: &str = r#"
// 1. Nothing crosses organizations.
@id("cross_tenant")
forbid (principal, action, resource) unless { principal.org == resource.org };

// 3. API keys never perform interactive-only actions.
@id("interactive_only")
forbid (principal, action in Action::"interactive_only", resource) when { context.api_key };

// 4. Plan gates, for every role.
@id("plan_audit_logs")
forbid (principal, action == Action::"view_audit_log", resource)
unless { principal.org.plan_audit_logs };
@id("plan_advanced_rbac")
forbid (principal, action == Action::"update_feature_access", resource)
unless { principal.org.plan_advanced_rbac };
@id("plan_webhooks")
forbid (principal, action == Action::"manage_webhooks", resource)
unless { principal.org.plan_webhooks };

// 5. The Owner may do everything else.
@id("owner")
permit (principal, action, resource) when { principal.role == "owner" };

// 6. Admins may do everything but the four Owner-only actions.
@id("admin")
permit (principal, action, resource) when { principal.role == "admin" };
@id("owner_only")
forbid (principal, action in Action::"owner_only", resource)
unless { principal.role == "owner" };

// 7. Organization Users, organization-level permissions.
@id("user_org")
permit (principal, action in Action::"user_org", resource)
when { principal.role == "user" };
// Without advanced_rbac the defaults apply: view_audit_logs and export_data are Admins only.
@id("user_view_audit_log")
permit (principal, action == Action::"view_audit_log", resource)
when { principal.role == "user" && principal.org.plan_advanced_rbac && principal.org.users_view_audit_logs };
@id("user_export_data")
permit (principal, action == Action::"export_data", resource)
when { principal.role == "user" && principal.org.plan_advanced_rbac && principal.org.users_export_data };

// 7. Organization Users, team-level permissions, through the effective team role:
// the least privileged listed role wins; without a team on the resource, Member.

// Viewer.
@id("viewer_read")
permit (principal, action in Action::"viewer_read", resource)
when {
    principal.role == "user" && resource has team && principal in resource.team.viewers
};
@id("viewer_own_api_key")
permit (principal, action == Action::"view_api_key", resource)
when {
    principal.role == "user" && resource has team && principal in resource.team.viewers
    && resource has creator && resource.creator == principal
};

// Member.
@id("member")
permit (principal, action in Action::"member", resource)
when {
    principal.role == "user"
    && (if resource has team
        then principal in resource.team.members && !(principal in resource.team.viewers)
        else true)
};
@id("member_own")
permit (principal, action in Action::"member_own", resource)
when {
    principal.role == "user"
    && (if resource has team
        then principal in resource.team.members && !(principal in resource.team.viewers)
        else true)
    && resource has creator && resource.creator == principal
};

// Team Admin.
@id("team_admin")
permit (principal, action in Action::"team_admin", resource)
when {
    principal.role == "user" && resource has team
    && principal in resource.team.admins
    && !(principal in resource.team.members) && !(principal in resource.team.viewers)
};

// Settings: Members and Team Admins, never Viewers.
// create_api_keys defaults to Admins + Users, manage_domains to Admins only.
@id("setting_create_api_key")
permit (principal, action == Action::"create_api_key", resource)
when {
    principal.role == "user"
    && (if resource has team
        then (principal in resource.team.members || principal in resource.team.admins)
             && !(principal in resource.team.viewers)
        else true)
    && (if principal.org.plan_advanced_rbac then principal.org.users_create_api_keys else true)
};
@id("setting_manage_domains")
permit (principal, action == Action::"manage_domains", resource)
when {
    principal.role == "user"
    && (if resource has team
        then (principal in resource.team.members || principal in resource.team.admins)
             && !(principal in resource.team.viewers)
        else true)
    && principal.org.plan_advanced_rbac && principal.org.users_manage_domains
};
"#;

/// The action groups the policies name, loaded as `Action` entities.
pub const ACTION_GROUPS: [(&str, &[&str]); 7] = [
    (
        "interactive_only",
        &[
            "manage_billing",
            "transfer_ownership",
            "delete_organization",
            "create_api_key",
            "invite_members",
            "change_roles",
            "update_security_policy",
            "update_feature_access",
        ],
    ),
    (
        "owner_only",
        &[
            "view_billing",
            "manage_billing",
            "transfer_ownership",
            "delete_organization",
        ],
    ),
    ("user_org", &["view_members", "view_settings"]),
    (
        "viewer_read",
        &[
            "view_chat_interface",
            "use_chat_interface",
            "view_knowledge_base",
            "view_analytics",
            "view_domains",
            "view_team",
        ],
    ),
    (
        "member",
        &[
            "view_chat_interface",
            "use_chat_interface",
            "create_chat_interface",
            "edit_chat_interface",
            "view_knowledge_base",
            "create_knowledge_base",
            "upload_document",
            "view_analytics",
            "view_domains",
            "view_team",
        ],
    ),
    (
        "member_own",
        &[
            "manage_knowledge_base",
            "delete_document",
            "view_api_key",
            "revoke_api_key",
        ],
    ),
    (
        "team_admin",
        &[
            "view_chat_interface",
            "use_chat_interface",
            "create_chat_interface",
            "edit_chat_interface",
            "view_knowledge_base",
            "create_knowledge_base",
            "manage_knowledge_base",
            "upload_document",
            "delete_document",
            "view_analytics",
            "view_api_key",
            "revoke_api_key",
            "view_domains",
            "view_team",
            "manage_team",
            "manage_team_members",
            "transfer_asset",
        ],
    ),
];

/// cedar-policy with the fixture loaded as entities and every request prebuilt.
pub struct CedarEngine {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
    /// One prebuilt request per fixture request, same order.
    pub requests: Vec<Request>,
}

fn uid(kind: &str, id: &str) -> EntityUid {
    // The type names below are constant and valid.
    #[allow(clippy::expect_used, reason = "constant type names")]
    let name = EntityTypeName::from_str(kind).expect("valid type name");
    EntityUid::from_type_name_and_id(name, EntityId::new(id))
}

fn entity_ref(kind: &str, id: &str) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(uid(kind, id))
}

fn team_group(team: &str, role: TeamRole) -> EntityUid {
    let suffix = match role {
        TeamRole::Admin => "admins",
        TeamRole::Member => "members",
        TeamRole::Viewer => "viewers",
    };
    uid("TeamGroup", &format!("{team}/{suffix}"))
}

impl CedarEngine {
    /// Loads the policy set and the fixture's entities, and prebuilds the requests.
    ///
    /// # Panics
    /// If the policy set does not parse or an entity is malformed.
    #[must_use]
    pub fn new(fx: &Fixture) -> Self {
        let policies = PolicySet::from_str(POLICIES).unwrap_or_else(|e| panic!("policies: {e:?}"));
        let mut entities = Vec::new();

        for p in Permission::ALL {
            let parents = ACTION_GROUPS
                .iter()
                .filter(|(_, members)| members.contains(&p.as_str()))
                .map(|(group, _)| uid("Action", group))
                .collect();
            entities.push(Entity::new_no_attrs(uid("Action", p.as_str()), parents));
        }
        for (group, _) in ACTION_GROUPS {
            entities.push(Entity::new_no_attrs(uid("Action", group), HashSet::new()));
        }

        for t in &fx.tenants {
            let users = |a| a == Audience::AdminsAndUsers;
            let attrs = HashMap::from([
                (
                    "plan_audit_logs".into(),
                    RestrictedExpression::new_bool(t.ctx.plan.audit_logs),
                ),
                (
                    "plan_advanced_rbac".into(),
                    RestrictedExpression::new_bool(t.ctx.plan.advanced_rbac),
                ),
                (
                    "plan_webhooks".into(),
                    RestrictedExpression::new_bool(t.ctx.plan.webhooks),
                ),
                (
                    "users_create_api_keys".into(),
                    RestrictedExpression::new_bool(users(t.ctx.access.create_api_keys)),
                ),
                (
                    "users_manage_domains".into(),
                    RestrictedExpression::new_bool(users(t.ctx.access.manage_domains)),
                ),
                (
                    "users_view_audit_logs".into(),
                    RestrictedExpression::new_bool(users(t.ctx.access.view_audit_logs)),
                ),
                (
                    "users_export_data".into(),
                    RestrictedExpression::new_bool(users(t.ctx.access.export_data)),
                ),
            ]);
            entities.push(entity(uid("Org", &t.key), attrs, HashSet::new()));
        }

        for team in &fx.teams {
            let org = &fx.tenants[team.tenant].key;
            let mut attrs = HashMap::from([("org".into(), entity_ref("Org", org))]);
            for (name, role) in [
                ("admins", TeamRole::Admin),
                ("members", TeamRole::Member),
                ("viewers", TeamRole::Viewer),
            ] {
                let group = team_group(&team.key, role);
                attrs.insert(
                    name.into(),
                    RestrictedExpression::new_entity_uid(group.clone()),
                );
                entities.push(Entity::new_no_attrs(group, HashSet::new()));
            }
            entities.push(entity(uid("Team", &team.key), attrs, HashSet::new()));
        }

        for u in &fx.users {
            let role = match u.role {
                OrgRole::Owner => "owner",
                OrgRole::Admin => "admin",
                OrgRole::User => "user",
            };
            let attrs = HashMap::from([
                ("org".into(), entity_ref("Org", &fx.tenants[u.tenant].key)),
                ("role".into(), RestrictedExpression::new_string(role.into())),
            ]);
            let parents = u
                .teams
                .iter()
                .map(|&(t, r)| team_group(&fx.teams[t].key, r))
                .collect();
            entities.push(entity(uid("User", &u.key), attrs, parents));
        }

        for r in &fx.targets {
            let mut attrs =
                HashMap::from([("org".into(), entity_ref("Org", &fx.tenants[r.tenant].key))]);
            if let Some(t) = r.team {
                attrs.insert("team".into(), entity_ref("Team", &fx.teams[t].key));
            }
            if let Some(c) = r.creator {
                attrs.insert("creator".into(), entity_ref("User", &fx.users[c].key));
            }
            entities.push(entity(uid("Resource", &r.key), attrs, HashSet::new()));
        }

        let entities =
            Entities::from_entities(entities, None).unwrap_or_else(|e| panic!("entities: {e:?}"));

        let actions: Vec<EntityUid> = Permission::ALL
            .iter()
            .map(|p| uid("Action", p.as_str()))
            .collect();
        let requests = fx
            .requests
            .iter()
            .map(|r| {
                let context = Context::from_pairs([(
                    "api_key".to_string(),
                    RestrictedExpression::new_bool(r.api_key),
                )])
                .unwrap_or_else(|e| panic!("context: {e:?}"));
                Request::new(
                    uid("User", &fx.users[r.user as usize].key),
                    actions[r.perm as usize].clone(),
                    uid("Resource", &fx.targets[r.target as usize].key),
                    context,
                    None,
                )
                .unwrap_or_else(|e| panic!("request: {e:?}"))
            })
            .collect();

        Self {
            authorizer: Authorizer::new(),
            policies,
            entities,
            requests,
        }
    }

    /// Decides the `i`-th fixture request.
    #[must_use]
    pub fn is_allowed(&self, i: usize) -> bool {
        self.decide(&self.requests[i])
    }

    /// Decides a prebuilt request.
    #[must_use]
    pub fn decide(&self, request: &Request) -> bool {
        let response = self
            .authorizer
            .is_authorized(request, &self.policies, &self.entities);
        response.decision() == Decision::Allow
    }

    /// Decides the `i`-th fixture request and counts evaluation errors
    /// (policies cedar skipped because evaluating them failed).
    #[must_use]
    pub fn check(&self, i: usize) -> (bool, usize) {
        let response =
            self.authorizer
                .is_authorized(&self.requests[i], &self.policies, &self.entities);
        (
            response.decision() == Decision::Allow,
            response.diagnostics().errors().count(),
        )
    }

    /// Evaluation errors of the `i`-th request.
    #[must_use]
    pub fn errors(&self, i: usize) -> Vec<String> {
        self.authorizer
            .is_authorized(&self.requests[i], &self.policies, &self.entities)
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect()
    }
}

fn entity(
    uid: EntityUid,
    attrs: HashMap<String, RestrictedExpression>,
    parents: HashSet<EntityUid>,
) -> Entity {
    Entity::new(uid, attrs, parents).unwrap_or_else(|e| panic!("entity: {e:?}"))
}
