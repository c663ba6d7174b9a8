//! Invariants of `authorize` that must hold for every input, checked with proptest.
//!
//! Each property generates whole requests (subject, action, resource, settings, plan),
//! including subjects whose `teams` list the same team twice.

use proptest::prelude::*;
use proptest::sample::select;
use rbac_core::{
    Audience, Context, Credential, Decision, DenyReason, FeatureAccess, OrgId, OrgRole, Permission,
    PlanFeatures, Resource, Subject, TeamId, TeamRole, UserId,
};
use uuid::Uuid;

/// How many distinct teams the generated organization has.
const TEAMS: u128 = 4;

/// Billing and ownership: the Owner's alone under every setting and plan.
const OWNER_ONLY: [Permission; 4] = [
    Permission::ViewBilling,
    Permission::ManageBilling,
    Permission::TransferOwnership,
    Permission::DeleteOrganization,
];

/// Billing and enterprise settings: never a User's, whatever the feature-access settings say.
const NEVER_USERS: [Permission; 8] = [
    Permission::ViewBilling,
    Permission::ManageBilling,
    Permission::TransferOwnership,
    Permission::DeleteOrganization,
    Permission::UpdateSettings,
    Permission::UpdateSecurityPolicy,
    Permission::UpdateFeatureAccess,
    Permission::ManageWebhooks,
];

/// The only permissions a feature-access setting may move.
const SETTING_CONTROLLED: [Permission; 4] = [
    Permission::CreateApiKey,
    Permission::ManageDomains,
    Permission::ViewAuditLog,
    Permission::ExportData,
];

fn org() -> OrgId {
    OrgId::from_uuid(Uuid::from_u128(1))
}

fn foreign_org() -> OrgId {
    OrgId::from_uuid(Uuid::from_u128(2))
}

fn team(i: u128) -> TeamId {
    TeamId::from_uuid(Uuid::from_u128(10 + i))
}

fn me() -> UserId {
    UserId::from_uuid(Uuid::from_u128(100))
}

fn someone_else() -> UserId {
    UserId::from_uuid(Uuid::from_u128(101))
}

fn org_role() -> impl Strategy<Value = OrgRole> {
    select(OrgRole::ALL.to_vec())
}

fn team_role() -> impl Strategy<Value = TeamRole> {
    select(TeamRole::ALL.to_vec())
}

fn permission() -> impl Strategy<Value = Permission> {
    select(Permission::ALL.to_vec())
}

fn credential() -> impl Strategy<Value = Credential> {
    prop_oneof![
        Just(Credential::Session),
        Just(Credential::ApiKey),
        Just(Credential::Scim)
    ]
}

/// Team roles in this organization; the same team may appear more than once.
fn teams() -> impl Strategy<Value = Vec<(TeamId, TeamRole)>> {
    prop::collection::vec(((0..TEAMS).prop_map(team), team_role()), 0..6)
}

fn subject() -> impl Strategy<Value = Subject> {
    (
        org_role(),
        teams(),
        prop::option::of(team_role()),
        credential(),
    )
        .prop_map(|(role, teams, all_teams, credential)| Subject {
            user: me(),
            org: org(),
            role,
            teams,
            all_teams,
            credential,
        })
}

/// A resource of the subject's organization: organization-level, or in one of its teams,
/// created by nobody in particular, by the subject or by someone else.
fn own_resource() -> impl Strategy<Value = Resource> {
    let creator = prop_oneof![Just(None), Just(Some(me())), Just(Some(someone_else()))];
    (prop::option::of((0..TEAMS).prop_map(team)), creator).prop_map(|(team, creator)| Resource {
        org: org(),
        team,
        creator,
    })
}

fn foreign_resource() -> impl Strategy<Value = Resource> {
    own_resource().prop_map(|r| Resource {
        org: foreign_org(),
        ..r
    })
}

fn audience() -> impl Strategy<Value = Audience> {
    prop_oneof![Just(Audience::AdminsOnly), Just(Audience::AdminsAndUsers)]
}

fn access() -> impl Strategy<Value = FeatureAccess> {
    (audience(), audience(), audience(), audience()).prop_map(|(a, b, c, d)| FeatureAccess {
        create_api_keys: a,
        manage_domains: b,
        view_audit_logs: c,
        export_data: d,
    })
}

fn plan() -> impl Strategy<Value = PlanFeatures> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(audit_logs, advanced_rbac, webhooks)| PlanFeatures {
            scim: webhooks,
            audit_logs,
            advanced_rbac,
            webhooks,
        },
    )
}

fn context() -> impl Strategy<Value = Context> {
    (access(), plan()).prop_map(|(access, plan)| Context { access, plan })
}

fn allowed(s: &Subject, p: Permission, r: &Resource, ctx: &Context) -> bool {
    rbac_core::authorize(s, p, r, ctx).is_allowed()
}

fn with_role(s: &Subject, role: OrgRole) -> Subject {
    Subject { role, ..s.clone() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// User ⊆ Admin ⊆ Owner for the same request, under every setting and plan.
    #[test]
    fn stronger_org_roles_allow_at_least_as_much(
        s in subject(), p in permission(), r in own_resource(), ctx in context(),
    ) {
        for weak in OrgRole::ALL {
            for strong in OrgRole::ALL.into_iter().filter(|&strong| strong > weak) {
                prop_assert!(
                    !allowed(&with_role(&s, weak), p, &r, &ctx)
                        || allowed(&with_role(&s, strong), p, &r, &ctx),
                    "{weak:?} may {p:?} but {strong:?} may not"
                );
            }
        }
    }

    /// Viewer ⊆ Member ⊆ Admin in the resource's team, for an organization User.
    #[test]
    fn stronger_team_roles_allow_at_least_as_much(
        s in subject(), p in permission(), r in own_resource(), ctx in context(), t in 0..TEAMS,
    ) {
        let r = Resource { team: Some(team(t)), ..r };
        let as_team_role = |role: TeamRole| {
            let mut teams: Vec<_> =
                s.teams.iter().copied().filter(|(id, _)| *id != team(t)).collect();
            teams.push((team(t), role));
            Subject { role: OrgRole::User, teams, ..s.clone() }
        };
        for weak in TeamRole::ALL {
            for strong in TeamRole::ALL.into_iter().filter(|&strong| strong > weak) {
                prop_assert!(
                    !allowed(&as_team_role(weak), p, &r, &ctx)
                        || allowed(&as_team_role(strong), p, &r, &ctx),
                    "team {weak:?} may {p:?} but team {strong:?} may not"
                );
            }
        }
    }

    /// A role in every team never takes a permission away, and in a team without an explicit
    /// role it acts exactly as that role given explicitly.
    #[test]
    fn a_role_in_every_team_acts_as_an_explicit_one(
        s in subject(), p in permission(), r in own_resource(), ctx in context(),
        role in team_role(), t in 0..TEAMS,
    ) {
        let without = Subject { all_teams: None, ..s.clone() };
        let with = Subject { all_teams: Some(role), ..s.clone() };
        prop_assert!(
            !allowed(&without, p, &r, &ctx) || allowed(&with, p, &r, &ctx),
            "a role in every team took {p:?} away"
        );
        let r = Resource { team: Some(team(t)), ..r };
        let others: Vec<_> = s.teams.iter().copied().filter(|(id, _)| *id != team(t)).collect();
        let everywhere = Subject { teams: others.clone(), all_teams: Some(role), ..s.clone() };
        let mut explicit_teams = others;
        explicit_teams.push((team(t), role));
        let explicit = Subject { teams: explicit_teams, all_teams: None, ..s.clone() };
        prop_assert_eq!(
            rbac_core::authorize(&everywhere, p, &r, &ctx),
            rbac_core::authorize(&explicit, p, &r, &ctx)
        );
    }

    /// A subject confined to one team (a team's API key) never has a permission the subject
    /// lacks, and nothing in any other team, where it is answered as a non-member (404).
    #[test]
    fn a_team_key_never_exceeds_its_creator(
        s in subject(), p in permission(), r in own_resource(), ctx in context(), t in 0..TEAMS,
    ) {
        let key = s.confined_to(team(t));
        prop_assert!(
            !allowed(&key, p, &r, &ctx) || allowed(&s, p, &r, &ctx),
            "confined to {t}, it gained {p:?} on {r:?}"
        );
        // In another team: a team-level permission is refused as to a non-member; an
        // organization-level one is decided as if the resource had no team.
        if let Some(other) = r.team.filter(|o| *o != team(t)) {
            let d = rbac_core::authorize(&key, p, &r, &ctx);
            let outside = rbac_core::authorize(&key, p, &Resource { team: None, ..r }, &ctx);
            prop_assert!(
                d == Decision::Deny(DenyReason::NotTeamMember) || d == outside,
                "{p:?} in team {other:?}: {d:?}"
            );
        }
    }

    /// Another organization's resources are never reachable, and always answered as 404.
    #[test]
    fn no_cross_tenant_allow(
        s in subject(), p in permission(), r in foreign_resource(), ctx in context(),
    ) {
        let decision = rbac_core::authorize(&s, p, &r, &ctx);
        prop_assert_eq!(decision, Decision::Deny(DenyReason::CrossTenant));
    }

    /// Billing and ownership are the Owner's alone, under every setting and plan.
    #[test]
    fn billing_and_ownership_are_owner_only(
        s in subject(), p in select(OWNER_ONLY.to_vec()), r in own_resource(), ctx in context(),
    ) {
        prop_assert!(s.role == OrgRole::Owner || !allowed(&s, p, &r, &ctx));
    }

    /// No feature-access setting ever grants billing or enterprise settings to a User.
    #[test]
    fn settings_never_grant_billing_or_enterprise_settings_to_users(
        s in subject(), p in select(NEVER_USERS.to_vec()), r in own_resource(), ctx in context(),
    ) {
        let user = with_role(&s, OrgRole::User);
        prop_assert!(!allowed(&user, p, &r, &ctx));
    }

    /// Changing the feature-access settings changes no decision outside the four
    /// permissions they name, for any role.
    #[test]
    fn settings_move_only_their_own_permissions(
        s in subject(), p in permission(), r in own_resource(), ctx in context(), other in access(),
    ) {
        prop_assume!(!SETTING_CONTROLLED.contains(&p));
        let changed = Context { access: other, ..ctx };
        prop_assert_eq!(
            rbac_core::authorize(&s, p, &r, &ctx),
            rbac_core::authorize(&s, p, &r, &changed)
        );
    }

    /// Without advanced RBAC on the plan, the stored settings are ignored.
    #[test]
    fn plans_without_advanced_rbac_use_the_default_settings(
        s in subject(), p in permission(), r in own_resource(), ctx in context(),
    ) {
        let ctx = Context { plan: PlanFeatures { advanced_rbac: false, ..ctx.plan }, ..ctx };
        let defaults = Context { access: FeatureAccess::default(), ..ctx };
        prop_assert_eq!(
            rbac_core::authorize(&s, p, &r, &ctx),
            rbac_core::authorize(&s, p, &r, &defaults)
        );
    }

    /// The order of the subject's team list never changes a decision or its reason.
    #[test]
    fn decisions_do_not_depend_on_team_order(
        (teams, shuffled) in teams().prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
        role in org_role(), credential in credential(),
        p in permission(), r in own_resource(), ctx in context(),
    ) {
        let s = Subject { user: me(), org: org(), role, teams, all_teams: None, credential };
        let t = Subject { teams: shuffled, ..s.clone() };
        prop_assert_eq!(
            rbac_core::authorize(&s, p, &r, &ctx),
            rbac_core::authorize(&t, p, &r, &ctx)
        );
    }

    /// An API key never does more than its creator could in a session.
    #[test]
    fn api_key_never_exceeds_session(
        s in subject(), p in permission(), r in own_resource(), ctx in context(),
    ) {
        let key = Subject { credential: Credential::ApiKey, ..s.clone() };
        let session = Subject { credential: Credential::Session, ..s };
        prop_assert!(!allowed(&key, p, &r, &ctx) || allowed(&session, p, &r, &ctx));
    }

    /// A SCIM token never does more than the same subject in a session, and only provisions
    /// members and teams.
    #[test]
    fn scim_token_only_provisions(
        s in subject(), p in permission(), r in own_resource(), ctx in context(),
    ) {
        let scim = Subject { credential: Credential::Scim, ..s.clone() };
        let session = Subject { credential: Credential::Session, ..s };
        if allowed(&scim, p, &r, &ctx) {
            prop_assert!(allowed(&session, p, &r, &ctx));
            prop_assert!(matches!(
                p,
                Permission::ViewMembers
                    | Permission::InviteMembers
                    | Permission::RemoveMembers
                    | Permission::ChangeRoles
                    | Permission::ViewTeam
                    | Permission::CreateTeam
                    | Permission::ManageTeam
                    | Permission::ManageTeamMembers
            ), "{p:?}");
        }
    }

    /// In a session on the Enterprise plan, the Owner may do everything in their organization.
    #[test]
    fn owner_may_do_everything_on_enterprise(
        s in subject(), p in permission(), r in own_resource(), access in access(),
    ) {
        let owner = Subject { role: OrgRole::Owner, credential: Credential::Session, ..s };
        let ctx = Context { access, plan: PlanFeatures::ENTERPRISE };
        prop_assert!(allowed(&owner, p, &r, &ctx));
    }
}
