//! Differential test: `authorize` against an independent reference model.
//!
//! The reference is the permission matrix written out as data, one row per permission,
//! with the creator, setting, plan and API-key rules spelled out next to it.
//! It shares no code with `decide.rs`.
//! Both answer 1,000,000 requests drawn from a seeded generator, and must agree on every one.

use rbac_core::{
    Audience, Context, Credential, FeatureAccess, OrgId, OrgRole, Permission, PlanFeatures,
    Resource, Subject, TeamId, TeamRole, UserId,
};
use uuid::Uuid;

// --- The reference model -------------------------------------------------------

/// A feature-access setting, by its guide name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    CreateApiKeys,
    ManageDomains,
    ViewAuditLogs,
    ExportData,
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy)]
enum Cell {
    /// Allowed.
    Yes,
    /// Denied.
    No,
    /// Allowed on resources the caller created.
    Own,
    /// Allowed when the setting is "Admins + Users".
    If(Setting),
}

/// Whether the team a resource sits in matters for organization Users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Organization-level: the team role is irrelevant.
    Org,
    /// Workspace resource: an organization User acts through their role in its team.
    Team,
}

use Cell::{If, No, Own, Yes};
use Level::{Org, Team};
use Permission as P;
use Setting::{CreateApiKeys, ExportData, ManageDomains, ViewAuditLogs};

const AUDIT: Cell = If(ViewAuditLogs);
const EXPORT: Cell = If(ExportData);

/// (permission, level, Owner, Admin, [organization User as team Viewer, Member, Admin]).
type Row = (Permission, Level, Cell, Cell, [Cell; 3]);

#[rustfmt::skip]
const MATRIX: [Row; 36] = [
    //                              Owner Admin Viewer  Member             Team Admin
    (P::ViewBilling,          Org,  Yes,  No,  [No,     No,                No]),
    (P::ManageBilling,        Org,  Yes,  No,  [No,     No,                No]),
    (P::ViewMembers,          Org,  Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::InviteMembers,        Org,  Yes,  Yes, [No,     No,                No]),
    (P::RemoveMembers,        Org,  Yes,  Yes, [No,     No,                No]),
    (P::ChangeRoles,          Org,  Yes,  Yes, [No,     No,                No]),
    (P::TransferOwnership,    Org,  Yes,  No,  [No,     No,                No]),
    (P::ViewChatInterface,    Team, Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::UseChatInterface,     Team, Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::CreateChatInterface,  Team, Yes,  Yes, [No,     Yes,               Yes]),
    (P::EditChatInterface,    Team, Yes,  Yes, [No,     Yes,               Yes]),
    (P::ViewKnowledgeBase,    Team, Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::CreateKnowledgeBase,  Team, Yes,  Yes, [No,     Yes,               Yes]),
    (P::ManageKnowledgeBase,  Team, Yes,  Yes, [No,     Own,               Yes]),
    (P::UploadDocument,       Team, Yes,  Yes, [No,     Yes,               Yes]),
    (P::DeleteDocument,       Team, Yes,  Yes, [No,     Own,               Yes]),
    (P::ViewAnalytics,        Team, Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::CreateApiKey,         Team, Yes,  Yes, [No,     If(CreateApiKeys), If(CreateApiKeys)]),
    (P::ViewApiKey,           Team, Yes,  Yes, [Own,    Own,               Yes]),
    (P::RevokeApiKey,         Team, Yes,  Yes, [No,     Own,               Yes]),
    (P::ViewDomains,          Team, Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::ManageDomains,        Team, Yes,  Yes, [No,     If(ManageDomains), If(ManageDomains)]),
    (P::ViewAuditLog,         Org,  Yes,  Yes, [AUDIT,  AUDIT,             AUDIT]),
    (P::ExportData,           Org,  Yes,  Yes, [EXPORT, EXPORT,            EXPORT]),
    (P::ViewSettings,         Org,  Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::ViewSecurityPolicy,   Org,  Yes,  Yes, [No,     No,                No]),
    (P::UpdateSettings,       Org,  Yes,  Yes, [No,     No,                No]),
    (P::UpdateSecurityPolicy, Org,  Yes,  Yes, [No,     No,                No]),
    (P::UpdateFeatureAccess,  Org,  Yes,  Yes, [No,     No,                No]),
    (P::ManageWebhooks,       Org,  Yes,  Yes, [No,     No,                No]),
    (P::DeleteOrganization,   Org,  Yes,  No,  [No,     No,                No]),
    (P::ViewTeam,             Team, Yes,  Yes, [Yes,    Yes,               Yes]),
    (P::CreateTeam,           Org,  Yes,  Yes, [No,     No,                No]),
    (P::ManageTeam,           Team, Yes,  Yes, [No,     No,                Yes]),
    (P::ManageTeamMembers,    Team, Yes,  Yes, [No,     No,                Yes]),
    (P::TransferAsset,        Team, Yes,  Yes, [No,     No,                Yes]),
];

/// Actions an API key may never perform.
const INTERACTIVE_ONLY: [Permission; 8] = [
    P::ManageBilling,
    P::TransferOwnership,
    P::DeleteOrganization,
    P::CreateApiKey,
    P::InviteMembers,
    P::ChangeRoles,
    P::UpdateSecurityPolicy,
    P::UpdateFeatureAccess,
];

/// The guide's default audience of each setting: only API keys are open to Users.
const fn default_open(s: Setting) -> bool {
    matches!(s, CreateApiKeys)
}

/// A request in plain terms; the real inputs are built from it.
#[derive(Debug, Clone, Copy)]
struct Req {
    role: OrgRole,
    /// The subject's role in each of the organization's teams.
    team_roles: [Option<TeamRole>; TEAMS],
    api_key: bool,
    same_org: bool,
    /// The resource's team, if any.
    team: Option<usize>,
    /// Who created the resource.
    creator: Creator,
    /// Stored settings, in the order keys, domains, audit logs, export; `true` = open to Users.
    open: [bool; 4],
    audit_logs: bool,
    advanced_rbac: bool,
    webhooks: bool,
    action: Permission,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creator {
    Nobody,
    Me,
    Other,
}

/// The reference decision.
fn reference(req: &Req, matrix: &[Row; 36]) -> bool {
    if !req.same_org {
        return false;
    }
    if req.api_key && INTERACTIVE_ONLY.contains(&req.action) {
        return false;
    }
    let plan_ok = match req.action {
        P::ViewAuditLog => req.audit_logs,
        P::UpdateFeatureAccess => req.advanced_rbac,
        P::ManageWebhooks => req.webhooks,
        _ => true,
    };
    if !plan_ok {
        return false;
    }
    let (_, level, owner, admin, user) = matrix[req.action as usize];
    let cell = match req.role {
        OrgRole::Owner => owner,
        OrgRole::Admin => admin,
        OrgRole::User => {
            let team_role = match (level, req.team) {
                (Org, _) | (Team, None) => TeamRole::Member,
                (Team, Some(t)) => match req.team_roles[t] {
                    Some(role) => role,
                    None => return false,
                },
            };
            match team_role {
                TeamRole::Viewer => user[0],
                TeamRole::Member => user[1],
                TeamRole::Admin => user[2],
            }
        }
    };
    match cell {
        Yes => true,
        No => false,
        Own => req.creator == Creator::Me,
        If(setting) => {
            let stored = match setting {
                CreateApiKeys => req.open[0],
                ManageDomains => req.open[1],
                ViewAuditLogs => req.open[2],
                ExportData => req.open[3],
            };
            if req.advanced_rbac {
                stored
            } else {
                default_open(setting)
            }
        }
    }
}

// --- The generator -------------------------------------------------------------

/// SplitMix64: tiny, seeded, good enough to spread requests over the input space.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bit(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

const TEAMS: usize = 4;
const REQUESTS: usize = 1_000_000;
const SEED: u64 = 0x00A1_E5EE_D0F0_0D5E;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn authorize_matches_the_reference_table() {
    // The matrix lists every permission once, in declaration order, so it can be indexed.
    for (i, row) in MATRIX.iter().enumerate() {
        assert_eq!(row.0, Permission::ALL[i], "matrix row {i}");
    }

    let org = OrgId::from_uuid(id(1));
    let foreign = OrgId::from_uuid(id(2));
    let teams: [TeamId; TEAMS] = std::array::from_fn(|i| TeamId::from_uuid(id(10 + i as u128)));
    let me = UserId::from_uuid(id(100));
    let other = UserId::from_uuid(id(101));
    let mut rng = SplitMix64(SEED);

    // Every subject shape: role × (no role, Viewer, Member, Admin) in each team × credential,
    // with the team list in a random order.
    let team_options = [
        None,
        Some(TeamRole::Viewer),
        Some(TeamRole::Member),
        Some(TeamRole::Admin),
    ];
    let mut subjects: Vec<(Subject, [Option<TeamRole>; TEAMS], bool)> = Vec::new();
    for role in OrgRole::ALL {
        for combo in 0..team_options.len().pow(TEAMS as u32) {
            let roles: [Option<TeamRole>; TEAMS] =
                std::array::from_fn(|i| team_options[(combo >> (2 * i)) & 3]);
            for api_key in [false, true] {
                let mut list: Vec<(TeamId, TeamRole)> = (0..TEAMS)
                    .filter_map(|i| roles[i].map(|r| (teams[i], r)))
                    .collect();
                for i in (1..list.len()).rev() {
                    list.swap(i, rng.below(i + 1));
                }
                let credential = if api_key {
                    Credential::ApiKey
                } else {
                    Credential::Session
                };
                let subject = Subject {
                    user: me,
                    org,
                    role,
                    teams: list,
                    all_teams: None,
                    credential,
                };
                subjects.push((subject, roles, api_key));
            }
        }
    }

    let audience = |open: bool| {
        if open {
            Audience::AdminsAndUsers
        } else {
            Audience::AdminsOnly
        }
    };

    let mut mismatches = 0_usize;
    let mut allowed = 0_usize;
    for _ in 0..REQUESTS {
        let (subject, team_roles, api_key) = &subjects[rng.below(subjects.len())];
        let req = Req {
            role: subject.role,
            team_roles: *team_roles,
            api_key: *api_key,
            same_org: rng.below(16) != 0,
            team: match rng.below(TEAMS + 1) {
                0 => None,
                t => Some(t - 1),
            },
            creator: [Creator::Nobody, Creator::Me, Creator::Other][rng.below(3)],
            open: [rng.bit(), rng.bit(), rng.bit(), rng.bit()],
            audit_logs: rng.bit(),
            advanced_rbac: rng.bit(),
            webhooks: rng.bit(),
            action: Permission::ALL[rng.below(Permission::ALL.len())],
        };

        let resource = Resource {
            org: if req.same_org { org } else { foreign },
            team: req.team.map(|t| teams[t]),
            creator: match req.creator {
                Creator::Nobody => None,
                Creator::Me => Some(me),
                Creator::Other => Some(other),
            },
        };
        let ctx = Context {
            access: FeatureAccess {
                create_api_keys: audience(req.open[0]),
                manage_domains: audience(req.open[1]),
                view_audit_logs: audience(req.open[2]),
                export_data: audience(req.open[3]),
            },
            plan: PlanFeatures {
                audit_logs: req.audit_logs,
                advanced_rbac: req.advanced_rbac,
                webhooks: req.webhooks,
                scim: false,
            },
        };

        let decision = rbac_core::authorize(subject, req.action, &resource, &ctx);
        let expected = reference(&req, &MATRIX);
        if decision.is_allowed() != expected {
            mismatches += 1;
            if mismatches <= 10 {
                eprintln!(
                    "mismatch: {req:?}\n  reference allows: {expected}, authorize: {decision:?}"
                );
            }
        }
        allowed += usize::from(expected);
    }

    println!(
        "differential: {REQUESTS} requests, {allowed} allowed, {} denied, {mismatches} mismatches",
        REQUESTS - allowed
    );
    assert!(
        allowed > REQUESTS / 10 && allowed < REQUESTS * 9 / 10,
        "the generator is lopsided"
    );
    assert_eq!(mismatches, 0);
}
