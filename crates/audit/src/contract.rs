//! The contract every [`AuditStore`] must meet, as an async test suite.
//!
//! Storage adapters call [`run`] from their own tests; the in-memory store runs
//! it in this crate. Each check uses fresh organization ids, so the suite can
//! share a database with other tests.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test suite for store implementations: failing loudly is its job"
)]

use chrono::{DateTime, Utc};
use rbac_core::{OrgId, TeamId};

use crate::{
    ActionFilter, Actor, AuditAction, AuditError, AuditEvent, AuditQuery, AuditStore, ChainBreak,
    DomainEvent, EventKind, Journal, NewAuditEvent, Outcome, Target, take_checkpoint, verify_chain,
};

const KEY: &[u8] = b"contract-checkpoint-key";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_893_815 + secs, 123_456_000).unwrap_or_default()
}

fn event(
    org: OrgId,
    secs: i64,
    actor: &str,
    action: AuditAction,
    target_id: &str,
) -> NewAuditEvent {
    NewAuditEvent::new(
        org,
        at(secs),
        Actor::user(actor, format!("name of {actor}")),
        action,
        Target::new("chat_interface", target_id, "Customer Support"),
    )
}

fn query(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

/// The mail outbox contract: mails committed with a journal are claimed once per lease,
/// marked sent (body removed) or failed (retried later), and listed per organization.
pub async fn run_mail<S: AuditStore + crate::MailOutbox + ?Sized>(store: &S) {
    let org = OrgId::new();
    let mail = |to: &str| crate::OutboundMail {
        org: Some(org),
        to: to.into(),
        subject: "s".into(),
        body: "secret link".into(),
        kind: "invitation".into(),
    };
    store
        .append(
            Journal::default()
                .mail(mail("a@x.example"))
                .mail(mail("b@x.example")),
        )
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::seconds(60);
    let claimed: Vec<_> = store
        .claim_mails(now, later, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.org == Some(org))
        .collect();
    assert_eq!(claimed.len(), 2);
    assert!(
        store
            .claim_mails(now, later, 100)
            .await
            .unwrap()
            .iter()
            .all(|m| m.org != Some(org)),
        "leased mails are not claimed twice"
    );
    store.mark_mail_sent(&claimed[0].id, now).await.unwrap();
    store
        .mark_mail_failed(
            &claimed[1].id,
            "421 try\0 later",
            now + chrono::Duration::seconds(5),
        )
        .await
        .unwrap();
    let listed = store.list_mails(Some(org), None, 10).await.unwrap();
    let sent = listed.iter().find(|m| m.id == claimed[0].id).unwrap();
    assert!(sent.sent_at.is_some());
    assert_eq!(sent.body, "", "a sent mail keeps no copy of its link");
    let failed = listed.iter().find(|m| m.id == claimed[1].id).unwrap();
    assert_eq!(failed.attempts, 1);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("421 try\u{FFFD} later"),
        "what a relay answers is kept, U+0000 as U+FFFD"
    );
    let retry: Vec<_> = store
        .claim_mails(now + chrono::Duration::seconds(5), later, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.org == Some(org))
        .collect();
    assert_eq!(
        retry.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![claimed[1].id.clone()],
        "only the failed one comes back, after its retry time"
    );
    assert!(
        store
            .list_mails(Some(OrgId::new()), None, 10)
            .await
            .unwrap()
            .is_empty(),
        "scoped by organization"
    );
    let first = store.list_mails(Some(org), None, 1).await.unwrap();
    let rest = store
        .list_mails(Some(org), Some(&first[0].id), 10)
        .await
        .unwrap();
    assert_eq!(
        first.len() + rest.len(),
        2,
        "keyset pages cover the outbox once"
    );
    assert!(rest.iter().all(|m| m.id < first[0].id));

    // Mail about an account (no organization) is delivered like any other and listed in no
    // organization's outbox.
    let to = format!("{}@account.example", OrgId::new());
    store
        .append(Journal::default().mail(crate::OutboundMail {
            org: None,
            ..mail(&to)
        }))
        .await
        .unwrap();
    let claimed = store
        .claim_mails(now + chrono::Duration::seconds(5), later, 1000)
        .await
        .unwrap();
    let account = claimed.iter().find(|m| m.to == to).unwrap();
    assert_eq!(account.org, None);
    assert!(
        store
            .list_mails(Some(org), None, 100)
            .await
            .unwrap()
            .iter()
            .all(|m| m.to != to)
    );
    assert!(
        store
            .list_mails(None, None, 1000)
            .await
            .unwrap()
            .iter()
            .any(|m| m.to == to),
        "the operator's list of account mail has it"
    );
}

/// Runs every check; panics with a message on the first violation.
pub async fn run(store: &dyn AuditStore) {
    appends_number_and_chain_records(store).await;
    search_filters_and_pages_newest_first(store).await;
    chains_are_per_organization(store).await;
    checkpoints_round_trip_and_verify(store).await;
    erasure_keeps_the_chain_valid(store).await;
    retention_removes_a_prefix_under_a_signed_anchor(store).await;
    retention_keeps_every_record_within_the_period(store).await;
    retention_commits_its_record_with_the_removal(store).await;
    a_rotated_key_takes_the_anchor_with_the_checkpoint(store).await;
    rejects_invalid_queries(store).await;
}

async fn appends_number_and_chain_records(store: &dyn AuditStore) {
    let org = OrgId::new();
    assert_eq!(
        store.head(org).await.unwrap(),
        None,
        "empty log has no head"
    );
    let mut login = event(org, 0, "usr_a", AuditAction::Login, "x");
    login.context = crate::RequestContext {
        ip: "203.0.113.7".into(),
        user_agent: "contract".into(),
        request_id: "req_1".into(),
    };
    let j = Journal::record(login)
        .and_record(
            event(org, 1, "usr_a", AuditAction::ChatInterfaceCreated, "res_1")
                // Every field the hash covers has a value in one record or another.
                .in_team(TeamId::new())
                .with_outcome(Outcome::Denied {
                    reason: "role_lacks_permission".into(),
                })
                .with_metadata(
                    crate::Metadata::from_value(serde_json::json!({"changes": ["name"], "n": 1}))
                        .unwrap(),
                ),
        )
        .publish(DomainEvent::new(
            org,
            EventKind::ChatInterfaceCreated,
            at(1),
            serde_json::json!({"id": "res_1"}),
        ));
    let written = store.append(j).await.unwrap();
    assert_eq!(
        written.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(written[1].prev_hash, written[0].hash);
    let again = store
        .append(Journal::record(event(
            org,
            2,
            "usr_b",
            AuditAction::Logout,
            "x",
        )))
        .await
        .unwrap();
    assert_eq!(again[0].seq, 3);
    assert_eq!(again[0].prev_hash, written[1].hash);
    assert_eq!(store.head(org).await.unwrap(), Some((3, again[0].hash)));
    assert!(store.organizations().await.unwrap().contains(&org));
    let page = store.chain_page(org, 0, 10).await.unwrap();
    assert_eq!(page.len(), 3);
    assert_eq!(page[0], written[0], "records read back exactly as written");
    assert_eq!(
        page[0].event.occurred_at,
        at(0),
        "microseconds survive storage"
    );
    let hashed = store.chain_page_for_verification(org, 0, 10).await.unwrap();
    assert_eq!(hashed.len(), 3);
    for (h, full) in hashed.iter().zip(&page) {
        assert_eq!(
            hashed_part(h),
            hashed_part(full),
            "what the hash covers reads back as stored"
        );
        let e = (&h.event, &full.event);
        for (read, stored) in [
            (&e.0.actor.name, &e.1.actor.name),
            (&e.0.target.name, &e.1.target.name),
            (&e.0.context.ip, &e.1.context.ip),
            (&e.0.context.user_agent, &e.1.context.user_agent),
            (&e.0.context.request_id, &e.1.context.request_id),
        ] {
            assert!(
                read.is_empty() || read == stored,
                "{read:?} is not {stored:?}"
            );
        }
    }
    let middle = store.chain_page_for_verification(org, 1, 1).await.unwrap();
    assert_eq!(middle.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(
        store.chain_links(org, 0, 10).await.unwrap(),
        crate::ChainLink::of_all(&page),
        "a store's links are its records' links, hashes recomputed alike"
    );
    let links = store.chain_links(org, 1, 1).await.unwrap();
    assert_eq!(links.iter().map(|l| l.seq()).collect::<Vec<_>>(), [2]);
    assert_eq!(links[0].hash(), written[1].hash);
    let report = verify_chain(store, org, KEY).await.unwrap().unwrap();
    assert_eq!(report.records, 3);
}

/// `r` with the fields outside the chain's hash emptied.
fn hashed_part(r: &crate::AuditEvent) -> crate::AuditEvent {
    let mut r = r.clone();
    r.event.actor.name.clear();
    r.event.target.name.clear();
    r.event.context = crate::RequestContext::default();
    r
}

async fn search_filters_and_pages_newest_first(store: &dyn AuditStore) {
    let org = OrgId::new();
    let (team, other_team) = (TeamId::new(), TeamId::new());
    let mut j = Journal::default();
    for i in 0..30 {
        let actor = if i % 3 == 0 { "usr_sarah" } else { "usr_mike" };
        let action = if i % 2 == 0 {
            AuditAction::MemberInvited
        } else {
            AuditAction::ChatInterfaceCreated
        };
        let mut e = event(org, i * 3600, actor, action, &format!("res_{i}"));
        if i % 5 == 0 {
            e = e.in_team(team);
        } else if i % 7 == 1 {
            e = e.in_team(other_team);
        }
        if i == 29 {
            e = e.with_outcome(Outcome::Denied {
                reason: "role_lacks_permission".into(),
            });
        }
        j = j.and_record(e);
    }
    store.append(j).await.unwrap();

    let first = store.search(org, &query(7)).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (24..=30).rev().collect::<Vec<_>>()
    );
    let next = store
        .search(
            org,
            &AuditQuery {
                before_seq: Some(24),
                ..query(7)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        next.first().map(|r| r.seq),
        Some(23),
        "keyset cursor continues below the last seq"
    );

    let sarah = store
        .search(
            org,
            &AuditQuery {
                actor_id: Some("usr_sarah".into()),
                ..query(100)
            },
        )
        .await
        .unwrap();
    assert_eq!(sarah.len(), 10);
    assert!(sarah.iter().all(|r| r.event.actor.id == "usr_sarah"));

    let exact = AuditQuery {
        action: Some(ActionFilter::Exact("member.invited".into())),
        ..query(100)
    };
    assert_eq!(store.search(org, &exact).await.unwrap().len(), 15);
    let prefix = AuditQuery {
        action: Some(ActionFilter::Prefix("member.".into())),
        ..query(100)
    };
    assert_eq!(store.search(org, &prefix).await.unwrap().len(), 15);
    let none = AuditQuery {
        action: Some(ActionFilter::Prefix("member.x".into())),
        ..query(100)
    };
    // A prefix of no action in the catalogue is refused, not answered with nothing.
    assert!(matches!(
        store.search(org, &none).await,
        Err(AuditError::Invalid(_))
    ));
    // A prefix spanning several actions: merged newest first, cut at the limit, keyset-paged.
    let mixed_org = OrgId::new();
    let kinds = [
        AuditAction::MemberInvited,
        AuditAction::MemberAdded,
        AuditAction::ChatInterfaceCreated,
        AuditAction::RoleChanged,
        AuditAction::MemberRemoved,
    ];
    let mut j = Journal::default();
    for i in 0..10 {
        j = j.and_record(event(
            mixed_org,
            i * 60,
            "usr_sarah",
            kinds[(i % 5) as usize],
            &format!("res_{i}"),
        ));
    }
    store.append(j).await.unwrap();
    let members = |before: Option<i64>| AuditQuery {
        action: Some(ActionFilter::Prefix("member.".into())),
        before_seq: before,
        ..query(3)
    };
    let page = store.search(mixed_org, &members(None)).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![10, 9, 7],
        "seq 8 is a chat interface"
    );
    let page = store.search(mixed_org, &members(Some(7))).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 5, 4]
    );

    let window = AuditQuery {
        since: Some(at(10 * 3600)),
        until: Some(at(20 * 3600)),
        ..query(100)
    };
    let w = store.search(org, &window).await.unwrap();
    assert_eq!(w.len(), 10, "since is inclusive, until exclusive");
    let open_ended = AuditQuery {
        since: Some(at(25 * 3600)),
        ..query(100)
    };
    assert_eq!(store.search(org, &open_ended).await.unwrap().len(), 5);
    // Actor, action and period together (records 0, 6, 12, …: Sarah inviting).
    let combined = AuditQuery {
        actor_id: Some("usr_sarah".into()),
        action: Some(ActionFilter::Exact("member.invited".into())),
        since: Some(at(6 * 3600)),
        until: Some(at(24 * 3600)),
        ..query(100)
    };
    let c = store.search(org, &combined).await.unwrap();
    assert_eq!(
        c.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![19, 13, 7],
        "records 18, 12 and 6, newest first"
    );

    let target = AuditQuery {
        target_kind: Some("chat_interface".into()),
        target_id: Some("res_7".into()),
        ..query(100)
    };
    let t = store.search(org, &target).await.unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].event.target.id, "res_7");

    let denied = AuditQuery {
        outcome: Some("denied".into()),
        ..query(100)
    };
    assert_eq!(store.search(org, &denied).await.unwrap().len(), 1);
    let in_team = AuditQuery {
        team: Some(team),
        ..query(100)
    };
    assert_eq!(store.search(org, &in_team).await.unwrap().len(), 6);
    // What a User of `team` reads: its records and their own actions (Sarah acts in
    // i % 3 == 0; i = 1, 8, 22, 29 are the other team's), page by page.
    let sarah = |teams: Vec<TeamId>| crate::SeenBy {
        teams,
        actor_id: "usr_sarah".into(),
    };
    let own = (0..30).filter(|i| i % 3 == 0).count();
    let in_team_not_own = (0..30).filter(|i| i % 5 == 0 && i % 3 != 0).count();
    let in_other_not_own = [1, 8, 22, 29].iter().filter(|i| *i % 3 != 0).count();
    for (seen, want) in [
        (sarah(vec![team]), own + in_team_not_own),
        (sarah(vec![]), own),
        (sarah(vec![other_team]), own + in_other_not_own),
    ] {
        let mut q = AuditQuery {
            seen_by: Some(seen.clone()),
            ..query(7)
        };
        let mut got = Vec::new();
        loop {
            let page = store.search(org, &q).await.unwrap();
            let done = page.len() < 7;
            q.before_seq = page.last().map(|r| r.seq);
            got.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(got.len(), want, "{seen:?}");
        assert!(got.iter().all(|r| seen.sees_record(&r.event)));
        assert!(got.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    }
    // Her refusals are hers to read, but not one she was answered "not found" for: reading it
    // would tell her that what she asked for exists. The whole log has both.
    for reason in ["not_team_member", "role_lacks_permission"] {
        store
            .append(Journal::record(
                NewAuditEvent::new(
                    org,
                    Utc::now(),
                    Actor::user("usr_sarah", "Sarah"),
                    AuditAction::AccessDenied,
                    Target::new("permission", "view_chat_interface", ""),
                )
                .with_outcome(Outcome::Denied {
                    reason: reason.into(),
                }),
            ))
            .await
            .unwrap();
    }
    let refusals = |seen_by| AuditQuery {
        seen_by,
        action: Some(ActionFilter::Exact("access.denied".into())),
        ..query(100)
    };
    let reasons = |found: Vec<AuditEvent>| -> Vec<String> {
        found
            .iter()
            .map(|r| r.event.outcome.reason().to_owned())
            .collect()
    };
    assert_eq!(
        reasons(
            store
                .search(org, &refusals(Some(sarah(vec![team]))))
                .await
                .unwrap()
        ),
        ["role_lacks_permission"]
    );
    assert_eq!(
        reasons(store.search(org, &refusals(None)).await.unwrap()),
        ["role_lacks_permission", "not_team_member"]
    );
}

async fn chains_are_per_organization(store: &dyn AuditStore) {
    let a = OrgId::new();
    let b = OrgId::new();
    store
        .append(Journal::record(event(
            a,
            0,
            "usr_a",
            AuditAction::Login,
            "x",
        )))
        .await
        .unwrap();
    let rb = store
        .append(Journal::record(event(
            b,
            0,
            "usr_b",
            AuditAction::Login,
            "x",
        )))
        .await
        .unwrap();
    assert_eq!(rb[0].seq, 1, "each organization has its own chain");
    let seen = store.search(b, &query(100)).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(
        seen.iter().all(|r| r.event.org == b),
        "no cross-tenant records"
    );
}

async fn checkpoints_round_trip_and_verify(store: &dyn AuditStore) {
    let org = OrgId::new();
    assert_eq!(take_checkpoint(store, org, KEY, at(0)).await.unwrap(), None);
    store
        .append(Journal::record(event(
            org,
            0,
            "usr_a",
            AuditAction::Login,
            "x",
        )))
        .await
        .unwrap();
    store
        .append(Journal::record(event(
            org,
            1,
            "usr_a",
            AuditAction::Logout,
            "x",
        )))
        .await
        .unwrap();
    let cp = take_checkpoint(store, org, KEY, at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.seq, 2);
    assert_eq!(
        store.latest_checkpoint(org).await.unwrap(),
        Some(cp.clone())
    );
    let ok = verify_chain(store, org, KEY).await.unwrap().unwrap();
    assert_eq!(ok.checkpoint_seq, Some(2));
    let wrong_key = verify_chain(store, org, b"another key").await.unwrap();
    assert_eq!(wrong_key, Err(ChainBreak::ForgedCheckpoint { seq: 2 }));

    // A checkpoint someone asked for commits its record with it, after the head it signs.
    let asked = crate::take_checkpoint_recorded(store, org, KEY, at(3), |cp| {
        Ok(Journal::record(event(
            org,
            3,
            "usr_a",
            AuditAction::AuditCheckpointed,
            &cp.seq.to_string(),
        )))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(asked.seq, 2, "the head before its own record");
    assert_eq!(store.head(org).await.unwrap().map(|h| h.0), Some(3));
    let page = store.chain_page(org, 2, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].event.action, AuditAction::AuditCheckpointed);
    let ok = verify_chain(store, org, KEY).await.unwrap().unwrap();
    assert_eq!((ok.records, ok.checkpoint_seq), (3, Some(2)));
}

async fn erasure_keeps_the_chain_valid(store: &dyn AuditStore) {
    let org = OrgId::new();
    let mut e = event(org, 0, "usr_gone", AuditAction::Login, "x");
    e.context.ip = "203.0.113.9".into();
    store.append(Journal::record(e)).await.unwrap();
    store
        .append(Journal::record(event(
            org,
            1,
            "usr_other",
            AuditAction::Login,
            "x",
        )))
        .await
        .unwrap();
    let erased = event(
        org,
        2,
        "operator",
        AuditAction::PersonalDataProcessed,
        "usr_gone",
    );
    assert_eq!(
        store
            .erase_personal_data(org, "usr_gone", Journal::record(erased))
            .await
            .unwrap(),
        1
    );
    let page = store.chain_page(org, 0, 10).await.unwrap();
    assert_eq!(page[0].event.actor.name, crate::ERASED);
    assert_eq!(page[0].event.context.ip, "");
    assert_eq!(page[1].event.actor.name, "name of usr_other");
    assert_eq!(page.len(), 3, "the erasure's record is committed with it");
    assert_eq!(page[2].event.action, AuditAction::PersonalDataProcessed);
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
    // A record that read the name before the erasure and commits after it keeps none of it,
    // whether it names them as its actor or as its target; others' records are untouched.
    let mut late = event(org, 3, "usr_gone", AuditAction::AnalyticsViewed, "x");
    late.context.ip = "203.0.113.9".into();
    late.context.user_agent = "Browser".into();
    let mut about = event(org, 4, "usr_other", AuditAction::RoleChanged, "usr_gone");
    about.target.name = "name of usr_gone".into();
    let written = store
        .append(Journal::record(late).and_record(about))
        .await
        .unwrap();
    let page = store.chain_page(org, 3, 10).await.unwrap();
    assert_eq!(page.len(), 2);
    for r in [&written[0], &page[0]] {
        assert_eq!(r.event.actor.name, crate::ERASED);
        assert_eq!(
            (
                r.event.context.ip.as_str(),
                r.event.context.user_agent.as_str()
            ),
            ("", "")
        );
    }
    assert_eq!(page[1].event.target.name, crate::ERASED);
    assert_eq!(page[1].event.actor.name, "name of usr_other");
    // Another organization's records of the same id are its own business.
    let elsewhere = OrgId::new();
    store
        .append(Journal::record(event(
            elsewhere,
            5,
            "usr_gone",
            AuditAction::Login,
            "x",
        )))
        .await
        .unwrap();
    let page = store.chain_page(elsewhere, 0, 10).await.unwrap();
    assert_eq!(page[0].event.actor.name, "name of usr_gone");
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
}

/// Appends `n` logins of `usr_a`, one a minute (records 1 to `n` at minutes 1 to `n`).
async fn logins_a_minute_apart(store: &dyn AuditStore, org: OrgId, n: i64) {
    for i in 1..=n {
        store
            .append(Journal::record(event(
                org,
                i * 60,
                "usr_a",
                AuditAction::Login,
                "x",
            )))
            .await
            .unwrap();
    }
}

/// A retention pass that commits nothing with its removal.
fn no_record(_: &crate::Anchor, _: u64) -> Result<Journal, crate::AuditError> {
    Ok(Journal::default())
}

async fn retention_commits_its_record_with_the_removal(store: &dyn AuditStore) {
    let org = OrgId::new();
    logins_a_minute_apart(store, org, 5).await;
    // A journal that cannot be built fails the pass, and nothing is removed.
    let failing = |_: &crate::Anchor, _: u64| -> Result<Journal, crate::AuditError> {
        Err(crate::AuditError::Invalid("no record".into()))
    };
    assert!(
        crate::prune_before(store, org, at(200), KEY, at(300), &failing)
            .await
            .is_err()
    );
    assert_eq!(store.chain_page(org, 0, 10).await.unwrap().len(), 5);
    assert_eq!(store.anchor(org).await.unwrap(), None);
    // Records 1 to 3 go, and the pass's record is appended in the same commit.
    let record = |a: &crate::Anchor, removed: u64| -> Result<Journal, crate::AuditError> {
        Ok(Journal::record(event(
            org,
            300,
            "system",
            AuditAction::AuditPruned,
            &format!("{removed} through {}", a.seq),
        )))
    };
    let (anchor, removed) = crate::prune_before(store, org, at(200), KEY, at(300), &record)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((anchor.seq, removed), (3, 3));
    let left = store.chain_page(org, 0, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert_eq!(left[2].event.action, AuditAction::AuditPruned);
    assert_eq!(left[2].event.target.id, "3 through 3");
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
    // A pass that finds nothing left to remove commits no record.
    assert!(
        crate::prune_before(store, org, at(200), KEY, at(400), &record)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.chain_page(org, 0, 10).await.unwrap().len(), 3);
}

/// Times need not rise with positions (a writer's clock behind the others'): retention
/// removes the prefix before the first record still within the period, and never that record.
async fn retention_keeps_every_record_within_the_period(store: &dyn AuditStore) {
    let org = OrgId::new();
    // Minutes 1, 2, 8, 3, 9, 4: positions 1 to 6.
    for minute in [1, 2, 8, 3, 9, 4] {
        store
            .append(Journal::record(event(
                org,
                minute * 60,
                "usr_a",
                AuditAction::Login,
                &format!("minute {minute}"),
            )))
            .await
            .unwrap();
    }
    // Before minute 5: positions 1, 2, 4 and 6 are old, but 3 (minute 8) is not, so only 1
    // and 2 go.
    let (anchor, removed) = crate::prune_before(store, org, at(300), KEY, at(900), &no_record)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((anchor.seq, removed), (2, 2));
    let left = store.chain_page(org, 0, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
    // Nothing more goes while position 3 is within the period.
    assert!(
        crate::prune_before(store, org, at(300), KEY, at(900), &no_record)
            .await
            .unwrap()
            .is_none()
    );
    // Before minute 8½: everything up to position 4 (minute 3); position 5 (minute 9) stays,
    // and position 6 (minute 4) with it.
    let (anchor, removed) = crate::prune_before(store, org, at(510), KEY, at(900), &no_record)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((anchor.seq, removed), (4, 2));
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
}

async fn retention_removes_a_prefix_under_a_signed_anchor(store: &dyn AuditStore) {
    let org = OrgId::new();
    logins_a_minute_apart(store, org, 10).await;
    take_checkpoint(store, org, KEY, at(700)).await.unwrap();
    let third = store.chain_page(org, 2, 1).await.unwrap()[0].clone();
    assert_eq!(third.seq, 3);
    assert!(
        crate::prune_before(store, org, at(60), KEY, at(800), &no_record)
            .await
            .unwrap()
            .is_none(),
        "nothing before the first record"
    );
    // Records 1 to 5 occurred before minute 5½: they go, under an anchor at 5.
    let (anchor, removed) = crate::prune_before(store, org, at(330), KEY, at(800), &no_record)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((anchor.seq, removed), (5, 5));
    assert_eq!(store.anchor(org).await.unwrap(), Some(anchor.clone()));
    let left = store.chain_page(org, 0, 100).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10]
    );
    let v = verify_chain(store, org, KEY).await.unwrap().unwrap();
    assert_eq!((v.records, v.checkpoint_seq), (10, Some(10)));
    // A pruner that comes late (its anchor at or before the stored one) changes nothing: the
    // anchor never moves back over records already removed.
    let late = crate::Anchor::sign(KEY, org, 3, third.hash, at(790));
    assert_eq!(store.prune(&late, &no_record).await.unwrap(), 0);
    assert_eq!(store.prune(&anchor, &no_record).await.unwrap(), 0);
    assert_eq!(store.anchor(org).await.unwrap(), Some(anchor.clone()));
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
    // The chain goes on from the kept records; pruning again is idempotent.
    store
        .append(Journal::record(event(
            org,
            900,
            "usr_a",
            AuditAction::Logout,
            "x",
        )))
        .await
        .unwrap();
    assert_eq!(store.head(org).await.unwrap().unwrap().0, 11);
    assert!(
        crate::prune_before(store, org, at(330), KEY, at(900), &no_record)
            .await
            .unwrap()
            .is_none()
    );
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
    // An anchor the key did not sign, or one naming a record that is not there, is refused.
    assert!(matches!(
        verify_chain(store, org, b"another key").await.unwrap(),
        Err(ChainBreak::ForgedCheckpoint { .. } | ChainBreak::ForgedAnchor { .. })
    ));
    let wrong = crate::Anchor::sign(KEY, org, 7, [9; 32], at(900));
    assert!(store.prune(&wrong, &no_record).await.is_err());
    assert_eq!(
        store.chain_page(org, 0, 100).await.unwrap().len(),
        6,
        "nothing removed"
    );
    // Everything pruned: the head stays, and the next record continues the chain.
    let last = store.head(org).await.unwrap().unwrap();
    crate::prune_before(store, org, at(10_000), KEY, at(10_000), &no_record)
        .await
        .unwrap()
        .unwrap();
    assert!(store.chain_page(org, 0, 100).await.unwrap().is_empty());
    assert_eq!(store.head(org).await.unwrap(), Some(last));
    store
        .append(Journal::record(event(
            org,
            10_001,
            "usr_a",
            AuditAction::Login,
            "x",
        )))
        .await
        .unwrap();
    assert_eq!(store.chain_page(org, 0, 10).await.unwrap()[0].seq, 12);
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
}

async fn a_rotated_key_takes_the_anchor_with_the_checkpoint(store: &dyn AuditStore) {
    const NEW: &[u8] = b"the next checkpoint key";
    let org = OrgId::new();
    logins_a_minute_apart(store, org, 6).await;
    let (anchor, _) = crate::prune_before(store, org, at(150), KEY, at(400), &no_record)
        .await
        .unwrap()
        .unwrap();
    take_checkpoint(store, org, KEY, at(400)).await.unwrap();
    // An anchor whose key is not the old one is not signed over with the new one.
    assert!(matches!(
        crate::take_checkpoint_rotating(store, org, b"not the key", NEW, at(410)).await,
        Err(AuditError::Tampered(ChainBreak::ForgedAnchor { .. }))
    ));
    assert!(verify_chain(store, org, KEY).await.unwrap().is_ok());
    // Nor an anchor that moved after it was read: the store compares it as it writes.
    let stale = crate::Anchor::sign(KEY, org, 1, [0; 32], anchor.pruned_at);
    let resealed = |a: &crate::Anchor| crate::Anchor::sign(NEW, a.org, a.seq, a.hash, a.pruned_at);
    let cp = crate::Checkpoint::sign(
        NEW,
        org,
        6,
        store.head(org).await.unwrap().unwrap().1,
        at(410),
    );
    assert!(matches!(
        store
            .save_rotated_checkpoint(&cp, Some((&stale, &resealed(&stale))))
            .await,
        Err(AuditError::Invalid(_))
    ));
    // Nor one that would name other records than the anchor it replaces.
    let elsewhere = crate::Anchor::sign(NEW, org, anchor.seq + 1, anchor.hash, anchor.pruned_at);
    assert!(matches!(
        store
            .save_rotated_checkpoint(&cp, Some((&anchor, &elsewhere)))
            .await,
        Err(AuditError::Invalid(_))
    ));
    // Nor, said to have none, when it has one.
    assert!(matches!(
        store.save_rotated_checkpoint(&cp, None).await,
        Err(AuditError::Invalid(_))
    ));
    assert_eq!(store.anchor(org).await.unwrap(), Some(anchor.clone()));
    assert!(
        verify_chain(store, org, KEY).await.unwrap().is_ok(),
        "nothing written"
    );
    // The rotation: the log verifies under the new key only, the anchor naming the same
    // records as before.
    crate::take_checkpoint_rotating(store, org, KEY, NEW, at(420))
        .await
        .unwrap()
        .unwrap();
    let now = store.anchor(org).await.unwrap().unwrap();
    assert_eq!(
        (now.seq, now.hash, now.pruned_at),
        (anchor.seq, anchor.hash, anchor.pruned_at)
    );
    let v = verify_chain(store, org, NEW).await.unwrap().unwrap();
    assert_eq!((v.records, v.checkpoint_seq), (6, Some(6)));
    assert!(verify_chain(store, org, KEY).await.unwrap().is_err());
}

async fn rejects_invalid_queries(store: &dyn AuditStore) {
    let org = OrgId::new();
    assert!(store.search(org, &query(0)).await.is_err());
    assert!(
        store
            .search(org, &query(crate::MAX_PAGE + 1))
            .await
            .is_err()
    );
    let inverted = AuditQuery {
        since: Some(at(10)),
        until: Some(at(0)),
        ..query(10)
    };
    assert!(store.search(org, &inverted).await.is_err());
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        super::run(&crate::MemoryAuditStore::new()).await;
        super::run_mail(&crate::MemoryAuditStore::new()).await;
    }
}
