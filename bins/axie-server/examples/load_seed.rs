//! Seeds a database for the load script (`bench/load/run.sh`): `orgs` Enterprise organizations,
//! each with an Owner and 19 members, 5 chat interfaces and 2 knowledge bases, and login
//! sessions for the Owner and four members. Writes `tokens.tsv` (`org_id<TAB>session token<TAB>chat interface ids`, one per
//! session) and `logins.tsv` (`email<TAB>password` of members who log in during the run) to
//! `out_dir`.
//!
//! Rows go in through the store ports, as the server writes them (audit chain included); every
//! account shares one real argon2id hash of the password, so seeding takes seconds, not hours,
//! and a login in the mix still pays a full argon2id verification. On PostgreSQL the tables are
//! analysed at the end.
//!
//! `cargo run --release -p axie-server --example load_seed -- <database url> <orgs> <out_dir>`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark program"
)]

use std::io::Write;

use audit::{Actor, AuditAction, Journal, NewAuditEvent, Target};
use billing_limits::Plan;
use chrono::Utc;
use rbac_core::{FeatureAccess, OrgId, OrgRole, ResourceId, SessionId, TeamId, TeamRole, UserId};
use store_sea::{DatabaseUrl, PoolOptions, SeaStore};
use tenancy::assets::{Asset, AssetDetails};
use tenancy::{
    AccountStore, CompanyProfile, Email, OrgStore, Organization, SecuritySettings, Session, Team,
    User, WorkspaceStore,
};

const PASSWORD: &str = "load test password 2026";

fn record(org: OrgId, action: AuditAction, what: &str) -> Journal {
    Journal::record(NewAuditEvent::new(
        org,
        Utc::now(),
        Actor::system(),
        action,
        Target::new("seed", what, what),
    ))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = DatabaseUrl::parse(&args[1]).unwrap();
    let orgs: usize = args[2].parse().unwrap();
    let out = std::path::PathBuf::from(&args[3]);
    let store = SeaStore::connect(&url, PoolOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let hasher =
        security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
    let hash = hasher.hash(PASSWORD).unwrap();
    let mut tokens = std::fs::File::create(out.join("tokens.tsv")).unwrap();
    let mut owners = std::fs::File::create(out.join("logins.tsv")).unwrap();
    let started = std::time::Instant::now();
    let workers = 4;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (store, hash, tx) = (store.clone(), hash.clone(), tx.clone());
            tokio::spawn(async move {
                let mut i = w;
                while i < orgs {
                    seed_org(&store, &hash, i, &tx).await;
                    i += workers;
                }
            })
        })
        .collect();
    drop(tx);
    while let Some((kind, line)) = rx.recv().await {
        let f = if kind == "token" {
            &mut tokens
        } else {
            &mut owners
        };
        writeln!(f, "{line}").unwrap();
    }
    for h in handles {
        h.await.unwrap();
    }
    // Planner statistics as a running database has them: the server refreshes SQLite's at
    // start, and PostgreSQL's autovacuum would analyse the new rows only a while later, while
    // the run has begun (with no statistics it hash-joins whole tables to resolve a caller).
    if store.backend_name() == "postgres" {
        store.execute_sql("ANALYZE").await.unwrap();
    }
    eprintln!(
        "seeded {orgs} organizations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn seed_org(
    store: &SeaStore,
    hash: &str,
    i: usize,
    out: &tokio::sync::mpsc::UnboundedSender<(String, String)>,
) {
    let now = Utc::now();
    let org = Organization {
        id: OrgId::new(),
        name: format!("Load Org {i}"),
        plan: Plan::Enterprise,
        profile: CompanyProfile {
            company_name: format!("Load Org {i}"),
            ..CompanyProfile::default()
        },
        access: FeatureAccess::default(),
        security: SecuritySettings::default(),
        created_at: now,
        audit_archived_at: None,
        limit_overrides: billing_limits::LimitOverrides::default(),
        limit_overrides_plan: None,
    };
    let team = Team {
        id: TeamId::new(),
        org: org.id,
        name: "Default".into(),
        is_default: true,
        created_at: now,
        archived_at: None,
    };
    let user = |n: usize| User {
        id: UserId::new(),
        email: Email::parse(&format!("member{n}-org{i}@load.example")).unwrap(),
        name: format!("Member {n}"),
        created_at: now,
    };
    let owner = user(0);
    store
        .create_org(
            &org,
            &team,
            &owner,
            Some(hash),
            None,
            record(org.id, AuditAction::OrgCreated, "org"),
        )
        .await
        .unwrap();
    let limits = org.limits();
    let mut people = vec![owner.clone()];
    let mut chats = Vec::new();
    for n in 1..20 {
        let u = user(n);
        let role = if n < 3 { OrgRole::Admin } else { OrgRole::User };
        store
            .add_member(
                org.id,
                &u,
                Some(hash),
                role,
                team.id,
                TeamRole::Member,
                &limits,
                record(org.id, AuditAction::MemberAdded, "member"),
            )
            .await
            .unwrap();
        people.push(u);
    }
    for (k, (name, details)) in (0..5)
        .map(|k| {
            (
                format!("Agent {k}"),
                AssetDetails::ChatInterface {
                    description: "load".into(),
                    instructions: "answer briefly".into(),
                },
            )
        })
        .chain((0..2).map(|k| {
            (
                format!("Knowledge {k}"),
                AssetDetails::KnowledgeBase {
                    description: "load".into(),
                },
            )
        }))
        .enumerate()
    {
        let asset = Asset {
            id: ResourceId::new(),
            org: org.id,
            team: team.id,
            name,
            parent: None,
            created_by: people[k % people.len()].id,
            created_at: now,
            updated_at: now,
            size_bytes: 0,
            details,
            archived_at: None,
        };
        store
            .create_asset(
                &asset,
                &limits,
                record(org.id, AuditAction::ChatInterfaceCreated, "asset"),
            )
            .await
            .unwrap();
        if matches!(asset.details, AssetDetails::ChatInterface { .. }) {
            chats.push(asset.id.to_string());
        }
    }
    // Members 10 to 19 are the ones who log in during the run (their new sessions never evict
    // the seeded sessions the readers use).
    for p in &people[10..] {
        out.send(("owner".into(), format!("{}\t{PASSWORD}", p.email)))
            .unwrap();
    }
    for p in people.iter().take(5) {
        let token = security_policy::mint(tenancy::accounts::SESSION_PREFIX, 32);
        let session = Session {
            id: SessionId::new(),
            user: p.id,
            created_at: now,
            last_seen_at: now,
            ip: "127.0.0.1".into(),
            user_agent: "load".into(),
            signed_out_of: Vec::new(),
        };
        store
            .create_session(
                &session,
                &token.hash,
                100,
                tenancy::SessionProof::Password,
                &|_| Journal::default(),
            )
            .await
            .unwrap();
        out.send((
            "token".into(),
            format!("{}\t{}\t{}", org.id, token.secret, chats.join(",")),
        ))
        .unwrap();
    }
}
