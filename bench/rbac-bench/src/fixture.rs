//! The seeded fixture: organizations with members and teams, and a shuffled list of requests.
//!
//! Every organization has one Owner, 1-3 Admins, 3-12 Users and 1-3 teams.
//! Every User holds a role (Admin 15%, Member 60%, Viewer 25%) in at least one
//! team and in each other team with probability 40%; some Owners and Admins
//! also hold a team role, which `authorize` ignores. Plans are Enterprise
//! (50%), Free/Pro (30%) or a random mix of the three plan features (20%), and
//! each of the four feature-access settings is stored as "Admins only" or
//! "Admins + Users" at random.
//!
//! The request list has fixed quotas per [`Kind`], then is shuffled; 15% of
//! requests of every kind come through an API key.

use std::collections::HashMap;

use rbac_core::{
    Audience, Context, Credential, FeatureAccess, OrgId, OrgRole, Permission, PlanFeatures,
    Resource, Subject, TeamId, TeamRole, UserId,
};
use uuid::Uuid;

use crate::rng::SplitMix64;

/// What a request was generated to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Any member, any permission, a resource of their organization.
    Mixed,
    /// Owner or Admin, any permission: mostly allows.
    Administrator,
    /// A permission the caller's organization or team role lacks.
    RoleDenial,
    /// A "Limited" permission on a resource the caller did or did not create.
    Limited,
    /// A resource in another organization.
    CrossTenant,
    /// One of the four permissions a feature-access setting controls.
    Setting,
    /// A team the User has no role in.
    NotTeamMember,
}

impl Kind {
    /// Every kind with its share of the request list, in percent.
    pub const QUOTAS: [(Kind, usize); 7] = [
        (Kind::Mixed, 25),
        (Kind::Administrator, 10),
        (Kind::RoleDenial, 12),
        (Kind::Limited, 20),
        (Kind::CrossTenant, 10),
        (Kind::Setting, 17),
        (Kind::NotTeamMember, 6),
    ];
}

/// An organization.
#[derive(Debug)]
pub struct Tenant {
    /// Its id, for rbac-core.
    pub org: OrgId,
    /// Its key (`o17`), for cedar and casbin.
    pub key: String,
    /// Its members; the Owner is first.
    pub members: Vec<usize>,
    /// Its teams.
    pub teams: Vec<usize>,
    /// Stored settings and plan, as the server would load them.
    pub ctx: Context,
}

/// A member of exactly one organization.
#[derive(Debug)]
pub struct User {
    /// Its id, for rbac-core.
    pub id: UserId,
    /// Its key (`u42`).
    pub key: String,
    /// Its organization (index into [`Fixture::tenants`]).
    pub tenant: usize,
    /// Its organization role.
    pub role: OrgRole,
    /// Its explicit team roles (indices into [`Fixture::teams`]); each team at most once.
    pub teams: Vec<(usize, TeamRole)>,
}

/// A team.
#[derive(Debug)]
pub struct Team {
    /// Its id, for rbac-core.
    pub id: TeamId,
    /// Its key (`t9`).
    pub key: String,
    /// Its organization.
    pub tenant: usize,
}

/// A request target, interned so cedar can hold it as an entity.
#[derive(Debug)]
pub struct Target {
    /// Its key (`r5`).
    pub key: String,
    /// Its organization.
    pub tenant: usize,
    /// Its team, if it lives in one.
    pub team: Option<usize>,
    /// Its creator, if recorded.
    pub creator: Option<usize>,
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// Index into [`Fixture::subjects`] (`user * 2 + credential`).
    pub subject: u32,
    /// The acting user.
    pub user: u32,
    /// Whether an API key is used.
    pub api_key: bool,
    /// The permission.
    pub perm: Permission,
    /// Index into [`Fixture::targets`] and [`Fixture::resources`].
    pub target: u32,
    /// The caller's organization, whose context applies.
    pub tenant: u32,
    /// What the request exercises.
    pub kind: Kind,
}

/// Fixture size and seed.
#[derive(Debug, Clone, Copy)]
pub struct FixtureConfig {
    /// Number of organizations.
    pub tenants: usize,
    /// Number of requests.
    pub requests: usize,
    /// Generator seed.
    pub seed: u64,
}

/// Everything the three engines are built from.
#[derive(Debug)]
pub struct Fixture {
    /// Organizations.
    pub tenants: Vec<Tenant>,
    /// Users of every organization.
    pub users: Vec<User>,
    /// Teams of every organization.
    pub teams: Vec<Team>,
    /// Interned request targets.
    pub targets: Vec<Target>,
    /// rbac-core's view of each target (same index as `targets`).
    pub resources: Vec<Resource>,
    /// rbac-core subjects: two per user, session then API key.
    pub subjects: Vec<Subject>,
    /// rbac-core contexts, one per organization (same index as `tenants`).
    pub contexts: Vec<Context>,
    /// The shuffled requests.
    pub requests: Vec<Request>,
}

/// The team-level permissions (decided through the team role for Users).
pub const TEAM_PERMISSIONS: [Permission; 19] = [
    Permission::ViewChatInterface,
    Permission::UseChatInterface,
    Permission::CreateChatInterface,
    Permission::EditChatInterface,
    Permission::ViewKnowledgeBase,
    Permission::CreateKnowledgeBase,
    Permission::ManageKnowledgeBase,
    Permission::UploadDocument,
    Permission::DeleteDocument,
    Permission::ViewAnalytics,
    Permission::CreateApiKey,
    Permission::ViewApiKey,
    Permission::RevokeApiKey,
    Permission::ViewDomains,
    Permission::ManageDomains,
    Permission::ViewTeam,
    Permission::ManageTeam,
    Permission::ManageTeamMembers,
    Permission::TransferAsset,
];

/// Whether `p` is decided at team level.
#[must_use]
pub fn is_team_permission(p: Permission) -> bool {
    TEAM_PERMISSIONS.contains(&p)
}

const LIMITED: [Permission; 4] = [
    Permission::ManageKnowledgeBase,
    Permission::DeleteDocument,
    Permission::ViewApiKey,
    Permission::RevokeApiKey,
];

const SETTING_PERMISSIONS: [Permission; 4] = [
    Permission::CreateApiKey,
    Permission::ManageDomains,
    Permission::ViewAuditLog,
    Permission::ExportData,
];

const ADMIN_ONLY_ORG: [Permission; 12] = [
    Permission::InviteMembers,
    Permission::RemoveMembers,
    Permission::ChangeRoles,
    Permission::UpdateSettings,
    Permission::UpdateSecurityPolicy,
    Permission::UpdateFeatureAccess,
    Permission::ManageWebhooks,
    Permission::CreateTeam,
    Permission::ViewBilling,
    Permission::ManageBilling,
    Permission::TransferOwnership,
    Permission::DeleteOrganization,
];

const OWNER_ONLY: [Permission; 4] = [
    Permission::ViewBilling,
    Permission::ManageBilling,
    Permission::TransferOwnership,
    Permission::DeleteOrganization,
];

const VIEWER_WRITES: [Permission; 12] = [
    Permission::CreateChatInterface,
    Permission::EditChatInterface,
    Permission::CreateKnowledgeBase,
    Permission::ManageKnowledgeBase,
    Permission::UploadDocument,
    Permission::DeleteDocument,
    Permission::CreateApiKey,
    Permission::RevokeApiKey,
    Permission::ManageDomains,
    Permission::ManageTeam,
    Permission::ManageTeamMembers,
    Permission::TransferAsset,
];

const MEMBER_DENIED: [Permission; 3] = [
    Permission::ManageTeam,
    Permission::ManageTeamMembers,
    Permission::TransferAsset,
];

/// Deterministic ids: the kind in the top byte, a counter below.
fn uuid(kind: u8, n: usize) -> Uuid {
    Uuid::from_u128((u128::from(kind) << 120) | n as u128)
}

fn audience(rng: &mut SplitMix64) -> Audience {
    if rng.chance(50) {
        Audience::AdminsAndUsers
    } else {
        Audience::AdminsOnly
    }
}

struct Builder {
    rng: SplitMix64,
    fx: Fixture,
    interned: HashMap<(usize, Option<usize>, Option<usize>), usize>,
}

impl Fixture {
    /// Builds the fixture; the same config always gives the same fixture.
    ///
    /// # Panics
    /// If `config.tenants < 2` (cross-tenant requests need two organizations).
    #[must_use]
    pub fn generate(config: FixtureConfig) -> Fixture {
        assert!(config.tenants >= 2, "need at least two tenants");
        let mut b = Builder {
            rng: SplitMix64::new(config.seed),
            fx: Fixture {
                tenants: Vec::with_capacity(config.tenants),
                users: Vec::new(),
                teams: Vec::new(),
                targets: Vec::new(),
                resources: Vec::new(),
                subjects: Vec::new(),
                contexts: Vec::new(),
                requests: Vec::with_capacity(config.requests),
            },
            interned: HashMap::new(),
        };
        for t in 0..config.tenants {
            b.tenant(t);
        }
        b.subjects();
        let mut kinds = Vec::with_capacity(config.requests);
        for (kind, percent) in Kind::QUOTAS {
            kinds.extend(std::iter::repeat_n(kind, config.requests * percent / 100));
        }
        while kinds.len() < config.requests {
            kinds.push(Kind::Mixed);
        }
        for kind in kinds {
            let r = b.request(kind);
            b.fx.requests.push(r);
        }
        let Builder {
            mut rng, mut fx, ..
        } = b;
        rng.shuffle(&mut fx.requests);
        fx
    }

    /// How many requests of each kind, for the report.
    #[must_use]
    pub fn kind_counts(&self) -> Vec<(Kind, usize)> {
        let mut counts: HashMap<Kind, usize> = HashMap::new();
        for r in &self.requests {
            *counts.entry(r.kind).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort();
        v
    }
}

impl Builder {
    fn tenant(&mut self, t: usize) {
        let rng = &mut self.rng;
        let plan = match rng.below(10) {
            0..5 => PlanFeatures::ENTERPRISE,
            5..8 => PlanFeatures::BASIC,
            _ => PlanFeatures {
                audit_logs: rng.chance(50),
                advanced_rbac: rng.chance(50),
                webhooks: rng.chance(50),
            },
        };
        let access = FeatureAccess {
            create_api_keys: audience(rng),
            manage_domains: audience(rng),
            view_audit_logs: audience(rng),
            export_data: audience(rng),
        };
        let ctx = Context { access, plan };

        let team_count = rng.range(1, 3);
        let mut teams = Vec::with_capacity(team_count);
        for _ in 0..team_count {
            let n = self.fx.teams.len();
            self.fx.teams.push(Team {
                id: TeamId::from_uuid(uuid(2, n)),
                key: format!("t{n}"),
                tenant: t,
            });
            teams.push(n);
        }

        let admins = self.rng.range(1, 3);
        let users = self.rng.range(3, 12);
        let mut members = Vec::with_capacity(1 + admins + users);
        for i in 0..1 + admins + users {
            let role = match i {
                0 => OrgRole::Owner,
                i if i <= admins => OrgRole::Admin,
                _ => OrgRole::User,
            };
            let mut team_roles = Vec::new();
            if role == OrgRole::User {
                let first = self.rng.below(team_count);
                for (k, &team) in teams.iter().enumerate() {
                    if k == first || self.rng.chance(40) {
                        team_roles.push((team, self.team_role()));
                    }
                }
            } else if self.rng.chance(30) {
                // Ignored by authorize: Owners and Admins administer every team.
                let team = *self.rng.pick(&teams);
                team_roles.push((team, self.team_role()));
            }
            let n = self.fx.users.len();
            self.fx.users.push(User {
                id: UserId::from_uuid(uuid(3, n)),
                key: format!("u{n}"),
                tenant: t,
                role,
                teams: team_roles,
            });
            members.push(n);
        }

        self.fx.tenants.push(Tenant {
            org: OrgId::from_uuid(uuid(1, t)),
            key: format!("o{t}"),
            members,
            teams,
            ctx,
        });
        self.fx.contexts.push(ctx);
    }

    fn team_role(&mut self) -> TeamRole {
        match self.rng.below(100) {
            0..15 => TeamRole::Admin,
            15..75 => TeamRole::Member,
            _ => TeamRole::Viewer,
        }
    }

    fn subjects(&mut self) {
        let fx = &mut self.fx;
        fx.subjects.reserve(fx.users.len() * 2);
        for u in &fx.users {
            let teams: Vec<(TeamId, TeamRole)> =
                u.teams.iter().map(|&(t, r)| (fx.teams[t].id, r)).collect();
            for credential in [Credential::Session, Credential::ApiKey] {
                fx.subjects.push(Subject {
                    user: u.id,
                    org: fx.tenants[u.tenant].org,
                    role: u.role,
                    teams: teams.clone(),
                    all_teams: None,
                    credential,
                });
            }
        }
    }

    /// Interns the target `(tenant, team, creator)`.
    fn target(&mut self, tenant: usize, team: Option<usize>, creator: Option<usize>) -> u32 {
        let fx = &mut self.fx;
        let idx = *self
            .interned
            .entry((tenant, team, creator))
            .or_insert_with(|| {
                let n = fx.targets.len();
                fx.targets.push(Target {
                    key: format!("r{n}"),
                    tenant,
                    team,
                    creator,
                });
                fx.resources.push(Resource {
                    org: fx.tenants[tenant].org,
                    team: team.map(|t| fx.teams[t].id),
                    creator: creator.map(|u| fx.users[u].id),
                });
                n
            });
        u32::try_from(idx).unwrap_or(u32::MAX)
    }

    /// A target for `perm` in `tenant`: a team resource (random team, random
    /// creator or none) for team-level permissions, 10% of them organization-wide;
    /// the organization itself for organization-level permissions.
    fn natural_target(&mut self, tenant: usize, perm: Permission) -> u32 {
        if is_team_permission(perm) && !self.rng.chance(10) {
            let team = *self.rng.pick(&self.fx.tenants[tenant].teams);
            let creator = self.some_creator(tenant);
            self.target(tenant, Some(team), creator)
        } else {
            self.target(tenant, None, None)
        }
    }

    fn some_creator(&mut self, tenant: usize) -> Option<usize> {
        if self.rng.chance(25) {
            None
        } else {
            Some(*self.rng.pick(&self.fx.tenants[tenant].members))
        }
    }

    fn random_member(&mut self, tenant: usize, role: Option<OrgRole>) -> Option<usize> {
        let members = &self.fx.tenants[tenant].members;
        let candidates: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&u| role.is_none_or(|r| self.fx.users[u].role == r))
            .collect();
        if candidates.is_empty() {
            None
        } else {
            Some(*self.rng.pick(&candidates))
        }
    }

    fn owner(&self, tenant: usize) -> usize {
        self.fx.tenants[tenant].members[0]
    }

    /// Every organization has at least one Admin and three Users; the Owner is a fallback only.
    fn member_with_role(&mut self, tenant: usize, role: OrgRole) -> usize {
        self.random_member(tenant, Some(role))
            .unwrap_or_else(|| self.owner(tenant))
    }

    fn request(&mut self, kind: Kind) -> Request {
        let tenant = self.rng.below(self.fx.tenants.len());
        let api_key = self.rng.chance(15);
        let (user, perm, target) = match kind {
            Kind::Mixed => self.mixed(tenant),
            Kind::Administrator => {
                let user = if self.rng.chance(40) {
                    self.owner(tenant)
                } else {
                    self.member_with_role(tenant, OrgRole::Admin)
                };
                let perm = *self.rng.pick(&Permission::ALL);
                let target = self.natural_target(tenant, perm);
                (user, perm, target)
            }
            Kind::RoleDenial => self.role_denial(tenant),
            Kind::Limited => self.limited(tenant),
            Kind::CrossTenant => {
                let user = *self.rng.pick(&self.fx.tenants[tenant].members);
                let mut other = self.rng.below(self.fx.tenants.len() - 1);
                if other >= tenant {
                    other += 1;
                }
                let perm = *self.rng.pick(&Permission::ALL);
                let target = self.natural_target(other, perm);
                (user, perm, target)
            }
            Kind::Setting => self.setting(tenant),
            Kind::NotTeamMember => self.not_team_member(tenant),
        };
        Request {
            subject: u32::try_from(user * 2 + usize::from(api_key)).unwrap_or(u32::MAX),
            user: u32::try_from(user).unwrap_or(u32::MAX),
            api_key,
            perm,
            target,
            tenant: u32::try_from(self.fx.users[user].tenant).unwrap_or(u32::MAX),
            kind,
        }
    }

    fn mixed(&mut self, tenant: usize) -> (usize, Permission, u32) {
        let user = *self.rng.pick(&self.fx.tenants[tenant].members);
        let perm = *self.rng.pick(&Permission::ALL);
        // Users mostly act in their own teams.
        let own_teams: Vec<usize> = self.fx.users[user].teams.iter().map(|t| t.0).collect();
        let target = if is_team_permission(perm) && !own_teams.is_empty() && self.rng.chance(70) {
            let team = *self.rng.pick(&own_teams);
            let creator = self.some_creator(tenant);
            self.target(tenant, Some(team), creator)
        } else {
            self.natural_target(tenant, perm)
        };
        (user, perm, target)
    }

    /// A User (org role) with one of their team roles.
    fn user_with_team(&mut self, tenant: usize) -> Option<(usize, usize, TeamRole)> {
        let user = self.random_member(tenant, Some(OrgRole::User))?;
        let &(team, role) = self.rng.pick(&self.fx.users[user].teams);
        Some((user, team, role))
    }

    fn role_denial(&mut self, tenant: usize) -> (usize, Permission, u32) {
        match self.rng.below(3) {
            0 => {
                let user = self.member_with_role(tenant, OrgRole::User);
                let perm = *self.rng.pick(&ADMIN_ONLY_ORG);
                let target = self.target(tenant, None, None);
                (user, perm, target)
            }
            1 => {
                let user = self.member_with_role(tenant, OrgRole::Admin);
                let perm = *self.rng.pick(&OWNER_ONLY);
                let target = self.target(tenant, None, None);
                (user, perm, target)
            }
            _ => match self.user_with_team(tenant) {
                Some((user, team, role)) => {
                    let perm = match role {
                        TeamRole::Viewer => *self.rng.pick(&VIEWER_WRITES),
                        TeamRole::Member => *self.rng.pick(&MEMBER_DENIED),
                        // A Team Admin lacks organization-level admin rights.
                        TeamRole::Admin => *self.rng.pick(&ADMIN_ONLY_ORG),
                    };
                    let target = if is_team_permission(perm) {
                        let creator = self.some_creator(tenant);
                        self.target(tenant, Some(team), creator)
                    } else {
                        self.target(tenant, None, None)
                    };
                    (user, perm, target)
                }
                None => self.mixed(tenant),
            },
        }
    }

    fn limited(&mut self, tenant: usize) -> (usize, Permission, u32) {
        let Some((user, team, _)) = self.user_with_team(tenant) else {
            return self.mixed(tenant);
        };
        let perm = *self.rng.pick(&LIMITED);
        let creator = match self.rng.below(10) {
            0..5 => Some(user),
            5..9 => {
                let other = *self.rng.pick(&self.fx.tenants[tenant].members);
                Some(other)
            }
            _ => None,
        };
        let target = self.target(tenant, Some(team), creator);
        (user, perm, target)
    }

    fn setting(&mut self, tenant: usize) -> (usize, Permission, u32) {
        let perm = *self.rng.pick(&SETTING_PERMISSIONS);
        let pick = if self.rng.chance(85) {
            self.user_with_team(tenant)
        } else {
            None
        };
        match pick {
            Some((user, team, _)) => {
                let target = if is_team_permission(perm) && !self.rng.chance(10) {
                    let creator = self.some_creator(tenant);
                    self.target(tenant, Some(team), creator)
                } else {
                    self.target(tenant, None, None)
                };
                (user, perm, target)
            }
            None => {
                let user = *self.rng.pick(&self.fx.tenants[tenant].members);
                let target = self.natural_target(tenant, perm);
                (user, perm, target)
            }
        }
    }

    fn not_team_member(&mut self, tenant: usize) -> (usize, Permission, u32) {
        let Some(user) = self.random_member(tenant, Some(OrgRole::User)) else {
            return self.mixed(tenant);
        };
        let mine: Vec<usize> = self.fx.users[user].teams.iter().map(|t| t.0).collect();
        let others: Vec<usize> = self.fx.tenants[tenant]
            .teams
            .iter()
            .copied()
            .filter(|t| !mine.contains(t))
            .collect();
        if others.is_empty() {
            return self.mixed(tenant);
        }
        let team = *self.rng.pick(&others);
        let perm = *self.rng.pick(&TEAM_PERMISSIONS);
        let creator = if self.rng.chance(30) {
            Some(user)
        } else {
            None
        };
        let target = self.target(tenant, Some(team), creator);
        (user, perm, target)
    }
}
