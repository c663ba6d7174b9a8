//! The contract every implementation of the tenancy ports must meet, as an async suite.
//! Storage adapters call [`run`]; the in-memory store runs it in this crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test suite for store implementations: failing loudly is its job"
)]

use audit::{
    Actor, AuditAction, AuditStore, DomainEvent, EventKind, Journal, NewAuditEvent, OutboundMail,
    Target,
};
use billing_limits::Plan;
use chrono::{DateTime, Duration, Utc};
use rbac_core::{ApiKeyId, FeatureAccess, OrgId, OrgRole, SessionId, TeamId, TeamRole, UserId};

use crate::assets::{Asset, AssetDetails, AssetFilter, AssetKind, AssetTransfer, UsageRecord};
use crate::bulk::BulkPreview;
use crate::invitations::{Invitation, InvitationStatus};
use crate::members::{Disposition, OwnershipTransfer};
use crate::{
    ApiKey, BulkStore, CompanyProfile, Email, InvitationStore, MembershipStore, Organization,
    SecuritySettings, Session, Team, TenancyError, TenancyStore, User, WorkspaceStore,
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

/// Every record of `org`'s log (up to 1,000) still links and hashes as sealed.
async fn assert_chain_verifies<S: AuditStore + ?Sized>(s: &S, org: OrgId, when: &str) {
    let mut verifier = audit::ChainVerifier::new();
    for r in &s.chain_page(org, 0, 1000).await.unwrap() {
        verifier
            .push(r)
            .unwrap_or_else(|e| panic!("the chain breaks {when}: {e:?}"));
    }
    assert!(verifier.finish().is_ok(), "the chain still verifies {when}");
}

/// A mail of the contract's, to `to` in `org` (`None`: about an account, no organization).
fn mail(
    org: Option<OrgId>,
    to: &str,
    subject: impl Into<String>,
    body: impl Into<String>,
) -> OutboundMail {
    OutboundMail {
        org,
        to: to.to_owned(),
        subject: subject.into(),
        body: body.into(),
        kind: "contract".into(),
    }
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
        audit_archived_at: None,
        limit_overrides: billing_limits::LimitOverrides::default(),
        limit_overrides_plan: None,
    };
    let team = Team {
        id: TeamId::new(),
        org: org.id,
        name: "Default".into(),
        is_default: true,
        created_at: now(),
        archived_at: None,
    };
    let owner = user("owner");
    s.create_org(
        &org,
        &team,
        &owner,
        Some("$argon2id$fake"),
        None,
        note(org.id, "created"),
    )
    .await
    .unwrap();
    (org, team, owner)
}

/// Runs every check; panics on the first violation.
pub async fn run<
    S: TenancyStore
        + AuditStore
        + InvitationStore
        + BulkStore
        + MembershipStore
        + WorkspaceStore
        + crate::mfa::MfaStore
        + crate::metering::MeteringStore
        + crate::scim::ScimStore
        + crate::privacy::PrivacyStore
        + crate::billing::BillingStore
        + crate::credits::CreditStore
        + crate::password_reset::PasswordResetStore
        + crate::housekeeping::HousekeepingStore
        + crate::pipeline::PipelineStore
        + crate::uptime::UptimeStore
        + audit::MailOutbox
        + ?Sized,
>(
    s: &S,
) {
    uptime_spans_extend_within_the_tolerance_and_start_anew_after_it(s).await;
    a_chat_interface_passes_the_pipeline_one_stage_at_a_time(s).await;
    password_resets_are_capped_used_once_and_end_sessions(s).await;
    credit_ledger_is_exact_under_concurrency(s).await;
    low_credit_alerts_commit_with_their_debit(s).await;
    an_archived_team_takes_no_key_and_uses_no_credits(s).await;
    an_archived_team_takes_no_edit(s).await;
    a_reversed_purchase_voids_its_open_invoice(s).await;
    an_overdue_reminder_goes_only_while_its_invoice_is_open(s).await;
    subscriptions_are_compare_and_swap(s).await;
    a_deal_applies_on_the_plan_it_was_made_for(s).await;
    a_price_deal_is_one_per_organization_with_its_record(s).await;
    documents_among_names_documents_of_any_organization(s).await;
    a_pending_charge_is_asked_for_again_until_its_change_is_stored(s).await;
    consents_and_erasure_keep_the_chain(s).await;
    erasure_takes_them_out_of_scim_groups(s).await;
    erasure_finds_the_addresses_a_person_had_before(s).await;
    scim_tokens_records_and_deactivation(s).await;
    scim_groups_write_atomically(s).await;
    api_calls_never_overshoot_the_month(s).await;
    mfa_steps_codes_and_challenges_are_used_once(s).await;
    access_reset_is_one_transaction(s).await;
    a_member_reset_is_checked_again_under_lock(s).await;
    security_settings_are_compare_and_swap(s).await;
    blocked_countries_are_saved_checked_and_audited(s).await;
    a_joining_account_keeps_the_address_it_was_found_by(s).await;
    a_rename_is_a_compare_and_swap_committed_with_its_records(s).await;
    a_demoted_admin_changes_no_role_and_removes_no_one(s).await;
    a_demoted_team_admin_gives_no_team_role(s).await;
    teams_round_trip(s).await;
    caller_memberships_gather_every_org_and_team(s).await;
    members_seen_by_a_user_are_those_of_their_teams(s).await;
    team_members_come_in_pages(s).await;
    deleting_an_organization_leaves_the_others(s).await;
    assets_quota_scope_and_subtrees(s).await;
    limits_lowered_since_the_callers_read_are_obeyed(s).await;
    assets_created_together_all_or_none(s).await;
    nothing_is_made_by_someone_no_longer_a_member(s).await;
    asset_transfers_and_removal_dispositions(s).await;
    concurrent_creates_never_overshoot(s).await;
    orgs_round_trip(s).await;
    concurrent_foundings_stay_within_the_bound(s).await;
    login_throttle_round_trip(s).await;
    password_change_ends_other_sessions_in_its_transaction(s).await;
    member_limit_and_single_owner(s).await;
    sessions_evict_oldest_and_end(s).await;
    live_sessions_come_in_pages(s).await;
    signing_out_of_one_organization_keeps_the_others(s).await;
    a_deactivated_membership_keeps_no_session_alive(s).await;
    a_sign_out_checks_its_author_in_the_write(s).await;
    an_abandoned_sign_in_leaves_all_or_nothing(s).await;
    api_keys_limit_scope_and_revoke(s).await;
    invitations_are_single_use_and_counted(s).await;
    an_invitations_unsent_mail_goes_with_its_link(s).await;
    team_invitations_join_their_team_alone(s).await;
    a_direct_add_settles_the_invitation(s).await;
    bulk_previews_confirm_once_all_or_nothing(s).await;
    roles_transfer_and_removal(s).await;
    // Last: a pass removes stale rows of every organization, other checks' included.
    housekeeping_removes_stale_sessions_links_challenges_and_mail(s).await;
}

/// Foundings racing each other cannot pass the bound on organizations one account owns.
async fn concurrent_foundings_stay_within_the_bound<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (_, _, owner) = new_org(s).await; // one owned already
    let found = |i: usize| {
        let org = Organization {
            id: OrgId::new(),
            name: format!("Venture {i}"),
            plan: Plan::Free,
            profile: CompanyProfile::default(),
            access: FeatureAccess::default(),
            security: SecuritySettings::default(),
            created_at: now(),
            audit_archived_at: None,
            limit_overrides: billing_limits::LimitOverrides::default(),
            limit_overrides_plan: None,
        };
        let team = Team {
            id: TeamId::new(),
            org: org.id,
            name: "Default".into(),
            is_default: true,
            created_at: now(),
            archived_at: None,
        };
        let owner = owner.clone();
        async move {
            s.create_org(&org, &team, &owner, None, Some(3), note(org.id, "founded"))
                .await
        }
    };
    let results = futures::future::join_all((0..6).map(found)).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 2, "one owned plus two more reach three: {results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, TenancyError::Conflict(_))),
        "{results:?}"
    );
    let owned = s
        .memberships(owner.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == OrgRole::Owner)
        .count();
    assert_eq!(owned, 3);
}

/// The password hash stored for `u`.
async fn password_hash<S: TenancyStore + ?Sized>(s: &S, u: &User) -> Option<String> {
    s.find_user_by_email(&u.email).await.unwrap().unwrap().1
}

/// A login throttle that has locked its person out for 15 minutes.
fn locked_out() -> security_policy::ThrottleState {
    security_policy::ThrottleState {
        failures: 5,
        window_start: now(),
        locked_until: Some(now() + Duration::minutes(15)),
    }
}

async fn orgs_round_trip<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, team, owner) = new_org(s).await;
    assert_eq!(s.get_org(org.id).await.unwrap(), org);
    assert_eq!(s.default_team(org.id).await.unwrap(), team);
    assert!(s.count_orgs().await.unwrap() >= 1);
    let m = s.get_member(org.id, owner.id).await.unwrap().unwrap();
    assert_eq!(m.role, OrgRole::Owner);
    assert_eq!(m.user, owner);
    assert!(s.get_member(org.id, UserId::new()).await.unwrap().is_none());
    assert_eq!(
        s.team_roles(org.id, owner.id).await.unwrap(),
        vec![(team.id, TeamRole::Admin)]
    );
    let ms = s.memberships(owner.id).await.unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].org_name, "Contract Org");
    assert_eq!(
        s.member_orgs(owner.id).await.unwrap(),
        vec![org.clone()],
        "the organizations whose session policies apply to the owner"
    );
    let (found, hash) = s.find_user_by_email(&owner.email).await.unwrap().unwrap();
    assert_eq!(found, owner);
    assert_eq!(hash.as_deref(), Some("$argon2id$fake"));
    assert_eq!(head(s, org.id).await, 1, "creation committed its journal");

    let mut profile = org.profile.clone();
    profile.tax_id = "SE1".into();
    s.update_profile(
        org.id,
        Some(owner.id),
        &org.profile,
        &profile,
        Some((&org.name, "Renamed Org")),
        note(org.id, "profile"),
    )
    .await
    .unwrap();
    let stale = CompanyProfile {
        company_name: "lost update".into(),
        ..org.profile.clone()
    };
    assert!(
        matches!(
            s.update_profile(
                org.id,
                None,
                &org.profile,
                &stale,
                None,
                note(org.id, "stale")
            )
            .await,
            Err(TenancyError::Conflict(_))
        ),
        "an update based on a stale profile is refused"
    );
    let access = FeatureAccess {
        view_audit_logs: rbac_core::Audience::AdminsAndUsers,
        ..FeatureAccess::default()
    };
    s.update_access(org.id, None, &org.access, &access, note(org.id, "access"))
        .await
        .unwrap();
    assert!(
        matches!(
            s.update_access(
                org.id,
                None,
                &org.access,
                &FeatureAccess::default(),
                note(org.id, "stale access")
            )
            .await,
            Err(TenancyError::Conflict(_))
        ),
        "an update based on stale feature access is refused, with nothing recorded"
    );
    let got = s.get_org(org.id).await.unwrap();
    assert_eq!(got.profile.tax_id, "SE1");
    assert_eq!(got.name, "Renamed Org");
    // A rename from a name changed meanwhile is refused, its profile change with it.
    assert!(matches!(
        s.update_profile(
            org.id,
            None,
            &got.profile,
            &CompanyProfile {
                tax_id: "SE2".into(),
                ..got.profile.clone()
            },
            Some((&org.name, "Lost Rename")),
            note(org.id, "stale rename")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    let got = s.get_org(org.id).await.unwrap();
    assert_eq!(
        (got.name.as_str(), got.profile.tax_id.as_str()),
        ("Renamed Org", "SE1")
    );
    assert_eq!(got.access, access);
    assert_eq!(head(s, org.id).await, 3);
    assert!(matches!(
        s.update_profile(
            OrgId::new(),
            None,
            &org.profile,
            &profile,
            None,
            note(org.id, "x")
        )
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
        s.create_org(&other, &t2, &dup, Some("h"), None, note(other.id, "dup"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(matches!(
        s.get_org(other.id).await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(head(s, other.id).await, 0);
    let old = password_hash(s, &owner).await.expect("a password");
    let h = head(s, org.id).await;
    assert!(
        !s.set_password_hash(owner.id, "not the stored hash", "new", note(org.id, "pw"))
            .await
            .unwrap(),
        "a rehash of a password changed meanwhile writes nothing"
    );
    assert_eq!(
        password_hash(s, &owner).await.as_deref(),
        Some(old.as_str())
    );
    assert_eq!(head(s, org.id).await, h, "nor its journal");
    assert!(
        s.set_password_hash(owner.id, &old, "new", note(org.id, "pw"))
            .await
            .unwrap()
    );
    assert_eq!(password_hash(s, &owner).await.as_deref(), Some("new"));
}

async fn member_limit_and_single_owner<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, team, owner) = new_org(s).await;
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
    // The Owner and the Admins, not the Users.
    let mut admins: Vec<(UserId, OrgRole)> = s
        .admins(org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user.id, m.role))
        .collect();
    admins.sort_by_key(|(id, _)| *id);
    let mut expected = vec![(owner.id, OrgRole::Owner), (a.id, OrgRole::Admin)];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(admins, expected);
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

/// A sign-in whose caller stops waiting at any point (a client hanging up) leaves all of it or
/// none of it: the new session, the older one the session limit ends, and its record; and the
/// sign-ins after it are not held up.
async fn an_abandoned_sign_in_leaves_all_or_nothing<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let mut attempts = Vec::new();
    for (i, wait_us) in [0u64, 20, 100, 300, 1_000, 3_000, 10_000]
        .into_iter()
        .enumerate()
    {
        let (org, _, owner) = new_org(s).await;
        let old = format!("abandon-old-{i}");
        s.create_session(
            &session(owner.id, 1),
            &old,
            1,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
        let new = format!("abandon-new-{i}");
        let before = head(s, org.id).await;
        let records = |_: &[SessionId]| note(org.id, "abandoned sign-in");
        let _ = tokio::time::timeout(
            std::time::Duration::from_micros(wait_us),
            s.create_session(
                &session(owner.id, 2),
                &new,
                1,
                crate::SessionProof::Password,
                &records,
            ),
        )
        .await;
        attempts.push((org.id, before, old, new));
    }
    let (_, _, owner) = new_org(s).await;
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.create_session(
            &session(owner.id, 3),
            "after-abandoned",
            1,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        ),
    )
    .await
    .expect("the sign-in after them is not held up")
    .unwrap();
    // Whatever of theirs was still running has ended by now.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut completed = 0;
    for (org, before, old, new) in attempts {
        let created = s.find_session(&new).await.unwrap().is_some();
        let old_ended = s.find_session(&old).await.unwrap().is_none();
        let recorded = head(s, org).await > before;
        assert_eq!(
            (old_ended, recorded),
            (created, created),
            "all or nothing: {new}"
        );
        completed += usize::from(created);
    }
    eprintln!("abandoned sign-ins that completed anyway: {completed} of 7");
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
        signed_out_of: Vec::new(),
    }
}

async fn password_resets_are_capped_used_once_and_end_sessions<
    S: TenancyStore + AuditStore + crate::password_reset::PasswordResetStore + ?Sized,
>(
    s: &S,
) {
    use crate::password_reset::PasswordReset;
    let (org, _, owner) = new_org(s).await;
    let link = |n: u32, at: DateTime<Utc>| PasswordReset {
        token_hash: format!("reset-{}-{n}", owner.id),
        user: owner.id,
        created_at: at,
        expires_at: at + chrono::Duration::hours(1),
        used_at: None,
    };
    let t0 = now();
    let seen = std::sync::Mutex::new(Vec::new());
    let asked = |orgs: &[OrgId], _: u64| {
        seen.lock().unwrap().push(orgs.to_vec());
        let mut j = Journal::default();
        for o in orgs {
            j.records.extend(note(*o, "asked").records);
        }
        j
    };
    // Two links an hour: the third is not stored, and its journal not committed.
    let h = head(s, org.id).await;
    for n in 0..3 {
        let stored = s
            .create_password_reset(
                &link(n, t0),
                &owner.email,
                t0 - chrono::Duration::hours(1),
                2,
                &asked,
            )
            .await
            .unwrap();
        assert_eq!(stored, n < 2, "link {n}");
    }
    assert_eq!(head(s, org.id).await, h + 2);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![org.id], vec![org.id]],
        "the journal is made from the person's organizations, read in the transaction"
    );
    assert!(
        s.find_password_reset(&link(2, t0).token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.find_password_reset(&link(0, t0).token_hash)
            .await
            .unwrap(),
        Some(link(0, t0))
    );
    // An hour on, the window has room again; not for an address that is no longer theirs
    // (an erasure or a change committed between the lookup and the lock).
    let later = t0 + chrono::Duration::minutes(61);
    let elsewhere = Email::parse("someone-else@contract.example").unwrap();
    assert!(
        !s.create_password_reset(
            &link(4, later),
            &elsewhere,
            later - chrono::Duration::hours(1),
            2,
            &asked
        )
        .await
        .unwrap()
    );
    assert!(
        s.find_password_reset(&link(4, later).token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.create_password_reset(
            &link(3, later),
            &owner.email,
            later - chrono::Duration::hours(1),
            2,
            &|_, _| Journal::default()
        )
        .await
        .unwrap()
    );

    for i in 0..2 {
        s.create_session(
            &session(owner.id, 40 + i),
            &format!("rs-{i}"),
            5,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    s.set_login_throttle(owner.id, Some(&locked_out()), Journal::default())
        .await
        .unwrap();
    // Expired or unknown: refused, nothing changes.
    let h = head(s, org.id).await;
    assert!(matches!(
        s.complete_password_reset(
            &link(3, later).token_hash,
            "h2",
            later + chrono::Duration::hours(2),
            &|_, _| note(org.id, "x")
        )
        .await,
        Err(TenancyError::Invalid(_))
    ));
    assert!(matches!(
        s.complete_password_reset("no-such-link", "h2", t0, &|_, _| note(org.id, "x"))
            .await,
        Err(TenancyError::Invalid(_))
    ));
    assert_eq!(head(s, org.id).await, h);
    assert_eq!(s.list_sessions(owner.id).await.unwrap().len(), 2);
    // Used: sessions end, the lockout clears, the password is the new one, in one commit.
    let ended = s
        .complete_password_reset(&link(0, t0).token_hash, "reset-hash", t0, &|orgs, n| {
            assert_eq!(orgs, [org.id]);
            note(org.id, &format!("reset, {n} sessions ended"))
        })
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert_eq!(head(s, org.id).await, h + 1);
    assert!(s.list_sessions(owner.id).await.unwrap().is_empty());
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), None);
    assert_eq!(
        password_hash(s, &owner).await.as_deref(),
        Some("reset-hash")
    );
    let used = s
        .find_password_reset(&link(0, t0).token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.used_at, Some(t0));
    // Once only, and the person's other open links are retired with it.
    for n in [0, 1, 3] {
        assert!(
            matches!(
                s.complete_password_reset(&link(n, t0).token_hash, "again", t0, &|_, _| {
                    Journal::default()
                })
                .await,
                Err(TenancyError::Invalid(_))
            ),
            "link {n} after the reset"
        );
    }
    assert_eq!(
        password_hash(s, &owner).await.as_deref(),
        Some("reset-hash")
    );
    // A password changed another way retires the open links too.
    let t1 = t0 + chrono::Duration::hours(3);
    assert!(
        s.create_password_reset(
            &link(5, t1),
            &owner.email,
            t1 - chrono::Duration::hours(1),
            2,
            &|_, _| Journal::default()
        )
        .await
        .unwrap()
    );
    s.change_password_hash(owner.id, "changed", None, t1, &|_| Journal::default())
        .await
        .unwrap();
    assert!(
        matches!(
            s.complete_password_reset(&link(5, t1).token_hash, "late", t1, &|_, _| {
                Journal::default()
            })
            .await,
            Err(TenancyError::Invalid(_))
        ),
        "a link from before the change"
    );
    assert_eq!(password_hash(s, &owner).await.as_deref(), Some("changed"));
}

async fn password_change_ends_other_sessions_in_its_transaction<
    S: TenancyStore + AuditStore + crate::mfa::MfaStore + ?Sized,
>(
    s: &S,
) {
    let (org, _, owner) = new_org(s).await;
    let sessions: Vec<Session> = (0..3).map(|m| session(owner.id, m)).collect();
    for (i, x) in sessions.iter().enumerate() {
        s.create_session(
            x,
            &format!("pw-{i}"),
            5,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    let locked = locked_out();
    s.set_login_throttle(owner.id, Some(&locked), Journal::default())
        .await
        .unwrap();
    // A sign-in begun with the old password, waiting for its second factor.
    let half_done = format!("pw-challenge-{}", owner.id);
    s.save_login_challenge(&half_done, owner.id, now() + Duration::minutes(5))
        .await
        .unwrap();
    let h = head(s, org.id).await;
    let made = std::sync::Mutex::new(Vec::new());
    let records = |ended: u64| {
        made.lock().unwrap().push(ended);
        note(org.id, "password changed").and_record(NewAuditEvent::new(
            org.id,
            now(),
            Actor::system(),
            AuditAction::SessionRevoked,
            Target::new("contract", ended.to_string(), "sessions"),
        ))
    };
    let ended = s
        .change_password_hash(owner.id, "new-hash", Some(sessions[1].id), now(), &records)
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert_eq!(
        *made.lock().unwrap(),
        [2],
        "the journal is made from the count"
    );
    assert_eq!(head(s, org.id).await, h + 2, "both records committed");
    let live: Vec<SessionId> = s
        .list_sessions(owner.id)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(live, [sessions[1].id], "only the kept session lives");
    assert_eq!(
        s.login_throttle(owner.id).await.unwrap(),
        None,
        "the new password is not locked out by the old one's failures"
    );
    assert_eq!(password_hash(s, &owner).await.as_deref(), Some("new-hash"));
    assert!(
        s.login_challenge(&half_done).await.unwrap().is_none(),
        "a sign-in begun with the old password cannot be completed"
    );
    // Without a session to keep, every one ends; an unknown person changes nothing.
    assert_eq!(
        s.change_password_hash(owner.id, "newer", None, now(), &|_| Journal::default())
            .await
            .unwrap(),
        1
    );
    assert!(s.list_sessions(owner.id).await.unwrap().is_empty());
    // Ending every session at once: one transaction with the journal made from the count.
    for i in 10..13 {
        s.create_session(
            &session(owner.id, i),
            &format!("all-{i}"),
            10,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    let h = head(s, org.id).await;
    let ended = s
        .end_sessions_in(org.id, owner.id, None, now(), &|n| {
            let mut j = Journal::default();
            for _ in 0..n {
                j = j.and_record(NewAuditEvent::new(
                    org.id,
                    now(),
                    Actor::system(),
                    AuditAction::SessionRevoked,
                    Target::new("contract", "all", "sessions"),
                ));
            }
            j
        })
        .await
        .unwrap();
    assert_eq!(ended, 3);
    assert_eq!(head(s, org.id).await, h + 3);
    assert!(s.list_sessions(owner.id).await.unwrap().is_empty());
    // The last sign-in counts ended sessions too; people never signed in are left out.
    let never = UserId::new();
    assert_eq!(
        s.last_sign_in(&[owner.id, never]).await.unwrap(),
        [(owner.id, now() + Duration::minutes(12))]
    );
    assert!(s.last_sign_in(&[]).await.unwrap().is_empty());
    let h = head(s, org.id).await;
    assert!(matches!(
        s.change_password_hash(UserId::new(), "x", None, now(), &records)
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(head(s, org.id).await, h);
}

/// An Owner or Admin signing a member out ends their sessions only when they belong to no
/// other organization; otherwise the sessions are refused in that organization alone.
async fn signing_out_of_one_organization_keeps_the_others<
    S: TenancyStore + AuditStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (a, a_team, _) = new_org(s).await;
    let (b, b_team, _) = new_org(s).await;
    let pat = user("pat");
    add_user(s, a.id, a_team.id, &pat, Some("h")).await;
    add_user(s, b.id, b_team.id, &pat, None).await;
    let hash = format!("signed-out-{}", pat.id);
    s.create_session(
        &session(pat.id, 0),
        &hash,
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let h = head(s, a.id).await;
    let records = |n: u64| {
        (0..n).fold(Journal::default(), |j, _| {
            j.and_record(NewAuditEvent::new(
                a.id,
                now(),
                Actor::system(),
                AuditAction::SessionRevoked,
                Target::new("member", pat.id, "pat"),
            ))
        })
    };
    assert_eq!(
        s.end_sessions_in(a.id, pat.id, None, now(), &records)
            .await
            .unwrap(),
        1
    );
    assert_eq!(head(s, a.id).await, h + 1);
    let live = s.find_session(&hash).await.unwrap().expect("still live");
    assert_eq!(live.signed_out_of, vec![a.id]);
    let (read, _, memberships) = s.session_caller(&hash).await.unwrap().unwrap();
    assert_eq!(read.signed_out_of, vec![a.id]);
    assert_eq!(memberships.len(), 2, "still a member of both");
    assert_eq!(
        s.end_sessions_in(a.id, pat.id, None, now(), &records)
            .await
            .unwrap(),
        0,
        "signed out there already"
    );
    // Signed out of B too, the session is good in no organization where pat is active: it
    // ends, while a newer one (not signed out of A) is only refused in B.
    let newer = format!("signed-out-newer-{}", pat.id);
    s.create_session(
        &session(pat.id, 1),
        &newer,
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.end_sessions_in(b.id, pat.id, None, now(), &records)
            .await
            .unwrap(),
        2
    );
    assert!(s.find_session(&hash).await.unwrap().is_none(), "ended");
    let kept = s.find_session(&newer).await.unwrap().expect("good in A");
    assert_eq!(kept.signed_out_of, vec![b.id]);
    // A removal records each session it ends or signs out of the organization, in its
    // transaction: none here (the one session left is signed out of B already).
    let in_b = |n: u64| {
        crate::each_session(
            &NewAuditEvent::new(
                b.id,
                now(),
                Actor::system(),
                AuditAction::SessionRevoked,
                Target::new("member", pat.id, "pat"),
            ),
            n,
        )
    };
    let hb = head(s, b.id).await;
    // Removed from B and added back: still refused in B (signing in again opens it).
    s.remove_member(
        b.id,
        pat.id,
        Disposition::Delete,
        now(),
        None,
        note(b.id, "out"),
        &in_b,
    )
    .await
    .unwrap();
    assert_eq!(head(s, b.id).await, hb + 1, "the removal's record alone");
    add_user(s, b.id, b_team.id, &pat, None).await;
    let still = s.find_session(&newer).await.unwrap().expect("live");
    assert_eq!(still.signed_out_of, vec![b.id], "a join opens nothing");
    // Signed out of A as well, while in B: the session good in A alone ends, two newer ones
    // are refused in A. Then B lets pat go: they would be good nowhere, so the removal ends
    // them.
    let secrets: Vec<String> = (0..2)
        .map(|i| format!("axs_contract_{i}_{}", pat.id.as_uuid().simple()))
        .collect();
    for (i, secret) in secrets.iter().enumerate() {
        s.create_session(
            &session(pat.id, 2 + i as i64),
            &security_policy::hash_token(secret),
            10,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        s.end_sessions_in(a.id, pat.id, None, now(), &records)
            .await
            .unwrap(),
        3
    );
    assert!(
        s.find_session(&newer).await.unwrap().is_none(),
        "good in A alone"
    );
    let hashes: Vec<String> = secrets
        .iter()
        .map(|x| security_policy::hash_token(x))
        .collect();
    let found = |i: usize| s.find_session(&hashes[i]);
    assert_eq!(found(0).await.unwrap().unwrap().signed_out_of, vec![a.id]);
    let hb = head(s, b.id).await;
    s.remove_member(
        b.id,
        pat.id,
        Disposition::Delete,
        now(),
        None,
        note(b.id, "out"),
        &in_b,
    )
    .await
    .map(|r| {
        assert_eq!(
            r.sessions_ended, 2,
            "signed out of A, out of B: good nowhere"
        )
    })
    .unwrap();
    assert_eq!(
        head(s, b.id).await,
        hb + 3,
        "the removal's record and one for each session it ended"
    );
    let revoked = s
        .search(
            b.id,
            &audit::AuditQuery {
                action: Some(audit::ActionFilter::Exact("auth.session_revoked".into())),
                limit: 10,
                ..audit::AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert!(found(0).await.unwrap().is_none() && found(1).await.unwrap().is_none());
    let refused = crate::accounts::authenticate(
        s,
        &secrets[0],
        crate::accounts::ClientAddress::Anywhere("127.0.0.1"),
        now(),
    )
    .await;
    assert!(
        matches!(refused, Err(TenancyError::Unauthenticated)),
        "{refused:?}"
    );
    assert_eq!(
        s.end_sessions_in(a.id, pat.id, None, now(), &records)
            .await
            .unwrap(),
        0,
        "nothing left to sign out of"
    );
}

/// A sign-out of a member, by an Owner or Admin, is checked again with its write: an author
/// demoted since the service looked is refused, and so is an Admin signing out someone who
/// has become the Owner; nothing is ended or recorded then.
async fn a_sign_out_checks_its_author_in_the_write<
    S: TenancyStore + AuditStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, owner) = new_org(s).await;
    let admin = user("admin-signing-out");
    s.add_member(
        org.id,
        &admin,
        Some("h"),
        OrgRole::Admin,
        team.id,
        TeamRole::Admin,
        &enterprise(),
        note(org.id, "admin"),
    )
    .await
    .unwrap();
    let pat = user("pat-signed-out");
    add_user(s, org.id, team.id, &pat, Some("h")).await;
    for (u, hash) in [(owner.id, "so-owner"), (pat.id, "so-pat")] {
        s.create_session(
            &session(u, 0),
            &format!("{hash}-{u}"),
            10,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    let one = |n: u64| {
        (0..n).fold(Journal::default(), |j, _| {
            j.and_record(NewAuditEvent::new(
                org.id,
                now(),
                Actor::system(),
                AuditAction::SessionRevoked,
                Target::new("contract", "sign-out", ""),
            ))
        })
    };
    let h = head(s, org.id).await;
    // The Owner's sessions are the Owner's: an Admin is refused.
    let refused = s
        .end_sessions_in(org.id, owner.id, Some(admin.id), now(), &one)
        .await;
    assert!(
        matches!(refused, Err(TenancyError::Forbidden(_))),
        "{refused:?}"
    );
    // An Admin demoted meanwhile signs no one out.
    s.set_role(
        org.id,
        admin.id,
        OrgRole::Admin,
        OrgRole::User,
        None,
        note(org.id, "demoted"),
    )
    .await
    .unwrap();
    let h_demoted = head(s, org.id).await;
    assert_eq!(h_demoted, h + 1, "only the demotion was recorded");
    let refused = s
        .end_sessions_in(org.id, pat.id, Some(admin.id), now(), &one)
        .await;
    assert!(
        matches!(
            refused,
            Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
        ),
        "{refused:?}"
    );
    assert_eq!(head(s, org.id).await, h_demoted);
    assert!(
        s.find_session(&format!("so-pat-{}", pat.id))
            .await
            .unwrap()
            .is_some()
    );
    // The Owner signs out anyone, themselves included.
    for u in [pat.id, owner.id] {
        assert_eq!(
            s.end_sessions_in(org.id, u, Some(owner.id), now(), &one)
                .await
                .unwrap(),
            1
        );
    }
    assert_eq!(head(s, org.id).await, h_demoted + 2);
}

/// A membership deactivated through SCIM counts as gone when a sign-out asks where else the
/// person is active: the session ends rather than staying live for an organization that does
/// not let them in. Both stores read "active" from their own data; this holds them to one rule.
async fn a_deactivated_membership_keeps_no_session_alive<
    S: TenancyStore + AuditStore + MembershipStore + crate::scim::ScimStore + ?Sized,
>(
    s: &S,
) {
    use crate::scim::MemberWrite;
    let (a, a_team, _) = new_org(s).await;
    let (b, b_team, b_owner) = new_org(s).await;
    let dee = user("dee");
    let rec = record(dee.id, &format!("dee-{}", dee.id), 1);
    s.provision_member(
        b.id,
        &dee,
        None,
        &rec,
        OrgRole::User,
        true,
        b_team.id,
        &enterprise(),
        Some(b_owner.id),
        note(b.id, "dee"),
    )
    .await
    .unwrap();
    add_user(s, a.id, a_team.id, &dee, None).await;
    let hash = format!("deactivated-{}", dee.id);
    s.create_session(
        &session(dee.id, 0),
        &hash,
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let off = MemberWrite {
        org: b.id,
        user: dee.id,
        expected_version: Some(1),
        record: crate::scim::UserRecord {
            version: 2,
            ..rec.clone()
        },
        name: dee.name.clone(),
        email: dee.email.clone(),
        password_hash: None,
        role: None,
        active: Some(false),
        by: Some(b_owner.id),
        now: now(),
    };
    let counted = std::sync::Mutex::new(Vec::new());
    let report = s
        .write_member(&off, note(b.id, "deactivate"), &|n| {
            counted.lock().unwrap().push(n);
            Journal::default()
        })
        .await
        .unwrap();
    assert_eq!(report.sessions_ended, 0, "still active in A");
    assert_eq!(
        *counted.lock().unwrap(),
        [1],
        "the session signed out of B is recorded too"
    );
    let kept = s.find_session(&hash).await.unwrap().expect("good in A");
    assert_eq!(
        kept.signed_out_of,
        vec![b.id],
        "signed out of B: reactivation does not open B to it again"
    );
    let records = |n: u64| {
        (0..n).fold(Journal::default(), |j, _| {
            j.and_record(NewAuditEvent::new(
                a.id,
                now(),
                Actor::system(),
                AuditAction::SessionRevoked,
                Target::new("member", dee.id, "dee"),
            ))
        })
    };
    assert_eq!(
        s.end_sessions_in(a.id, dee.id, None, now(), &records)
            .await
            .unwrap(),
        1
    );
    assert!(
        s.find_session(&hash).await.unwrap().is_none(),
        "deactivated in B, signed out of A: good nowhere, so it ends"
    );
    // Removed from A while deactivated in B: the deactivated membership keeps nothing alive.
    let eve = user("eve");
    let eve_rec = record(eve.id, &format!("eve-{}", eve.id), 1);
    s.provision_member(
        b.id,
        &eve,
        None,
        &eve_rec,
        OrgRole::User,
        true,
        b_team.id,
        &enterprise(),
        Some(b_owner.id),
        note(b.id, "eve"),
    )
    .await
    .unwrap();
    add_user(s, a.id, a_team.id, &eve, None).await;
    let eves = format!("deactivated-{}", eve.id);
    s.create_session(
        &session(eve.id, 0),
        &eves,
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let off = MemberWrite {
        user: eve.id,
        record: crate::scim::UserRecord {
            version: 2,
            ..eve_rec.clone()
        },
        name: eve.name.clone(),
        email: eve.email.clone(),
        ..off
    };
    s.write_member(&off, note(b.id, "deactivate eve"), &|_| Journal::default())
        .await
        .unwrap();
    let removed = s
        .remove_member(
            a.id,
            eve.id,
            Disposition::Delete,
            now(),
            None,
            note(a.id, "eve out"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    assert_eq!(removed.sessions_ended, 1);
    assert!(s.find_session(&eves).await.unwrap().is_none());
    // Someone who is not a member of A is not signed out of it: their sessions stay.
    let (_, _, outsider) = new_org(s).await;
    let theirs = format!("outsider-{}", outsider.id);
    s.create_session(
        &session(outsider.id, 0),
        &theirs,
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let h = head(s, a.id).await;
    assert!(matches!(
        s.end_sessions_in(a.id, outsider.id, None, now(), &records)
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(s.find_session(&theirs).await.unwrap().is_some());
    assert_eq!(head(s, a.id).await, h, "nothing recorded");
}

async fn live_sessions_come_in_pages<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, _, owner) = new_org(s).await;
    let (_, _, stranger) = new_org(s).await;
    // Five sessions: two logged in at the same moment (their ids decide), one ended.
    let mut made: Vec<Session> = [0, 5, 5, 9, 12]
        .iter()
        .map(|m| session(owner.id, *m))
        .collect();
    for (i, x) in made.iter().enumerate() {
        s.create_session(
            x,
            &format!("page-{}-{i}", owner.id),
            10,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    let theirs = session(stranger.id, 1);
    s.create_session(
        &theirs,
        &format!("page-{}", stranger.id),
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let gone = made.remove(3);
    s.end_session(owner.id, gone.id, now(), note(org.id, "ended"))
        .await
        .unwrap();
    made.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
    let expected: Vec<SessionId> = made.iter().map(|x| x.id).collect();
    let whole: Vec<SessionId> = s
        .list_sessions(owner.id)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(whole, expected, "live ones, newest first, ties by id");
    for limit in 1..=5u32 {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = s.list_sessions_page(owner.id, before, limit).await.unwrap();
            assert!(page.len() <= limit as usize);
            before = page.last().map(|x| x.id);
            let done = page.len() < limit as usize;
            all.extend(page.into_iter().map(|x| x.id));
            if done {
                break;
            }
        }
        assert_eq!(all, expected, "pages of {limit}");
    }
    // After an ended session: the live ones older than it.
    let after_gone: Vec<SessionId> = s
        .list_sessions_page(owner.id, Some(gone.id), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(after_gone, expected[1..].to_vec());
    // Someone else's session, or none, is no cursor.
    for cursor in [theirs.id, SessionId::new()] {
        assert!(matches!(
            s.list_sessions_page(owner.id, Some(cursor), 10).await,
            Err(TenancyError::NotFound(_))
        ));
    }
}

async fn sessions_evict_oldest_and_end<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, _, owner) = new_org(s).await;
    let s1 = session(owner.id, 0);
    let s2 = session(owner.id, 1);
    let s3 = session(owner.id, 2);
    assert!(
        s.create_session(&s1, "h1", 2, crate::SessionProof::Password, &|_| {
            Journal::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    assert!(
        s.create_session(&s2, "h2", 2, crate::SessionProof::Password, &|_| {
            Journal::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    let h = head(s, org.id).await;
    let records = |ended: &[SessionId]| {
        ended.iter().fold(note(org.id, "login"), |j, e| {
            j.and_record(NewAuditEvent::new(
                org.id,
                now(),
                Actor::system(),
                AuditAction::SessionRevoked,
                Target::new("session", e.to_string(), ""),
            ))
        })
    };
    assert_eq!(
        s.create_session(&s3, "h3", 2, crate::SessionProof::Password, &records)
            .await
            .unwrap(),
        vec![s1.id]
    );
    assert_eq!(
        head(s, org.id).await,
        h + 2,
        "the login and the eviction it made are recorded together"
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
    assert!(
        s.session_with_user("h2").await.unwrap().is_none(),
        "an ended session authenticates no one"
    );
    let (found, user) = s.session_with_user("h3").await.unwrap().unwrap();
    assert_eq!((found.id, user), (s3.id, owner));
}

async fn api_keys_limit_scope_and_revoke<S: TenancyStore + AuditStore + ?Sized>(s: &S) {
    let (org, team, owner) = new_org(s).await;
    let key = |name: &str, by: UserId| ApiKey {
        id: ApiKeyId::new(),
        org: org.id,
        team: team.id,
        scope: crate::KeyScope::Organization,
        created_by: by,
        name: name.into(),
        prefix: "axk_1234".into(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    let k1 = key("one", owner.id);
    let colleague = user("colleague");
    s.add_member(
        org.id,
        &colleague,
        Some("h"),
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &limits(10),
        note(org.id, "colleague"),
    )
    .await
    .unwrap();
    let k2 = ApiKey {
        scope: crate::KeyScope::Team,
        ..key("two", colleague.id)
    };
    // Someone no longer a member (removed since the service looked) creates no key.
    assert!(matches!(
        s.create_api_key(
            &key("stray", UserId::new()),
            "kh-stray",
            &keys(9),
            note(org.id, "stray")
        )
        .await,
        Err(TenancyError::NotFound("member"))
    ));
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
    // Nor a team of another organization (the store is what refuses it: the permission check
    // of an Admin, or of someone with a role in every team, passes for any team id).
    let (_, their_team, _) = new_org(s).await;
    let foreign_team = ApiKey {
        team: their_team.id,
        ..key("y", owner.id)
    };
    assert!(matches!(
        s.create_api_key(&foreign_team, "khy", &keys(9), note(org.id, "y"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(s.find_api_key("khy").await.unwrap().is_none());
    assert_eq!(s.find_api_key("kh1").await.unwrap().unwrap(), k1);
    assert_eq!(
        s.find_api_key("kh2").await.unwrap().unwrap(),
        k2,
        "its scope too"
    );
    // Narrowed to what a User sees: their own keys in their teams, every key of the teams they
    // administer.
    let seen = |own_in: Option<Vec<TeamId>>, all_in: Vec<TeamId>| async move {
        s.list_api_keys_seen_by(org.id, colleague.id, own_in.as_deref(), &all_in, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect::<Vec<_>>()
    };
    let mut both = vec![k1.id, k2.id];
    both.sort_by_key(ToString::to_string);
    assert_eq!(seen(Some(vec![team.id]), vec![]).await, [k2.id]);
    assert_eq!(seen(None, vec![]).await, [k2.id]);
    assert!(seen(Some(vec![]), vec![]).await.is_empty());
    assert!(seen(Some(vec![TeamId::new()]), vec![]).await.is_empty());
    assert_eq!(seen(Some(vec![]), vec![team.id]).await, both);
    assert_eq!(
        s.list_api_keys_seen_by(org.id, colleague.id, None, &[team.id], Some(both[0]), 10)
            .await
            .unwrap()
            .iter()
            .map(|k| k.id)
            .collect::<Vec<_>>(),
        [both[1]],
        "after the cursor"
    );
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
    assert_eq!(s.active_api_key_count(org.id).await.unwrap(), 2);
    assert_eq!(s.active_api_key_count(OrgId::new()).await.unwrap(), 0);
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
    assert_eq!(
        s.active_api_key_count(org.id).await.unwrap(),
        1,
        "a revoked key is not counted"
    );
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
    let (org, _, owner) = new_org(s).await;
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), None);
    let state = security_policy::ThrottleState {
        failures: 3,
        window_start: now(),
        locked_until: Some(now() + Duration::minutes(15)),
    };
    let h = head(s, org.id).await;
    s.set_login_throttle(owner.id, Some(&state), note(org.id, "failed"))
        .await
        .unwrap();
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), Some(state));
    assert_eq!(
        head(s, org.id).await,
        h + 1,
        "the failed login's record commits with the throttle"
    );
    let next = security_policy::ThrottleState {
        failures: 4,
        ..state
    };
    s.set_login_throttle(owner.id, Some(&next), Journal::default())
        .await
        .unwrap();
    assert_eq!(
        s.login_throttle(owner.id).await.unwrap(),
        Some(next),
        "replaced, not duplicated"
    );
    s.set_login_throttle(owner.id, None, Journal::default())
        .await
        .unwrap();
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), None);

    // Failures arriving at once each count: every one reads the count the one before it left.
    let policy = security_policy::LoginThrottlePolicy {
        max_failures: 6,
        ..Default::default()
    };
    let h = head(s, org.id).await;
    let counted = futures::future::join_all((0..6).map(|i| {
        s.count_login_failure(
            owner.id,
            &policy,
            now(),
            false,
            note(org.id, &format!("failed {i}")),
        )
    }))
    .await;
    let mut seen: Vec<u32> = counted
        .iter()
        .map(|c| c.as_ref().unwrap().failures)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    let stored = s.login_throttle(owner.id).await.unwrap().unwrap();
    assert_eq!(stored.failures, 6);
    assert_eq!(
        stored.locked_until,
        Some(now() + Duration::minutes(15)),
        "the sixth failure locks"
    );
    assert_eq!(
        head(s, org.id).await,
        h + 6,
        "each failure's record commits"
    );
    // During the lock, failures from elsewhere change nothing; a familiar address's count
    // (its allowance), the lock as it was.
    let later = now() + Duration::minutes(1);
    let elsewhere = s
        .count_login_failure(owner.id, &policy, later, false, Journal::default())
        .await
        .unwrap();
    assert_eq!(elsewhere, stored);
    let familiar = s
        .count_login_failure(owner.id, &policy, later, true, Journal::default())
        .await
        .unwrap();
    assert_eq!(
        (familiar.failures, familiar.locked_until),
        (7, stored.locked_until)
    );
    assert_eq!(s.login_throttle(owner.id).await.unwrap(), Some(familiar));

    // The addresses a person signed in from: since a time, each once, the latest used first,
    // at most a number.
    let from = |minutes: i64, ip: &str| {
        let mut x = session(owner.id, minutes);
        x.ip = ip.into();
        x
    };
    for (i, (minutes, ip)) in [
        (-60, "192.0.2.1"),
        (-6, "2001:db8::1"),
        (-5, "198.51.100.7"),
        (-1, "2001:db8::1"),
    ]
    .into_iter()
    .enumerate()
    {
        s.create_session(
            &from(minutes, ip),
            &format!("familiar-{i}"),
            10,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    let (_, _, stranger) = new_org(s).await;
    s.create_session(
        &session(stranger.id, -2),
        "familiar-stranger",
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let since = now() - Duration::minutes(10);
    assert_eq!(
        s.sign_in_addresses(owner.id, since, 10).await.unwrap(),
        ["2001:db8::1", "198.51.100.7"]
    );
    assert_eq!(
        s.sign_in_addresses(owner.id, since, 1).await.unwrap(),
        ["2001:db8::1"]
    );
    assert!(
        s.sign_in_addresses(UserId::new(), since, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A changed password: the addresses signed in from before it are no longer familiar.
    s.change_password_hash(
        owner.id,
        "$argon2id$changed",
        None,
        now() - Duration::minutes(3),
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.sign_in_addresses(owner.id, since, 10).await.unwrap(),
        ["2001:db8::1"]
    );
}

/// Archives `team` now, as its organization's Owner would; returns it as archived.
async fn archive_team<S: WorkspaceStore + AuditStore + ?Sized>(s: &S, team: &Team) -> Team {
    let archived = Team {
        archived_at: Some(now()),
        ..team.clone()
    };
    s.update_team(team, &archived, note(team.org, "archive"))
        .await
        .unwrap();
    archived
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
        team: None,
    }
}

/// An invitation into one team joins that team alone, round-trips its team, and is refused
/// with nothing written when the team was deleted after it was sent.
async fn team_invitations_join_their_team_alone<
    S: TenancyStore + AuditStore + InvitationStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    let (org, default, owner) = new_org(s).await;
    let client = team_in(org.id, "Client A");
    s.create_team(&client, note(org.id, "client"))
        .await
        .unwrap();
    let inv = Invitation {
        team: Some(crate::invitations::InvitedTeam {
            id: client.id,
            role: TeamRole::Viewer,
        }),
        ..invitation(org.id, owner.id, "client", 7)
    };
    s.create_invitation(&inv, "ih-team", &limits(9), note(org.id, "inv"))
        .await
        .unwrap();
    assert_eq!(s.find_invitation("ih-team").await.unwrap().unwrap(), inv);
    let stakeholder = User {
        email: inv.email.clone(),
        ..user("stakeholder")
    };
    s.accept_invitation(
        &inv,
        "ih-team",
        &stakeholder,
        Some("h"),
        client.id,
        TeamRole::Viewer,
        &limits(9),
        now(),
        note(org.id, "accept"),
    )
    .await
    .unwrap();
    let in_client: Vec<_> = s
        .team_members(org.id, client.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.member.user.id, m.role))
        .collect();
    assert_eq!(in_client, vec![(stakeholder.id, TeamRole::Viewer)]);
    assert!(
        !s.team_members(org.id, default.id)
            .await
            .unwrap()
            .iter()
            .any(|m| m.member.user.id == stakeholder.id),
        "not in the default team"
    );

    // The team is archived before the next invitee accepts: refused, nothing written, and
    // the invitation stays open; deleting the team then revokes it.
    let gone = team_in(org.id, "Client B");
    s.create_team(&gone, note(org.id, "client b"))
        .await
        .unwrap();
    let late = Invitation {
        team: Some(crate::invitations::InvitedTeam {
            id: gone.id,
            role: TeamRole::Member,
        }),
        ..invitation(org.id, owner.id, "late", 7)
    };
    s.create_invitation(&late, "ih-team-gone", &limits(9), note(org.id, "inv"))
        .await
        .unwrap();
    archive_team(s, &gone).await;
    let h = head(s, org.id).await;
    let latecomer = User {
        email: late.email.clone(),
        ..user("late")
    };
    assert!(matches!(
        s.accept_invitation(
            &late,
            "ih-team-gone",
            &latecomer,
            Some("h"),
            gone.id,
            TeamRole::Member,
            &limits(9),
            now(),
            note(org.id, "accept"),
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(
        head(s, org.id).await,
        h,
        "no record for a refused acceptance"
    );
    assert!(
        s.get_member(org.id, latecomer.id).await.unwrap().is_none(),
        "no membership"
    );
    let status = || async {
        s.find_invitation("ih-team-gone")
            .await
            .unwrap()
            .unwrap()
            .status(now())
    };
    assert_eq!(
        status().await,
        crate::invitations::InvitationStatus::Pending
    );
    s.delete_team(org.id, gone.id, now(), None, note(org.id, "delete"))
        .await
        .unwrap();
    assert_eq!(
        status().await,
        crate::invitations::InvitationStatus::Revoked,
        "a deleted team's invitations hold no seats"
    );
    // An invitation into a team that is gone (deleted as it was being sent), or archived, is
    // not stored: the deletion's sweep could not have revoked it.
    let shelved = team_in(org.id, "Client C");
    s.create_team(&shelved, note(org.id, "client c"))
        .await
        .unwrap();
    archive_team(s, &shelved).await;
    for (team, tag) in [(gone.id, "after-delete"), (shelved.id, "after-archive")] {
        let h = head(s, org.id).await;
        let after = Invitation {
            team: Some(crate::invitations::InvitedTeam {
                id: team,
                role: TeamRole::Member,
            }),
            ..invitation(org.id, owner.id, tag, 7)
        };
        assert!(matches!(
            s.create_invitation(&after, tag, &limits(9), note(org.id, "inv"))
                .await,
            Err(TenancyError::NotFound("team"))
        ));
        assert!(s.find_invitation(tag).await.unwrap().is_none());
        assert_eq!(head(s, org.id).await, h);
    }
}

async fn a_direct_add_settles_the_invitation<
    S: TenancyStore + AuditStore + InvitationStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, owner) = new_org(s).await;
    let inv = invitation(org.id, owner.id, "direct", 7);
    s.create_invitation(&inv, "ih-direct", &limits(2), note(org.id, "inv"))
        .await
        .unwrap();
    let other = invitation(org.id, owner.id, "other", 7);
    assert!(
        matches!(
            s.create_invitation(&other, "ih-other", &limits(3), note(org.id, "other"))
                .await,
            Ok(())
        ),
        "owner + 2 pending fit 3 seats"
    );
    let joined = User {
        email: inv.email.clone(),
        ..user("direct")
    };
    s.add_member(
        org.id,
        &joined,
        Some("h"),
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &limits(3),
        note(org.id, "add"),
    )
    .await
    .unwrap();
    let settled = s.find_invitation("ih-direct").await.unwrap().unwrap();
    assert_eq!(
        settled.status(now()),
        crate::invitations::InvitationStatus::Accepted
    );
    assert_eq!(
        s.find_invitation("ih-other")
            .await
            .unwrap()
            .unwrap()
            .status(now()),
        crate::invitations::InvitationStatus::Pending,
        "another person's invitation is untouched"
    );
    // Owner, the newcomer and one pending invitation: a fourth seat is free at a limit of 4.
    let third = invitation(org.id, owner.id, "third", 7);
    s.create_invitation(&third, "ih-third", &limits(4), note(org.id, "third"))
        .await
        .unwrap();
}

/// An invitation's mail not sent yet is deleted when the invitation is revoked or sent again
/// (its link no longer works), in the same transaction; other invitations' mail stays.
async fn an_invitations_unsent_mail_goes_with_its_link<
    S: TenancyStore + AuditStore + InvitationStore + audit::MailOutbox + ?Sized,
>(
    s: &S,
) {
    let (org, _, owner) = new_org(s).await;
    let with_mail = |inv: &Invitation, body: &str| {
        note(org.id, "invitation").mail(audit::OutboundMail {
            org: Some(org.id),
            to: inv.email.to_string(),
            subject: "Join us".into(),
            body: body.to_owned(),
            kind: crate::invitations::INVITATION_MAIL.into(),
        })
    };
    let (ann, bob) = (
        invitation(org.id, owner.id, "ann", 7),
        invitation(org.id, owner.id, "bob", 7),
    );
    for (inv, hash) in [(&ann, "ih-mail-ann"), (&bob, "ih-mail-bob")] {
        s.create_invitation(inv, hash, &limits(9), with_mail(inv, "first link"))
            .await
            .unwrap();
    }
    let queued_to = |inv: &Invitation| {
        let to = inv.email.to_string();
        async move {
            s.list_mails(Some(org.id), None, 100)
                .await
                .unwrap()
                .into_iter()
                .filter(|m| m.to == to && m.sent_at.is_none())
                .map(|m| m.body)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(queued_to(&ann).await, ["first link"]);
    s.reissue_invitation(
        org.id,
        ann.id,
        owner.id,
        "ih-mail-ann-2",
        now(),
        now() + Duration::days(7),
        with_mail(&ann, "second link"),
    )
    .await
    .unwrap();
    assert_eq!(
        queued_to(&ann).await,
        ["second link"],
        "the old link's mail went"
    );
    s.revoke_invitation(org.id, ann.id, now(), note(org.id, "revoke"))
        .await
        .unwrap();
    assert!(queued_to(&ann).await.is_empty(), "revoked: nothing to send");
    assert_eq!(queued_to(&bob).await, ["first link"], "another's stays");
    // An expired invitation beside a newer one to the same address: revoking the expired one
    // leaves the newer one's mail.
    let old = invitation(org.id, owner.id, "cy", -3);
    s.create_invitation(&old, "ih-mail-cy-old", &limits(9), note(org.id, "old"))
        .await
        .unwrap();
    let new = Invitation {
        id: rbac_core::InvitationId::new(),
        email: old.email.clone(),
        expires_at: now() + Duration::days(7),
        ..old.clone()
    };
    s.create_invitation(
        &new,
        "ih-mail-cy-new",
        &limits(9),
        with_mail(&new, "live link"),
    )
    .await
    .unwrap();
    s.revoke_invitation(org.id, old.id, now(), note(org.id, "tidy"))
        .await
        .unwrap();
    assert_eq!(queued_to(&new).await, ["live link"]);
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
    // The inviter's rights are checked with the write: someone no longer an admin member
    // (demoted or removed since the service checked) invites nobody.
    let by_outsider = Invitation {
        invited_by: UserId::new(),
        ..invitation(org.id, owner.id, "d", 7)
    };
    assert!(matches!(
        s.create_invitation(&by_outsider, "ih-d", &limits(10), note(org.id, "d"))
            .await,
        Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
    ));
    assert_eq!(s.find_invitation("ih-a").await.unwrap().unwrap(), a);
    assert_eq!(s.list_invitations(org.id, None, 10).await.unwrap().len(), 2);
    // Sent again by someone no longer an admin (demoted or removed since the service checked):
    // refused, and the link stays as it was.
    assert!(matches!(
        s.reissue_invitation(
            org.id,
            a.id,
            UserId::new(),
            "ih-outsider",
            now(),
            now() + Duration::days(7),
            note(org.id, "resend by outsider"),
        )
        .await,
        Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
    ));
    assert_eq!(s.find_invitation("ih-a").await.unwrap().unwrap(), a);
    // One that has expired by the time it is sent again stays expired: its seat may be taken.
    assert!(matches!(
        s.reissue_invitation(
            org.id,
            a.id,
            owner.id,
            "ih-late",
            a.expires_at,
            a.expires_at + Duration::days(7),
            note(org.id, "late resend"),
        )
        .await,
        Err(TenancyError::NotFound(_))
    ));
    s.reissue_invitation(
        org.id,
        a.id,
        owner.id,
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
    // The seats are counted for the whole batch: the Owner and two more are one too many for
    // three seats less one.
    assert!(matches!(
        s.confirm_preview(
            org.id,
            preview.id,
            &[(x.clone(), "bh-x".into()), (y.clone(), "bh-y".into())],
            &limits(2),
            now(),
            note(org.id, "bulk")
        )
        .await,
        Err(TenancyError::LimitReached { .. })
    ));
    // A member's address is refused, whichever row holds it.
    let to_owner = Invitation {
        id: rbac_core::InvitationId::new(),
        email: owner.email.clone(),
        ..x.clone()
    };
    assert!(matches!(
        s.confirm_preview(
            org.id,
            preview.id,
            &[(x.clone(), "bh-x".into()), (to_owner, "bh-owner".into())],
            &limits(20),
            now(),
            note(org.id, "bulk")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(s.find_invitation("bh-x").await.unwrap().is_none());
    assert_eq!(head(s, org.id).await, before);
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
    S: TenancyStore + AuditStore + InvitationStore + MembershipStore + crate::scim::ScimStore + ?Sized,
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
        None,
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
            None,
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
    // Checked with the write: the proposer must still be the Owner, the recipient a member.
    let not_owner = OwnershipTransfer {
        from: m.id,
        ..t.clone()
    };
    assert!(matches!(
        s.save_transfer(&not_owner, note(org.id, "stale proposal"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    let not_member = OwnershipTransfer {
        to: UserId::new(),
        ..t.clone()
    };
    assert!(matches!(
        s.save_transfer(&not_member, note(org.id, "stale proposal"))
            .await,
        Err(TenancyError::NotFound("member"))
    ));
    assert_eq!(s.pending_transfer(org.id).await.unwrap(), None);
    s.save_transfer(&t, note(org.id, "propose")).await.unwrap();
    assert_eq!(s.pending_transfer(org.id).await.unwrap(), Some(t.clone()));
    // A SCIM token the Admin created goes with their demotion (only an Owner's or Admin's
    // work), and does not come back with a later promotion.
    let admins_token = crate::scim::ScimToken {
        id: rbac_core::ScimTokenId::new(),
        org: org.id,
        name: "Entra".into(),
        prefix: "axs_m".into(),
        created_by: m.id,
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    s.create_scim_token(&admins_token, "m-scim", Journal::default())
        .await
        .unwrap();
    // Demoting the recipient (an Admin's doing, say) leaves the Owner's proposal standing:
    // only the Owner withdraws it, or the recipient's removal or deactivation.
    s.set_role(
        org.id,
        m.id,
        OrgRole::Admin,
        OrgRole::User,
        None,
        note(org.id, "demote"),
    )
    .await
    .unwrap();
    assert!(s.find_scim_token("m-scim").await.unwrap().is_none());
    // Nor is a token stored for them after the demotion committed (their request checked
    // their role before it): it would outlive the revocation.
    let late = crate::scim::ScimToken {
        id: rbac_core::ScimTokenId::new(),
        ..admins_token.clone()
    };
    assert!(matches!(
        s.create_scim_token(&late, "m-scim-late", note(org.id, "late token"))
            .await,
        Err(TenancyError::RoleRule(_))
    ));
    assert!(s.find_scim_token("m-scim-late").await.unwrap().is_none());
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
                None,
                note(org.id, "owner"),
                &|_| Journal::default()
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
        scope: crate::KeyScope::Organization,
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
    let token = crate::scim::ScimToken {
        id: rbac_core::ScimTokenId::new(),
        org: org.id,
        name: "Okta".into(),
        prefix: "axs_rk1".into(),
        created_by: owner.id,
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    s.create_scim_token(&token, "rk-scim", note(org.id, "scim token"))
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
            None,
            note(org.id, "remove"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    assert_eq!((r.api_keys_deactivated, r.scim_tokens_revoked), (1, 1));
    assert!(s.get_member(org.id, owner.id).await.unwrap().is_none());
    assert!(s.find_api_key("rk1").await.unwrap().is_none());
    assert!(
        s.find_scim_token("rk-scim").await.unwrap().is_none(),
        "the removed member's SCIM token is revoked with the removal"
    );
    let inv = s.find_invitation("rk-inv").await.unwrap().unwrap();
    assert_eq!(
        inv.status(now()),
        InvitationStatus::Revoked,
        "a removed admin's pending invitations stop working"
    );
}

/// Adds `u` to `org` as a User and a member of `team` (with `hash`, a new account; without, an
/// existing one joins).
async fn add_user<S: TenancyStore + AuditStore + ?Sized>(
    s: &S,
    org: OrgId,
    team: TeamId,
    u: &User,
    hash: Option<&str>,
) {
    s.add_member(
        org,
        u,
        hash,
        OrgRole::User,
        team,
        TeamRole::Member,
        &enterprise(),
        note(org, &u.name),
    )
    .await
    .unwrap();
}

fn team_in(org: OrgId, name: &str) -> Team {
    Team {
        id: TeamId::new(),
        org,
        name: name.to_owned(),
        is_default: false,
        created_at: now(),
        archived_at: None,
    }
}

fn chat(org: OrgId, team: TeamId, by: UserId, name: &str) -> Asset {
    Asset {
        id: rbac_core::ResourceId::new(),
        org,
        team,
        name: name.to_owned(),
        parent: None,
        created_by: by,
        created_at: now(),
        updated_at: now(),
        size_bytes: 0,
        details: AssetDetails::ChatInterface {
            description: String::new(),
            instructions: String::new(),
        },
        archived_at: None,
    }
}

/// A beat within the tolerance of its instance's latest one extends that span; a later one, or
/// one before it (a clock set back), starts a new span, which the next beats extend; a
/// window's spans come with the latest one that ended before it and the first that started
/// after it.
async fn uptime_spans_extend_within_the_tolerance_and_start_anew_after_it<
    S: crate::uptime::UptimeStore + ?Sized,
>(
    s: &S,
) {
    use crate::uptime::UptimeSpan;
    use chrono::TimeZone;
    // A month no other check writes beats in (the beats are the whole service's).
    let base = Utc.with_ymd_and_hms(2031, 3, 1, 0, 0, 0).unwrap();
    let at = |m: i64| base + Duration::minutes(m);
    let tolerance = Duration::seconds(90);
    let (a, b) = (
        format!("a-{}", UserId::new()),
        format!("b-{}", UserId::new()),
    );
    let span = |i: &str, from: i64, to: i64| UptimeSpan {
        instance: i.to_owned(),
        started_at: at(from),
        last_seen: at(to),
    };
    for m in [0, 1, 2] {
        s.note_up(&a, at(m), tolerance).await.unwrap();
    }
    s.note_up(&b, at(5), tolerance).await.unwrap();
    s.note_up(&b, at(6), tolerance).await.unwrap();
    // Eight minutes without a beat: a new span.
    s.note_up(&a, at(10), tolerance).await.unwrap();
    // Its clock set back a minute: a new span too, the one it would fall into left as it was,
    // and the next beat extends the new one.
    s.note_up(&a, at(9), tolerance).await.unwrap();
    s.note_up(&a, at(9) + Duration::seconds(30), tolerance)
        .await
        .unwrap();
    let back = UptimeSpan {
        last_seen: at(9) + Duration::seconds(30),
        ..span(&a, 9, 9)
    };
    assert_eq!(
        s.uptime_spans(at(0), at(60)).await.unwrap(),
        vec![
            span(&a, 0, 2),
            span(&b, 5, 6),
            back.clone(),
            span(&a, 10, 10)
        ]
    );
    // The latest span that ended before the window comes first.
    assert_eq!(
        s.uptime_spans(at(7), at(60)).await.unwrap(),
        vec![span(&b, 5, 6), back.clone(), span(&a, 10, 10)]
    );
    // And the first that started after it last.
    assert_eq!(
        s.uptime_spans(at(3), at(5)).await.unwrap(),
        vec![span(&a, 0, 2), span(&b, 5, 6)]
    );
    assert_eq!(
        s.uptime_spans(base - Duration::days(1), base)
            .await
            .unwrap(),
        vec![span(&a, 0, 2)]
    );

    // Declared outages: the first start and the first end are kept.
    use crate::uptime::DeclaredOutage;
    let reference = format!("outage-{}", UserId::new());
    let declared = |to: Option<i64>| DeclaredOutage {
        reference: reference.clone(),
        started_at: at(20),
        ended_at: to.map(at),
    };
    assert!(matches!(
        s.declare_outage(&reference, at(25), true).await,
        Err(TenancyError::NotFound(_))
    ));
    s.declare_outage(&reference, at(20), false).await.unwrap();
    s.declare_outage(&reference, at(21), false).await.unwrap();
    assert_eq!(
        s.declared_outages(at(0), at(60)).await.unwrap(),
        vec![declared(None)]
    );
    assert!(matches!(
        s.declare_outage(&reference, at(19), true).await,
        Err(TenancyError::Invalid(_))
    ));
    s.declare_outage(&reference, at(30), true).await.unwrap();
    s.declare_outage(&reference, at(35), true).await.unwrap();
    assert_eq!(
        s.declared_outages(at(30), at(60)).await.unwrap(),
        vec![declared(Some(30))]
    );
    // Over: its reference starts no new outage.
    assert!(matches!(
        s.declare_outage(&reference, at(40), false).await,
        Err(TenancyError::Conflict(_))
    ));
    // Over before the window, or begun after it: not in it.
    assert_eq!(s.declared_outages(at(31), at(60)).await.unwrap(), vec![]);
    assert_eq!(s.declared_outages(at(0), at(20)).await.unwrap(), vec![]);
}

/// The organization's pipeline as stored gates every creation and transfer of a chat
/// interface (`crate::pipeline::check_entry`, unit-tested whole): created only in the first
/// stage, moved forward one stage at a time, back to the first at any time; a change of the
/// pipeline commits with its record, refuses an archived or foreign team, and its removal
/// lifts the gate.
async fn a_chat_interface_passes_the_pipeline_one_stage_at_a_time<
    S: TenancyStore + AuditStore + WorkspaceStore + crate::pipeline::PipelineStore + ?Sized,
>(
    s: &S,
) {
    use crate::pipeline::Pipeline;
    let (org, _, owner) = new_org(s).await;
    let [dev, test, prod] = ["Development", "Testing", "Production"].map(|n| team_in(org.id, n));
    for t in [&dev, &test, &prod] {
        s.create_team(t, note(org.id, "team")).await.unwrap();
    }
    let pipeline = |stages: Vec<TeamId>| Pipeline {
        org: org.id,
        stages,
        updated_by: owner.id,
        updated_at: now(),
    };
    assert_eq!(s.pipeline(org.id).await.unwrap(), None);
    let h = head(s, org.id).await;
    let set = pipeline(vec![dev.id, test.id, prod.id]);
    s.set_pipeline(org.id, Some(&set), note(org.id, "pipeline"))
        .await
        .unwrap();
    assert_eq!(s.pipeline(org.id).await.unwrap(), Some(set));
    assert_eq!(head(s, org.id).await, h + 1, "recorded with the change");

    let agent = chat(org.id, dev.id, owner.id, "Support agent");
    s.create_asset(&agent, &enterprise(), note(org.id, "agent"))
        .await
        .unwrap();
    // Not created in a later stage, nor together with one made in the first.
    let h = head(s, org.id).await;
    assert!(matches!(
        s.create_asset(&chat(org.id, prod.id, owner.id, "Shortcut"), &enterprise(), note(org.id, "x"))
            .await,
        Err(TenancyError::Conflict(m)) if m.contains("quality gate")
    ));
    let two = [
        chat(org.id, dev.id, owner.id, "Fine"),
        chat(org.id, test.id, owner.id, "Not"),
    ];
    assert!(matches!(
        s.create_assets(&two, &enterprise(), note(org.id, "x"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(
        s.get_asset(org.id, two[0].id).await.unwrap().is_none(),
        "none of them"
    );
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    // Other kinds are not gated.
    let mut kb = kb_under(&agent, owner.id);
    kb.parent = None;
    kb.team = prod.id;
    s.create_asset(&kb, &enterprise(), note(org.id, "kb"))
        .await
        .unwrap();

    let mv = |from: &Team, to: &Team| AssetTransfer {
        asset: agent.id,
        org: org.id,
        from_team: from.id,
        to_team: to.id,
        from_name: agent.name.clone(),
        to_name: agent.name.clone(),
        by: owner.id,
        at: now(),
        note: None,
    };
    // Development straight to Production: refused, the agent stays.
    assert!(matches!(
        s.transfer_asset(&mv(&dev, &prod), note(org.id, "skip")).await,
        Err(TenancyError::Conflict(m)) if m.contains("quality gate")
    ));
    assert_eq!(
        s.get_asset(org.id, agent.id).await.unwrap().unwrap().team,
        dev.id
    );
    for (from, to) in [(&dev, &test), (&test, &prod), (&prod, &dev)] {
        s.transfer_asset(&mv(from, to), note(org.id, "step"))
            .await
            .unwrap();
    }
    assert_eq!(
        s.get_asset(org.id, agent.id).await.unwrap().unwrap().team,
        dev.id
    );

    // An archived team or one of another organization is no stage; the pipeline stays.
    let archived = Team {
        archived_at: Some(now()),
        ..test.clone()
    };
    s.update_team(&test, &archived, note(org.id, "archived"))
        .await
        .unwrap();
    assert!(matches!(
        s.set_pipeline(
            org.id,
            Some(&pipeline(vec![dev.id, test.id])),
            note(org.id, "x")
        )
        .await,
        Err(TenancyError::Archived(_))
    ));
    let (other, other_team, _) = new_org(s).await;
    assert!(matches!(
        s.set_pipeline(
            org.id,
            Some(&pipeline(vec![dev.id, other_team.id])),
            note(org.id, "x")
        )
        .await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(
        s.pipeline(org.id).await.unwrap().unwrap().stages,
        [dev.id, test.id, prod.id]
    );
    assert_eq!(s.pipeline(other.id).await.unwrap(), None);

    // A stage is not deleted; once the pipeline is removed it may be.
    assert!(matches!(
        s.delete_team(org.id, prod.id, now(), None, note(org.id, "x")).await,
        Err(TenancyError::Conflict(m)) if m.contains("pipeline")
    ));
    // Removed: nothing is gated; a second removal finds none.
    s.set_pipeline(org.id, None, note(org.id, "removed"))
        .await
        .unwrap();
    assert_eq!(s.pipeline(org.id).await.unwrap(), None);
    s.create_asset(
        &chat(org.id, prod.id, owner.id, "Direct"),
        &enterprise(),
        note(org.id, "x"),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.set_pipeline(org.id, None, note(org.id, "again")).await,
        Err(TenancyError::NotFound(_))
    ));
    // No stage any more: the (empty) team is deleted.
    s.delete_team(org.id, test.id, now(), None, note(org.id, "deleted"))
        .await
        .unwrap();
}

fn kb_under(parent: &Asset, by: UserId) -> Asset {
    Asset {
        id: rbac_core::ResourceId::new(),
        parent: Some(parent.id),
        created_by: by,
        name: format!("{} knowledge", parent.name),
        details: AssetDetails::KnowledgeBase {
            description: String::new(),
        },
        ..parent.clone()
    }
}

fn doc_in(kb: &Asset, by: UserId, bytes: u64) -> Asset {
    Asset {
        id: rbac_core::ResourceId::new(),
        parent: Some(kb.id),
        created_by: by,
        name: "faq.md".into(),
        size_bytes: bytes,
        details: AssetDetails::Document {
            content_type: "text/markdown".into(),
            sha256: "00".repeat(32),
        },
        ..kb.clone()
    }
}

fn enterprise() -> billing_limits::PlanLimits {
    billing_limits::PlanLimits::for_plan(Plan::Enterprise)
}

async fn teams_round_trip<
    S: TenancyStore + AuditStore + WorkspaceStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (org, default, owner) = new_org(s).await;
    let dev = team_in(org.id, "Development");
    s.create_team(&dev, note(org.id, "dev")).await.unwrap();
    let h = head(s, org.id).await;
    let dup = team_in(org.id, "Development");
    assert!(matches!(
        s.create_team(&dup, note(org.id, "dup")).await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(
        head(s, org.id).await,
        h,
        "a refused create leaves no record"
    );
    // The same name in another organization is fine.
    let (other, _, _) = new_org(s).await;
    s.create_team(&team_in(other.id, "Development"), note(other.id, "dev"))
        .await
        .unwrap();
    let names: Vec<String> = s
        .list_teams(org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["Default".to_owned(), "Development".to_owned()]);
    assert_eq!(
        s.get_team(other.id, dev.id).await.unwrap(),
        None,
        "teams are scoped to their organization"
    );

    // Compare-and-swap updates.
    let archived = Team {
        archived_at: Some(now()),
        name: "Dev".into(),
        ..dev.clone()
    };
    s.update_team(&dev, &archived, note(org.id, "archive"))
        .await
        .unwrap();
    assert!(matches!(
        s.update_team(
            &dev,
            &Team {
                name: "Stale".into(),
                ..dev.clone()
            },
            note(org.id, "stale")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(
        s.get_team(org.id, dev.id).await.unwrap(),
        Some(archived.clone())
    );
    let dev = Team {
        archived_at: None,
        ..archived.clone()
    };
    s.update_team(&archived, &dev, note(org.id, "restore"))
        .await
        .unwrap();
    assert!(matches!(
        s.update_team(
            &dev,
            &Team {
                name: "Default".into(),
                ..dev.clone()
            },
            note(org.id, "clash")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));

    // Team roles: only for organization members.
    let lisa = user("lisa");
    s.add_member(
        org.id,
        &lisa,
        Some("h"),
        OrgRole::User,
        default.id,
        TeamRole::Member,
        &enterprise(),
        note(org.id, "lisa"),
    )
    .await
    .unwrap();
    s.set_team_member(
        org.id,
        dev.id,
        lisa.id,
        Some(TeamRole::Viewer),
        note(org.id, "add"),
    )
    .await
    .unwrap();
    s.set_team_member(
        org.id,
        dev.id,
        lisa.id,
        Some(TeamRole::Admin),
        note(org.id, "promote"),
    )
    .await
    .unwrap();
    let members = s.team_members(org.id, dev.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].member.user.id, members[0].role),
        (lisa.id, TeamRole::Admin)
    );
    assert!(
        s.team_roles(org.id, lisa.id)
            .await
            .unwrap()
            .contains(&(dev.id, TeamRole::Admin))
    );
    let stranger = user("stranger");
    assert!(matches!(
        s.set_team_member(
            org.id,
            dev.id,
            stranger.id,
            Some(TeamRole::Member),
            note(org.id, "x")
        )
        .await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(matches!(
        s.set_team_member(
            other.id,
            dev.id,
            owner.id,
            Some(TeamRole::Member),
            note(other.id, "x")
        )
        .await,
        Err(TenancyError::NotFound(_))
    ));

    // An archived team keeps its people, who may get another role or leave, and takes no one
    // new (read in the store's transaction); restored, it takes people again.
    let shelved = archive_team(s, &dev).await;
    // Someone with a viewer's role in every team is in it already.
    let viv = user("viv");
    add_user(s, org.id, default.id, &viv, Some("h")).await;
    s.set_all_teams_role(
        org.id,
        viv.id,
        None,
        Some(TeamRole::Viewer),
        None,
        note(org.id, "viv everywhere"),
    )
    .await
    .unwrap();
    let h = head(s, org.id).await;
    s.set_team_member(
        org.id,
        dev.id,
        viv.id,
        Some(TeamRole::Member),
        note(org.id, "viv in dev"),
    )
    .await
    .unwrap();
    s.set_team_member(org.id, dev.id, viv.id, None, note(org.id, "viv out"))
        .await
        .unwrap();
    s.set_team_member(
        org.id,
        dev.id,
        lisa.id,
        Some(TeamRole::Viewer),
        note(org.id, "demote"),
    )
    .await
    .unwrap();
    let newcomer = s
        .set_team_member(
            org.id,
            dev.id,
            owner.id,
            Some(TeamRole::Member),
            note(org.id, "x"),
        )
        .await;
    assert!(
        matches!(newcomer, Err(TenancyError::Archived(ref m)) if m.contains("archived")),
        "{newcomer:?}"
    );
    s.set_team_member(org.id, dev.id, lisa.id, None, note(org.id, "out"))
        .await
        .unwrap();
    assert!(matches!(
        s.set_team_member(
            org.id,
            dev.id,
            lisa.id,
            Some(TeamRole::Admin),
            note(org.id, "x")
        )
        .await,
        Err(TenancyError::Archived(_))
    ));
    assert_eq!(head(s, org.id).await, h + 4, "refusals leave no record");
    let left: Vec<UserId> = s
        .team_members(org.id, dev.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.member.user.id)
        .collect();
    assert_eq!(
        left,
        vec![viv.id],
        "in it through her role in every team only"
    );
    s.set_all_teams_role(
        org.id,
        viv.id,
        Some(TeamRole::Viewer),
        None,
        None,
        note(org.id, "viv back"),
    )
    .await
    .unwrap();
    assert!(s.team_members(org.id, dev.id).await.unwrap().is_empty());
    s.update_team(&shelved, &dev, note(org.id, "restore"))
        .await
        .unwrap();
    s.set_team_member(
        org.id,
        dev.id,
        lisa.id,
        Some(TeamRole::Admin),
        note(org.id, "back"),
    )
    .await
    .unwrap();

    // A team holding a resource is not deleted; an empty one is, with its roles.
    let ci = chat(org.id, dev.id, owner.id, "Agent");
    s.create_asset(&ci, &enterprise(), note(org.id, "ci"))
        .await
        .unwrap();
    assert!(matches!(
        s.delete_team(org.id, dev.id, now(), None, note(org.id, "del"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    s.delete_asset(org.id, ci.id, dev.id, None, note(org.id, "rm"))
        .await
        .unwrap();
    // With the Owner or Admin rights of someone who has none (a SCIM token whose creator was
    // demoted): refused, the team stays.
    let refused = s
        .delete_team(org.id, dev.id, now(), Some(lisa.id), note(org.id, "del"))
        .await;
    assert!(
        matches!(
            refused,
            Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
        ),
        "{refused:?}"
    );
    assert!(s.get_team(org.id, dev.id).await.unwrap().is_some());
    s.delete_team(org.id, dev.id, now(), Some(owner.id), note(org.id, "del"))
        .await
        .unwrap();
    assert_eq!(s.get_team(org.id, dev.id).await.unwrap(), None);
    assert!(s.team_members(org.id, dev.id).await.unwrap().is_empty());
    assert!(matches!(
        s.delete_team(org.id, default.id, now(), None, note(org.id, "del"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    s.set_team_member(org.id, default.id, lisa.id, None, note(org.id, "out"))
        .await
        .unwrap();
    assert!(matches!(
        s.set_team_member(org.id, default.id, lisa.id, None, note(org.id, "out"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
}

/// One person in two organizations, with three team roles in the first and one in the second:
/// [`TenancyStore::caller_memberships`] holds each organization once, with exactly its team
/// roles, and agrees with the narrower reads it stands in for.
async fn caller_memberships_gather_every_org_and_team<
    S: TenancyStore + AuditStore + WorkspaceStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (a, a_default, owner) = new_org(s).await;
    let (b, b_default, _) = new_org(s).await;
    s.add_member(
        b.id,
        &owner,
        None,
        OrgRole::Admin,
        b_default.id,
        TeamRole::Viewer,
        &enterprise(),
        note(b.id, "join"),
    )
    .await
    .unwrap();
    let mut extra = Vec::new();
    for (name, role) in [("Research", TeamRole::Member), ("Ops", TeamRole::Viewer)] {
        let t = team_in(a.id, name);
        s.create_team(&t, note(a.id, "team")).await.unwrap();
        s.set_team_member(a.id, t.id, owner.id, Some(role), note(a.id, "add"))
            .await
            .unwrap();
        extra.push((t.id, role));
    }
    // Someone else's team role in the same organization is not the owner's.
    let other = user("other");
    s.add_member(
        a.id,
        &other,
        Some("h"),
        OrgRole::User,
        a_default.id,
        TeamRole::Member,
        &enterprise(),
        note(a.id, "other"),
    )
    .await
    .unwrap();

    let got = s.caller_memberships(owner.id).await.unwrap();
    let mut want_a = vec![(a_default.id, TeamRole::Admin)];
    want_a.extend(extra.iter().copied());
    want_a.sort_by_key(|(t, _)| *t);
    let mut want = vec![
        (a.id, OrgRole::Owner, want_a),
        (b.id, OrgRole::Admin, vec![(b_default.id, TeamRole::Viewer)]),
    ];
    want.sort_by_key(|(o, _, _)| o.to_string());
    assert_eq!(
        got.iter()
            .map(|m| (m.org.id, m.role, m.teams.clone()))
            .collect::<Vec<_>>(),
        want
    );
    for m in &got {
        let member = s.get_member(m.org.id, owner.id).await.unwrap().unwrap();
        assert_eq!(m.org, s.get_org(m.org.id).await.unwrap());
        assert_eq!((m.joined_at, m.deactivated_at), (member.joined_at, None));
        let mut teams = s.team_roles(m.org.id, owner.id).await.unwrap();
        teams.sort_by_key(|(t, _)| *t);
        assert_eq!(m.teams, teams);
    }
    assert_eq!(
        got.into_iter().map(|m| m.org).collect::<Vec<_>>(),
        s.member_orgs(owner.id).await.unwrap()
    );
    assert!(
        s.caller_memberships(UserId::new())
            .await
            .unwrap()
            .is_empty()
    );

    // A session read with its person's memberships holds exactly what the two narrower reads
    // give; an ended or unknown session gives nothing.
    let owner_session = session(owner.id, 0);
    s.create_session(
        &owner_session,
        "caller-memberships",
        3,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let (found, person, memberships) = s
        .session_caller("caller-memberships")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, &person), (owner_session.clone(), &owner));
    assert_eq!(memberships, s.caller_memberships(owner.id).await.unwrap());
    assert_eq!(memberships.len(), 2);
    assert!(s.session_caller("no-such-session").await.unwrap().is_none());
    s.end_session(owner.id, owner_session.id, now(), Journal::default())
        .await
        .unwrap();
    assert!(
        s.session_caller("caller-memberships")
            .await
            .unwrap()
            .is_none()
    );

    // A role in every team: stored with the membership, read with it everywhere, and changed
    // only from the value the change was decided on.
    assert!(memberships.iter().all(|m| m.all_teams.is_none()));
    s.set_all_teams_role(
        a.id,
        other.id,
        None,
        Some(TeamRole::Viewer),
        None,
        note(a.id, "finance"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_member(a.id, other.id)
            .await
            .unwrap()
            .unwrap()
            .all_teams,
        Some(TeamRole::Viewer)
    );
    assert!(matches!(
        s.set_all_teams_role(
            a.id,
            other.id,
            None,
            Some(TeamRole::Member),
            None,
            note(a.id, "stale")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(matches!(
        s.set_all_teams_role(
            a.id,
            UserId::new(),
            None,
            Some(TeamRole::Member),
            None,
            note(a.id, "x")
        )
        .await,
        Err(TenancyError::NotFound(_))
    ));
    let theirs = s.caller_memberships(other.id).await.unwrap();
    assert_eq!(
        theirs
            .iter()
            .map(|m| (m.org.id, m.all_teams, m.teams.clone()))
            .collect::<Vec<_>>(),
        vec![(
            a.id,
            Some(TeamRole::Viewer),
            vec![(a_default.id, TeamRole::Member)]
        )]
    );
    assert_eq!(
        s.memberships(other.id).await.unwrap()[0].all_teams,
        Some(TeamRole::Viewer)
    );
    assert!(
        s.list_members(a.id, None, 10)
            .await
            .unwrap()
            .iter()
            .any(|m| m.user.id == other.id && m.all_teams == Some(TeamRole::Viewer))
    );
    // A team's members include those with a role in every team, teams created later too, at
    // the higher of that role and the one given in the team.
    let later = team_in(a.id, "Later");
    s.create_team(&later, note(a.id, "later")).await.unwrap();
    let roles_in = |team: TeamId| async move {
        s.team_members(a.id, team)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.member.user.id, m.role, m.assigned, m.member.all_teams))
            .collect::<Vec<_>>()
    };
    let viewer = Some(TeamRole::Viewer);
    assert_eq!(
        roles_in(later.id).await,
        vec![(other.id, TeamRole::Viewer, None, viewer)]
    );
    let research = extra[0].0;
    let mut want = vec![
        (owner.id, TeamRole::Member, Some(TeamRole::Member), None),
        (other.id, TeamRole::Viewer, None, viewer),
    ];
    want.sort_by_key(|m| m.0);
    assert_eq!(roles_in(research).await, want);
    assert!(roles_in(a_default.id).await.contains(&(
        other.id,
        TeamRole::Member,
        Some(TeamRole::Member),
        viewer
    )));
    // Not in another organization's teams.
    assert!(
        s.team_members(b.id, b_default.id)
            .await
            .unwrap()
            .iter()
            .all(|m| m.member.user.id != other.id)
    );
    let other_session = session(other.id, 0);
    s.create_session(
        &other_session,
        "all-teams",
        3,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let (_, _, read) = s.session_caller("all-teams").await.unwrap().unwrap();
    assert_eq!(read, theirs);
    s.set_all_teams_role(
        a.id,
        other.id,
        Some(TeamRole::Viewer),
        None,
        None,
        note(a.id, "off"),
    )
    .await
    .unwrap();
    let all_teams_of =
        |user: UserId| async move { s.get_member(a.id, user).await.unwrap().unwrap().all_teams };
    assert_eq!(all_teams_of(other.id).await, None);
    assert!(roles_in(later.id).await.is_empty());
    // A promotion clears it, so a later demotion does not bring it back; an Admin is refused
    // one.
    s.set_all_teams_role(
        a.id,
        other.id,
        None,
        Some(TeamRole::Member),
        None,
        note(a.id, "exec"),
    )
    .await
    .unwrap();
    s.set_role(
        a.id,
        other.id,
        OrgRole::User,
        OrgRole::Admin,
        None,
        note(a.id, "up"),
    )
    .await
    .unwrap();
    assert_eq!(all_teams_of(other.id).await, None);
    assert!(matches!(
        s.set_all_teams_role(
            a.id,
            other.id,
            None,
            Some(TeamRole::Viewer),
            None,
            note(a.id, "x")
        )
        .await,
        Err(TenancyError::Invalid(_))
    ));
    // As an Admin they run Research; a demotion takes that with the organization's role.
    s.set_team_member(
        a.id,
        research,
        other.id,
        Some(TeamRole::Admin),
        note(a.id, "runs research"),
    )
    .await
    .unwrap();
    s.set_role(
        a.id,
        other.id,
        OrgRole::Admin,
        OrgRole::User,
        None,
        note(a.id, "down"),
    )
    .await
    .unwrap();
    assert_eq!(all_teams_of(other.id).await, None);
    let kept = s.team_roles(a.id, other.id).await.unwrap();
    assert!(
        kept.iter().all(|(_, r)| *r != TeamRole::Admin)
            && kept.contains(&(research, TeamRole::Member)),
        "{kept:?}"
    );
    // So does becoming the Owner by a transfer.
    s.set_all_teams_role(
        a.id,
        other.id,
        None,
        Some(TeamRole::Viewer),
        None,
        note(a.id, "again"),
    )
    .await
    .unwrap();
    let handover = OwnershipTransfer {
        org: a.id,
        from: owner.id,
        to: other.id,
        proposed_at: now(),
        expires_at: now() + Duration::hours(72),
    };
    s.save_transfer(&handover, note(a.id, "propose"))
        .await
        .unwrap();
    s.complete_transfer(&handover, now(), note(a.id, "confirm"))
        .await
        .unwrap();
    let new_owner = s.get_member(a.id, other.id).await.unwrap().unwrap();
    assert_eq!(
        (new_owner.role, new_owner.all_teams),
        (OrgRole::Owner, None)
    );
}

/// An organization User sees the members of their own teams, the Owner and Admins, those with
/// a role in every team and themselves, page by page; never another team's people alone, nor
/// another organization's.
async fn deleting_an_organization_leaves_the_others<
    S: TenancyStore + AuditStore + WorkspaceStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (gone, gone_default, owner) = new_org(s).await;
    let (kept, kept_default, other_owner) = new_org(s).await;
    // Someone in both, with a key in each.
    let both = user("both");
    for (org, team, hash) in [
        (gone.id, gone_default.id, Some("h")),
        (kept.id, kept_default.id, None),
    ] {
        s.add_member(
            org,
            &both,
            hash,
            OrgRole::Admin,
            team,
            TeamRole::Member,
            &enterprise(),
            note(org, "both"),
        )
        .await
        .unwrap();
    }
    let key = |org: OrgId, team: TeamId, tag: &str| ApiKey {
        id: ApiKeyId::new(),
        org,
        team,
        scope: crate::KeyScope::Organization,
        created_by: both.id,
        name: tag.into(),
        prefix: "axk_1234".into(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    let (gone_key, kept_key) = (
        key(gone.id, gone_default.id, "gone"),
        key(kept.id, kept_default.id, "kept"),
    );
    for (k, hash) in [(&gone_key, "del-gone-key"), (&kept_key, "del-kept-key")] {
        s.create_api_key(k, hash, &enterprise(), note(k.org, "key"))
            .await
            .unwrap();
    }
    // Only its Owner deletes it; an Admin's or another Owner's try changes nothing.
    for by in [both.id, other_owner.id] {
        assert!(matches!(
            s.delete_org(gone.id, by, Journal::default()).await,
            Err(TenancyError::Conflict(_))
        ));
    }
    assert!(s.get_org(gone.id).await.is_ok());
    let notice = Journal::default().mail(mail(None, "owner@contract.example", "deleted", "b"));
    s.delete_org(gone.id, owner.id, notice).await.unwrap();
    assert!(matches!(
        s.get_org(gone.id).await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(s.get_member(gone.id, both.id).await.unwrap().is_none());
    assert!(s.find_api_key("del-gone-key").await.unwrap().is_none());
    assert!(
        s.chain_page(gone.id, 0, 10).await.unwrap().is_empty(),
        "its audit log goes with it"
    );
    let orgs: Vec<OrgId> = s
        .memberships(both.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.org)
        .collect();
    assert_eq!(orgs, vec![kept.id]);
    // The other organization, its people and its log are as they were.
    assert_eq!(s.get_org(kept.id).await.unwrap().name, kept.name);
    assert!(s.get_member(kept.id, both.id).await.unwrap().is_some());
    assert!(s.find_api_key("del-kept-key").await.unwrap().is_some());
    assert_chain_verifies(s, kept.id, "after another organization's deletion").await;
    assert!(
        s.get_user(owner.id).await.unwrap().is_some(),
        "accounts stay"
    );
    assert!(matches!(
        s.delete_org(gone.id, owner.id, Journal::default()).await,
        Err(TenancyError::NotFound(_))
    ));
}

async fn team_members_come_in_pages<
    S: TenancyStore + AuditStore + WorkspaceStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (org, default, _owner) = new_org(s).await;
    let (other, other_default, _) = new_org(s).await;
    let client = team_in(org.id, "Client A");
    s.create_team(&client, note(org.id, "team")).await.unwrap();
    let join = |org: OrgId, name: &'static str, team: TeamId| async move {
        let u = user(name);
        s.add_member(
            org,
            &u,
            Some("h"),
            OrgRole::User,
            team,
            TeamRole::Member,
            &enterprise(),
            note(org, name),
        )
        .await
        .unwrap();
        u.id
    };
    // Four people in the client team, each a different way; one who is not; one of another
    // organization with a role in every team there.
    let ann = join(org.id, "ann", client.id).await;
    let cara = join(org.id, "cara", client.id).await;
    s.set_team_member(
        org.id,
        client.id,
        cara,
        Some(TeamRole::Admin),
        note(org.id, "up"),
    )
    .await
    .unwrap();
    let fin = join(org.id, "fin", default.id).await;
    s.set_all_teams_role(
        org.id,
        fin,
        None,
        Some(TeamRole::Viewer),
        None,
        note(org.id, "fin"),
    )
    .await
    .unwrap();
    let gus = join(org.id, "gus", client.id).await;
    s.set_team_member(
        org.id,
        client.id,
        gus,
        Some(TeamRole::Viewer),
        note(org.id, "gus"),
    )
    .await
    .unwrap();
    s.set_all_teams_role(
        org.id,
        gus,
        None,
        Some(TeamRole::Member),
        None,
        note(org.id, "gus"),
    )
    .await
    .unwrap();
    let _ben = join(org.id, "ben", default.id).await;
    let stranger = join(other.id, "stranger", other_default.id).await;
    s.set_all_teams_role(
        other.id,
        stranger,
        None,
        Some(TeamRole::Admin),
        None,
        note(other.id, "stranger"),
    )
    .await
    .unwrap();
    let mut expected = vec![
        (ann, TeamRole::Member, Some(TeamRole::Member)),
        (cara, TeamRole::Admin, Some(TeamRole::Admin)),
        (fin, TeamRole::Viewer, None),
        (gus, TeamRole::Member, Some(TeamRole::Viewer)),
    ];
    expected.sort_by_key(|e| e.0);
    let whole: Vec<_> = s
        .team_members(org.id, client.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.member.user.id, m.role, m.assigned))
        .collect();
    assert_eq!(whole, expected, "the whole team, by user id");
    for limit in 1..=5u32 {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .team_members_page(org.id, client.id, after, limit)
                .await
                .unwrap();
            assert!(page.len() <= limit as usize);
            after = page.last().map(|m| m.member.user.id);
            let done = page.len() < limit as usize;
            all.extend(
                page.into_iter()
                    .map(|m| (m.member.user.id, m.role, m.assigned)),
            );
            if done {
                break;
            }
        }
        assert_eq!(all, expected, "pages of {limit}");
    }
    // Another organization's id for the team reads nothing.
    assert!(
        s.team_members_page(other.id, client.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn members_seen_by_a_user_are_those_of_their_teams<
    S: TenancyStore + AuditStore + WorkspaceStore + MembershipStore + ?Sized,
>(
    s: &S,
) {
    let (org, default, owner) = new_org(s).await;
    let (_, other_default, _) = new_org(s).await;
    let (client_a, client_b) = (team_in(org.id, "Client A"), team_in(org.id, "Client B"));
    for t in [&client_a, &client_b] {
        s.create_team(t, note(org.id, "team")).await.unwrap();
    }
    let join = |name: &'static str, role: OrgRole, team: TeamId| async move {
        let u = user(name);
        s.add_member(
            org.id,
            &u,
            Some("h"),
            role,
            team,
            TeamRole::Member,
            &enterprise(),
            note(org.id, name),
        )
        .await
        .unwrap();
        u.id
    };
    let ann = join("ann-of-a", OrgRole::User, client_a.id).await;
    let ben = join("ben-of-b", OrgRole::User, client_b.id).await;
    let ada = join("ada-admin", OrgRole::Admin, default.id).await;
    let fin = join("fin-finance", OrgRole::User, default.id).await;
    s.set_all_teams_role(
        org.id,
        fin,
        None,
        Some(TeamRole::Viewer),
        None,
        note(org.id, "fin"),
    )
    .await
    .unwrap();
    let loner = join("lou-no-team", OrgRole::User, default.id).await;
    s.set_team_member(org.id, default.id, loner, None, note(org.id, "out"))
        .await
        .unwrap();
    let seen = |me: UserId, teams: Vec<TeamId>, limit: u32| async move {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .list_members_seen_by(org.id, me, &teams, after, limit)
                .await
                .unwrap();
            assert!(page.len() <= limit as usize);
            after = page.last().map(|m| m.user.id);
            let done = page.len() < limit as usize;
            all.extend(page.into_iter().map(|m| m.user.id));
            if done {
                break;
            }
        }
        all
    };
    let sorted = |mut v: Vec<UserId>| {
        v.sort_by_key(ToString::to_string);
        v
    };
    for limit in [1, 2, 50] {
        assert_eq!(
            seen(ann, vec![client_a.id], limit).await,
            sorted(vec![owner.id, ann, ada, fin]),
            "pages of {limit}"
        );
        assert_eq!(
            seen(ben, vec![client_b.id], limit).await,
            sorted(vec![owner.id, ben, ada, fin])
        );
    }
    assert_eq!(
        seen(loner, vec![], 50).await,
        sorted(vec![owner.id, ada, fin, loner])
    );
    // Teams of another organization name nobody here.
    assert_eq!(
        seen(ann, vec![other_default.id], 50).await,
        sorted(vec![owner.id, ann, ada, fin])
    );
}

/// An asset is made only by an active member, checked in its write: someone removed while
/// they were making it (an upload takes a while) leaves nothing behind that names them.
async fn nothing_is_made_by_someone_no_longer_a_member<
    S: TenancyStore + AuditStore + MembershipStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, _) = new_org(s).await;
    let pat = user("pat-maker");
    add_user(s, org.id, team.id, &pat, Some("h")).await;
    s.remove_member(
        org.id,
        pat.id,
        Disposition::Delete,
        now(),
        None,
        note(org.id, "out"),
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let h = head(s, org.id).await;
    let late = s
        .create_asset(
            &chat(org.id, team.id, pat.id, "Made too late"),
            &enterprise(),
            note(org.id, "late"),
        )
        .await;
    assert!(
        matches!(late, Err(TenancyError::NotFound("member"))),
        "{late:?}"
    );
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
}

/// Assets created together (a copied tree) are all written with their journal, or, when one
/// of them is refused, none is and nothing is recorded.
async fn assets_created_together_all_or_none<
    S: TenancyStore + AuditStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    let (org, default, owner) = new_org(s).await;
    let small = billing_limits::PlanLimits {
        knowledge_bases: Some(1),
        ..enterprise()
    };
    let bot = chat(org.id, default.id, owner.id, "Template copy");
    let first = kb_under(&bot, owner.id);
    let second = kb_under(&bot, owner.id);
    let h = head(s, org.id).await;
    let all = [bot.clone(), first.clone(), second.clone()];
    assert!(matches!(
        s.create_assets(&all, &small, note(org.id, "copy")).await,
        Err(TenancyError::LimitReached { .. })
    ));
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    for a in &all {
        assert_eq!(
            s.get_asset(org.id, a.id).await.unwrap(),
            None,
            "none written"
        );
    }
    s.create_assets(&all[..2], &small, note(org.id, "copy"))
        .await
        .unwrap();
    assert_eq!(head(s, org.id).await, h + 1);
    assert_eq!(s.get_asset(org.id, first.id).await.unwrap(), Some(first));
    let (other, _, _) = new_org(s).await;
    let foreign = Asset {
        id: rbac_core::ResourceId::new(),
        org: other.id,
        ..bot.clone()
    };
    assert!(matches!(
        s.create_assets(&[second, foreign], &enterprise(), note(org.id, "mixed"))
            .await,
        Err(TenancyError::Invalid(_))
    ));
}

/// Limits lowered since a caller read them (a downgrade, lowered negotiated limits) are obeyed:
/// the store checks each count against the tightest of the limits it is given and those stored
/// for the organization when the count is taken, so a change committed in between lets no
/// creation past the new limit.
async fn limits_lowered_since_the_callers_read_are_obeyed<
    S: TenancyStore + AuditStore + InvitationStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    use billing_limits::{Limit, LimitOverrides};
    let (org, team, owner) = new_org(s).await;
    s.create_asset(
        &chat(org.id, team.id, owner.id, "First"),
        &enterprise(),
        note(org.id, "first"),
    )
    .await
    .unwrap();
    let lowered = LimitOverrides(
        [
            (Limit::ChatInterfaces, Some(1)),
            (Limit::Members, Some(1)),
            (Limit::ApiKeys, Some(0)),
        ]
        .into_iter()
        .collect(),
    );
    s.set_limit_overrides(org.id, &lowered, Plan::Enterprise, note(org.id, "lowered"))
        .await
        .unwrap();
    // Callers that read Enterprise's limits before the change are refused, and write nothing.
    let audit = head(s, org.id).await;
    let refused = |r: Result<(), TenancyError>, limit: Limit, max: u64| {
        assert!(
            matches!(r, Err(TenancyError::LimitReached { limit: l, max: m, .. }) if l == limit && m == max),
            "{limit:?}: {r:?}"
        );
    };
    let second = chat(org.id, team.id, owner.id, "Second");
    refused(
        s.create_asset(&second, &enterprise(), note(org.id, "second"))
            .await,
        Limit::ChatInterfaces,
        1,
    );
    refused(
        s.create_invitation(
            &invitation(org.id, owner.id, "late", 7),
            "hash-late",
            &enterprise(),
            note(org.id, "invite"),
        )
        .await,
        Limit::Members,
        1,
    );
    refused(
        s.add_member(
            org.id,
            &user("direct"),
            Some("h"),
            OrgRole::User,
            team.id,
            TeamRole::Member,
            &enterprise(),
            note(org.id, "direct"),
        )
        .await,
        Limit::Members,
        1,
    );
    let key = ApiKey {
        id: ApiKeyId::new(),
        org: org.id,
        team: team.id,
        scope: crate::KeyScope::Organization,
        created_by: owner.id,
        name: "late".into(),
        prefix: "axk_late".into(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    refused(
        s.create_api_key(&key, "kh-late", &enterprise(), note(org.id, "key"))
            .await,
        Limit::ApiKeys,
        0,
    );
    assert_eq!(head(s, org.id).await, audit, "refusals leave no record");
    assert_eq!(s.get_asset(org.id, second.id).await.unwrap(), None);
    // Raised again, the same creation goes through; limits the caller passes still bind.
    s.set_limit_overrides(
        org.id,
        &LimitOverrides::default(),
        Plan::Enterprise,
        note(org.id, "raised"),
    )
    .await
    .unwrap();
    let one = billing_limits::PlanLimits {
        chat_interfaces: Some(1),
        ..enterprise()
    };
    refused(
        s.create_asset(&second, &one, note(org.id, "second")).await,
        Limit::ChatInterfaces,
        1,
    );
    s.create_asset(&second, &enterprise(), note(org.id, "second"))
        .await
        .unwrap();
}

async fn assets_quota_scope_and_subtrees<S: TenancyStore + AuditStore + WorkspaceStore + ?Sized>(
    s: &S,
) {
    let (org, default, owner) = new_org(s).await;
    let other_team = team_in(org.id, "Other");
    s.create_team(&other_team, note(org.id, "t")).await.unwrap();
    let two = billing_limits::PlanLimits {
        chat_interfaces: Some(2),
        storage_bytes: Some(1000),
        ..enterprise()
    };
    let a = chat(org.id, default.id, owner.id, "Customer Support");
    let b = chat(org.id, other_team.id, owner.id, "Sales");
    s.create_asset(&a, &two, note(org.id, "a")).await.unwrap();
    s.create_asset(&b, &two, note(org.id, "b")).await.unwrap();
    let h = head(s, org.id).await;
    assert!(matches!(
        s.create_asset(
            &chat(org.id, default.id, owner.id, "Third"),
            &two,
            note(org.id, "c")
        )
        .await,
        Err(TenancyError::LimitReached {
            used: 2,
            max: 2,
            ..
        })
    ));
    assert_eq!(
        head(s, org.id).await,
        h,
        "a refused create leaves no record"
    );
    assert_eq!(s.get_asset(org.id, a.id).await.unwrap(), Some(a.clone()));
    let (foreign, _, _) = new_org(s).await;
    assert_eq!(
        s.get_asset(foreign.id, a.id).await.unwrap(),
        None,
        "assets are scoped to their organization"
    );

    // Children must sit in their parent's team.
    let kb = kb_under(&a, owner.id);
    s.create_asset(&kb, &two, note(org.id, "kb")).await.unwrap();
    let misplaced = Asset {
        team: other_team.id,
        ..kb_under(&a, owner.id)
    };
    assert!(matches!(
        s.create_asset(&misplaced, &two, note(org.id, "x")).await,
        Err(TenancyError::NotFound(_))
    ));
    // Storage is counted across the organization.
    let d1 = doc_in(&kb, owner.id, 600);
    s.create_asset(&d1, &two, note(org.id, "d1")).await.unwrap();
    assert!(matches!(
        s.create_asset(&doc_in(&kb, owner.id, 401), &two, note(org.id, "d2"))
            .await,
        Err(TenancyError::LimitReached {
            limit: billing_limits::Limit::StorageBytes,
            used: 600,
            ..
        })
    ));
    let d2 = doc_in(&kb, owner.id, 400);
    s.create_asset(&d2, &two, note(org.id, "d2")).await.unwrap();
    let storage = s.storage(org.id).await.unwrap();
    assert_eq!(storage.len(), 1);
    assert_eq!(
        (storage[0].team, storage[0].documents, storage[0].bytes),
        (default.id, 2, 1000)
    );
    // What the limits count, per team and kind, as the usage report and the alerts read it.
    let counts = |org: OrgId| async move {
        let mut c: Vec<_> = s
            .asset_counts(org)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.team.to_string(), c.kind.as_str(), c.count))
            .collect();
        c.sort_unstable();
        c
    };
    let mut expected = vec![
        (default.id.to_string(), "chat_interface", 1),
        (other_team.id.to_string(), "chat_interface", 1),
        (default.id.to_string(), "knowledge_base", 1),
        (default.id.to_string(), "document", 2),
    ];
    expected.sort_unstable();
    assert_eq!(counts(org.id).await, expected);
    assert_eq!(counts(foreign.id).await, vec![]);

    // Listings filter by kind, team and parent, and page by id.
    let all = AssetFilter {
        kind: AssetKind::ChatInterface,
        teams: None,
        parent: None,
        archived: None,
    };
    assert_eq!(
        s.list_assets(org.id, &all, None, 10).await.unwrap().len(),
        2
    );
    let mine = AssetFilter {
        teams: Some(vec![default.id]),
        ..all.clone()
    };
    assert_eq!(
        s.list_assets(org.id, &mine, None, 10).await.unwrap(),
        vec![a.clone()]
    );
    let none = AssetFilter {
        teams: Some(vec![]),
        ..all.clone()
    };
    assert!(
        s.list_assets(org.id, &none, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let docs = AssetFilter {
        kind: AssetKind::Document,
        teams: None,
        parent: Some(kb.id),
        archived: None,
    };
    let page1 = s.list_assets(org.id, &docs, None, 1).await.unwrap();
    let page2 = s
        .list_assets(org.id, &docs, Some(page1[0].id), 1)
        .await
        .unwrap();
    assert_eq!(page1.len() + page2.len(), 2);
    assert_ne!(page1[0].id, page2[0].id);

    // Updates are compare-and-swap.
    let renamed = Asset {
        name: "Support".into(),
        updated_at: now() + Duration::seconds(1),
        ..a.clone()
    };
    s.update_asset(&a, &renamed, note(org.id, "rename"))
        .await
        .unwrap();
    assert!(matches!(
        s.update_asset(&a, &a, note(org.id, "stale")).await,
        Err(TenancyError::Conflict(_))
    ));

    // Archiving is an update; listings choose archived ones, those in use, or both.
    let archived = Asset {
        archived_at: Some(now() + Duration::seconds(2)),
        updated_at: now() + Duration::seconds(2),
        ..renamed.clone()
    };
    s.update_asset(&renamed, &archived, note(org.id, "archive"))
        .await
        .unwrap();
    assert_eq!(
        s.get_asset(org.id, a.id).await.unwrap(),
        Some(archived.clone())
    );
    assert_eq!(
        counts(org.id).await,
        expected,
        "archived assets still count against the limits"
    );
    let ids = |v: Vec<Asset>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    let only = |archived| AssetFilter {
        archived,
        ..all.clone()
    };
    assert_eq!(
        ids(s
            .list_assets(org.id, &only(Some(true)), None, 10)
            .await
            .unwrap()),
        vec![a.id]
    );
    let in_use = ids(s
        .list_assets(org.id, &only(Some(false)), None, 10)
        .await
        .unwrap());
    assert_eq!(in_use.len(), 1);
    assert!(!in_use.contains(&a.id));
    assert_eq!(
        s.list_assets(org.id, &only(None), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // Domains are unique per organization.
    let domain = |host: &str| Asset {
        id: rbac_core::ResourceId::new(),
        name: host.to_owned(),
        details: AssetDetails::Domain {
            hostname: host.to_owned(),
            verification_token: "t".into(),
            verified_at: None,
        },
        ..a.clone()
    };
    s.create_asset(&domain("chat.example.com"), &two, note(org.id, "dom"))
        .await
        .unwrap();
    assert!(matches!(
        s.create_asset(&domain("chat.example.com"), &two, note(org.id, "dom"))
            .await,
        Err(TenancyError::Conflict(_))
    ));

    // Archived teams take nothing new.
    archive_team(s, &other_team).await;
    assert!(matches!(
        s.create_asset(
            &chat(org.id, other_team.id, owner.id, "Late"),
            &enterprise(),
            note(org.id, "late")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));

    // Deleting it as if it were in another team (it moved since the caller read it) deletes
    // nothing.
    let h = head(s, org.id).await;
    assert!(matches!(
        s.delete_asset(org.id, a.id, other_team.id, None, note(org.id, "rm"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(s.get_asset(org.id, a.id).await.unwrap().is_some());
    assert_eq!(head(s, org.id).await, h);
    // One who may delete only what they created deletes nothing that holds someone else's.
    let h = head(s, org.id).await;
    assert!(matches!(
        s.delete_asset(
            org.id,
            a.id,
            a.team,
            Some(UserId::new()),
            note(org.id, "rm")
        )
        .await,
        Err(TenancyError::Forbidden(rbac_core::DenyReason::NotCreator))
    ));
    for x in [a.id, kb.id, d1.id, d2.id] {
        assert!(s.get_asset(org.id, x).await.unwrap().is_some(), "{x} kept");
    }
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    // Deleting removes the whole subtree and says what went (all of it its creator's).
    let gone = s
        .delete_asset(org.id, a.id, a.team, Some(owner.id), note(org.id, "rm"))
        .await
        .unwrap();
    let mut ids: Vec<_> = gone.iter().map(|x| x.id).collect();
    ids.sort();
    let mut expected = vec![a.id, kb.id, d1.id, d2.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(s.storage(org.id).await.unwrap().is_empty());
    assert!(matches!(
        s.delete_asset(org.id, a.id, a.team, None, note(org.id, "rm"))
            .await,
        Err(TenancyError::NotFound(_))
    ));

    // Usage counters add up per day, team and asset.
    let day = now().date_naive();
    for _ in 0..3 {
        s.record_usage(
            &UsageRecord {
                team: default.id,
                asset: Some(b.id),
                metric: "messages".into(),
                day,
                count: 2,
            },
            org.id,
        )
        .await
        .unwrap();
    }
    s.record_usage(
        &UsageRecord {
            team: default.id,
            asset: None,
            metric: "messages".into(),
            day: day.succ_opt().unwrap(),
            count: 1,
        },
        org.id,
    )
    .await
    .unwrap();
    let usage = s.usage(org.id, day, day).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].count, 6);
    assert_eq!(
        s.usage(org.id, day, day.succ_opt().unwrap())
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(s.usage(foreign.id, day, day).await.unwrap().is_empty());
}

async fn asset_transfers_and_removal_dispositions<
    S: TenancyStore + AuditStore + MembershipStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    let (org, default, owner) = new_org(s).await;
    let prod = team_in(org.id, "Production");
    s.create_team(&prod, note(org.id, "prod")).await.unwrap();
    let agent = chat(org.id, default.id, owner.id, "Agent - DEV");
    let kb = kb_under(&agent, owner.id);
    let doc = doc_in(&kb, owner.id, 10);
    for x in [&agent, &kb, &doc] {
        s.create_asset(x, &enterprise(), note(org.id, "x"))
            .await
            .unwrap();
    }
    let t = AssetTransfer {
        asset: agent.id,
        org: org.id,
        from_team: default.id,
        to_team: prod.id,
        from_name: agent.name.clone(),
        to_name: "Agent - PROD".into(),
        by: owner.id,
        at: now(),
        note: Some("Passed QA: 48/48 conversations.\nSee run 512.".into()),
    };
    // Read before a rename that committed first: refused, so the rename stands.
    let stale = AssetTransfer {
        from_name: "Agent (before the rename)".into(),
        ..t.clone()
    };
    assert!(matches!(
        s.transfer_asset(&stale, note(org.id, "stale")).await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(
        s.get_asset(org.id, agent.id).await.unwrap().unwrap().team,
        default.id
    );
    s.transfer_asset(&t, note(org.id, "move")).await.unwrap();
    for id in [agent.id, kb.id, doc.id] {
        assert_eq!(
            s.get_asset(org.id, id).await.unwrap().unwrap().team,
            prod.id,
            "the whole subtree moves"
        );
    }
    assert_eq!(
        s.get_asset(org.id, agent.id).await.unwrap().unwrap().name,
        "Agent - PROD"
    );
    let h = head(s, org.id).await;
    assert!(
        matches!(
            s.transfer_asset(&t, note(org.id, "again")).await,
            Err(TenancyError::Conflict(_))
        ),
        "a stale move is refused"
    );
    assert_eq!(head(s, org.id).await, h);
    assert_eq!(
        s.transfers_of(org.id, agent.id).await.unwrap(),
        vec![t.clone()]
    );

    // Removal: transfer keeps every asset, delete removes the member's with their subtrees.
    let mike = user("mike");
    let lisa = user("lisa");
    for u in [&mike, &lisa] {
        s.add_member(
            org.id,
            u,
            Some("h"),
            OrgRole::User,
            default.id,
            TeamRole::Member,
            &enterprise(),
            note(org.id, "m"),
        )
        .await
        .unwrap();
    }
    let mikes = chat(org.id, default.id, mike.id, "Mike's agent");
    let mikes_kb = kb_under(&mikes, mike.id);
    let lisas_doc = doc_in(&mikes_kb, lisa.id, 5);
    for x in [&mikes, &mikes_kb, &lisas_doc] {
        s.create_asset(x, &enterprise(), note(org.id, "x"))
            .await
            .unwrap();
    }
    // Mike also made something in Production, where Lisa has no role: she could neither see
    // nor use it, so the transfer is refused, whole, until she has one there.
    let mikes_prod = chat(org.id, prod.id, mike.id, "Mike's production agent");
    s.create_asset(&mikes_prod, &enterprise(), note(org.id, "x"))
        .await
        .unwrap();
    let h = head(s, org.id).await;
    match s
        .remove_member(
            org.id,
            mike.id,
            Disposition::TransferTo(lisa.id),
            now(),
            None,
            note(org.id, "rm"),
            &|_| Journal::default(),
        )
        .await
    {
        Err(TenancyError::Conflict(m)) => assert!(m.contains("`Production`"), "{m}"),
        other => panic!("a transfer to someone outside the team: {other:?}"),
    }
    assert!(s.get_member(org.id, mike.id).await.unwrap().is_some());
    assert_eq!(head(s, org.id).await, h);
    s.set_team_member(
        org.id,
        prod.id,
        lisa.id,
        Some(TeamRole::Viewer),
        note(org.id, "lisa in prod"),
    )
    .await
    .unwrap();
    let before = total_assets(s, org.id).await;
    let report = s
        .remove_member(
            org.id,
            mike.id,
            Disposition::TransferTo(lisa.id),
            now(),
            None,
            note(org.id, "rm"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.transferred, 3);
    assert_eq!(
        total_assets(s, org.id).await,
        before,
        "a transfer conserves every asset"
    );
    assert_eq!(
        s.get_asset(org.id, mikes.id)
            .await
            .unwrap()
            .unwrap()
            .created_by,
        lisa.id
    );

    let toms = user("tom");
    s.add_member(
        org.id,
        &toms,
        Some("h"),
        OrgRole::User,
        default.id,
        TeamRole::Member,
        &enterprise(),
        note(org.id, "m"),
    )
    .await
    .unwrap();
    let his = chat(org.id, default.id, toms.id, "Tom's agent");
    let his_kb = kb_under(&his, toms.id);
    let her_doc = doc_in(&his_kb, lisa.id, 5);
    for x in [&his, &his_kb, &her_doc] {
        s.create_asset(x, &enterprise(), note(org.id, "x"))
            .await
            .unwrap();
    }
    let before = total_assets(s, org.id).await;
    let report = s
        .remove_member(
            org.id,
            toms.id,
            Disposition::Delete,
            now(),
            None,
            note(org.id, "rm"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.deleted, report.cascaded),
        (2, 1),
        "Tom's two resources, and Lisa's document inside his knowledge base"
    );
    assert_eq!(report.deleted_documents, vec![her_doc.id]);
    assert_eq!(total_assets(s, org.id).await, before - 3);
    assert!(
        matches!(
            s.remove_member(
                org.id,
                lisa.id,
                Disposition::TransferTo(toms.id),
                now(),
                None,
                note(org.id, "rm"),
                &|_| Journal::default()
            )
            .await,
            Err(TenancyError::Invalid(_) | TenancyError::NotFound(_))
        ),
        "no transfer to someone who left"
    );

    // A handover to "the Owner" read before an ownership transfer goes nowhere: refused whole.
    let lisas = chat(org.id, default.id, lisa.id, "Lisa's agent");
    s.create_asset(&lisas, &enterprise(), note(org.id, "x"))
        .await
        .unwrap();
    assert!(
        matches!(
            s.remove_member(
                org.id,
                lisa.id,
                Disposition::TransferToOwner(mike.id),
                now(),
                None,
                note(org.id, "rm"),
                &|_| Journal::default(),
            )
            .await,
            Err(TenancyError::Invalid(_))
        ),
        "Mike left: not a member"
    );
    let ned = user("ned");
    s.add_member(
        org.id,
        &ned,
        Some("h"),
        OrgRole::Admin,
        default.id,
        TeamRole::Member,
        &enterprise(),
        note(org.id, "m"),
    )
    .await
    .unwrap();
    let h = head(s, org.id).await;
    assert!(
        matches!(
            s.remove_member(
                org.id,
                lisa.id,
                Disposition::TransferToOwner(ned.id),
                now(),
                None,
                note(org.id, "rm"),
                &|_| Journal::default(),
            )
            .await,
            Err(TenancyError::Conflict(_))
        ),
        "Ned is a member but not the Owner"
    );
    assert!(s.get_member(org.id, lisa.id).await.unwrap().is_some());
    assert_eq!(
        s.get_asset(org.id, lisas.id)
            .await
            .unwrap()
            .unwrap()
            .created_by,
        lisa.id,
        "nothing moved"
    );
    assert_eq!(head(s, org.id).await, h, "and nothing was recorded");
    let report = s
        .remove_member(
            org.id,
            lisa.id,
            Disposition::TransferToOwner(owner.id),
            now(),
            None,
            note(org.id, "rm"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    assert!(report.transferred >= 1);
    assert_eq!(
        s.get_asset(org.id, lisas.id)
            .await
            .unwrap()
            .unwrap()
            .created_by,
        owner.id
    );
}

async fn concurrent_creates_never_overshoot<
    S: TenancyStore + AuditStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    let (org, default, owner) = new_org(s).await;
    let limit = billing_limits::PlanLimits {
        chat_interfaces: Some(20),
        ..enterprise()
    };
    let attempts: Vec<_> = (0..50)
        .map(|i| {
            let a = chat(org.id, default.id, owner.id, &format!("Agent {i}"));
            async move { s.create_asset(&a, &limit, note(org.id, "race")).await }
        })
        .collect();
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 20, "exactly the limit succeeds");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(TenancyError::LimitReached { .. })))
    );
    let listed = s
        .list_assets(
            org.id,
            &AssetFilter {
                kind: AssetKind::ChatInterface,
                teams: None,
                parent: None,
                archived: None,
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 20);
}

async fn total_assets<S: WorkspaceStore + ?Sized>(s: &S, org: OrgId) -> usize {
    let mut n = 0;
    for kind in AssetKind::ALL {
        let filter = AssetFilter {
            kind,
            teams: None,
            parent: None,
            archived: None,
        };
        n += s.list_assets(org, &filter, None, 1000).await.unwrap().len();
    }
    n
}

async fn mfa_steps_codes_and_challenges_are_used_once<
    S: TenancyStore + AuditStore + crate::mfa::MfaStore + ?Sized,
>(
    s: &S,
) {
    let (org, _, owner) = new_org(s).await;
    let u = owner.id;
    assert!(s.mfa(u).await.unwrap().is_none());
    s.start_totp(u, "enc-1").await.unwrap();
    s.start_totp(u, "enc-2").await.unwrap();
    let pending = s.mfa(u).await.unwrap().unwrap();
    assert_eq!(
        (pending.secret_enc.as_str(), pending.enabled_at),
        ("enc-2", None),
        "a restart replaces the pending secret"
    );
    assert!(
        s.enrolled_among(&[u]).await.unwrap().is_empty(),
        "a pending second factor is not on"
    );
    let h = head(s, org.id).await;
    let codes: Vec<String> = ["h1", "h2", "h3"].map(String::from).to_vec();
    // A code checked against the secret the restart replaced activates nothing.
    assert!(matches!(
        s.activate_totp(u, "enc-1", 10, &codes, None, now(), &|_| note(
            org.id, "stale"
        ))
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(s.mfa(u).await.unwrap().unwrap().enabled_at, None);
    // Codes guessed while it is pending are counted, and no longer once it is on.
    for _ in 0..3 {
        s.reserve_mfa_attempt(u, &security_policy::LoginThrottlePolicy::default(), now())
            .await
            .unwrap();
    }
    assert_eq!(
        s.mfa(u)
            .await
            .unwrap()
            .unwrap()
            .throttle
            .map(|t| t.failures),
        Some(3)
    );
    s.activate_totp(u, "enc-2", 10, &codes, None, now(), &|_| note(org.id, "on"))
        .await
        .unwrap();
    assert_eq!(
        s.mfa(u).await.unwrap().unwrap().throttle,
        None,
        "activation starts the attempt count again"
    );
    assert_eq!(
        head(s, org.id).await,
        h + 1,
        "activation commits its audit record"
    );
    assert!(matches!(
        s.activate_totp(u, "enc-2", 11, &codes, None, now(), &|_| note(
            org.id, "again"
        ))
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(matches!(
        s.start_totp(u, "enc-3").await,
        Err(TenancyError::Conflict(_))
    ));
    let rec = s.mfa(u).await.unwrap().unwrap();
    assert_eq!(
        (rec.enabled_at, rec.last_step, rec.recovery_codes_left),
        (Some(now()), Some(10), 3)
    );
    let someone_else = UserId::new();
    assert_eq!(
        s.enrolled_among(&[someone_else, u]).await.unwrap(),
        [u],
        "now on; someone without a record is not"
    );
    assert!(s.enrolled_among(&[]).await.unwrap().is_empty());

    // A step is accepted once, and never one at or before the last.
    assert!(!s.use_totp_step(u, 10).await.unwrap());
    assert!(!s.use_totp_step(u, 9).await.unwrap());
    let racers: Vec<_> = (0..10).map(|_| s.use_totp_step(u, 11)).collect();
    let won = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "racing submissions of one code: exactly one wins");

    // Recovery codes work once, each use committing its record; a refused one writes nothing.
    let h = head(s, org.id).await;
    let racers: Vec<_> = (0..5)
        .map(|_| s.use_recovery_code(u, "h1", note(org.id, "recovery")))
        .collect();
    let won = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    assert_eq!(head(s, org.id).await, h + 1, "one use, one record");
    assert!(
        !s.use_recovery_code(u, "nope", note(org.id, "nope"))
            .await
            .unwrap()
    );
    assert_eq!(head(s, org.id).await, h + 1);
    assert_eq!(s.mfa(u).await.unwrap().unwrap().recovery_codes_left, 2);
    let fresh: Vec<String> = ["n1", "n2"].map(String::from).to_vec();
    s.replace_recovery_codes(u, &fresh, note(org.id, "regen"))
        .await
        .unwrap();
    assert!(
        !s.use_recovery_code(u, "h2", Journal::default())
            .await
            .unwrap(),
        "old codes die with the regeneration"
    );
    assert!(
        s.use_recovery_code(u, "n2", Journal::default())
            .await
            .unwrap()
    );

    // SMS codes: the pending one is taken once, only with its hash.
    s.set_phone(u, Some("+15551234567"), note(org.id, "phone"))
        .await
        .unwrap();
    let ch = security_policy::SmsChallenge {
        code_hash: "c1".into(),
        expires_at: now() + Duration::minutes(5),
    };
    assert!(s.replace_sms_challenge(u, None, &ch).await.unwrap());
    // A request that read no pending code stores nothing over the one stored meanwhile, nor
    // one that read another.
    let late = security_policy::SmsChallenge {
        code_hash: "late".into(),
        expires_at: now() + Duration::minutes(6),
    };
    assert!(!s.replace_sms_challenge(u, None, &late).await.unwrap());
    assert!(
        !s.replace_sms_challenge(u, Some(late.expires_at), &late)
            .await
            .unwrap()
    );
    let rec = s.mfa(u).await.unwrap().unwrap();
    assert_eq!(
        (rec.phone.as_deref(), rec.sms.as_ref()),
        (Some("+15551234567"), Some(&ch))
    );
    assert!(!s.take_sms_challenge(u, "c2").await.unwrap());
    assert!(s.take_sms_challenge(u, "c1").await.unwrap());
    assert!(!s.take_sms_challenge(u, "c1").await.unwrap());

    // Throttling state round-trips.
    let t = security_policy::ThrottleState {
        failures: 3,
        window_start: now(),
        locked_until: Some(now() + Duration::minutes(15)),
    };
    let h = head(s, org.id).await;
    s.set_mfa_throttle(u, Some(&t), note(org.id, "wrong code"))
        .await
        .unwrap();
    assert_eq!(s.mfa(u).await.unwrap().unwrap().throttle, Some(t));
    assert_eq!(head(s, org.id).await, h + 1);
    s.set_mfa_throttle(u, None, Journal::default())
        .await
        .unwrap();
    assert_eq!(s.mfa(u).await.unwrap().unwrap().throttle, None);
    // Wrong codes arriving at once each count.
    let policy = security_policy::LoginThrottlePolicy::default();
    let counted = futures::future::join_all(
        (0..4).map(|_| s.count_mfa_failure(u, &policy, now(), Journal::default())),
    )
    .await;
    let mut seen: Vec<u32> = counted
        .iter()
        .map(|c| c.as_ref().unwrap().failures)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4]);
    assert_eq!(
        s.mfa(u)
            .await
            .unwrap()
            .unwrap()
            .throttle
            .map(|t| t.failures),
        Some(4)
    );
    assert!(matches!(
        s.count_mfa_failure(UserId::new(), &policy, now(), Journal::default())
            .await,
        Err(TenancyError::NotFound(_))
    ));
    s.set_mfa_throttle(u, None, Journal::default())
        .await
        .unwrap();
    // Attempts reserved at once each count, and no more than the limit are let through.
    let reserved =
        futures::future::join_all((0..15).map(|_| s.reserve_mfa_attempt(u, &policy, now()))).await;
    assert_eq!(
        reserved.iter().filter(|r| r.is_ok()).count(),
        policy.max_failures as usize
    );
    assert!(
        reserved
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, TenancyError::Throttled(_)))
    );
    assert!(matches!(
        s.reserve_mfa_attempt(UserId::new(), &policy, now()).await,
        Err(TenancyError::NotFound(_))
    ));
    s.set_mfa_throttle(u, None, Journal::default())
        .await
        .unwrap();

    // Login challenges: stored by hash, consumed once.
    s.save_login_challenge("ch-hash", u, now() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        s.login_challenge("ch-hash").await.unwrap(),
        Some((u, now() + Duration::minutes(5)))
    );
    assert_eq!(s.login_challenge("other").await.unwrap(), None);
    let racers: Vec<_> = (0..5)
        .map(|_| s.consume_login_challenge("ch-hash"))
        .collect();
    let won = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    assert_eq!(s.login_challenge("ch-hash").await.unwrap(), None);

    s.disable_mfa(u, note(org.id, "off")).await.unwrap();
    assert!(s.mfa(u).await.unwrap().is_none());
    assert!(matches!(
        s.disable_mfa(u, note(org.id, "off")).await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(matches!(
        s.set_phone(u, None, note(org.id, "x")).await,
        Err(TenancyError::NotFound(_))
    ));
}

async fn access_reset_is_one_transaction<
    S: TenancyStore + AuditStore + crate::mfa::MfaStore + ?Sized,
>(
    s: &S,
) {
    use crate::mfa::AccessReset;
    let (org, _, owner) = new_org(s).await;
    let u = owner.id;
    let sessions: Vec<Session> = (0..3).map(|i| session(u, i)).collect();
    for (i, one) in sessions.iter().enumerate() {
        s.create_session(
            one,
            &format!("reset-{i}"),
            5,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    let locked = locked_out();
    s.set_login_throttle(u, Some(&locked), Journal::default())
        .await
        .unwrap();
    s.start_totp(u, "enc").await.unwrap();
    // Switching TOTP on ends the sessions opened with the password alone, but the one it was
    // switched on in, with the records made from how many ended.
    let counted = std::sync::Mutex::new(Vec::new());
    let ended = s
        .activate_totp(
            u,
            "enc",
            1,
            &["c1".to_owned()],
            Some(sessions[0].id),
            now(),
            &|n| {
                counted.lock().unwrap().push(n);
                Journal::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((ended, counted.lock().unwrap().clone()), (2, vec![2]));
    assert!(s.find_session("reset-0").await.unwrap().is_some());
    assert!(s.find_session("reset-1").await.unwrap().is_none());
    // From now on a session opened with the password alone (a sign-in that read the person
    // as having no second factor just before it was switched on) is refused, and nothing of
    // it is stored; one opened with the second factor is.
    let h = head(s, org.id).await;
    assert!(matches!(
        s.create_session(
            &session(u, 3),
            "reset-3",
            5,
            crate::SessionProof::Password,
            &|_| note(org.id, "password only"),
        )
        .await,
        Err(TenancyError::SecondFactorEnabled)
    ));
    assert!(s.find_session("reset-3").await.unwrap().is_none());
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    s.create_session(
        &session(u, 3),
        "reset-3",
        5,
        crate::SessionProof::SecondFactor,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let h = head(s, org.id).await;
    let seen = std::sync::Mutex::new(Vec::new());
    let records = |done: AccessReset| {
        seen.lock().unwrap().push(done);
        let j = note(org.id, "reset");
        if done.second_factor_removed {
            j.and_record(NewAuditEvent::new(
                org.id,
                now(),
                Actor::system(),
                AuditAction::MfaDisabled,
                Target::new("contract", u, "second factor"),
            ))
        } else {
            j
        }
    };
    let done = s
        .reset_access(u, "reset-hash", None, now(), &records)
        .await
        .unwrap();
    let expected = AccessReset {
        sessions_ended: 2,
        second_factor_removed: true,
    };
    assert_eq!(done, expected);
    assert_eq!(
        *seen.lock().unwrap(),
        [expected],
        "the journal is made from what was done"
    );
    assert_eq!(
        head(s, org.id).await,
        h + 2,
        "both records committed with the reset"
    );
    assert!(
        s.mfa(u).await.unwrap().is_none(),
        "the second factor is gone"
    );
    assert!(s.list_sessions(u).await.unwrap().is_empty());
    assert_eq!(s.login_throttle(u).await.unwrap(), None);
    assert_eq!(
        password_hash(s, &owner).await.as_deref(),
        Some("reset-hash")
    );
    // Again, with nothing left to end or remove; an unknown person changes nothing.
    let again = s
        .reset_access(u, "again", None, now(), &records)
        .await
        .unwrap();
    assert_eq!(
        again,
        AccessReset {
            sessions_ended: 0,
            second_factor_removed: false,
        }
    );
    assert_eq!(head(s, org.id).await, h + 3);
    assert!(matches!(
        s.reset_access(UserId::new(), "x", None, now(), &records)
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(head(s, org.id).await, h + 3);
}

/// An Owner's or Admin's reset of a member's second factor is decided again by the store, by
/// what has committed since the service looked: the author's demotion, the member's join of
/// another organization (and, by the same rule, [`crate::mfa::check_member_reset`], unit-tested
/// whole, their deactivation). A refused reset changes and records nothing.
async fn a_member_reset_is_checked_again_under_lock<
    S: TenancyStore + AuditStore + MembershipStore + crate::mfa::MfaStore + ?Sized,
>(
    s: &S,
) {
    use crate::mfa::MemberReset;
    let (org, team, owner) = new_org(s).await;
    let add = |u: &User, role: OrgRole, org: OrgId, team: TeamId| {
        let u = u.clone();
        async move {
            s.add_member(
                org,
                &u,
                // A new account the first time, the same account when it joins another.
                (s.get_user(u.id).await.unwrap().is_none()).then_some("old-hash"),
                role,
                team,
                TeamRole::Member,
                &limits(10),
                note(org, "joined"),
            )
            .await
            .unwrap();
        }
    };
    let (admin, member) = (user("reset-admin"), user("reset-member"));
    add(&admin, OrgRole::Admin, org.id, team.id).await;
    add(&member, OrgRole::User, org.id, team.id).await;
    s.start_totp(member.id, "enc").await.unwrap();
    s.activate_totp(
        member.id,
        "enc",
        1,
        &["c1".to_owned()],
        None,
        now(),
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let records = |_| note(org.id, "member reset");
    let by = |u: &User| {
        Some(MemberReset {
            org: org.id,
            by: u.id,
            email: member.email.as_str().to_owned(),
        })
    };
    let unchanged = |h: i64| {
        let member = member.clone();
        async move {
            assert!(
                s.mfa(member.id).await.unwrap().is_some(),
                "the factor stays"
            );
            assert_eq!(password_hash(s, &member).await.as_deref(), Some("old-hash"));
            assert_eq!(head(s, org.id).await, h, "nothing recorded");
        }
    };
    let h = head(s, org.id).await;

    // The Admin was made a User after the service looked.
    s.set_role(
        org.id,
        admin.id,
        OrgRole::Admin,
        OrgRole::User,
        Some(owner.id),
        note(org.id, "demoted"),
    )
    .await
    .unwrap();
    let h = h + 1;
    assert!(matches!(
        s.reset_access(member.id, "new", by(&admin), now(), &records)
            .await,
        Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
    ));
    unchanged(h).await;

    // The member joined another organization meanwhile: their factor guards it too.
    let (other, other_team, _) = new_org(s).await;
    add(&member, OrgRole::User, other.id, other_team.id).await;
    assert!(matches!(
        s.reset_access(member.id, "new", by(&owner), now(), &records)
            .await,
        Err(TenancyError::Conflict(_))
    ));
    unchanged(h).await;

    // Not oneself; a member of this organization alone, active and enrolled, is reset.
    let (lone, lone_team, lone_owner) = new_org(s).await;
    let solo = user("reset-solo");
    add(&solo, OrgRole::User, lone.id, lone_team.id).await;
    s.start_totp(solo.id, "enc").await.unwrap();
    s.activate_totp(solo.id, "enc", 1, &["c1".to_owned()], None, now(), &|_| {
        Journal::default()
    })
    .await
    .unwrap();
    let lone_by = |email: &str| {
        Some(MemberReset {
            org: lone.id,
            by: lone_owner.id,
            email: email.to_owned(),
        })
    };
    let solo_email = solo.email.as_str().to_owned();
    let lone_records = |_| note(lone.id, "member reset");
    assert!(matches!(
        s.reset_access(
            lone_owner.id,
            "new",
            lone_by(lone_owner.email.as_str()),
            now(),
            &lone_records
        )
        .await,
        Err(TenancyError::RoleRule(rbac_core::RoleRuleError::RemoveSelf))
    ));
    let h = head(s, lone.id).await;
    // The address the notice would go to changed since the service read it: refused.
    assert!(matches!(
        s.reset_access(
            solo.id,
            "new",
            lone_by("before@contract.example"),
            now(),
            &lone_records
        )
        .await,
        Err(TenancyError::Changed(_))
    ));
    assert!(s.mfa(solo.id).await.unwrap().is_some());
    assert_eq!(head(s, lone.id).await, h, "nothing recorded");
    s.reset_access(solo.id, "new", lone_by(&solo_email), now(), &lone_records)
        .await
        .unwrap();
    assert_eq!(head(s, lone.id).await, h + 1);
    assert!(s.mfa(solo.id).await.unwrap().is_none());
    assert_eq!(password_hash(s, &solo).await.as_deref(), Some("new"));
    // Nothing left to reset: no second factor any more.
    assert!(matches!(
        s.reset_access(solo.id, "again", lone_by(&solo_email), now(), &lone_records)
            .await,
        Err(TenancyError::NotFound("second factor"))
    ));
    assert_eq!(head(s, lone.id).await, h + 1);
}

async fn security_settings_are_compare_and_swap<
    S: TenancyStore + crate::MembershipStore + AuditStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, owner) = new_org(s).await;
    let before = s.get_org(org.id).await.unwrap().security;
    let mut a = before.clone();
    a.mfa.required = true;
    a.mfa.required_since = Some(now());
    let mut b = before.clone();
    b.ip_allowlist = security_policy::parse_allowlist(&["10.0.0.0/8".to_owned()]).unwrap();
    s.update_security(org.id, Some(owner.id), &before, &a, note(org.id, "a"))
        .await
        .unwrap();
    let h = head(s, org.id).await;
    assert!(matches!(
        s.update_security(org.id, None, &before, &b, note(org.id, "b"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(head(s, org.id).await, h);
    assert_eq!(
        s.get_org(org.id).await.unwrap().security,
        a,
        "the first change is not lost"
    );
    // Its author is checked under the lock: an Admin demoted since their request looked, and
    // an Admin (not the Owner) changing the retention, change nothing.
    let admin = user("admin");
    s.add_member(
        org.id,
        &admin,
        Some("h"),
        OrgRole::Admin,
        team.id,
        TeamRole::Admin,
        &limits(5),
        note(org.id, "admin"),
    )
    .await
    .unwrap();
    let mut kept = a.clone();
    kept.audit_retention_days = Some(400);
    assert!(matches!(
        s.update_security(org.id, Some(admin.id), &a, &kept, note(org.id, "retention"))
            .await,
        Err(TenancyError::Forbidden(_))
    ));
    let mut opened = a.clone();
    opened.ip_allowlist = Vec::new();
    opened.mfa.required = false;
    s.set_role(
        org.id,
        admin.id,
        OrgRole::Admin,
        OrgRole::User,
        Some(owner.id),
        note(org.id, "demote"),
    )
    .await
    .unwrap();
    let h = head(s, org.id).await;
    assert!(matches!(
        s.update_security(org.id, Some(admin.id), &a, &opened, note(org.id, "late"))
            .await,
        Err(TenancyError::RoleRule(_))
    ));
    assert!(matches!(
        s.update_access(
            org.id,
            Some(admin.id),
            &org.access,
            &FeatureAccess::default(),
            note(org.id, "late access")
        )
        .await,
        Err(TenancyError::RoleRule(_))
    ));
    let now_named = s.get_org(org.id).await.unwrap();
    assert!(matches!(
        s.update_profile(
            org.id,
            Some(admin.id),
            &now_named.profile,
            &now_named.profile,
            Some((&now_named.name, "Taken Over")),
            note(org.id, "late rename")
        )
        .await,
        Err(TenancyError::RoleRule(_))
    ));
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    assert_eq!(s.get_org(org.id).await.unwrap().security, a);
    assert_eq!(s.get_org(org.id).await.unwrap().name, now_named.name);
}

/// A person's rename commits with its records, only from the name read: one renamed meanwhile
/// (by themselves elsewhere, by SCIM, by an erasure) is refused with nothing recorded.
async fn a_rename_is_a_compare_and_swap_committed_with_its_records<
    S: TenancyStore + AuditStore + ?Sized,
>(
    s: &S,
) {
    let (org, _, owner) = new_org(s).await;
    let h = head(s, org.id).await;
    // Organizations read before a join or a removal committed: refused, nothing written.
    for stale in [vec![], vec![org.id, OrgId::new()]] {
        assert!(matches!(
            s.rename_user(
                owner.id,
                &owner.name,
                "Too Early",
                &stale,
                note(org.id, "stale")
            )
            .await,
            Err(TenancyError::Changed(_))
        ));
    }
    assert_eq!(head(s, org.id).await, h);
    assert_eq!(
        s.get_user(owner.id).await.unwrap().unwrap().name,
        owner.name
    );
    s.rename_user(
        owner.id,
        &owner.name,
        "Owner Renamed",
        &[org.id],
        note(org.id, "rename"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_user(owner.id).await.unwrap().unwrap().name,
        "Owner Renamed"
    );
    assert_eq!(head(s, org.id).await, h + 1, "recorded with the rename");
    assert!(matches!(
        s.rename_user(
            owner.id,
            &owner.name,
            "Stale",
            &[org.id],
            note(org.id, "stale")
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(matches!(
        s.rename_user(UserId::new(), "x", "y", &[], note(org.id, "nobody"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(head(s, org.id).await, h + 1, "nothing more recorded");
    assert_eq!(
        s.get_user(owner.id).await.unwrap().unwrap().name,
        "Owner Renamed"
    );
}

/// A role change, removal or erasure whose author was demoted after the service checked them
/// (their demotion committed first) is refused under the lock, with nothing written; the
/// Owner's goes through.
async fn a_demoted_admin_changes_no_role_and_removes_no_one<
    S: TenancyStore + AuditStore + crate::MembershipStore + crate::privacy::PrivacyStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, owner) = new_org(s).await;
    let (admin, member) = (user("admin"), user("member"));
    for (u, role) in [(&admin, OrgRole::Admin), (&member, OrgRole::User)] {
        s.add_member(
            org.id,
            u,
            Some("h"),
            role,
            team.id,
            TeamRole::Member,
            &limits(10),
            note(org.id, "add"),
        )
        .await
        .unwrap();
    }
    s.set_role(
        org.id,
        admin.id,
        OrgRole::Admin,
        OrgRole::User,
        Some(owner.id),
        note(org.id, "demote"),
    )
    .await
    .unwrap();
    let h = head(s, org.id).await;
    let changed = |r: Result<(), TenancyError>| {
        matches!(
            r,
            Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
        )
    };
    assert!(changed(
        s.set_role(
            org.id,
            member.id,
            OrgRole::User,
            OrgRole::Admin,
            Some(admin.id),
            note(org.id, "promote"),
        )
        .await
    ));
    assert!(changed(
        s.set_all_teams_role(
            org.id,
            member.id,
            None,
            Some(TeamRole::Viewer),
            Some(admin.id),
            note(org.id, "all teams"),
        )
        .await
    ));
    assert!(changed(
        s.remove_member(
            org.id,
            member.id,
            crate::members::Disposition::TransferToOwner(owner.id),
            now(),
            Some(admin.id),
            note(org.id, "remove"),
            &|_| Journal::default(),
        )
        .await
        .map(drop)
    ));
    assert!(changed(
        s.erase_member(
            org.id,
            member.id,
            Some(crate::members::Disposition::TransferToOwner(owner.id)),
            now(),
            Some(admin.id),
            note(org.id, "erase"),
            &|_| Journal::default(),
        )
        .await
        .map(drop)
    ));
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    let kept = s.get_member(org.id, member.id).await.unwrap().unwrap();
    assert_eq!((kept.role, kept.all_teams), (OrgRole::User, None));
    s.remove_member(
        org.id,
        member.id,
        crate::members::Disposition::TransferToOwner(owner.id),
        now(),
        Some(owner.id),
        note(org.id, "remove"),
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    assert!(s.get_member(org.id, member.id).await.unwrap().is_none());
}

/// A team's Admin, checked by the service and then demoted before their write, gives no role
/// in the team: the store reads the author's roles again under its lock. The Owner still does.
async fn a_demoted_team_admin_gives_no_team_role<
    S: TenancyStore + AuditStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, owner) = new_org(s).await;
    let (lead, member) = (user("lead"), user("member"));
    add_user(s, org.id, team.id, &lead, Some("h")).await;
    add_user(s, org.id, team.id, &member, Some("h")).await;
    s.set_team_member(
        org.id,
        team.id,
        lead.id,
        Some(TeamRole::Admin),
        note(org.id, "lead"),
    )
    .await
    .unwrap();
    let role_of = |u: UserId| async move {
        s.team_members(org.id, team.id)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.member.user.id == u)
            .map(|m| m.role)
    };
    let write = |role: TeamRole, by: UserId| async move {
        s.set_team_member_recorded(org.id, team.id, member.id, Some(role), Some(by), &|_| {
            note(org.id, "team role")
        })
        .await
    };
    write(TeamRole::Viewer, lead.id).await.unwrap();
    assert_eq!(role_of(member.id).await, Some(TeamRole::Viewer));
    s.set_team_member(
        org.id,
        team.id,
        lead.id,
        Some(TeamRole::Member),
        note(org.id, "demoted"),
    )
    .await
    .unwrap();
    let h = head(s, org.id).await;
    assert!(
        matches!(
            write(TeamRole::Admin, lead.id).await,
            Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
        ),
        "a demoted team admin's write lands"
    );
    assert_eq!(role_of(member.id).await, Some(TeamRole::Viewer));
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    write(TeamRole::Member, owner.id).await.unwrap();
    assert_eq!(role_of(member.id).await, Some(TeamRole::Member));
}

async fn a_joining_account_keeps_the_address_it_was_found_by<
    S: TenancyStore + AuditStore + ?Sized,
>(
    s: &S,
) {
    let (org, team, _) = new_org(s).await;
    let (_, _, elsewhere) = new_org(s).await;
    // The account as a service read it before its address changed.
    let mut stale = elsewhere.clone();
    stale.email = Email::parse("old-address@contract.example").unwrap();
    let h = head(s, org.id).await;
    let join = |u: User| async move {
        s.add_member(
            org.id,
            &u,
            None,
            OrgRole::User,
            team.id,
            TeamRole::Member,
            &limits(10),
            note(org.id, "join"),
        )
        .await
    };
    assert!(
        matches!(join(stale).await, Err(TenancyError::Changed(_))),
        "a join matched by an address the account no longer has"
    );
    assert!(s.get_member(org.id, elsewhere.id).await.unwrap().is_none());
    assert_eq!(head(s, org.id).await, h);
    join(elsewhere.clone()).await.unwrap();
    assert!(s.get_member(org.id, elsewhere.id).await.unwrap().is_some());
}

async fn blocked_countries_are_saved_checked_and_audited<S: TenancyStore + AuditStore + ?Sized>(
    s: &S,
) {
    use crate::security::{AddressRefusal, SecurityUpdate, admit_address, update};
    use security_policy::{Country, Located};
    let (org, _, owner) = new_org(s).await;
    let caller = crate::Caller::load(
        s,
        &crate::Principal::Session {
            user: owner,
            session: SessionId::new(),
        },
        org.id,
        audit::RequestContext::default(),
    )
    .await
    .unwrap();
    let (fr, us, ru) = (
        Country::parse("FR").unwrap(),
        Country::parse("US").unwrap(),
        Country::parse("RU").unwrap(),
    );
    let here: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let block = |codes: &[&str]| SecurityUpdate {
        blocked_countries: Some(codes.iter().map(|c| (*c).to_owned()).collect()),
        ..SecurityUpdate::default()
    };
    let h = head(s, org.id).await;
    // Refused, and nothing written: the caller's own country, a server that cannot place
    // addresses, a code that is no country, a country twice.
    for (change, at, says) in [
        (block(&["us", "RU"]), Located::Country(us), "lock you out"),
        (block(&["RU"]), Located::Unknown, "no GeoIP database"),
        (block(&["RU", "XX"]), Located::Country(us), "`XX`"),
        (block(&["RU", "ru"]), Located::Country(us), "listed twice"),
    ] {
        match update(s, &caller, change, here, at, now()).await {
            Err(TenancyError::Invalid(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("expected a refusal saying {says:?}, got {other:?}"),
        }
    }
    assert_eq!(head(s, org.id).await, h);
    assert!(
        s.get_org(org.id)
            .await
            .unwrap()
            .security
            .blocked_countries
            .is_empty()
    );
    // From an address placed in no country (a private network), or in another country: saved,
    // in the order given, and audited with the list.
    let saved = update(
        s,
        &caller,
        block(&["ru", "FR"]),
        here,
        Located::Nowhere,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(saved.blocked_countries, vec![ru, fr]);
    let stored = s.get_org(org.id).await.unwrap();
    assert_eq!(stored.security.blocked_countries, vec![ru, fr]);
    assert_eq!(head(s, org.id).await, h + 1);
    let record = s.chain_page(org.id, h, 1).await.unwrap().remove(0);
    assert_eq!(record.event.action, AuditAction::SecurityPolicyUpdated);
    assert_eq!(
        record.event.metadata.to_map()["blocked_countries"],
        serde_json::json!(["RU", "FR"])
    );
    // The stored rules decide: the allowlist first, then the countries.
    assert_eq!(
        admit_address(&stored, here, Located::Country(fr)),
        Err(AddressRefusal::CountryBlocked(fr))
    );
    assert_eq!(admit_address(&stored, here, Located::Country(us)), Ok(()));
    assert_eq!(admit_address(&stored, here, Located::Nowhere), Ok(()));
    assert_eq!(
        admit_address(&stored, here, Located::Unknown),
        Err(AddressRefusal::CountryUnverifiable(here)),
        "a rule the server cannot apply refuses"
    );
    let mut listed = stored.clone();
    listed.security.ip_allowlist =
        security_policy::parse_allowlist(&["10.0.0.0/8".to_owned()]).unwrap();
    assert_eq!(
        admit_address(&listed, here, Located::Country(fr)),
        Err(AddressRefusal::IpNotAllowed(here))
    );
    // Emptying the list needs no database.
    let caller = crate::Caller {
        org: stored,
        ..caller
    };
    let cleared = update(s, &caller, block(&[]), here, Located::Unknown, now())
        .await
        .unwrap();
    assert!(cleared.blocked_countries.is_empty());
    assert_eq!(head(s, org.id).await, h + 2);
}

async fn api_calls_never_overshoot_the_month<
    S: TenancyStore + AuditStore + WorkspaceStore + crate::metering::MeteringStore + ?Sized,
>(
    s: &S,
) {
    use crate::metering::METRIC_API_CALLS;
    let (org, team, _) = new_org(s).await;
    let day = now().date_naive();
    let calls: Vec<_> = (0..50)
        .map(|_| s.reserve_within(org.id, METRIC_API_CALLS, "2026-11", 1, Some(20)))
        .collect();
    let results = futures::future::join_all(calls).await;
    let counted: u64 = results.iter().map(|r| r.as_ref().unwrap().0).sum();
    assert_eq!(
        counted, 20,
        "exactly the limit is reserved, also concurrently"
    );
    assert!(results.iter().all(|r| r.as_ref().unwrap().1 <= 20));
    assert_eq!(
        s.monthly(org.id, METRIC_API_CALLS, "2026-11")
            .await
            .unwrap(),
        20
    );
    // Blocks: whole while they fit, then one at a time up to the limit, then nothing; 40
    // concurrent requests for blocks of 5 under a limit of 22 reserve exactly 22.
    let blocks: Vec<_> = (0..40)
        .map(|_| s.reserve_within(org.id, METRIC_API_CALLS, "2026-12", 5, Some(22)))
        .collect();
    let grants: Vec<u64> = futures::future::join_all(blocks)
        .await
        .into_iter()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(grants.iter().sum::<u64>(), 22, "{grants:?}");
    assert!(grants.iter().all(|g| [0, 1, 5].contains(g)), "{grants:?}");
    assert_eq!(grants.iter().filter(|g| **g == 5).count(), 4, "{grants:?}");
    assert_eq!(
        s.reserve_within(org.id, METRIC_API_CALLS, "2026-12", 5, Some(22))
            .await
            .unwrap(),
        (0, 22)
    );
    // No limit: every block is granted.
    for _ in 0..3 {
        assert_eq!(
            s.reserve_within(org.id, "other", "2026-11", 7, None)
                .await
                .unwrap()
                .0,
            7
        );
    }
    assert_eq!(s.monthly(org.id, "other", "2026-11").await.unwrap(), 21);
    // Calls made are added to the day's counters, by team.
    for n in [3, 18] {
        let record = crate::assets::UsageRecord {
            team: team.id,
            asset: None,
            metric: METRIC_API_CALLS.to_owned(),
            day,
            count: n,
        };
        s.record_usage(&record, org.id).await.unwrap();
    }
    let daily = s.usage(org.id, day, day).await.unwrap();
    let api: u64 = daily
        .iter()
        .filter(|u| u.metric == METRIC_API_CALLS && u.team == team.id)
        .map(|u| u.count)
        .sum();
    assert_eq!(api, 21);

    // An alert is recorded once per threshold and period, also when callers race.
    let h = head(s, org.id).await;
    let racers: Vec<_> = (0..10)
        .map(|_| {
            s.record_alert(
                org.id,
                "api_calls_per_month",
                "2026-11",
                80,
                note(org.id, "alert"),
            )
        })
        .collect();
    let won = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    assert_eq!(
        head(s, org.id).await,
        h + 1,
        "only the winner's journal is committed"
    );
    assert!(
        s.record_alert(
            org.id,
            "api_calls_per_month",
            "2026-11",
            100,
            note(org.id, "a")
        )
        .await
        .unwrap()
    );
    assert!(
        s.record_alert(
            org.id,
            "api_calls_per_month",
            "2026-12",
            80,
            note(org.id, "a")
        )
        .await
        .unwrap()
    );
    assert!(
        s.record_alert(org.id, "storage_bytes", "2026-11", 80, note(org.id, "a"))
            .await
            .unwrap()
    );
    // The periods of one alert, and no other's (limit, threshold or organization).
    let mut periods = s
        .alert_periods(org.id, "api_calls_per_month", 80)
        .await
        .unwrap();
    periods.sort();
    assert_eq!(periods, ["2026-11", "2026-12"]);
    assert_eq!(
        s.alert_periods(org.id, "api_calls_per_month", 100)
            .await
            .unwrap(),
        ["2026-11"]
    );
    assert!(
        s.alert_periods(org.id, "members", 80)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.alert_periods(OrgId::new(), "api_calls_per_month", 80)
            .await
            .unwrap()
            .is_empty()
    );
}

fn record(user: UserId, name: &str, version: i64) -> crate::scim::UserRecord {
    crate::scim::UserRecord {
        user,
        user_name: name.to_owned(),
        external_id: Some(format!("ext-{name}")),
        attributes: serde_json::json!({"displayName": name, "active": true, "emails": [{"value": "x@y.z", "primary": false}]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        version,
        updated_at: now(),
    }
}

async fn scim_tokens_records_and_deactivation<
    S: TenancyStore
        + AuditStore
        + InvitationStore
        + MembershipStore
        + crate::scim::ScimStore
        + crate::password_reset::PasswordResetStore
        + crate::mfa::MfaStore
        + ?Sized,
>(
    s: &S,
) {
    use crate::scim::{MemberWrite, ScimToken};
    let (org, team, owner) = new_org(s).await;
    // Tokens: found by hash while live, listed, revoked once.
    let token = ScimToken {
        id: rbac_core::ScimTokenId::new(),
        org: org.id,
        name: "Okta".into(),
        prefix: "axs_1234".into(),
        created_by: owner.id,
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    let before = head(s, org.id).await;
    s.create_scim_token(&token, "sh1", note(org.id, "token"))
        .await
        .unwrap();
    assert_eq!(head(s, org.id).await, before + 1, "audited with the insert");
    assert_eq!(s.find_scim_token("sh1").await.unwrap(), Some(token.clone()));
    assert_eq!(s.find_scim_token("other").await.unwrap(), None);
    s.touch_scim_token(token.id, now()).await.unwrap();
    s.revoke_scim_token(org.id, token.id, now(), note(org.id, "revoke"))
        .await
        .unwrap();
    assert_eq!(s.find_scim_token("sh1").await.unwrap(), None);
    assert!(matches!(
        s.revoke_scim_token(org.id, token.id, now(), note(org.id, "again"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    let listed = s.list_scim_tokens(org.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].revoked_at, listed[0].last_used_at),
        (Some(now()), Some(now()))
    );

    // Provisioning: the member limit holds, the record reads back verbatim, userName is unique
    // without regard to case, and a refused provisioning writes nothing.
    let jane = user("jane");
    let rec = record(jane.id, "Jane@Example", 1);
    s.provision_member(
        org.id,
        &jane,
        Some("h"),
        &rec,
        OrgRole::User,
        true,
        team.id,
        &limits(2),
        Some(owner.id),
        note(org.id, "jane"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.user_record(org.id, jane.id).await.unwrap(),
        Some(rec.clone())
    );
    // Found by name without regard to case, in its organization only.
    for name in ["Jane@Example", "jane@example", "JANE@EXAMPLE"] {
        assert_eq!(
            s.user_record_by_name(org.id, name).await.unwrap(),
            Some(rec.clone()),
            "{name}"
        );
    }
    assert_eq!(s.user_record_by_name(org.id, "jane").await.unwrap(), None);
    assert_eq!(
        s.user_record_by_name(OrgId::new(), "jane@example")
            .await
            .unwrap(),
        None
    );
    // Made with the rights of someone who is not an Owner or Admin: refused, nothing written.
    let ivan = user("ivan");
    let before = head(s, org.id).await;
    let by_jane = s
        .provision_member(
            org.id,
            &ivan,
            None,
            &record(ivan.id, "ivan", 1),
            OrgRole::User,
            true,
            team.id,
            &limits(9),
            Some(jane.id),
            note(org.id, "ivan"),
        )
        .await;
    assert!(
        matches!(
            by_jane,
            Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
        ),
        "{by_jane:?}"
    );
    assert_eq!(head(s, org.id).await, before);
    assert!(s.get_member(org.id, ivan.id).await.unwrap().is_none());
    let bob = user("bob");
    let before = head(s, org.id).await;
    let over = s
        .provision_member(
            org.id,
            &bob,
            None,
            &record(bob.id, "bob", 1),
            OrgRole::User,
            true,
            team.id,
            &limits(2),
            Some(owner.id),
            note(org.id, "bob"),
        )
        .await;
    assert!(
        matches!(over, Err(TenancyError::LimitReached { .. })),
        "{over:?}"
    );
    assert_eq!(head(s, org.id).await, before, "nothing audited");
    assert!(s.get_member(org.id, bob.id).await.unwrap().is_none());
    let dup = s
        .provision_member(
            org.id,
            &bob,
            None,
            &record(bob.id, "jane@example", 1),
            OrgRole::User,
            true,
            team.id,
            &limits(10),
            Some(owner.id),
            note(org.id, "bob"),
        )
        .await;
    assert!(matches!(dup, Err(TenancyError::Conflict(_))), "{dup:?}");
    assert!(
        s.get_member(org.id, bob.id).await.unwrap().is_none(),
        "no half-made member"
    );
    assert!(
        s.find_user_by_email(&bob.email).await.unwrap().is_none(),
        "no half-made account"
    );
    // A pending invitation holds its invitee's seat against provisioning too.
    let held = invitation(org.id, owner.id, "held-seat", 7);
    s.create_invitation(&held, "ih-held", &limits(9), note(org.id, "held"))
        .await
        .unwrap();
    let over = s
        .provision_member(
            org.id,
            &bob,
            None,
            &record(bob.id, "bob", 1),
            OrgRole::User,
            true,
            team.id,
            &limits(3),
            Some(owner.id),
            note(org.id, "bob"),
        )
        .await;
    assert!(
        matches!(over, Err(TenancyError::LimitReached { .. })),
        "two members and one invitation fill three seats: {over:?}"
    );
    // Except the newcomer's own invitation: that seat is theirs.
    let bobs = Invitation {
        email: bob.email.clone(),
        ..invitation(org.id, owner.id, "bob", 7)
    };
    s.create_invitation(&bobs, "ih-bob", &limits(9), note(org.id, "bob invited"))
        .await
        .unwrap();
    s.provision_member(
        org.id,
        &bob,
        None,
        &record(bob.id, "bob", 1),
        OrgRole::User,
        true,
        team.id,
        &limits(4),
        Some(owner.id),
        note(org.id, "bob"),
    )
    .await
    .unwrap(); // Two members, the other invitation and Bob fill four seats.
    s.revoke_invitation(org.id, held.id, now(), note(org.id, "unheld"))
        .await
        .unwrap();
    // Bob joined: his invitation is settled with it and holds no seat any more.
    assert_eq!(
        s.find_invitation("ih-bob")
            .await
            .unwrap()
            .unwrap()
            .status(now()),
        crate::invitations::InvitationStatus::Accepted
    );

    // Deactivation ends sessions and API keys in one write; a stale version is refused.
    let sess = session(jane.id, 0);
    s.create_session(
        &sess,
        "jane-session",
        3,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let key = ApiKey {
        id: ApiKeyId::new(),
        org: org.id,
        team: team.id,
        scope: crate::KeyScope::Organization,
        created_by: jane.id,
        name: "k".into(),
        prefix: "axk_0000".into(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    s.create_api_key(&key, "jane-key", &keys(5), Journal::default())
        .await
        .unwrap();
    let write = |expected: Option<i64>, version: i64, active: Option<bool>| MemberWrite {
        org: org.id,
        user: jane.id,
        expected_version: expected,
        record: record(jane.id, "jane@example", version),
        name: "Jane D".into(),
        email: jane.email.clone(),
        password_hash: None,
        role: Some((OrgRole::User, OrgRole::Admin)),
        active,
        by: Some(owner.id),
        now: now(),
    };
    // A transfer proposed to her goes with her deactivation, as with a removal.
    let to_jane = OwnershipTransfer {
        org: org.id,
        from: owner.id,
        to: jane.id,
        proposed_at: now(),
        expires_at: now() + Duration::hours(72),
    };
    s.save_transfer(&to_jane, note(org.id, "propose"))
        .await
        .unwrap();
    // Made with the rights of someone who is not (or no longer) an Owner or Admin: refused,
    // nothing changed.
    let by_jane = MemberWrite {
        by: Some(jane.id),
        ..write(Some(1), 2, Some(false))
    };
    let refused = s
        .write_member(&by_jane, note(org.id, "by jane"), &|_| Journal::default())
        .await;
    assert!(
        matches!(
            refused,
            Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
        ),
        "{refused:?}"
    );
    assert!(s.find_session("jane-session").await.unwrap().is_some());
    // The Owner is never deactivated, whatever role the service read (a transfer may have
    // made them the Owner since): refused, nothing changed.
    let owner_off = MemberWrite {
        user: owner.id,
        expected_version: None,
        record: record(owner.id, "owner-idp", 1),
        name: owner.name.clone(),
        email: owner.email.clone(),
        role: None,
        ..write(Some(1), 2, Some(false))
    };
    let refused = s
        .write_member(&owner_off, note(org.id, "owner off"), &|_| {
            Journal::default()
        })
        .await;
    assert!(
        matches!(refused, Err(TenancyError::Changed(_))),
        "{refused:?}"
    );
    let o = s.get_member(org.id, owner.id).await.unwrap().unwrap();
    assert_eq!((o.role, o.deactivated_at), (OrgRole::Owner, None));
    // A SCIM token she created as an Admin is revoked with her deactivation: reactivated, she
    // does not bring it back.
    s.set_role(
        org.id,
        jane.id,
        OrgRole::User,
        OrgRole::Admin,
        Some(owner.id),
        note(org.id, "promote"),
    )
    .await
    .unwrap();
    let janes_token = ScimToken {
        id: rbac_core::ScimTokenId::new(),
        created_by: jane.id,
        prefix: "axs_jane".into(),
        ..token.clone()
    };
    s.create_scim_token(&janes_token, "sh-jane", Journal::default())
        .await
        .unwrap();
    let before = head(s, org.id).await;
    let revoked = |n: u64| {
        (0..n).fold(Journal::default(), |j, _| {
            j.and_record(NewAuditEvent::new(
                org.id,
                now(),
                Actor::system(),
                AuditAction::SessionRevoked,
                Target::new("member", jane.id, "jane"),
            ))
        })
    };
    let report = s
        .write_member(
            &MemberWrite {
                role: None,
                ..write(Some(1), 2, Some(false))
            },
            note(org.id, "deactivate"),
            &revoked,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            report.sessions_ended,
            report.api_keys_deactivated,
            report.scim_tokens_revoked
        ),
        (1, 1, 1)
    );
    assert_eq!(s.find_scim_token("sh-jane").await.unwrap(), None);
    assert!(
        s.list_scim_tokens(org.id)
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == janes_token.id && t.revoked_at == Some(now())),
        "listed as revoked"
    );
    assert_eq!(
        head(s, org.id).await,
        before + 2,
        "the write's record and one per session it ended, together"
    );
    assert_eq!(
        s.pending_transfer(org.id).await.unwrap(),
        None,
        "a deactivated member's grants are withdrawn"
    );
    // Nor is one proposed to her while she is deactivated (she could not act as the Owner).
    let audit_before = head(s, org.id).await;
    assert!(matches!(
        s.save_transfer(&to_jane, note(org.id, "propose again"))
            .await,
        Err(TenancyError::Invalid(_))
    ));
    assert_eq!(s.pending_transfer(org.id).await.unwrap(), None);
    assert_eq!(head(s, org.id).await, audit_before, "nothing recorded");
    assert!(s.find_session("jane-session").await.unwrap().is_none());
    assert!(s.find_api_key("jane-key").await.unwrap().is_none());
    let m = s.get_member(org.id, jane.id).await.unwrap().unwrap();
    assert_eq!(
        (m.role, m.user.name.as_str(), m.deactivated_at),
        (OrgRole::Admin, "Jane D", Some(now()))
    );
    assert!(!s.memberships(jane.id).await.unwrap()[0].active);
    // Nobody's resources go to her while she is deactivated.
    let sam = user("sam-leaving");
    s.add_member(
        org.id,
        &sam,
        Some("h"),
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &enterprise(),
        note(org.id, "sam"),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.remove_member(
            org.id,
            sam.id,
            Disposition::TransferTo(jane.id),
            now(),
            None,
            note(org.id, "to jane"),
            &|_| Journal::default()
        )
        .await,
        Err(TenancyError::Invalid(_))
    ));
    assert!(s.get_member(org.id, sam.id).await.unwrap().is_some());
    let before = head(s, org.id).await;
    let stale = s
        .write_member(
            &write(Some(1), 2, Some(true)),
            note(org.id, "stale"),
            &|_| Journal::default(),
        )
        .await;
    assert!(
        matches!(stale, Err(TenancyError::Changed(_))),
        "a version race, not a duplicate: {stale:?}"
    );
    // A write decided on her having no record yet, when another write has made one.
    let first = s
        .write_member(&write(None, 1, Some(true)), note(org.id, "first"), &|_| {
            Journal::default()
        })
        .await;
    assert!(
        matches!(first, Err(TenancyError::Changed(_))),
        "a race to write the first record, not a duplicate: {first:?}"
    );
    assert_eq!(head(s, org.id).await, before);
    assert!(
        s.get_member(org.id, jane.id)
            .await
            .unwrap()
            .unwrap()
            .deactivated_at
            .is_some()
    );
    // The role is now Admin: a write decided on her being a User is refused.
    let before = head(s, org.id).await;
    let stale = s
        .write_member(
            &write(Some(2), 3, Some(true)),
            note(org.id, "stale role"),
            &|_| Journal::default(),
        )
        .await;
    assert!(matches!(stale, Err(TenancyError::Changed(_))), "{stale:?}");
    assert_eq!(head(s, org.id).await, before);
    let mut reactivate = write(Some(2), 3, Some(true));
    reactivate.role = None;
    s.write_member(&reactivate, note(org.id, "reactivate"), &|_| {
        Journal::default()
    })
    .await
    .unwrap();
    assert!(
        s.get_member(org.id, jane.id)
            .await
            .unwrap()
            .unwrap()
            .deactivated_at
            .is_none()
    );
    // A promotion through SCIM gives the default team's Admin role, as through the API; a
    // demotion takes it back and withdraws the invitations sent with admin rights.
    assert!(
        s.team_roles(org.id, jane.id)
            .await
            .unwrap()
            .contains(&(team.id, TeamRole::Admin)),
        "promoted: the default team's admin"
    );
    let sent = invitation(org.id, jane.id, "by-jane", 7);
    s.create_invitation(&sent, "ih-jane", &limits(9), note(org.id, "jane invites"))
        .await
        .unwrap();
    let mut demote = write(Some(3), 4, None);
    demote.role = Some((OrgRole::Admin, OrgRole::User));
    s.write_member(&demote, note(org.id, "demote"), &|_| Journal::default())
        .await
        .unwrap();
    assert_eq!(
        s.get_member(org.id, jane.id).await.unwrap().unwrap().role,
        OrgRole::User
    );
    assert!(
        s.team_roles(org.id, jane.id)
            .await
            .unwrap()
            .contains(&(team.id, TeamRole::Member)),
        "demoted: a member of the default team again"
    );
    assert!(
        s.find_invitation("ih-jane")
            .await
            .unwrap()
            .is_some_and(|i| i.revoked_at.is_some()),
        "her pending invitation is withdrawn"
    );
    // A new password ends her sessions and retires the reset links sent before it.
    let sess = session(jane.id, 1);
    s.create_session(
        &sess,
        "jane-session-2",
        3,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let link = crate::password_reset::PasswordReset {
        token_hash: format!("scim-reset-{}", jane.id),
        user: jane.id,
        created_at: now(),
        expires_at: now() + Duration::hours(1),
        used_at: None,
    };
    assert!(
        s.create_password_reset(
            &link,
            &jane.email,
            now() - Duration::hours(1),
            5,
            &|_, _| { Journal::default() }
        )
        .await
        .unwrap()
    );
    // A sign-in begun with the old password, waiting for its second factor.
    let waiting = format!("scim-pw-challenge-{}", jane.id);
    s.save_login_challenge(&waiting, jane.id, now() + Duration::minutes(5))
        .await
        .unwrap();
    // A sign-in from elsewhere a minute before, and a lock on her account.
    let mut earlier = session(jane.id, -1);
    earlier.ip = "192.0.2.9".into();
    s.create_session(
        &earlier,
        "jane-session-earlier",
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let day_ago = now() - Duration::days(1);
    assert!(
        s.sign_in_addresses(jane.id, day_ago, 10)
            .await
            .unwrap()
            .contains(&"192.0.2.9".to_owned())
    );
    s.set_login_throttle(jane.id, Some(&locked_out()), Journal::default())
        .await
        .unwrap();
    let mut password = write(Some(4), 5, None);
    password.role = None;
    password.password_hash = Some("h2".into());
    let report = s
        .write_member(&password, note(org.id, "password"), &|_| Journal::default())
        .await
        .unwrap();
    assert_eq!(report.sessions_ended, 2);
    assert!(s.find_session("jane-session-2").await.unwrap().is_none());
    // A credential change, as a reset is: the lock is lifted, and the address signed in from
    // before it no longer passes a lock as a familiar one.
    assert_eq!(s.login_throttle(jane.id).await.unwrap(), None);
    assert!(
        !s.sign_in_addresses(jane.id, day_ago, 10)
            .await
            .unwrap()
            .contains(&"192.0.2.9".to_owned())
    );
    assert!(
        s.login_challenge(&waiting).await.unwrap().is_none(),
        "a password set through SCIM discards the sign-ins begun with the old one"
    );
    assert_eq!(
        s.find_password_reset(&link.token_hash)
            .await
            .unwrap()
            .and_then(|l| l.used_at),
        Some(now()),
        "a link sent before a password set through SCIM no longer works"
    );
    // Nor is the Owner's sign-in changed: the service refuses it, and the store checks again.
    let mut owner_password = write(None, 1, None);
    owner_password.user = owner.id;
    owner_password.email = owner.email.clone();
    owner_password.record = record(owner.id, "owner", 1);
    owner_password.password_hash = Some("taken over".into());
    owner_password.role = None;
    let handed = crate::scim::credentials_changed_hands().to_string();
    let refused = s
        .write_member(&owner_password, note(org.id, "owner password"), &|_| {
            Journal::default()
        })
        .await;
    assert!(
        matches!(&refused, Err(e @ TenancyError::Changed(_)) if e.to_string() == handed),
        "{refused:?}"
    );
    assert_ne!(
        password_hash(s, &owner).await.as_deref(),
        Some("taken over")
    );
    // Nor the sign-in of an account that (since the service looked) belongs to another
    // organization too.
    let (elsewhere, elsewhere_team, _) = new_org(s).await;
    s.add_member(
        elsewhere.id,
        &bob,
        None,
        OrgRole::User,
        elsewhere_team.id,
        TeamRole::Member,
        &limits(10),
        note(elsewhere.id, "bob joins"),
    )
    .await
    .unwrap();
    let bob_password = MemberWrite {
        user: bob.id,
        expected_version: Some(1),
        record: record(bob.id, "bob", 2),
        name: bob.name.clone(),
        email: bob.email.clone(),
        password_hash: Some("taken over".into()),
        role: None,
        active: None,
        ..write(None, 1, None)
    };
    let refused = s
        .write_member(&bob_password, note(org.id, "bob password"), &|_| {
            Journal::default()
        })
        .await;
    assert!(
        matches!(&refused, Err(e @ TenancyError::Changed(_)) if e.to_string() == handed),
        "{refused:?}"
    );
    assert_ne!(password_hash(s, &bob).await.as_deref(), Some("taken over"));
    // Nor the name every organization of the person shows.
    let bob_name = MemberWrite {
        name: "Renamed elsewhere".into(),
        password_hash: None,
        ..bob_password.clone()
    };
    let refused = s
        .write_member(&bob_name, note(org.id, "bob name"), &|_| Journal::default())
        .await;
    assert!(
        matches!(&refused, Err(e @ TenancyError::Changed(_)) if e.to_string() == handed),
        "{refused:?}"
    );
    assert_eq!(
        s.get_member(org.id, bob.id)
            .await
            .unwrap()
            .unwrap()
            .user
            .name,
        bob.name
    );
    // The Owner's row is never demoted by the store either.
    let mut owner_write = write(None, 1, None);
    owner_write.user = owner.id;
    owner_write.name = owner.name.clone();
    owner_write.email = owner.email.clone();
    owner_write.record = record(owner.id, "owner", 1);
    owner_write.role = Some((OrgRole::Owner, OrgRole::Admin));
    let refused = s
        .write_member(&owner_write, note(org.id, "owner"), &|_| Journal::default())
        .await;
    assert!(
        matches!(
            refused,
            Err(TenancyError::RoleRule(
                rbac_core::RoleRuleError::OwnerViaTransferOnly
            ))
        ),
        "the domain's own refusal, not a duplicate value: {refused:?}"
    );
    assert_eq!(
        s.get_member(org.id, owner.id).await.unwrap().unwrap().role,
        OrgRole::Owner
    );
}

/// The identity provider's group entries carry the name it gave a person (`display`); an
/// erasure takes their entries out, and leaves the others'.
async fn erasure_takes_them_out_of_scim_groups<
    S: TenancyStore
        + AuditStore
        + MembershipStore
        + crate::privacy::PrivacyStore
        + crate::scim::ScimStore
        + ?Sized,
>(
    s: &S,
) {
    use crate::scim::{GroupRecord, GroupWrite};
    let (org, default, owner) = new_org(s).await;
    let ann = user("ann");
    s.add_member(
        org.id,
        &ann,
        Some("h"),
        OrgRole::User,
        default.id,
        TeamRole::Member,
        &limits(10),
        note(org.id, "add"),
    )
    .await
    .unwrap();
    let team = Team {
        id: TeamId::new(),
        org: org.id,
        name: "Design".into(),
        is_default: false,
        created_at: now(),
        archived_at: None,
    };
    let owners = serde_json::json!({"value": owner.id.to_string(), "display": "O"});
    s.write_group(
        &GroupWrite {
            team: team.clone(),
            create: true,
            expected_version: None,
            record: GroupRecord {
                team: team.id,
                external_id: None,
                members: vec![
                    serde_json::json!({"value": ann.id.to_string(), "display": "Ann Example"}),
                    owners.clone(),
                ],
                version: 1,
                updated_at: now(),
            },
            add: vec![ann.id, owner.id],
            remove: vec![],
            by: None,
        },
        note(org.id, "group"),
    )
    .await
    .unwrap();
    s.erase_member(
        org.id,
        ann.id,
        Some(Disposition::TransferToOwner(owner.id)),
        now(),
        None,
        note(org.id, "erase"),
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let g = s.group_record(org.id, team.id).await.unwrap().unwrap();
    assert_eq!((g.members, g.version), (vec![owners], 2));
}

async fn scim_groups_write_atomically<
    S: TenancyStore + AuditStore + WorkspaceStore + MembershipStore + crate::scim::ScimStore + ?Sized,
>(
    s: &S,
) {
    use crate::scim::{GroupRecord, GroupWrite};
    let (org, default, owner) = new_org(s).await;
    let outsider = UserId::new();
    let team = Team {
        id: TeamId::new(),
        org: org.id,
        name: "Design".into(),
        is_default: false,
        created_at: now(),
        archived_at: None,
    };
    let rec = |v: i64| GroupRecord {
        team: team.id,
        external_id: Some("g1".into()),
        members: vec![serde_json::json!({"value": owner.id.to_string(), "display": "O"})],
        version: v,
        updated_at: now(),
    };
    s.write_group(
        &GroupWrite {
            team: team.clone(),
            create: true,
            expected_version: None,
            record: rec(1),
            add: vec![owner.id, outsider],
            remove: vec![],
            by: None,
        },
        note(org.id, "group"),
    )
    .await
    .unwrap();
    let members: Vec<UserId> = s
        .team_members(org.id, team.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.member.user.id)
        .collect();
    assert_eq!(members, vec![owner.id], "only organization members join");
    assert_eq!(s.group_records(org.id).await.unwrap(), vec![rec(1)]);
    assert_eq!(s.group_record(org.id, team.id).await.unwrap(), Some(rec(1)));
    assert_eq!(s.group_record(org.id, default.id).await.unwrap(), None);
    assert_eq!(s.group_record(OrgId::new(), team.id).await.unwrap(), None);
    // A name taken by another team: nothing of the change is applied.
    let before = head(s, org.id).await;
    let clash = s
        .write_group(
            &GroupWrite {
                team: Team {
                    name: default.name.clone(),
                    ..team.clone()
                },
                create: false,
                expected_version: Some(1),
                record: rec(2),
                add: vec![],
                remove: vec![owner.id],
                by: Some(owner.id),
            },
            note(org.id, "clash"),
        )
        .await;
    assert!(matches!(clash, Err(TenancyError::Conflict(_))), "{clash:?}");
    assert_eq!(head(s, org.id).await, before);
    assert_eq!(s.team_members(org.id, team.id).await.unwrap().len(), 1);
    assert_eq!(s.group_records(org.id).await.unwrap(), vec![rec(1)]);
    // Made with the rights of someone who is not an Owner or Admin: refused, nothing applied.
    let not_admin = s
        .write_group(
            &GroupWrite {
                team: team.clone(),
                create: false,
                expected_version: Some(1),
                record: rec(2),
                add: vec![],
                remove: vec![owner.id],
                by: Some(outsider),
            },
            note(org.id, "outsider"),
        )
        .await;
    assert!(
        matches!(
            not_admin,
            Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
        ),
        "{not_admin:?}"
    );
    assert_eq!(head(s, org.id).await, before);
    assert_eq!(s.team_members(org.id, team.id).await.unwrap().len(), 1);
    // A stale version is refused; the current one applies rename and removal together.
    let stale = s
        .write_group(
            &GroupWrite {
                team: team.clone(),
                create: false,
                expected_version: Some(7),
                record: rec(8),
                add: vec![],
                remove: vec![owner.id],
                by: Some(owner.id),
            },
            note(org.id, "stale"),
        )
        .await;
    assert!(
        matches!(stale, Err(TenancyError::Changed(_))),
        "a version race, not a duplicate: {stale:?}"
    );
    s.write_group(
        &GroupWrite {
            team: Team {
                name: "Brand".into(),
                ..team.clone()
            },
            create: false,
            expected_version: Some(1),
            record: rec(2),
            add: vec![],
            remove: vec![owner.id],
            by: Some(owner.id),
        },
        note(org.id, "rename"),
    )
    .await
    .unwrap();
    assert!(s.team_members(org.id, team.id).await.unwrap().is_empty());
    assert_eq!(
        s.get_team(org.id, team.id).await.unwrap().unwrap().name,
        "Brand"
    );
    // An archived team's group takes no one new (read in the write's transaction).
    let brand = s.get_team(org.id, team.id).await.unwrap().unwrap();
    archive_team(s, &brand).await;
    let h = head(s, org.id).await;
    let joined = s
        .write_group(
            &GroupWrite {
                team: brand.clone(),
                create: false,
                expected_version: Some(2),
                record: rec(3),
                add: vec![owner.id],
                remove: vec![],
                by: Some(owner.id),
            },
            note(org.id, "join archived"),
        )
        .await;
    assert!(
        matches!(joined, Err(TenancyError::Archived(ref m)) if m.contains("archived")),
        "{joined:?}"
    );
    assert_eq!(head(s, org.id).await, h);
    assert!(s.team_members(org.id, team.id).await.unwrap().is_empty());
    assert_eq!(
        s.group_record(org.id, team.id)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // Someone with a role in every team is in it already, and may be named in its group.
    let gus = user("gus");
    add_user(s, org.id, default.id, &gus, Some("h")).await;
    s.set_all_teams_role(
        org.id,
        gus.id,
        None,
        Some(TeamRole::Viewer),
        None,
        note(org.id, "gus everywhere"),
    )
    .await
    .unwrap();
    s.write_group(
        &GroupWrite {
            team: brand.clone(),
            create: false,
            expected_version: Some(2),
            record: rec(3),
            add: vec![gus.id],
            remove: vec![],
            by: Some(owner.id),
        },
        note(org.id, "gus in the archived group"),
    )
    .await
    .unwrap();
    s.set_all_teams_role(
        org.id,
        gus.id,
        Some(TeamRole::Viewer),
        None,
        None,
        note(org.id, "gus back"),
    )
    .await
    .unwrap();
    // A group write that names someone already in the team leaves their role: one given
    // through the API since the group was read is not demoted to Member.
    s.set_team_member(
        org.id,
        team.id,
        gus.id,
        Some(TeamRole::Admin),
        note(org.id, "gus admin"),
    )
    .await
    .unwrap();
    s.write_group(
        &GroupWrite {
            team: brand.clone(),
            create: false,
            expected_version: Some(3),
            record: rec(4),
            add: vec![gus.id],
            remove: vec![],
            by: Some(owner.id),
        },
        note(org.id, "gus named again"),
    )
    .await
    .unwrap();
    assert!(
        s.team_roles(org.id, gus.id)
            .await
            .unwrap()
            .contains(&(team.id, TeamRole::Admin)),
        "the API's role stands"
    );
    // Deleting the team deletes its record.
    s.delete_team(org.id, team.id, now(), None, note(org.id, "delete"))
        .await
        .unwrap();
    assert!(s.group_records(org.id).await.unwrap().is_empty());
}

async fn consents_and_erasure_keep_the_chain<
    S: TenancyStore
        + AuditStore
        + BulkStore
        + MembershipStore
        + crate::privacy::PrivacyStore
        + crate::credits::CreditStore
        + audit::MailOutbox
        + ?Sized,
>(
    s: &S,
) {
    use crate::privacy::ConsentRecord;
    let (org, team, owner) = new_org(s).await;
    let (other_org, other_team, _) = new_org(s).await;
    let ann = user("ann");
    let bob = user("bob");
    for (o, t, u, h) in [
        (org.id, team.id, &ann, Some("h")),
        (org.id, team.id, &bob, Some("h")),
        (other_org.id, other_team.id, &bob, None),
    ] {
        s.add_member(
            o,
            u,
            h,
            OrgRole::User,
            t,
            TeamRole::Member,
            &limits(10),
            note(o, "add"),
        )
        .await
        .unwrap();
    }
    // Consents are appended, never overwritten; restating the newest decision writes nothing.
    let decision = |user: UserId, purpose: &str, granted: bool| crate::privacy::ConsentDecision {
        org: org.id,
        user,
        purpose: purpose.into(),
        granted,
        at: now(),
    };
    let mut made: Vec<ConsentRecord> = Vec::new();
    for granted in [true, false] {
        let c = decision(ann.id, "marketing_email", granted);
        match s.record_consent(&c, note(org.id, "consent")).await.unwrap() {
            crate::privacy::Recorded::Appended(kept) => {
                assert_eq!(kept, c.kept_as(kept.id));
                made.push(kept);
            }
            other => panic!("{other:?}"),
        }
    }
    // Each decision's id follows the person's newest, whatever the clock: one made on a
    // server whose clock is behind is still the newest.
    assert!(made[0].id < made[1].id);
    let behind = crate::privacy::ConsentDecision {
        at: now() - Duration::days(1),
        ..decision(ann.id, "late_clock", true)
    };
    let late = match s
        .record_consent(&behind, note(org.id, "late"))
        .await
        .unwrap()
    {
        crate::privacy::Recorded::Appended(kept) => kept,
        other => panic!("{other:?}"),
    };
    assert!(late.id > made[1].id);
    made.push(late);
    let h = head(s, org.id).await;
    let again = s
        .record_consent(
            &decision(ann.id, "marketing_email", false),
            note(org.id, "restated"),
        )
        .await
        .unwrap();
    assert_eq!(again, crate::privacy::Recorded::Unchanged(made[1].clone()));
    assert_eq!(head(s, org.id).await, h, "a restatement records nothing");
    let got = s.consents(org.id, Some(ann.id), None, 10).await.unwrap();
    assert_eq!(got, made);
    assert!(
        s.consents(other_org.id, None, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "per organization"
    );
    // A person decides on a bounded number of purposes (two so far); a known one still takes
    // decisions.
    for i in 2..crate::privacy::MAX_CONSENT_PURPOSES {
        s.record_consent(
            &decision(ann.id, &format!("purpose_{i}"), true),
            note(org.id, "consent"),
        )
        .await
        .unwrap();
    }
    let h = head(s, org.id).await;
    let refused = s
        .record_consent(
            &decision(ann.id, "one_too_many", true),
            note(org.id, "refused"),
        )
        .await;
    assert!(
        matches!(refused, Err(TenancyError::Invalid(ref m)) if m.contains("at most 50")),
        "{refused:?}"
    );
    assert_eq!(head(s, org.id).await, h, "a refusal records nothing");
    s.record_consent(
        &decision(ann.id, "marketing_email", true),
        note(org.id, "consent"),
    )
    .await
    .unwrap();
    s.record_consent(
        &decision(bob.id, "one_too_many", true),
        note(org.id, "consent"),
    )
    .await
    .unwrap();
    // Pages follow the ids, oldest first, one person's or everyone's.
    let mut everyone = Vec::new();
    let mut after = None;
    loop {
        let page = s.consents(org.id, None, after, 7).await.unwrap();
        assert!(page.len() <= 7);
        after = page.last().map(|c| c.id);
        let last = page.len() < 7;
        everyone.extend(page);
        if last {
            break;
        }
    }
    assert_eq!(everyone.len(), 3 + 48 + 1 + 1);
    assert!(everyone.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(everyone[..3], made[..]);
    assert_eq!(everyone.last().map(|c| c.user), Some(bob.id));
    let bobs = s.consents(org.id, Some(bob.id), None, 100).await.unwrap();
    assert_eq!(bobs.len(), 1);
    let ann_after = s
        .consents(org.id, Some(ann.id), Some(made[0].id), 1)
        .await
        .unwrap();
    assert_eq!(ann_after, made[1..2]);

    // Records naming Ann, as actor and as target.
    let by_ann = NewAuditEvent::new(
        org.id,
        now(),
        Actor::user(ann.id, "Ann Example"),
        AuditAction::Login,
        Target::new("session", "ses_1", ""),
    )
    .with_context(audit::RequestContext {
        ip: "203.0.113.9".into(),
        user_agent: "Firefox".into(),
        request_id: "r".into(),
    });
    let about_ann = NewAuditEvent::new(
        org.id,
        now(),
        Actor::user(owner.id, "Owner"),
        AuditAction::RoleChanged,
        Target::new("member", ann.id, "Ann Example"),
    );
    // An event naming her (queued for webhooks), and one about someone else.
    let event = |email: &str, name: &str, by: UserId| {
        DomainEvent::new(
            org.id,
            EventKind::UserCreated,
            now(),
            serde_json::json!({"email": email, "byName": name, "by": by}),
        )
    };
    // An invitation's record names her by address only.
    let invited_ann = NewAuditEvent::new(
        org.id,
        now(),
        Actor::user(owner.id, "Owner"),
        AuditAction::MemberInvited,
        Target::new("invitation", "inv_ann", ann.email.as_str()),
    );
    s.append(
        Journal::record(by_ann)
            .and_record(about_ann)
            .and_record(invited_ann)
            .publish(event(ann.email.as_str(), "Ann Example", ann.id))
            .publish(event("someone@example.org", "Owner", owner.id)),
    )
    .await
    .unwrap();

    assert!(
        matches!(
            s.erase_member(
                org.id,
                ann.id,
                Some(Disposition::TransferToOwner(bob.id)),
                now(),
                None,
                note(org.id, "erase"),
                &|_| Journal::default(),
            )
            .await,
            Err(TenancyError::Conflict(_))
        ),
        "Bob is not the Owner"
    );
    assert!(s.get_member(org.id, ann.id).await.unwrap().is_some());
    // Credits each of them moved: the ledger names them.
    for (who, key) in [(&ann, "ann-buys"), (&bob, "bob-buys")] {
        let op = crate::credits::NewOperation {
            actor: who.name.clone(),
            actor_id: who.id.to_string(),
            ..credit_op(
                org.id,
                key,
                billing_limits::credits::EntryKind::Purchase,
                billing_limits::credits::purchase(
                    billing_limits::credits::Account::Team(team.id),
                    3,
                    &[],
                )
                .unwrap(),
            )
        };
        s.post_credits(&op, None, note(org.id, key)).await.unwrap();
    }
    // Her session, and an uploaded sheet naming her (in capitals) beside one that does not.
    s.create_session(
        &session(ann.id, -5),
        &format!("erase-{}", ann.id),
        10,
        crate::SessionProof::Password,
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let sheet = |email: String| BulkPreview {
        id: rbac_core::InvitationId::new(),
        org: org.id,
        created_by: owner.id,
        expires_at: now() + Duration::minutes(30),
        rows: vec![crate::bulk::Row {
            line: 2,
            email,
            role: "user".into(),
            name: "A name".into(),
            team: String::new(),
            team_role: String::new(),
            joins: None,
            team_name: None,
            problem: None,
        }],
        seats_available: None,
    };
    // The other sheet names someone whose address holds hers.
    let (naming, other) = (
        sheet(ann.email.as_str().to_uppercase()),
        sheet(format!("jo{}", ann.email.as_str())),
    );
    for p in [&naming, &other] {
        s.save_preview(p).await.unwrap();
    }
    // Mail: to her (one already sent), about her (an invitation she sent, her address in a
    // body), about her account itself, and mail about nobody of hers.
    let ann_at = ann.email.as_str();
    s.append(Journal::default().mail(mail(Some(org.id), ann_at, "Earlier", "Sent before")))
        .await
        .unwrap();
    let earlier = s.list_mails(Some(org.id), None, 100).await.unwrap();
    let earlier = earlier
        .iter()
        .find(|m| m.subject == "Earlier")
        .unwrap()
        .clone();
    s.mark_mail_sent(&earlier.id, now()).await.unwrap();
    s.append(
        Journal::default()
            .mail(mail(Some(org.id), ann_at, "Welcome", "Hi Ann"))
            .mail(mail(
                Some(org.id),
                "guest@example.org",
                format!(
                    "{}Contract Org",
                    crate::invitations::subject_prefix(&ann.name)
                ),
                "Join us",
            ))
            .mail(mail(
                Some(org.id),
                "heir@example.org",
                format!(
                    "{}Contract Org",
                    crate::members::transfer_withdrawn_prefix(&ann.name)
                ),
                "There is nothing to confirm any more",
            ))
            .mail(mail(
                Some(org.id),
                "owner@example.org",
                "Usage",
                format!("{ann_at} reached a limit"),
            ))
            .mail(mail(None, ann_at, "Reset your password", "link"))
            .mail(mail(
                Some(org.id),
                "owner@example.org",
                "Weekly report",
                "All quiet",
            ))
            .mail(mail(
                Some(org.id),
                "owner@example.org",
                "About Jo",
                format!("jo{ann_at} reached a limit"),
            ))
            // Sent by someone whose name is hers in other letters' case: not about her.
            .mail(mail(
                Some(org.id),
                "friend@example.org",
                format!(
                    "{}Contract Org",
                    crate::invitations::subject_prefix(&ann.name.to_uppercase())
                ),
                "Join us",
            )),
    )
    .await
    .unwrap();
    let report = s
        .erase_member(
            org.id,
            ann.id,
            Some(Disposition::TransferToOwner(owner.id)),
            now(),
            None,
            note(org.id, "erase"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    let left = s.list_mails(Some(org.id), None, 100).await.unwrap();
    let subjects: Vec<&str> = left.iter().map(|m| m.subject.as_str()).collect();
    assert!(subjects.contains(&"Weekly report"), "{subjects:?}");
    assert!(
        left.iter().any(|m| m.to == "friend@example.org"),
        "a namesake in other letters' case is someone else: {subjects:?}"
    );
    assert!(
        subjects.contains(&"About Jo"),
        "mail about an address that holds hers stays: {subjects:?}"
    );
    for gone in ["Welcome", "Usage"] {
        assert!(
            !subjects.contains(&gone),
            "queued mail to or about her goes: {subjects:?}"
        );
    }
    let sent_by_her = crate::privacy::subjects_naming(&ann.name);
    assert!(
        left.iter()
            .all(|m| !sent_by_her.iter().any(|p| m.subject.starts_with(p))
                && m.to != ann_at
                && !crate::privacy::mentions_address(&m.body, ann_at)),
        "{left:?}"
    );
    let earlier = left.iter().find(|m| m.id == earlier.id).unwrap();
    assert_eq!(
        (earlier.to.as_str(), earlier.body.as_str()),
        (audit::ERASED, ""),
        "sent mail keeps no address"
    );
    assert!(
        s.list_mails(None, None, 100)
            .await
            .unwrap()
            .iter()
            .all(|m| m.to != ann_at),
        "mail about her account goes with it"
    );
    assert_eq!(
        report.audit_records_erased, 3,
        "the record by her, the one about her and her invitation's, each once: {report:?}"
    );
    let mut named: Vec<String> = s
        .credit_history(org.id, None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.actor)
        .collect();
    named.sort();
    let mut want = vec![audit::ERASED.to_owned(), bob.name.clone()];
    want.sort();
    assert_eq!(named, want, "her name left the ledger, Bob's stayed");
    assert_eq!(
        report.event_bodies_erased, 1,
        "the event naming her is rewritten, the other one is not: {report:?}"
    );
    assert!(report.account_anonymized, "Ann had no other organization");
    // No session of hers lives on, nor is kept ended (with its address and user agent).
    assert!(s.list_sessions(ann.id).await.unwrap().is_empty());
    assert!(
        s.last_sign_in(&[ann.id]).await.unwrap().is_empty(),
        "her sessions are deleted, not only ended (the last sign-in counts ended ones)"
    );
    assert!(s.get_preview(org.id, naming.id).await.unwrap().is_none());
    assert!(s.get_preview(org.id, other.id).await.unwrap().is_some());
    assert!(s.get_member(org.id, ann.id).await.unwrap().is_none());
    assert!(
        s.find_user_by_email(&ann.email).await.unwrap().is_none(),
        "her email is gone"
    );
    // Her account, as read before the erasure, cannot join another organization.
    assert!(
        matches!(
            s.add_member(
                other_org.id,
                &ann,
                None,
                OrgRole::User,
                other_team.id,
                TeamRole::Member,
                &limits(10),
                note(other_org.id, "join"),
            )
            .await,
            Err(TenancyError::NotFound("account"))
        ),
        "an erased account joins nothing"
    );
    assert!(s.get_member(other_org.id, ann.id).await.unwrap().is_none());
    let page = s.chain_page(org.id, 0, 1000).await.unwrap();
    assert!(page.iter().all(|r| !r.event.actor.name.contains("Ann")
        && !r.event.target.name.contains("Ann")
        && r.event.target.name != ann.email.as_str()
        && r.event.context.ip != "203.0.113.9"));
    assert!(
        page.iter().any(|r| r.event.actor.id == ann.id.to_string()),
        "the pseudonymous id stays"
    );
    assert_chain_verifies(s, org.id, "after erasure").await;

    // Bob belongs to another organization too: removed and erased here, his account stays.
    let report = s
        .erase_member(
            org.id,
            bob.id,
            Some(Disposition::TransferTo(owner.id)),
            now(),
            None,
            note(org.id, "erase bob"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    assert!(!report.account_anonymized);
    assert!(s.find_user_by_email(&bob.email).await.unwrap().is_some());
    assert!(s.get_member(other_org.id, bob.id).await.unwrap().is_some());
    // Records that read their names before the erasures and commit after them keep none of
    // them here, through a change's commit as through an append; in Bob's other organization
    // his name stays.
    let late = |o: OrgId, who: &User| {
        NewAuditEvent::new(
            o,
            now(),
            Actor::user(who.id, who.name.clone()),
            AuditAction::AnalyticsViewed,
            Target::new("organization", o, "Org"),
        )
        .with_context(audit::RequestContext {
            ip: "203.0.113.9".into(),
            user_agent: "Firefox".into(),
            request_id: "late".into(),
        })
    };
    s.append(Journal::record(late(org.id, &ann)).and_record(late(other_org.id, &bob)))
        .await
        .unwrap();
    s.record_consent(
        &crate::privacy::ConsentDecision {
            org: org.id,
            user: owner.id,
            purpose: "analytics".into(),
            granted: true,
            at: now(),
        },
        Journal::record(late(org.id, &bob)),
    )
    .await
    .unwrap();
    let tail = |page: Vec<audit::AuditEvent>, n: usize| page[page.len() - n..].to_vec();
    for r in tail(s.chain_page(org.id, 0, 1000).await.unwrap(), 2) {
        assert_eq!(r.event.actor.name, audit::ERASED, "{r:?}");
        assert_eq!(r.event.context.ip, "");
    }
    let other = tail(s.chain_page(other_org.id, 0, 1000).await.unwrap(), 1);
    assert_eq!(other[0].event.actor.name, bob.name);
    // Bob joins again: what he does from then on names him.
    s.add_member(
        org.id,
        &bob,
        None,
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &limits(10),
        note(org.id, "back"),
    )
    .await
    .unwrap();
    s.append(Journal::record(late(org.id, &bob))).await.unwrap();
    let back = tail(s.chain_page(org.id, 0, 1000).await.unwrap(), 1);
    assert_eq!(back[0].event.actor.name, bob.name);
    assert_eq!(back[0].event.context.ip, "203.0.113.9");
    // Removed again, without an erasure this time: the removal's record names him.
    s.remove_member(
        org.id,
        bob.id,
        Disposition::TransferTo(owner.id),
        now(),
        None,
        Journal::record(NewAuditEvent::new(
            org.id,
            now(),
            Actor::user(owner.id, "Owner"),
            AuditAction::MemberRemoved,
            Target::new("member", bob.id, bob.name.clone()),
        )),
        &|_| Journal::default(),
    )
    .await
    .unwrap();
    let removed = tail(s.chain_page(org.id, 0, 1000).await.unwrap(), 1);
    assert_eq!(removed[0].event.target.name, bob.name);
    // Erased afterwards, as a former member: not by someone who does not administer the
    // organization (any more); then nothing to remove, the removal's record keeps his name no
    // more, and his account is left as it is.
    let h = head(s, org.id).await;
    assert!(matches!(
        s.erase_member(
            org.id,
            bob.id,
            None,
            now(),
            Some(ann.id),
            note(org.id, "x"),
            &|_| Journal::default()
        )
        .await,
        Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
    ));
    assert_eq!(head(s, org.id).await, h);
    let report = s
        .erase_member(
            org.id,
            bob.id,
            None,
            now(),
            None,
            note(org.id, "erase former"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.removal, crate::members::RemovalReport::default());
    assert!(!report.account_anonymized);
    assert!(report.audit_records_erased >= 1, "{report:?}");
    let page = s.chain_page(org.id, 0, 1000).await.unwrap();
    assert!(
        page.iter()
            .all(|r| r.event.target.name != bob.name && r.event.actor.name != bob.name),
        "no record names him"
    );
    assert_eq!(
        s.find_user_by_email(&bob.email)
            .await
            .unwrap()
            .map(|(u, _)| u.name),
        Some(bob.name.clone())
    );
    // A member is not erased as a former one.
    assert!(matches!(
        s.erase_member(
            org.id,
            owner.id,
            None,
            now(),
            None,
            note(org.id, "x"),
            &|_| Journal::default()
        )
        .await,
        Err(TenancyError::Conflict(_))
    ));
    assert_chain_verifies(s, org.id, "after late records and a return").await;
    // The Owner is never erased by the store.
    assert!(
        s.erase_member(
            org.id,
            owner.id,
            Some(Disposition::TransferTo(ann.id)),
            now(),
            None,
            note(org.id, "x"),
            &|_| Journal::default()
        )
        .await
        .is_err()
    );
}

/// An erasure finds the addresses the person joined with: an identity provider changed Pat's
/// address after Pat accepted an invitation, and the invitation, the mail sent to the old
/// address, the invitation's audit record and the event carrying the old address keep none of
/// it. An old address given to someone else since is not theirs to erase: Rae's, at which the
/// organization invited a new hire afterwards, and Ula's, which another account holds now.
async fn erasure_finds_the_addresses_a_person_had_before<
    S: TenancyStore
        + AuditStore
        + InvitationStore
        + crate::scim::ScimStore
        + crate::privacy::PrivacyStore
        + audit::MailOutbox
        + ?Sized,
>(
    s: &S,
) {
    use crate::scim::MemberWrite;
    let (org, team, owner) = new_org(s).await;
    // Someone who joins by invitation, then gets a new address from the identity provider;
    // returns them and their old address.
    let joins_then_renamed = |tag: &'static str| async move {
        let inv = invitation(org.id, owner.id, tag, 7);
        let hash = format!("ih-{tag}-{}", org.id);
        s.create_invitation(&inv, &hash, &limits(20), note(org.id, "inv"))
            .await
            .unwrap();
        let person = User {
            email: inv.email.clone(),
            ..user(tag)
        };
        s.accept_invitation(
            &inv,
            &hash,
            &person,
            Some("h"),
            team.id,
            TeamRole::Member,
            &limits(20),
            now(),
            note(org.id, "accept"),
        )
        .await
        .unwrap();
        let new = format!("{tag}-new-{}@example.org", person.id.as_uuid().simple());
        s.write_member(
            &MemberWrite {
                org: org.id,
                user: person.id,
                expected_version: None,
                record: record(person.id, &new, 1),
                name: person.name.clone(),
                email: Email::parse(&new).unwrap(),
                password_hash: None,
                role: None,
                active: None,
                by: None,
                now: now(),
            },
            note(org.id, "new address"),
            &|_| Journal::default(),
        )
        .await
        .unwrap();
        (person, inv.id, inv.email.as_str().to_owned())
    };
    let erase = |who: UserId| async move {
        s.erase_member(
            org.id,
            who,
            Some(Disposition::TransferToOwner(owner.id)),
            now(),
            None,
            note(org.id, "erase"),
            &|_| Journal::default(),
        )
        .await
        .unwrap()
    };

    let (pat, pat_inv, old) = joins_then_renamed("pat").await;
    // An invitation to someone else, accepted by nobody, stays as it is.
    let other = invitation(org.id, owner.id, "other", 7);
    s.create_invitation(
        &other,
        &format!("ih-other-{}", org.id),
        &limits(20),
        note(org.id, "other"),
    )
    .await
    .unwrap();
    s.append(
        Journal::record(NewAuditEvent::new(
            org.id,
            now(),
            Actor::user(owner.id, "Owner"),
            AuditAction::MemberInvited,
            Target::new("invitation", pat_inv, old.clone()),
        ))
        .mail(mail(Some(org.id), &old, "You are invited", "Join"))
        .mail(mail(
            Some(org.id),
            "owner@example.org",
            "Joined",
            format!("{old} accepted"),
        ))
        .publish(DomainEvent::new(
            org.id,
            EventKind::UserCreated,
            now(),
            serde_json::json!({"email": old, "by": owner.id}),
        ))
        // Two events that give Pat, by id, an address that was Pat's between the two (an
        // identity provider's change undone since): neither the account nor an invitation
        // shows it any more. One as the member, one as the inviter of someone else.
        .publish(DomainEvent::new(
            org.id,
            EventKind::UserUpdated,
            now(),
            serde_json::json!({"userId": pat.id, "email": "pat-between@example.org"}),
        ))
        .publish(DomainEvent::new(
            org.id,
            EventKind::UserCreated,
            now(),
            serde_json::json!({"userId": owner.id, "email": "owner@example.org",
                "invitedBy": "pat-between@example.org", "invitedById": pat.id}),
        ))
        // The same address beside another person's id, in an event of its own, was theirs
        // then (an address passed on): that event is not rewritten.
        .publish(DomainEvent::new(
            org.id,
            EventKind::UserUpdated,
            now(),
            serde_json::json!({"userId": owner.id, "email": "pat-between@example.org"}),
        )),
    )
    .await
    .unwrap();
    let joined_with: Vec<String> = s
        .invitations_accepted_by(org.id, pat.id)
        .await
        .unwrap()
        .iter()
        .map(|i| i.email.as_str().to_owned())
        .collect();
    assert_eq!(
        joined_with,
        std::slice::from_ref(&old),
        "the address Pat joined with"
    );
    let report = erase(pat.id).await;
    let invitations = s.list_invitations(org.id, None, 100).await.unwrap();
    assert!(
        invitations.iter().all(|i| i.email.as_str() != old),
        "{invitations:?}"
    );
    assert!(
        invitations.iter().any(|i| i.email == other.email),
        "another person's invitation stays: {invitations:?}"
    );
    let mails = s.list_mails(Some(org.id), None, 100).await.unwrap();
    assert!(
        mails
            .iter()
            .all(|m| m.to != old && !crate::privacy::mentions_address(&m.body, &old)),
        "{mails:?}"
    );
    let page = s.chain_page(org.id, 0, 1000).await.unwrap();
    assert!(
        page.iter().all(|r| r.event.target.name != old),
        "the invitation's record keeps no address"
    );
    assert_eq!(
        report.event_bodies_erased, 3,
        "the event carrying the old address, and the two giving Pat an address by id, are \
         rewritten: {report:?}"
    );

    // Rae's old address went to a new hire, invited at it after Rae had joined.
    let (rae, _, rae_old) = joins_then_renamed("rae").await;
    let hire = Invitation {
        email: Email::parse(&rae_old).unwrap(),
        created_at: now() + Duration::minutes(1),
        ..invitation(org.id, owner.id, "hire", 7)
    };
    s.create_invitation(
        &hire,
        &format!("ih-hire-{}", org.id),
        &limits(20),
        note(org.id, "hire"),
    )
    .await
    .unwrap();
    // Ula's old address is another account's now.
    let (ula, _, ula_old) = joins_then_renamed("ula").await;
    let sam = User {
        email: Email::parse(&ula_old).unwrap(),
        ..user("sam")
    };
    s.add_member(
        org.id,
        &sam,
        Some("h"),
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &limits(20),
        note(org.id, "sam"),
    )
    .await
    .unwrap();
    s.append(
        Journal::default()
            .mail(mail(
                Some(org.id),
                &rae_old,
                "Welcome aboard",
                "For the new hire",
            ))
            .mail(mail(Some(org.id), &ula_old, "Hello Sam", "For Sam")),
    )
    .await
    .unwrap();
    erase(rae.id).await;
    erase(ula.id).await;
    let invitations = s.list_invitations(org.id, None, 100).await.unwrap();
    assert!(
        invitations
            .iter()
            .any(|i| i.id == hire.id && i.email == hire.email),
        "the new hire's invitation keeps its address: {invitations:?}"
    );
    let mails = s.list_mails(Some(org.id), None, 100).await.unwrap();
    for (to, subject) in [(&rae_old, "Welcome aboard"), (&ula_old, "Hello Sam")] {
        assert!(
            mails.iter().any(|m| &m.to == to && m.subject == subject),
            "mail to whoever holds the address now stays: {mails:?}"
        );
    }
    assert!(s.find_user_by_email(&sam.email).await.unwrap().is_some());
    assert_chain_verifies(s, org.id, "after three erasures").await;
}

/// A resource of an archived team is not edited, checked in the write (an edit read before
/// the team was archived is refused), while it can still be archived and restored itself.
async fn an_archived_team_takes_no_edit<S: TenancyStore + AuditStore + WorkspaceStore + ?Sized>(
    s: &S,
) {
    let (org, _, owner) = new_org(s).await;
    let team = team_in(org.id, "Closing");
    s.create_team(&team, note(org.id, "team")).await.unwrap();
    let bot = chat(org.id, team.id, owner.id, "Old bot");
    s.create_asset(&bot, &enterprise(), note(org.id, "bot"))
        .await
        .unwrap();
    // Read before the archiving, written after it.
    let renamed = Asset {
        name: "New bot".into(),
        updated_at: now() + Duration::seconds(1),
        ..bot.clone()
    };
    archive_team(s, &team).await;
    let h = head(s, org.id).await;
    assert!(
        matches!(
            s.update_asset(&bot, &renamed, note(org.id, "rename")).await,
            Err(TenancyError::Archived(m)) if m.contains("Closing")
        ),
        "an edit in an archived team"
    );
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    assert_eq!(
        s.get_asset(org.id, bot.id).await.unwrap().unwrap().name,
        "Old bot"
    );
    let shelved = Asset {
        archived_at: Some(now()),
        updated_at: now() + Duration::seconds(2),
        ..bot.clone()
    };
    s.update_asset(&bot, &shelved, note(org.id, "archive"))
        .await
        .unwrap();
    let restored = Asset {
        archived_at: None,
        updated_at: now() + Duration::seconds(3),
        ..shelved.clone()
    };
    s.update_asset(&shelved, &restored, note(org.id, "restore"))
        .await
        .unwrap();
}

/// An archived team takes no new API key, uses no credits and has none moved out or in,
/// checked in the write (an archiving that committed since the service looked is obeyed); a
/// reversal of what was done before still applies.
async fn an_archived_team_takes_no_key_and_uses_no_credits<
    S: TenancyStore + AuditStore + WorkspaceStore + crate::credits::CreditStore + ?Sized,
>(
    s: &S,
) {
    use billing_limits::credits::{Account, EntryKind};
    let (org, _, owner) = new_org(s).await;
    let team = team_in(org.id, "Shelved");
    s.create_team(&team, note(org.id, "team")).await.unwrap();
    let bought = credit_op(
        org.id,
        "shelved-buy",
        EntryKind::Purchase,
        billing_limits::credits::purchase(Account::Team(team.id), 5, &[]).unwrap(),
    );
    s.post_credits(&bought, None, note(org.id, "buy"))
        .await
        .unwrap();
    archive_team(s, &team).await;
    let h = head(s, org.id).await;
    let key = ApiKey {
        id: ApiKeyId::new(),
        org: org.id,
        team: team.id,
        scope: crate::KeyScope::Team,
        created_by: owner.id,
        name: "late".into(),
        prefix: "axk_late".into(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    let refused = s
        .create_api_key(&key, "late-key", &keys(10), note(org.id, "key"))
        .await;
    assert!(
        matches!(refused, Err(TenancyError::Archived(_))),
        "{refused:?}"
    );
    let used = credit_op(
        org.id,
        "shelved-use",
        EntryKind::Consumption,
        billing_limits::credits::consume(team.id, 1).unwrap(),
    );
    let refused = s.post_credits(&used, None, note(org.id, "use")).await;
    assert!(
        matches!(refused, Err(TenancyError::Archived(_))),
        "{refused:?}"
    );
    for (key, from, to) in [
        ("shelved-out", Account::Team(team.id), Account::Pool),
        ("shelved-in", Account::Pool, Account::Team(team.id)),
    ] {
        let moved = credit_op(
            org.id,
            key,
            EntryKind::Transfer,
            billing_limits::credits::transfer(from, to, 1).unwrap(),
        );
        let refused = s.post_credits(&moved, None, note(org.id, key)).await;
        assert!(
            matches!(refused, Err(TenancyError::Archived(ref m)) if m.contains("do not move")),
            "{key}: {refused:?}"
        );
    }
    assert_eq!(head(s, org.id).await, h, "nothing recorded");
    assert_eq!(balance_of(s, org.id, Account::Team(team.id)).await, 5);
    // Undoing the purchase made before the archiving still applies.
    let mut undone = credit_op(
        org.id,
        "shelved-undo",
        EntryKind::Reversal,
        billing_limits::credits::reversal_of(&bought.postings),
    );
    undone.reverses = Some(bought.id);
    s.post_credits(&undone, None, note(org.id, "undo"))
        .await
        .unwrap();
    assert_eq!(balance_of(s, org.id, Account::Team(team.id)).await, 0);
}

fn credit_op(
    org: OrgId,
    key: &str,
    kind: billing_limits::credits::EntryKind,
    postings: Vec<billing_limits::credits::Posting>,
) -> crate::credits::NewOperation {
    crate::credits::NewOperation {
        id: rbac_core::CreditOperationId::new(),
        org,
        idempotency_key: key.to_owned(),
        fingerprint: billing_limits::credits::fingerprint(kind.as_str(), &postings),
        kind,
        reverses: None,
        postings,
        description: "contract".into(),
        actor: "contract".into(),
        actor_id: "contract".into(),
        created_at: now(),
        low_credit: crate::credits::LowCreditAlerts::none(),
    }
}

async fn balance_of<S: crate::credits::CreditStore + ?Sized>(
    s: &S,
    org: OrgId,
    account: billing_limits::credits::Account,
) -> i64 {
    s.credit_accounts(org)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.account == account)
        .map_or(0, |a| a.balance)
}

/// A purchase keeps its invoice's number; reversing it voids the invoice while it is open (in
/// the reversal's transaction) and leaves a paid one, or another organization's invoice of the
/// same number, as it is.
/// A reminder of an overdue invoice is recorded, with its record and mail, once, and only while
/// the invoice is open: after it is marked paid, nothing is written.
async fn an_overdue_reminder_goes_only_while_its_invoice_is_open<
    S: TenancyStore + AuditStore + crate::credits::CreditStore + crate::billing::BillingStore + ?Sized,
>(
    s: &S,
) {
    use billing_limits::credits::{self, Account, EntryKind};
    use billing_limits::payment::ChargeStatus;
    let (org, _, _) = new_org(s).await;
    let (other, _, _) = new_org(s).await;
    let op = credit_op(
        org.id,
        "late",
        EntryKind::Purchase,
        credits::purchase(Account::Pool, 100, &[]).unwrap(),
    );
    let invoice = crate::billing::Invoice {
        number: "INV-9".into(),
        org: org.id,
        provider: "manual_invoice".into(),
        description: "credits".into(),
        amount_cents: 1_000,
        currency: "EUR".into(),
        status: ChargeStatus::Open,
        created_at: now() - Duration::days(40),
        due_at: Some(now() - Duration::days(10)),
    };
    s.post_credits(&op, Some(&invoice), note(org.id, "buy"))
        .await
        .unwrap();
    let remind =
        |org: OrgId, n: u64| s.record_overdue_reminder(org, "INV-9", n, note(org, "reminder"));
    let h = head(s, org.id).await;
    assert!(remind(org.id, 0).await.unwrap());
    assert_eq!(head(s, org.id).await, h + 1, "recorded with its record");
    // Once.
    assert!(!remind(org.id, 0).await.unwrap());
    // Another organization has no such invoice.
    assert!(!remind(other.id, 0).await.unwrap());
    assert_eq!(head(s, org.id).await, h + 1);
    // Paid: the next reminder writes nothing.
    assert!(
        s.mark_invoice_paid(org.id, "INV-9", note(org.id, "paid"))
            .await
            .unwrap()
    );
    let h = head(s, org.id).await;
    assert!(!remind(org.id, 1).await.unwrap());
    assert_eq!(head(s, org.id).await, h, "nothing written");
}

async fn a_reversed_purchase_voids_its_open_invoice<
    S: TenancyStore
        + AuditStore
        + WorkspaceStore
        + crate::credits::CreditStore
        + crate::billing::BillingStore
        + ?Sized,
>(
    s: &S,
) {
    use billing_limits::credits::{self, Account, EntryKind};
    use billing_limits::payment::ChargeStatus;
    let invoice = |org: OrgId, number: &str, status| crate::billing::Invoice {
        number: number.into(),
        org,
        provider: "manual_invoice".into(),
        description: "credits".into(),
        amount_cents: 1_000,
        currency: "EUR".into(),
        status,
        created_at: now(),
        due_at: (status == ChargeStatus::Open).then(|| now() + Duration::days(30)),
    };
    let statuses = |org: OrgId| async move {
        let mut v: Vec<(String, ChargeStatus)> = s
            .invoices(org, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.number, i.status))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (org, _, _) = new_org(s).await;
    let (other, _, _) = new_org(s).await;
    let buy = |org: OrgId, key: &str| {
        credit_op(
            org,
            key,
            EntryKind::Purchase,
            credits::purchase(Account::Pool, 100, &[]).unwrap(),
        )
    };
    let (open, paid, elsewhere) = (
        buy(org.id, "open"),
        buy(org.id, "paid"),
        buy(other.id, "same"),
    );
    for (op, inv) in [
        (&open, invoice(org.id, "INV-1", ChargeStatus::Open)),
        (&paid, invoice(org.id, "INV-2", ChargeStatus::Paid)),
        (&elsewhere, invoice(other.id, "INV-1", ChargeStatus::Open)),
    ] {
        s.post_credits(op, Some(&inv), note(op.org, "buy"))
            .await
            .unwrap();
    }
    let record = s.credit_operation(org.id, open.id).await.unwrap().unwrap();
    assert_eq!(record.invoice.as_deref(), Some("INV-1"));
    let reverse = |op: &crate::credits::NewOperation, key: &str| {
        let mut r = credit_op(
            op.org,
            key,
            EntryKind::Reversal,
            credits::reversal_of(&op.postings),
        );
        r.reverses = Some(op.id);
        r
    };
    // Another organization cannot reverse it, nor file an invoice under it: nothing written,
    // and the operation is still its own organization's to reverse.
    let mut foreign = reverse(&open, "undo-from-elsewhere");
    foreign.org = other.id;
    let (other_audit, other_invoices) = (head(s, other.id).await, statuses(other.id).await);
    assert!(matches!(
        s.post_credits(&foreign, None, note(other.id, "undo")).await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(matches!(
        s.post_credits(
            &buy(other.id, "misfiled"),
            Some(&invoice(org.id, "INV-9", ChargeStatus::Open)),
            note(other.id, "buy")
        )
        .await,
        Err(TenancyError::Invalid(_))
    ));
    assert_eq!(head(s, other.id).await, other_audit);
    assert_eq!(statuses(other.id).await, other_invoices);
    assert_eq!(statuses(org.id).await.len(), 2);
    let audit = head(s, org.id).await;
    s.post_credits(&reverse(&open, "undo-open"), None, note(org.id, "undo"))
        .await
        .unwrap();
    assert!(
        s.credit_operation(other.id, open.id)
            .await
            .unwrap()
            .is_none(),
        "another organization does not see it"
    );
    assert!(
        s.credit_operation(org.id, open.id)
            .await
            .unwrap()
            .unwrap()
            .reversed_by
            .is_some()
    );
    assert_eq!(
        head(s, org.id).await,
        audit + 1,
        "one record with the reversal"
    );
    s.post_credits(&reverse(&paid, "undo-paid"), None, note(org.id, "undo"))
        .await
        .unwrap();
    assert_eq!(
        statuses(org.id).await,
        vec![
            ("INV-1".to_owned(), ChargeStatus::Void),
            ("INV-2".to_owned(), ChargeStatus::Paid),
        ]
    );
    assert_eq!(
        statuses(other.id).await,
        vec![("INV-1".to_owned(), ChargeStatus::Open)],
        "another organization's invoice of the same number is untouched"
    );
    let voided = s.invoices(org.id, None, 10).await.unwrap();
    assert!(
        voided
            .iter()
            .any(|i| i.status == ChargeStatus::Void && i.due_at.is_none()),
        "a void invoice is due no more: {voided:?}"
    );
    // Newest first, then by number (both were issued at the same moment); a page after an
    // invoice starts past it; a cursor naming no invoice of the organization is not found.
    let numbers = |before: Option<&'static str>, limit: u32| async move {
        s.invoices(org.id, before, limit)
            .await
            .map(|v| v.into_iter().map(|i| i.number).collect::<Vec<_>>())
    };
    assert_eq!(numbers(None, 10).await.unwrap(), ["INV-2", "INV-1"]);
    assert_eq!(numbers(None, 1).await.unwrap(), ["INV-2"]);
    assert_eq!(numbers(Some("INV-2"), 10).await.unwrap(), ["INV-1"]);
    assert!(numbers(Some("INV-1"), 10).await.unwrap().is_empty());
    assert!(matches!(
        numbers(Some("INV-9"), 10).await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(matches!(
        s.invoices(other.id, Some("INV-2"), 10).await,
        Err(TenancyError::NotFound(_))
    ));
    // A reversal that is refused (the credits are spent) leaves the invoice open.
    let spent = buy(other.id, "spent");
    s.post_credits(
        &spent,
        Some(&invoice(other.id, "INV-9", ChargeStatus::Open)),
        note(other.id, "buy"),
    )
    .await
    .unwrap();
    let use_all = credit_op(
        other.id,
        "use",
        EntryKind::Consumption,
        vec![credits::Posting {
            account: Account::Pool,
            amount: -200,
            kind: EntryKind::Consumption,
        }],
    );
    s.post_credits(&use_all, None, note(other.id, "use"))
        .await
        .unwrap();
    assert!(
        s.post_credits(&reverse(&spent, "undo-spent"), None, note(other.id, "undo"))
            .await
            .is_err()
    );
    assert_eq!(
        statuses(other.id).await,
        vec![
            ("INV-1".to_owned(), ChargeStatus::Open),
            ("INV-9".to_owned(), ChargeStatus::Open),
        ]
    );
    // An open invoice is marked paid once, with its record, and is due no more; a void, paid
    // or unknown one, or one of another organization's numbers, is not, and nothing is
    // recorded.
    let (h, other_h) = (head(s, org.id).await, head(s, other.id).await);
    for number in ["INV-1", "INV-2", "INV-404"] {
        assert!(
            !s.mark_invoice_paid(org.id, number, note(org.id, "paid"))
                .await
                .unwrap(),
            "{number}"
        );
    }
    assert_eq!(head(s, org.id).await, h);
    assert!(
        s.mark_invoice_paid(other.id, "INV-9", note(other.id, "paid"))
            .await
            .unwrap()
    );
    assert!(
        !s.mark_invoice_paid(other.id, "INV-9", note(other.id, "paid"))
            .await
            .unwrap()
    );
    assert_eq!(head(s, other.id).await, other_h + 1);
    assert_eq!(
        statuses(other.id).await,
        vec![
            ("INV-1".to_owned(), ChargeStatus::Open),
            ("INV-9".to_owned(), ChargeStatus::Paid),
        ]
    );
    assert!(
        s.invoice(other.id, "INV-9")
            .await
            .unwrap()
            .is_some_and(|i| i.due_at.is_none())
    );
    // Overdue: open and past its due date (30 days after issue here), this organization's
    // alone; void and paid ones never are.
    let overdue = |org: OrgId, days: i64| async move {
        s.overdue_invoices(org, now() + Duration::days(days))
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.org, i.number))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        overdue(other.id, 31).await,
        [(other.id, "INV-1".to_owned())]
    );
    assert!(overdue(other.id, 29).await.is_empty(), "not due yet");
    assert!(overdue(org.id, 31).await.is_empty(), "void and paid");
}

/// `documents_among` answers which ids are documents, whatever their organization; other
/// kinds and unknown ids are not (what the sweep of unreferenced bytes keeps).
async fn documents_among_names_documents_of_any_organization<
    S: TenancyStore + AuditStore + WorkspaceStore + ?Sized,
>(
    s: &S,
) {
    let mut docs = Vec::new();
    let mut others = Vec::new();
    for _ in 0..2 {
        let (org, team, owner) = new_org(s).await;
        let bot = chat(org.id, team.id, owner.id, "Bot");
        let kb = kb_under(&bot, owner.id);
        let doc = doc_in(&kb, owner.id, 10);
        for a in [&bot, &kb, &doc] {
            s.create_asset(a, &enterprise(), note(org.id, "asset"))
                .await
                .unwrap();
        }
        docs.push(doc.id);
        others.extend([bot.id, kb.id]);
    }
    let unknown = rbac_core::ResourceId::new();
    let asked: Vec<rbac_core::ResourceId> = docs
        .iter()
        .chain(&others)
        .copied()
        .chain([unknown])
        .collect();
    let mut found = s.documents_among(&asked).await.unwrap();
    found.sort_by_key(ToString::to_string);
    let mut want = docs.clone();
    want.sort_by_key(ToString::to_string);
    assert_eq!(found, want);
    assert!(s.documents_among(&[]).await.unwrap().is_empty());
}

/// An organization has at most one price deal, replaced or removed with its record in one
/// transaction; another organization's is its own; an unknown organization is refused and
/// nothing is recorded.
async fn a_price_deal_is_one_per_organization_with_its_record<
    S: TenancyStore + AuditStore + crate::billing::BillingStore + ?Sized,
>(
    s: &S,
) {
    use billing_limits::Plan;
    use billing_limits::subscription::PriceDeal;
    let (org, _, _) = new_org(s).await;
    let (other, _, _) = new_org(s).await;
    assert_eq!(s.price_deal(org.id).await.unwrap(), None);
    let enterprise = PriceDeal::new(Plan::Enterprise, 39_900).unwrap();
    let pro = PriceDeal::new(Plan::Pro, 1_900).unwrap();
    let h = head(s, org.id).await;
    s.set_price_deal(org.id, Some(&enterprise), note(org.id, "deal"))
        .await
        .unwrap();
    s.set_price_deal(other.id, Some(&pro), note(other.id, "deal"))
        .await
        .unwrap();
    assert_eq!(s.price_deal(org.id).await.unwrap(), Some(enterprise));
    assert_eq!(s.price_deal(other.id).await.unwrap(), Some(pro));
    s.set_price_deal(org.id, Some(&pro), note(org.id, "replaced"))
        .await
        .unwrap();
    assert_eq!(s.price_deal(org.id).await.unwrap(), Some(pro), "replaced");
    s.set_price_deal(org.id, None, note(org.id, "cleared"))
        .await
        .unwrap();
    assert_eq!(s.price_deal(org.id).await.unwrap(), None);
    assert_eq!(s.price_deal(other.id).await.unwrap(), Some(pro), "its own");
    assert_eq!(head(s, org.id).await, h + 3, "one record each");
    let unknown = OrgId::new();
    assert!(matches!(
        s.set_price_deal(unknown, Some(&pro), note(unknown, "none"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert_eq!(head(s, unknown).await, 0);
}

/// A debit that takes a team below its low-credit threshold commits the alert (its audit
/// record and mail) in its own transaction, once per fall; a refused debit sends none.
async fn low_credit_alerts_commit_with_their_debit<
    S: TenancyStore
        + AuditStore
        + WorkspaceStore
        + crate::credits::CreditStore
        + audit::MailOutbox
        + ?Sized,
>(
    s: &S,
) {
    use crate::credits::LowCreditAlerts;
    use billing_limits::credits::{self, Account, CreditError, EntryKind};
    let (org, team, _) = new_org(s).await;
    let account = Account::Team(team.id);
    s.configure_credit_account(org.id, account, 0, Some(50), note(org.id, "threshold"))
        .await
        .unwrap();
    let buy = credit_op(
        org.id,
        "alert-buy",
        EntryKind::Purchase,
        credits::purchase(account, 100, &[]).unwrap(),
    );
    s.post_credits(&buy, None, note(org.id, "buy"))
        .await
        .unwrap();
    let alerts = || {
        LowCreditAlerts::new("Contract Org").tell(
            team.id,
            team.name.clone(),
            vec!["owner@contract.test".into()],
        )
    };
    let use_credits = |key: &str, amount: i64| crate::credits::NewOperation {
        low_credit: alerts(),
        ..credit_op(
            org.id,
            key,
            EntryKind::Consumption,
            credits::consume(team.id, amount).unwrap(),
        )
    };
    let low_records = || async {
        s.chain_page(org.id, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.event.action == AuditAction::CreditsLow)
            .count()
    };
    let low_mails = || async {
        s.list_mails(Some(org.id), None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.kind == "credits_low" && m.to == "owner@contract.test")
            .count()
    };
    // 100 → 60: above the threshold, no alert.
    s.post_credits(&use_credits("alert-1", 40), None, note(org.id, "use"))
        .await
        .unwrap();
    assert_eq!(low_records().await, 0);
    // 60 → 20: refused for the lack of credits, no alert.
    assert!(matches!(
        s.post_credits(&use_credits("alert-2", 70), None, note(org.id, "use"))
            .await,
        Err(TenancyError::Credit(CreditError::Insufficient { .. }))
    ));
    assert_eq!(low_records().await, 0, "a refused debit sets nothing off");
    // 60 → 30: falls below 50, the alert commits with the debit, right after its record.
    let head_before = head(s, org.id).await;
    s.post_credits(&use_credits("alert-3", 30), None, note(org.id, "use"))
        .await
        .unwrap();
    assert_eq!(low_records().await, 1);
    assert_eq!(low_mails().await, 1);
    let last = s.chain_page(org.id, head_before, 10).await.unwrap();
    assert_eq!(
        last.iter().map(|r| r.event.action).collect::<Vec<_>>(),
        [AuditAction::SettingsUpdated, AuditAction::CreditsLow],
        "the debit's record and its alert, one commit"
    );
    // Already below: no new fall, no new alert.
    s.post_credits(&use_credits("alert-4", 10), None, note(org.id, "use"))
        .await
        .unwrap();
    assert_eq!(low_records().await, 1);
    // Back above and below again: a new fall, a new alert; an operation prepared without
    // recipients still records it, without mail.
    let top_up = credit_op(
        org.id,
        "alert-top-up",
        EntryKind::Purchase,
        credits::purchase(account, 80, &[]).unwrap(),
    );
    s.post_credits(&top_up, None, note(org.id, "buy"))
        .await
        .unwrap();
    s.post_credits(
        &credit_op(
            org.id,
            "alert-5",
            EntryKind::Consumption,
            credits::consume(team.id, 60).unwrap(),
        ),
        None,
        note(org.id, "use"),
    )
    .await
    .unwrap();
    assert_eq!(low_records().await, 2);
    assert_eq!(low_mails().await, 1);
    assert_chain_verifies(s, org.id, "after the alerts").await;
}

async fn credit_ledger_is_exact_under_concurrency<
    S: TenancyStore + AuditStore + WorkspaceStore + crate::credits::CreditStore + ?Sized,
>(
    s: &S,
) {
    use crate::credits::Posted;
    use billing_limits::credits::{self, Account, Allocation, CreditError, EntryKind};
    let (org, team, _) = new_org(s).await;
    let other = team_in(org.id, "Production");
    s.create_team(&other, note(org.id, "team")).await.unwrap();
    let (a, b) = (Account::Team(team.id), Account::Team(other.id));
    let audit_before = head(s, org.id).await;

    // Allocation 30 / 50: a pool purchase of 1,001 gives 300 and 500, the pool keeps 201.
    s.set_allocations(
        org.id,
        &[Allocation::new(team.id, 30), Allocation::new(other.id, 50)],
        note(org.id, "allocations"),
    )
    .await
    .unwrap();
    let plan = [Allocation::new(team.id, 30), Allocation::new(other.id, 50)];
    let buy = credit_op(
        org.id,
        "buy-1",
        EntryKind::Purchase,
        credits::purchase(Account::Pool, 1_001, &plan).unwrap(),
    );
    let posted = s
        .post_credits(&buy, None, note(org.id, "buy"))
        .await
        .unwrap();
    assert!(matches!(posted, Posted::Applied(ref e) if e.len() == 5));
    assert_eq!(balance_of(s, org.id, Account::Pool).await, 201);
    assert_eq!(balance_of(s, org.id, a).await, 300);
    assert_eq!(balance_of(s, org.id, b).await, 500);
    // The same key again: replayed, nothing changes; with another amount: refused.
    let again = s
        .post_credits(&buy, None, note(org.id, "buy again"))
        .await
        .unwrap();
    assert!(matches!(again, Posted::Replayed(ref e) if e == posted.entries()));
    let other_amount = credit_op(
        org.id,
        "buy-1",
        EntryKind::Purchase,
        credits::purchase(Account::Pool, 5, &plan).unwrap(),
    );
    assert!(matches!(
        s.post_credits(&other_amount, None, note(org.id, "x")).await,
        Err(TenancyError::Credit(CreditError::KeyReused(_)))
    ));
    assert_eq!(balance_of(s, org.id, Account::Pool).await, 201);

    // 40 concurrent consumptions of 10 from 300 with no overdraft: exactly 30 succeed.
    let ops: Vec<_> = (0..40)
        .map(|i| {
            credit_op(
                org.id,
                &format!("use-{i}"),
                EntryKind::Consumption,
                credits::consume(team.id, 10).unwrap(),
            )
        })
        .collect();
    let results = futures::future::join_all(
        ops.iter()
            .map(|op| s.post_credits(op, None, note(org.id, "use"))),
    )
    .await;
    let applied = results
        .iter()
        .filter(|r| matches!(r, Ok(Posted::Applied(_))))
        .count();
    assert_eq!(applied, 30, "the balance is never overdrawn");
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(Posted::Applied(_)) | Err(TenancyError::Credit(CreditError::Insufficient { .. }))
    )));
    assert_eq!(balance_of(s, org.id, a).await, 0);

    // One key sent 20 times at once applies once.
    let same = credit_op(
        org.id,
        "same-key",
        EntryKind::Consumption,
        credits::consume(other.id, 7).unwrap(),
    );
    let results = futures::future::join_all(
        (0..20).map(|_| s.post_credits(&same, None, note(org.id, "same"))),
    )
    .await;
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Ok(Posted::Applied(_))))
            .count(),
        1
    );
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(balance_of(s, org.id, b).await, 493);

    // An overdraft lets the balance go that far below zero, no further.
    s.configure_credit_account(org.id, a, 25, Some(5), note(org.id, "overdraft"))
        .await
        .unwrap();
    let over = credit_op(
        org.id,
        "over-1",
        EntryKind::Consumption,
        credits::consume(team.id, 20).unwrap(),
    );
    s.post_credits(&over, None, note(org.id, "over"))
        .await
        .unwrap();
    let too_far = credit_op(
        org.id,
        "over-2",
        EntryKind::Consumption,
        credits::consume(team.id, 6).unwrap(),
    );
    assert!(matches!(
        s.post_credits(&too_far, None, note(org.id, "x")).await,
        Err(TenancyError::Credit(CreditError::Insufficient {
            balance: -20,
            needed: 6,
            overdraft: 25,
            ..
        }))
    ));
    assert_eq!(balance_of(s, org.id, a).await, -20);

    // Transfers conserve the total; a refused transfer moves nothing.
    let before_total = total_credits(s, org.id).await;
    let t = credit_op(
        org.id,
        "move-1",
        EntryKind::Transfer,
        credits::transfer(b, a, 100).unwrap(),
    );
    let moved = s
        .post_credits(&t, None, note(org.id, "move"))
        .await
        .unwrap();
    assert_eq!(total_credits(s, org.id).await, before_total);
    assert_eq!(balance_of(s, org.id, a).await, 80);
    let t = credit_op(
        org.id,
        "move-2",
        EntryKind::Transfer,
        credits::transfer(Account::Pool, a, 202).unwrap(),
    );
    assert!(s.post_credits(&t, None, note(org.id, "x")).await.is_err());
    assert_eq!(balance_of(s, org.id, Account::Pool).await, 201);

    // A reversal compensates once.
    let moved_id = moved.entries()[0].operation;
    let record = s.credit_operation(org.id, moved_id).await.unwrap().unwrap();
    assert_eq!(
        (record.kind, record.reversed_by, record.entries.len()),
        (EntryKind::Transfer, None, 2)
    );
    let postings: Vec<_> = record
        .entries
        .iter()
        .map(|e| credits::Posting {
            account: e.account,
            amount: e.amount,
            kind: e.kind,
        })
        .collect();
    let mut rev = credit_op(
        org.id,
        "reverse-1",
        EntryKind::Reversal,
        credits::reversal_of(&postings),
    );
    rev.reverses = Some(moved_id);
    s.post_credits(&rev, None, note(org.id, "reverse"))
        .await
        .unwrap();
    assert_eq!(balance_of(s, org.id, a).await, -20);
    assert_eq!(balance_of(s, org.id, b).await, 493);
    assert_eq!(
        s.credit_operation(org.id, moved_id)
            .await
            .unwrap()
            .unwrap()
            .reversed_by,
        Some(rev.id)
    );
    let mut twice = credit_op(
        org.id,
        "reverse-2",
        EntryKind::Reversal,
        credits::reversal_of(&postings),
    );
    twice.reverses = Some(moved_id);
    assert!(matches!(
        s.post_credits(&twice, None, note(org.id, "x")).await,
        Err(TenancyError::Conflict(_))
    ));

    // History: newest first, per account, keyset; entries carry the balance after them and
    // are consistent with the account's history.
    let hist = s.credit_history(org.id, Some(a), None, 500).await.unwrap();
    assert!(hist.windows(2).all(|w| w[0].seq > w[1].seq));
    for w in hist.windows(2) {
        assert_eq!(
            w[1].balance_after + w[0].amount,
            w[0].balance_after,
            "{w:?}"
        );
    }
    assert_eq!(hist[0].balance_after, -20);
    let page = s
        .credit_history(org.id, Some(a), Some(hist[1].seq), 1)
        .await
        .unwrap();
    assert_eq!(page, vec![hist[2].clone()]);
    let ledger = s
        .credit_ledger(org.id, None, now() + Duration::seconds(1), 1_000)
        .await
        .unwrap();
    assert!(ledger.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        ledger.iter().map(|e| e.amount).sum::<i64>(),
        total_credits(s, org.id).await
    );
    assert!(
        s.credit_ledger(org.id, None, now(), 1_000)
            .await
            .unwrap()
            .is_empty(),
        "until is exclusive"
    );
    assert_eq!(
        s.credit_operation_by_key(org.id, "same-key")
            .await
            .unwrap()
            .unwrap()
            .1
            .len(),
        1
    );

    // Allocations are replaced as a whole; other organizations see nothing of this one.
    s.set_allocations(
        org.id,
        &[Allocation::new(other.id, 100)],
        note(org.id, "allocations"),
    )
    .await
    .unwrap();
    let accounts = s.credit_accounts(org.id).await.unwrap();
    assert_eq!(
        accounts
            .iter()
            .find(|x| x.account == a)
            .unwrap()
            .allocation_percent,
        0
    );
    assert_eq!(
        accounts
            .iter()
            .find(|x| x.account == b)
            .unwrap()
            .allocation_percent,
        100
    );
    let (stranger, _, _) = new_org(s).await;
    assert!(s.credit_accounts(stranger.id).await.unwrap().is_empty());
    assert!(
        s.credit_history(stranger.id, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.credit_operation(stranger.id, moved_id)
            .await
            .unwrap()
            .is_none()
    );
    // Only the committed operations left audit records (refusals none).
    let applied_ops = 1 + 30 + 1 + 1 + 1 + 1; // buy, uses, same key, overdraft, move, reverse
    let notes = 2 + 1; // two allocations, the overdraft setting
    // The reversal took the team from 80 back to -20, below its low-credit threshold of 5: the
    // store commits that alert with it (no recipients were prepared, so without mail).
    let alerts = 1;
    assert_eq!(
        head(s, org.id).await - audit_before,
        applied_ops + notes + alerts
    );

    // A team is deleted only with an empty account and no share of purchases; afterwards
    // nothing lands in its account.
    let temp = team_in(org.id, "Temporary");
    s.create_team(&temp, note(org.id, "temp")).await.unwrap();
    let temp_account = Account::Team(temp.id);
    let delete = || s.delete_team(org.id, temp.id, now(), None, note(org.id, "rm"));
    s.set_allocations(
        org.id,
        &[Allocation::new(temp.id, 10)],
        note(org.id, "share"),
    )
    .await
    .unwrap();
    assert!(matches!(delete().await, Err(TenancyError::Conflict(_))));
    s.set_allocations(org.id, &[], note(org.id, "no share"))
        .await
        .unwrap();
    let fund = credit_op(
        org.id,
        "fund-temp",
        EntryKind::Purchase,
        credits::purchase(temp_account, 5, &[]).unwrap(),
    );
    s.post_credits(&fund, None, note(org.id, "fund"))
        .await
        .unwrap();
    assert!(matches!(delete().await, Err(TenancyError::Conflict(_))));
    let back = credit_op(
        org.id,
        "unfund-temp",
        EntryKind::Transfer,
        credits::transfer(temp_account, Account::Pool, 5).unwrap(),
    );
    s.post_credits(&back, None, note(org.id, "back"))
        .await
        .unwrap();
    delete().await.unwrap();
    assert!(
        s.credit_accounts(org.id)
            .await
            .unwrap()
            .iter()
            .all(|a| a.account != temp_account)
    );
    let late = credit_op(
        org.id,
        "late",
        EntryKind::Transfer,
        credits::transfer(Account::Pool, temp_account, 1).unwrap(),
    );
    assert!(matches!(
        s.post_credits(&late, None, note(org.id, "late")).await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(matches!(
        s.set_allocations(
            org.id,
            &[Allocation::new(temp.id, 10)],
            note(org.id, "late share")
        )
        .await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(matches!(
        s.configure_credit_account(org.id, temp_account, 0, None, note(org.id, "late"))
            .await,
        Err(TenancyError::NotFound(_))
    ));
    assert!(
        s.credit_accounts(org.id)
            .await
            .unwrap()
            .iter()
            .all(|a| a.account != temp_account),
        "no account was made for it either"
    );
}

/// An operator's negotiated limits are a deal for the plan they were made on: they apply
/// while the organization is on it, not on another, and again when it comes back.
async fn a_deal_applies_on_the_plan_it_was_made_for<
    S: TenancyStore + AuditStore + crate::billing::BillingStore + ?Sized,
>(
    s: &S,
) {
    use billing_limits::subscription::{BillingCycle, Change, PriceList, transition};
    use billing_limits::{Limit, LimitOverrides, PlanLimits};
    let (org, _, _) = new_org(s).await;
    let deal = LimitOverrides([(Limit::Members, Some(60))].into_iter().collect());
    s.set_limit_overrides(org.id, &deal, Plan::Enterprise, note(org.id, "deal"))
        .await
        .unwrap();
    let o = s.get_org(org.id).await.unwrap();
    assert_eq!(o.limit_overrides_plan, Some(Plan::Enterprise));
    assert_eq!(o.limits().members, Some(60));
    let (sub, _) = s.subscription(org.id).await.unwrap();
    let change = |from: &billing_limits::subscription::Subscription, plan| {
        transition(
            from,
            Change::Subscribe {
                plan,
                cycle: BillingCycle::Monthly,
            },
            &PriceList::default(),
            now(),
        )
        .unwrap()
        .next
    };
    // Down to Pro: the Enterprise deal's seats stay behind, and Pro shuts members out.
    let pro = change(&sub, Plan::Pro);
    s.apply_subscription(org.id, 0, &pro, Some(now()), None, note(org.id, "pro"))
        .await
        .unwrap();
    let o = s.get_org(org.id).await.unwrap();
    assert_eq!(
        (o.plan, o.limit_overrides.clone()),
        (Plan::Pro, deal.clone())
    );
    assert_eq!(o.limits(), PlanLimits::deployed(Plan::Pro));
    assert!(!o.admits_members());
    // A deal for the plan it has left (its operator read it before the change) is refused.
    let stale = LimitOverrides([(Limit::Members, Some(70))].into_iter().collect());
    let h = head(s, org.id).await;
    assert!(matches!(
        s.set_limit_overrides(org.id, &stale, Plan::Enterprise, note(org.id, "stale"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(head(s, org.id).await, h);
    assert_eq!(s.get_org(org.id).await.unwrap().limit_overrides, deal);
    // Back on Enterprise, the deal holds again.
    let back = change(&pro, Plan::Enterprise);
    s.apply_subscription(org.id, 1, &back, None, None, note(org.id, "back"))
        .await
        .unwrap();
    let o = s.get_org(org.id).await.unwrap();
    assert_eq!(o.limits().members, Some(60));
    // Clearing it clears what it was made for.
    s.set_limit_overrides(
        org.id,
        &LimitOverrides::default(),
        Plan::Enterprise,
        note(org.id, "off"),
    )
    .await
    .unwrap();
    let o = s.get_org(org.id).await.unwrap();
    assert_eq!(
        (o.limit_overrides, o.limit_overrides_plan),
        (LimitOverrides::default(), None)
    );
}

async fn subscriptions_are_compare_and_swap<
    S: TenancyStore + AuditStore + crate::billing::BillingStore + ?Sized,
>(
    s: &S,
) {
    use billing_limits::payment::ChargeStatus;
    use billing_limits::subscription::{BillingCycle, Change, PriceList, transition};
    let (org, _, _) = new_org(s).await;
    let (sub, version) = s.subscription(org.id).await.unwrap();
    assert_eq!((sub.plan, version), (Plan::Enterprise, 0));
    let prices = PriceList::default();
    let down = transition(
        &sub,
        Change::Subscribe {
            plan: Plan::Pro,
            cycle: BillingCycle::Monthly,
        },
        &prices,
        now(),
    )
    .unwrap();
    let invoice = crate::billing::Invoice {
        number: "INV-1".into(),
        org: org.id,
        provider: "manual_invoice".into(),
        description: down.description.clone(),
        amount_cents: down.charge_cents.unwrap(),
        currency: "EUR".into(),
        status: ChargeStatus::Open,
        created_at: now(),
        due_at: Some(now() + Duration::days(30)),
    };
    s.apply_subscription(
        org.id,
        0,
        &down.next,
        Some(now()),
        Some(&invoice),
        note(org.id, "pro"),
    )
    .await
    .unwrap();
    let o = s.get_org(org.id).await.unwrap();
    assert_eq!((o.plan, o.audit_archived_at), (Plan::Pro, Some(now())));
    let (stored, v) = s.subscription(org.id).await.unwrap();
    assert_eq!((stored.clone(), v), (down.next.clone(), 1));
    // A second writer holding version 0 loses, and writes nothing.
    let audit = head(s, org.id).await;
    assert!(matches!(
        s.apply_subscription(org.id, 0, &sub, None, Some(&invoice), note(org.id, "stale"))
            .await,
        Err(TenancyError::Conflict(_))
    ));
    assert_eq!(head(s, org.id).await, audit);
    assert!(s.has_invoice(org.id, &invoice.number).await.unwrap());
    assert_eq!(
        s.invoice(org.id, &invoice.number).await.unwrap().as_ref(),
        Some(&invoice)
    );
    assert!(!s.has_invoice(org.id, "INV-none").await.unwrap());
    let (stranger, _, _) = new_org(s).await;
    assert!(
        !s.has_invoice(stranger.id, &invoice.number).await.unwrap(),
        "per organization"
    );
    assert_eq!(s.invoices(org.id, None, 10).await.unwrap(), vec![invoice]);
    // Due: the renewal at the period's end, not before.
    let end = stored.period_end.unwrap();
    assert!(
        !s.due_subscriptions(end - Duration::seconds(1), None, 100)
            .await
            .unwrap()
            .contains(&org.id)
    );
    assert!(
        s.due_subscriptions(end, None, 1_000)
            .await
            .unwrap()
            .contains(&org.id)
    );
    // Pages by id: two more organizations due at the same time, read a page of one at a time,
    // come each once, in ascending order, with the first.
    let mut ours = vec![org.id];
    for name in ["due-2", "due-3"] {
        let (o, _, _) = new_org(s).await;
        s.apply_subscription(o.id, 0, &stored, None, None, note(o.id, name))
            .await
            .unwrap();
        ours.push(o.id);
    }
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = s.due_subscriptions(end, after, 1).await.unwrap();
        assert!(page.len() <= 1, "a page holds at most `limit`");
        let Some(&next) = page.first() else { break };
        seen.push(next);
        after = Some(next);
    }
    let seen: Vec<String> = seen.iter().map(ToString::to_string).collect();
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "by id, each once");
    for o in &ours {
        assert!(seen.contains(&o.to_string()), "{o} is due");
    }
    // A renewal whose charge failed waits for its next try.
    assert!(stored.anchor.is_some(), "a paid plan has its anchor");
    let waiting = stored.renewal_failed(end).unwrap();
    let retry = waiting.renewal_retry_at.unwrap();
    s.apply_subscription(
        org.id,
        1,
        &waiting,
        Some(now()),
        None,
        note(org.id, "retry"),
    )
    .await
    .unwrap();
    assert_eq!(s.subscription(org.id).await.unwrap(), (waiting, 2));
    for (at, due) in [
        (end, false),
        (retry - Duration::seconds(1), false),
        (retry, true),
    ] {
        assert_eq!(
            s.due_subscriptions(at, None, 1_000)
                .await
                .unwrap()
                .contains(&org.id),
            due,
            "at {at}"
        );
    }
    let (other, _, _) = new_org(s).await;
    assert!(s.invoices(other.id, None, 10).await.unwrap().is_empty());
}

async fn a_pending_charge_is_asked_for_again_until_its_change_is_stored<
    S: TenancyStore + AuditStore + crate::billing::BillingStore + ?Sized,
>(
    s: &S,
) {
    use crate::billing::PendingCharge;
    let (org, _, _) = new_org(s).await;
    let (other, _, _) = new_org(s).await;
    let charge = |version: u64, change: &str, cents: u64| PendingCharge {
        version,
        change: change.to_owned(),
        amount_cents: cents,
        description: format!("{change} for {cents}"),
    };
    let first = charge(0, "subscribe-enterprise-monthly", 9_000);
    assert_eq!(s.pending_charge(org.id, &first).await.unwrap(), first);
    // The same change from the same version, a minute later at another amount: the first.
    assert_eq!(
        s.pending_charge(org.id, &charge(0, "subscribe-enterprise-monthly", 9_004))
            .await
            .unwrap(),
        first
    );
    // Per organization.
    let theirs = charge(0, "subscribe-enterprise-monthly", 9_004);
    assert_eq!(s.pending_charge(other.id, &theirs).await.unwrap(), theirs);
    // Another change, or the same from another version, replaces it.
    let annual = charge(0, "subscribe-enterprise-annual", 80_000);
    assert_eq!(s.pending_charge(org.id, &annual).await.unwrap(), annual);
    let later = charge(1, "subscribe-enterprise-annual", 79_000);
    assert_eq!(s.pending_charge(org.id, &later).await.unwrap(), later);
    // Dropped only when it is the one named.
    s.drop_pending_charge(org.id, 0, "subscribe-enterprise-annual")
        .await
        .unwrap();
    assert_eq!(
        s.pending_charge(org.id, &charge(1, "subscribe-enterprise-annual", 1))
            .await
            .unwrap(),
        later
    );
    s.drop_pending_charge(org.id, 1, "subscribe-enterprise-annual")
        .await
        .unwrap();
    let fresh = charge(1, "subscribe-enterprise-annual", 1);
    assert_eq!(s.pending_charge(org.id, &fresh).await.unwrap(), fresh);
    // Storing a change forgets it: the next try from the old version would lose its
    // compare-and-swap anyway, and one from the new version is a new charge.
    let (sub, version) = s.subscription(org.id).await.unwrap();
    s.apply_subscription(org.id, version, &sub, None, None, note(org.id, "stored"))
        .await
        .unwrap();
    let again = charge(1, "subscribe-enterprise-annual", 2);
    assert_eq!(s.pending_charge(org.id, &again).await.unwrap(), again);
    // The other organization's is untouched.
    assert_eq!(
        s.pending_charge(other.id, &charge(0, "subscribe-enterprise-monthly", 1))
            .await
            .unwrap(),
        theirs
    );
}

async fn total_credits<S: crate::credits::CreditStore + ?Sized>(s: &S, org: OrgId) -> i64 {
    s.credit_accounts(org)
        .await
        .unwrap()
        .iter()
        .map(|x| x.balance)
        .sum()
}

/// A housekeeping pass removes sessions, reset links and sign-in challenges past their
/// cutoffs, and old mail, and keeps the rest: fresh ones, and each person's newest session
/// (their last sign-in) however old.
async fn housekeeping_removes_stale_sessions_links_challenges_and_mail<
    S: TenancyStore
        + AuditStore
        + BulkStore
        + MembershipStore
        + crate::mfa::MfaStore
        + crate::password_reset::PasswordResetStore
        + crate::housekeeping::HousekeepingStore
        + ?Sized,
>(
    s: &S,
) {
    use crate::housekeeping::Cutoffs;
    use crate::password_reset::PasswordReset;
    let (org, team, owner) = new_org(s).await;
    let ann = user("ann");
    s.add_member(
        org.id,
        &ann,
        Some("h"),
        OrgRole::User,
        team.id,
        TeamRole::Member,
        &limits(10),
        note(org.id, "ann"),
    )
    .await
    .unwrap();
    let t = now();
    let long_ago = t - Duration::days(3650);
    let cutoffs = Cutoffs {
        sessions_created_before: t,
        tokens_expired_before: t,
        mail_before: long_ago,
        sms_created_before: long_ago,
        history_before: long_ago,
    };
    let days = |d: i64| d * 24 * 60;
    // The Owner's from two days ago goes, their fresh one stays; both of Ann's are old, and
    // the newer is her last sign-in.
    let sessions = [
        session(owner.id, -days(2)),
        session(owner.id, 1),
        session(ann.id, -days(3)),
        session(ann.id, -days(2)),
    ];
    for (i, x) in sessions.iter().enumerate() {
        s.create_session(
            x,
            &format!("hk-{}-{i}", org.id),
            10,
            crate::SessionProof::Password,
            &|_| Journal::default(),
        )
        .await
        .unwrap();
    }
    let link = |tag: &str, expires_at: DateTime<Utc>| PasswordReset {
        token_hash: format!("hk-{tag}-{}", owner.id),
        user: owner.id,
        created_at: expires_at - Duration::hours(1),
        expires_at,
        used_at: None,
    };
    let (old_link, new_link) = (
        link("old", t - Duration::hours(1)),
        link("new", t + Duration::hours(1)),
    );
    for l in [&old_link, &new_link] {
        assert!(
            s.create_password_reset(l, &owner.email, long_ago, 100, &|_, _| Journal::default())
                .await
                .unwrap()
        );
    }
    let (old_challenge, new_challenge) = (
        format!("hk-c-old-{}", org.id),
        format!("hk-c-new-{}", org.id),
    );
    // The fresh one first: saving a challenge may sweep those long expired.
    s.save_login_challenge(&new_challenge, owner.id, t + Duration::hours(1))
        .await
        .unwrap();
    s.save_login_challenge(&old_challenge, owner.id, t - Duration::hours(1))
        .await
        .unwrap();
    s.append(Journal::default().mail(audit::OutboundMail {
        org: Some(org.id),
        to: "someone@contract.example".into(),
        subject: "s".into(),
        body: "b".into(),
        kind: "invitation".into(),
    }))
    .await
    .unwrap();

    // Bulk-invitation previews: one expired an hour ago, one expiring in an hour.
    let sheet = |expires_at: DateTime<Utc>| BulkPreview {
        id: rbac_core::InvitationId::new(),
        org: org.id,
        created_by: owner.id,
        expires_at,
        rows: vec![],
        seats_available: None,
    };
    let (old_sheet, new_sheet) = (sheet(t - Duration::hours(1)), sheet(t + Duration::hours(1)));
    // The fresh one first: saving a preview sweeps its organization's older expired ones.
    for p in [&new_sheet, &old_sheet] {
        s.save_preview(p).await.unwrap();
    }

    let report = s.prune_stale(&cutoffs).await.unwrap();
    assert!(report.sessions >= 2, "{report:?}");
    assert!(report.bulk_previews >= 1, "{report:?}");
    assert!(s.get_preview(org.id, new_sheet.id).await.unwrap().is_some());
    assert!(
        report.password_resets >= 1 && report.login_challenges >= 1,
        "{report:?}"
    );
    assert_eq!(report.mails, 0, "no mail is ten years old: {report:?}");
    let ids = |v: Vec<Session>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_sessions(owner.id).await.unwrap()),
        vec![sessions[1].id]
    );
    assert_eq!(
        ids(s.list_sessions(ann.id).await.unwrap()),
        vec![sessions[3].id]
    );
    assert!(
        s.find_password_reset(&old_link.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.find_password_reset(&new_link.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.login_challenge(&old_challenge).await.unwrap().is_none());
    assert!(s.login_challenge(&new_challenge).await.unwrap().is_some());
    // Running it again finds nothing more of these.
    let again = s.prune_stale(&cutoffs).await.unwrap();
    assert_eq!(
        (
            again.sessions,
            again.password_resets,
            again.login_challenges
        ),
        (0, 0, 0)
    );
    // Mail goes once its cutoff passes it (never sent: by when it was queued).
    let report = s
        .prune_stale(&Cutoffs {
            mail_before: chrono::Utc::now() + Duration::days(1),
            ..cutoffs
        })
        .await
        .unwrap();
    assert!(report.mails >= 1, "{report:?}");
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        super::run(&crate::MemoryTenancyStore::new()).await;
    }
}
