//! The contract every implementation of the tenancy ports must meet, as an async suite.
//! Storage adapters call [`run`]; the in-memory store runs it in this crate.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test suite for store implementations: failing loudly is its job"
)]

use audit::{Actor, AuditAction, AuditStore, Journal, NewAuditEvent, Target};
use billing_limits::Plan;
use chrono::{DateTime, Duration, Utc};
use rbac_core::{ApiKeyId, FeatureAccess, OrgId, OrgRole, SessionId, TeamId, TeamRole, UserId};

use crate::bulk::BulkPreview;
use crate::invitations::{Invitation, InvitationStatus};
use crate::members::{Disposition, OwnershipTransfer};
use crate::{
    ApiKey, BulkStore, CompanyProfile, Email, InvitationStore, MembershipStore, Organization,
    SecuritySettings, Session, Team, TenancyError, TenancyStore, User,
};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_893_815, 0).unwrap()
}

fn user(tag: &str) -> User {
    let id = UserId::new();
    User {
        id,
        email: Email::parse(&format!("{tag}-{}@contract.example", id.as_uuid().simple())).unwrap(),
        name: tag.to_owned(),
        created_at: now(),
    }
}

fn limits(members: u64) -> billing_limits::PlanLimits {
    billing_limits::PlanLimits {
        members: Some(members),
        ..billing_limits::PlanLimits::for_plan(Plan::Enterprise)
    }
}

fn keys(n: u64) -> billing_limits::PlanLimits {
    billing_limits::PlanLimits {
        api_keys: Some(n),
        ..billing_limits::PlanLimits::for_plan(Plan::Enterprise)
    }
}

fn note(org: OrgId, what: &str) -> Journal {
    Journal::record(NewAuditEvent::new(
        org,
        now(),
        Actor::system(),
        AuditAction::SettingsUpdated,
        Target::new("contract", what, what),
    ))
}

async fn head<S: AuditStore + ?Sized>(s: &S, org: OrgId) -> i64 {
    s.head(org).await.unwrap().map_or(0, |h| h.0)
}

async fn new_org<S: TenancyStore + AuditStore + ?Sized>(s: &S) -> (Organization, Team, User) {
    let org = Organization {
        id: OrgId::new(),
        name: "Contract Org".into(),
        plan: Plan::Enterprise,
        profile: CompanyProfile {
            company_name: "Contract Org".into(),
            ..CompanyProfile::default()
        },
        access: FeatureAccess::default(),
        security: SecuritySettings::default(),
        created_at: now(),
    };
    let team = Team {
        id: TeamId::new(),
        org: org.id,
        name: "Default".into(),
        is_default: true,
        created_at: now(),
    };
    let owner = user("owner");
    s.create_org(
        &org,
        &team,
        &owner,
        Some("$argon2id$fake"),
        note(org.id, "created"),
    )
    .await
    .unwrap();
    (org, team, owner)
}

/// Runs every check; panics on the first violation.
pub async fn run<
    S: TenancyStore + AuditStore + InvitationStore + BulkStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    orgs_round_trip(s).await;
    login_throttle_round_trip(s).await;
    member_limit_and_single_owner(s).await;
    sessions_evict_oldest_and_end(s).await;
    api_keys_limit_scope_and_revoke(s).await;
    invitations_are_single_use_and_counted(s).await;
    bulk_previews_confirm_once_all_or_nothing(s).await;
    roles_transfer_and_removal(s).await;
}

async fn orgs_round_trip<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, team, owner) = new_org(s).await;
    assert_eq!(s.get_org(org.id).await.unwrap(), org);
    assert_eq!(s.default_team(org.id).await.unwrap(), team);
    assert!(s.count_orgs().await.unwrap() >= 1);
    let m = s.get_member(org.id, owner.id).await.unwrap().unwrap();
    assert_eq!(m.role, OrgRole::Owner);
    assert_eq!(
        s.team_roles(org.id, owner.id).await.unwrap(),
        vec![(team.id, TeamRole::Admin)]
    );
    let ms = s.memberships(owner.id).await.unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].org_name, "Contract Org");
    let (found, hash) = s.find_user_by_email(&owner.email).await.unwrap().unwrap();
    assert_eq!(found, owner);
    assert_eq!(hash.as_deref(), Some("$argon2id$fake"));
    assert_eq!(head(s, org.id).await, 1, "creation committed its journal");

    let mut profile = org.profile.clone();
    profile.tax_id = "SE1".into();
    s.update_profile(org.id, &org.profile, &profile, note(org.id, "profile"))
        .await
        .unwrap();
    let stale = CompanyProfile {
        company_name: "lost update".into(),
        ..org.profile.clone()
    };
    assert!(
        matches!(
            s.update_profile(org.id, &org.profile, &stale, note(org.id, "stale"))
                .await,
            Err(TenancyError::Conflict(_))
        ),
        "an update based on a stale profile is refused"
    );
    let access = FeatureAccess {
        view_audit_logs: rbac_core::Audience::AdminsAndUsers,
        ..FeatureAccess::default()
    };
    s.update_access(org.id, &access, note(org.id, "access"))
        .await
        .unwrap();
    let got = s.get_org(org.id).await.unwrap();
    assert_eq!(got.profile.tax_id, "SE1");
    assert_eq!(got.access, access);
    assert_eq!(head(s, org.id).await, 3);
    assert!(matches!(
        s.update_profile(OrgId::new(), &org.profile, &profile, note(org.id, "x"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(head(s, org.id).await, 3, "a failed change records nothing");
    assert!(matches!(
        s.get_org(OrgId::new()).await,
        Err(TenancyError::NotFound(_))
    ));

    // Another organization with the same owner email is refused, and leaves no trace.
    let other = Organization {
        id: OrgId::new(),
        ..org.clone()
    };
    let t2 = Team {
        id: TeamId::new(),
        org: other.id,
        ..team.clone()
    };
    let dup = User {
        id: UserId::new(),
        ..owner.clone()
    };
    assert!(matches!(
        s.create_org(&other, &t2, &dup, Some("h"), note(other.id, "dup"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(matches!(
        s.get_org(other.id).await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(head(s, other.id).await, 0);
    s.set_password_hash(owner.id, "new").await.unwrap();
    assert_eq!(
        s.find_user_by_email(&owner.email)
            .await
            .unwrap()
            .unwrap()
            .1
            .as_deref(),
        Some("new")
    );
}

async fn member_limit_and_single_owner<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, team, _owner) = new_org(s).await;
    let a = user("a");
    s.add_member(
        org.id,
        &a,
        Some("h"),
        OrgRole::Admin,
        team.id,
        TeamRole::Admin,
        &limits(3),
        note(org.id, "a"),
    )
    .await
    .unwrap();
    let b = user("b");
    s.add_member(
        org.id,
        &b,
        Some("h"),
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &limits(3),
        note(org.id, "b"),
    )
    .await
    .unwrap();
    let before = head(s, org.id).await;
    let c = user("c");
    match s
        .add_member(
            org.id,
            &c,
            Some("h"),
            OrgRole::User,
            team.id,
            TeamRole::Member,
            &limits(3),
            note(org.id, "c"),
        )
        .await
    {
        Err(TenancyError::LimitReached {
            max: 3,
            used: 3,
            plan: Plan::Enterprise,
            ..
        }) => {}
        other => panic!("expected the member limit, got {other:?}"),
    }
    assert!(
        s.find_user_by_email(&c.email).await.unwrap().is_none(),
        "the refused account was not created"
    );
    assert_eq!(head(s, org.id).await, before);
    let again = User {
        id: b.id,
        ..b.clone()
    };
    assert!(matches!(
        s.add_member(
            org.id,
            &again,
            None,
            OrgRole::User,
            team.id,
            TeamRole::Member,
            &limits(99),
            note(org.id, "again")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    let second_owner = user("second-owner");
    assert!(
        matches!(
            s.add_member(
                org.id,
                &second_owner,
                Some("h"),
                OrgRole::Owner,
                team.id,
                TeamRole::Admin,
                &limits(99),
                note(org.id, "o2")
            )
            .await,
            Err(TenancyError::Conflict(_))
        ),
        "exactly one owner"
    );
    let page1 = s.list_members(org.id, None, 2).await.unwrap();
    let page2 = s
        .list_members(org.id, Some(page1[1].user.id), 2)
        .await
        .unwrap();
    assert_eq!(page1.len() + page2.len(), 3);
    assert!(page1[0].user.id.to_string() < page1[1].user.id.to_string());
    assert!(
        page2
            .iter()
            .all(|m| !page1.iter().any(|p| p.user.id == m.user.id))
    );
    assert!(s.get_member(OrgId::new(), a.id).await.unwrap().is_none());
}

fn session(user: UserId, minutes: i64) -> Session {
    let at = now() + Duration::minutes(minutes);
    Session {
        id: SessionId::new(),
        user,
        created_at: at,
        last_seen_at: at,
        ip: "127.0.0.1".into(),
        user_agent: "contract".into(),
    }
}

async fn sessions_evict_oldest_and_end<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, _, owner) = new_org(s).await;
    let s1 = session(owner.id, 0);
    let s2 = session(owner.id, 1);
    let s3 = session(owner.id, 2);
    assert!(
        s.create_session(&s1, "h1", 2, Journal::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.create_session(&s2, "h2", 2, Journal::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.create_session(&s3, "h3", 2, note(org.id, "login"))
            .await
            .unwrap(),
        vec![s1.id]
    );
    assert!(s.find_session("h1").await.unwrap().is_none(), "evicted");
    assert_eq!(s.find_session("h3").await.unwrap().unwrap(), s3);
    let later = now() + Duration::minutes(10);
    s.touch_session(s3.id, later).await.unwrap();
    assert_eq!(
        s.find_session("h3").await.unwrap().unwrap().last_seen_at,
        later
    );
    assert_eq!(
        s.list_sessions(owner.id)
            .await
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        vec![s3.id, s2.id]
    );
    s.end_session(owner.id, s2.id, later, Journal::default())
        .await
        .unwrap();
    assert!(matches!(
        s.end_session(owner.id, s2.id, later, Journal::default())
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(
        matches!(
            s.end_session(UserId::new(), s3.id, later, Journal::default())
                .await,
            Err(TenancyError::NotFound(_))
        ),
        "only the owner of a session ends it"
    );
    assert!(s.find_session("h2").await.unwrap().is_none());
}

async fn api_keys_limit_scope_and_revoke<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, team, owner) = new_org(s).await;
    let key = |name: &str, by: UserId| ApiKey {
        id: ApiKeyId::new(),
        org: org.id,
        team: team.id,
        created_by: by,
        name: name.into(),
        prefix: "axk_1234".into(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    let k1 = key("one", owner.id);
    let k2 = key("two", UserId::new());
    s.create_api_key(&k1, "kh1", &keys(2), note(org.id, "k1"))
        .await
        .unwrap();
    s.create_api_key(&k2, "kh2", &keys(2), note(org.id, "k2"))
        .await
        .unwrap();
    let k3 = key("three", owner.id);
    assert!(matches!(
        s.create_api_key(&k3, "kh3", &keys(2), note(org.id, "k3"))
            .await,
        Err(TenancyError::LimitReached {
            max: 2,
            used: 2,
            ..
        })
    ));
    let wrong_team = ApiKey {
        team: TeamId::new(),
        ..key("x", owner.id)
    };
    assert!(matches!(
        s.create_api_key(&wrong_team, "khx", &keys(9), note(org.id, "x"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(s.find_api_key("kh1").await.unwrap().unwrap(), k1);
    assert_eq!(
        s.list_api_keys(org.id, Some(owner.id), None, 10)
            .await
            .unwrap(),
        vec![k1.clone()]
    );
    assert_eq!(
        s.list_api_keys(org.id, None, None, 10).await.unwrap().len(),
        2
    );
    assert!(
        s.get_api_key(OrgId::new(), k1.id).await.unwrap().is_none(),
        "scoped by organization"
    );
    assert!(matches!(
        s.revoke_api_key(OrgId::new(), k1.id, now(), Journal::default())
            .await,
        Err(TenancyError::NotFound(_))
    ));
    s.revoke_api_key(org.id, k1.id, now(), note(org.id, "revoke"))
        .await
        .unwrap();
    assert!(s.find_api_key("kh1").await.unwrap().is_none());
    assert!(
        s.get_api_key(org.id, k1.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(matches!(
        s.revoke_api_key(org.id, k1.id, now(), Journal::default())
            .await,
        Err(TenancyError::NotFound(_))
    ));
    s.create_api_key(&k3, "kh3", &keys(2), note(org.id, "k3 after revoke"))
        .await
        .unwrap();
    s.touch_api_key(k3.id, now()).await.unwrap();
    assert_eq!(
        s.find_api_key("kh3").await.unwrap().unwrap().last_used_at,
        Some(now())
    );
}

async fn login_throttle_round_trip<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (_, _, owner) = new_org(s).await;
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), None);
    let state = security_policy::ThrottleState {
        failures: 3,
        window_start: now(),
        locked_until: Some(now() + Duration::minutes(15)),
    };
    s.set_login_throttle(owner.id, Some(&state)).await.unwrap();
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), Some(state));
    let next = security_policy::ThrottleState {
        failures: 4,
        ..state
    };
    s.set_login_throttle(owner.id, Some(&next)).await.unwrap();
    assert_eq!(
        s.login_throttle(owner.id).await.unwrap(),
        Some(next),
        "replaced, not duplicated"
    );
    s.set_login_throttle(owner.id, None).await.unwrap();
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), None);
}

fn invitation(org: OrgId, by: UserId, tag: &str, days: i64) -> Invitation {
    Invitation {
        id: rbac_core::InvitationId::new(),
        org,
        email: Email::parse(&format!(
            "{tag}-{}@invitee.example",
            UserId::new().as_uuid().simple()
        ))
        .unwrap(),
        role: OrgRole::User,
        invited_by: by,
        created_at: now(),
        expires_at: now() + Duration::days(days),
        accepted_at: None,
        revoked_at: None,
    }
}

async fn invitations_are_single_use_and_counted<
    S: TenancyStore + AuditStore + InvitationStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, owner) = new_org(s).await;
    let a = invitation(org.id, owner.id, "a", 7);
    s.create_invitation(&a, "ih-a", &limits(3), note(org.id, "inv a"))
        .await
        .unwrap();
    let dup = Invitation {
        id: rbac_core::InvitationId::new(),
        ..a.clone()
    };
    assert!(matches!(
        s.create_invitation(&dup, "ih-dup", &limits(9), note(org.id, "dup"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    let member = Invitation {
        email: owner.email.clone(),
        ..invitation(org.id, owner.id, "m", 7)
    };
    assert!(matches!(
        s.create_invitation(&member, "ih-m", &limits(9), note(org.id, "m"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    let b = invitation(org.id, owner.id, "b", 7);
    s.create_invitation(&b, "ih-b", &limits(3), note(org.id, "inv b"))
        .await
        .unwrap();
    let c = invitation(org.id, owner.id, "c", 7);
    assert!(
        matches!(
            s.create_invitation(&c, "ih-c", &limits(3), note(org.id, "c"))
                .await,
            Err(TenancyError::LimitReached { used: 3, .. })
        ),
        "owner + 2 pending fill 3 seats"
    );
    assert_eq!(s.find_invitation("ih-a").await.unwrap().unwrap(), a);
    assert_eq!(s.list_invitations(org.id, None, 10).await.unwrap().len(), 2);
    s.reissue_invitation(
        org.id,
        a.id,
        "ih-a2",
        now(),
        now() + Duration::days(7),
        note(org.id, "resend"),
    )
    .await
    .unwrap();
    assert!(
        s.find_invitation("ih-a").await.unwrap().is_none(),
        "the old token stops working"
    );
    let a_user = User {
        email: a.email.clone(),
        ..user("a")
    };
    s.accept_invitation(
        &a,
        "ih-a2",
        &a_user,
        Some("h"),
        team.id,
        TeamRole::Member,
        &limits(3),
        now(),
        note(org.id, "accept"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_member(org.id, a_user.id).await.unwrap().unwrap().role,
        OrgRole::User
    );
    match s
        .accept_invitation(
            &a,
            "ih-a2",
            &a_user,
            None,
            team.id,
            TeamRole::Member,
            &limits(3),
            now(),
            note(org.id, "again"),
        )
        .await
    {
        Err(TenancyError::InvitationUnusable(InvitationStatus::Accepted)) => {}
        other => panic!("second acceptance: {other:?}"),
    }
    s.revoke_invitation(org.id, b.id, now(), note(org.id, "revoke"))
        .await
        .unwrap();
    let b_user = User {
        email: b.email.clone(),
        ..user("b")
    };
    assert!(matches!(
        s.accept_invitation(
            &b,
            "ih-b",
            &b_user,
            Some("h"),
            team.id,
            TeamRole::Member,
            &limits(9),
            now(),
            note(org.id, "b")
        )
        .await,
        Err(TenancyError::InvitationUnusable(InvitationStatus::Revoked))
    ));
    let late = invitation(org.id, owner.id, "late", 1);
    s.create_invitation(&late, "ih-late", &limits(9), note(org.id, "late"))
        .await
        .unwrap();
    let late_user = User {
        email: late.email.clone(),
        ..user("late")
    };
    assert!(
        matches!(
            s.accept_invitation(
                &late,
                "ih-late",
                &late_user,
                Some("h"),
                team.id,
                TeamRole::Member,
                &limits(9),
                now() + Duration::days(1),
                note(org.id, "late")
            )
            .await,
            Err(TenancyError::InvitationUnusable(InvitationStatus::Expired))
        ),
        "expired exactly at expires_at"
    );
    assert!(
        s.find_user_by_email(&late_user.email)
            .await
            .unwrap()
            .is_none(),
        "a refused acceptance creates no account"
    );
}

async fn bulk_previews_confirm_once_all_or_nothing<
    S: TenancyStore + AuditStore + InvitationStore + BulkStore + ?Sized,
>(
    s: &S,
) {
    let (org, _, owner) = new_org(s).await;
    let preview = BulkPreview {
        id: rbac_core::InvitationId::new(),
        org: org.id,
        created_by: owner.id,
        expires_at: now() + Duration::minutes(30),
        rows: vec![],
        seats_available: Some(19),
    };
    s.save_preview(&preview).await.unwrap();
    assert_eq!(
        s.get_preview(org.id, preview.id).await.unwrap(),
        Some(preview.clone())
    );
    assert!(
        s.get_preview(OrgId::new(), preview.id)
            .await
            .unwrap()
            .is_none()
    );
    let x = invitation(org.id, owner.id, "x", 7);
    let clash = Invitation {
        id: rbac_core::InvitationId::new(),
        ..x.clone()
    };
    let before = head(s, org.id).await;
    assert!(matches!(
        s.confirm_preview(
            org.id,
            preview.id,
            &[(x.clone(), "bh-x".into()), (clash, "bh-clash".into())],
            &limits(20),
            now(),
            note(org.id, "bulk")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(
        s.find_invitation("bh-x").await.unwrap().is_none(),
        "nothing half-applied"
    );
    assert_eq!(head(s, org.id).await, before);
    let y = invitation(org.id, owner.id, "y", 7);
    s.confirm_preview(
        org.id,
        preview.id,
        &[(x, "bh-x".into()), (y, "bh-y".into())],
        &limits(20),
        now(),
        note(org.id, "bulk"),
    )
    .await
    .unwrap();
    assert_eq!(s.list_invitations(org.id, None, 10).await.unwrap().len(), 2);
    assert!(matches!(
        s.confirm_preview(
            org.id,
            preview.id,
            &[],
            &limits(20),
            now(),
            note(org.id, "again")
        )
        .await,
        Err(TenancyError::NotFound(_))
    ));
}

async fn roles_transfer_and_removal<
    S: TenancyStore + AuditStore + InvitationStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, owner) = new_org(s).await;
    let m = user("m");
    s.add_member(
        org.id,
        &m,
        Some("h"),
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &limits(9),
        note(org.id, "m"),
    )
    .await
    .unwrap();
    s.set_role(
        org.id,
        m.id,
        OrgRole::User,
        OrgRole::Admin,
        note(org.id, "promote"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.team_roles(org.id, m.id).await.unwrap(),
        vec![(team.id, TeamRole::Admin)]
    );
    assert!(matches!(
        s.set_role(
            org.id,
            m.id,
            OrgRole::User,
            OrgRole::Admin,
            note(org.id, "stale")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    let t = OwnershipTransfer {
        org: org.id,
        from: owner.id,
        to: m.id,
        proposed_at: now(),
        expires_at: now() + Duration::hours(72),
    };
    s.save_transfer(&t, note(org.id, "propose")).await.unwrap();
    assert_eq!(s.pending_transfer(org.id).await.unwrap(), Some(t.clone()));
    s.complete_transfer(&t, now(), note(org.id, "confirm"))
        .await
        .unwrap();
    assert_eq!(
        s.get_member(org.id, m.id).await.unwrap().unwrap().role,
        OrgRole::Owner
    );
    assert_eq!(
        s.get_member(org.id, owner.id).await.unwrap().unwrap().role,
        OrgRole::Admin
    );
    assert!(
        matches!(
            s.complete_transfer(&t, now(), note(org.id, "twice")).await,
            Err(TenancyError::Conflict(_))
        ),
        "a transfer is consumed once"
    );
    assert!(
        matches!(
            s.remove_member(
                org.id,
                m.id,
                Disposition::Delete,
                now(),
                note(org.id, "owner")
            )
            .await,
            Err(TenancyError::NotFound(_))
        ),
        "the owner is never removed"
    );
    let key = ApiKey {
        id: ApiKeyId::new(),
        org: org.id,
        team: team.id,
        created_by: owner.id,
        name: "k".into(),
        prefix: "axk_1".into(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    s.create_api_key(&key, "rk1", &keys(9), note(org.id, "key"))
        .await
        .unwrap();
    let pending = invitation(org.id, owner.id, "by-removed", 7);
    s.create_invitation(&pending, "rk-inv", &limits(9), note(org.id, "inv"))
        .await
        .unwrap();
    let r = s
        .remove_member(
            org.id,
            owner.id,
            Disposition::TransferTo(m.id),
            now(),
            note(org.id, "remove"),
        )
        .await
        .unwrap();
    assert_eq!(r.api_keys_deactivated, 1);
    assert!(s.get_member(org.id, owner.id).await.unwrap().is_none());
    assert!(s.find_api_key("rk1").await.unwrap().is_none());
    let inv = s.find_invitation("rk-inv").await.unwrap().unwrap();
    assert_eq!(
        inv.status(now()),
        InvitationStatus::Revoked,
        "a removed admin's pending invitations stop working"
    );
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        super::run(&crate::MemoryTenancyStore::new()).await;
    }
}
