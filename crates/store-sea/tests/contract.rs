//! The domain crates' store contracts, run against SQLite and (when configured) PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly"
)]

use store_sea::testing::{fresh_postgres, postgres_server, say_postgres_skipped};
use store_sea::{DatabaseUrl, PoolOptions, SeaStore};

/// The key the stores of these tests encrypt webhook URLs with.
fn cipher() -> std::sync::Arc<security_policy::Cipher> {
    std::sync::Arc::new(security_policy::Cipher::new(&[7; 32]))
}

async fn connect(url: &DatabaseUrl) -> SeaStore {
    SeaStore::connect(url, PoolOptions::default())
        .await
        .unwrap()
        .with_cipher(cipher())
}

/// A migrated store on a new SQLite file, and its URL (the file lives as long as the directory).
async fn sqlite_with_url() -> (SeaStore, DatabaseUrl, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::sqlite_file(&dir.path().join("t.db"));
    let store = connect(&url).await;
    store.migrate().await.unwrap();
    (store, url, dir)
}

async fn sqlite() -> (SeaStore, tempfile::TempDir) {
    let (store, _, dir) = sqlite_with_url().await;
    (store, dir)
}

/// A migrated store on a new PostgreSQL database, and its URL.
async fn postgres_with_url() -> Option<(SeaStore, DatabaseUrl)> {
    let Some(server) = postgres_server() else {
        say_postgres_skipped("store-sea contract");
        return None;
    };
    let url = fresh_postgres(&server).await.unwrap();
    let store = connect(&url).await;
    store.migrate().await.unwrap();
    Some((store, url))
}

async fn postgres() -> Option<SeaStore> {
    postgres_with_url().await.map(|(store, _)| store)
}

/// An upgrade that fails part-way through a migration leaves nothing of it behind: once the
/// cause is gone, the next start applies it. Here an index of another table holds the name of
/// the fourth index migration 28 builds, so its first three are built before it fails.
#[tokio::test]
async fn a_migration_stopped_part_way_is_applied_again_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.db");
    let sql = |s: &str| {
        rusqlite::Connection::open(&file)
            .unwrap()
            .execute_batch(s)
            .unwrap();
    };
    sql("CREATE TABLE in_the_way (x INTEGER); \
         CREATE INDEX idx_outbox_events_created ON in_the_way (x);");
    let url = DatabaseUrl::sqlite_file(&file);
    let store = connect(&url).await;
    let failed = format!("{:?}", store.migrate().await.unwrap_err());
    assert!(failed.contains("idx_outbox_events_created"), "{failed}");
    drop(store);
    sql("DROP TABLE in_the_way;");
    let store = connect(&url).await;
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
}

#[tokio::test]
async fn audit_contract_on_sqlite() {
    let (store, _dir) = sqlite().await;
    audit::contract::run(&store).await;
    audit::contract::run_mail(&store).await;
}

#[tokio::test]
async fn audit_contract_on_postgres() {
    if let Some(store) = postgres().await {
        audit::contract::run(&store).await;
        audit::contract::run_mail(&store).await;
    }
}

/// Concurrent appends are committed together (`AuditStore::append` groups what arrives while a
/// commit runs): each caller gets exactly its own records, in its order and with consecutive
/// numbers; every chain stays gapless and verifies; and a journal that cannot commit (its event
/// id is taken by another journal of the same group) fails alone, with nothing of it written.
async fn concurrent_appends_commit_together(store: SeaStore) {
    use audit::{
        Actor, AuditAction, AuditStore, DomainEvent, EventKind, Journal, NewAuditEvent, Target,
    };
    let store = std::sync::Arc::new(store);
    let orgs: Vec<rbac_core::OrgId> = (0..4).map(|_| rbac_core::OrgId::new()).collect();
    let now = chrono::Utc::now();
    let shared = DomainEvent::new(
        orgs[0],
        EventKind::ChatInterfaceCreated,
        now,
        serde_json::json!({"id": "res_1"}),
    );
    // All spawned before any runs: on PostgreSQL, whose committing task runs on this one-thread
    // runtime, the 40 appends are queued before it first runs and it takes them as one group;
    // that group fails on the shared event id, and its journals are then committed one by one.
    // On a SQLite file the committing task runs on the writer's thread at once, so how the
    // appends group is a matter of timing there; what is asserted holds for any grouping.
    let tasks: Vec<_> = (0..40usize)
        .map(|i| {
            let mut j = Journal::default();
            for k in 0..=(i % 3) {
                j = j.and_record(NewAuditEvent::new(
                    orgs[i % 4],
                    now,
                    Actor::user(format!("usr_{i}"), "Someone"),
                    AuditAction::Login,
                    Target::new("session", format!("t{i}_{k}"), ""),
                ));
            }
            if i == 8 || i == 20 {
                j = j.publish(shared.clone());
            }
            let store = store.clone();
            tokio::spawn(async move { (i, store.append(j).await) })
        })
        .collect();
    let mut failed = Vec::new();
    let mut written = 0;
    for t in tasks {
        let (i, result) = t.await.unwrap();
        let Ok(records) = result else {
            failed.push(i);
            continue;
        };
        let targets: Vec<_> = records.iter().map(|r| r.event.target.id.clone()).collect();
        let expected: Vec<_> = (0..=(i % 3)).map(|k| format!("t{i}_{k}")).collect();
        assert_eq!(
            targets, expected,
            "journal {i} got its own records, in order"
        );
        assert!(records.iter().all(|r| r.event.org == orgs[i % 4]));
        assert!(
            records
                .windows(2)
                .all(|w| w[1].seq == w[0].seq + 1 && w[1].prev_hash == w[0].hash),
            "journal {i}'s records are consecutive links"
        );
        written += records.len();
    }
    assert_eq!(
        failed.len(),
        1,
        "of the two journals with one event id exactly one fails: {failed:?}"
    );
    assert!(failed[0] == 8 || failed[0] == 20);
    let mut verified = 0;
    for org in &orgs {
        let chain = audit::verify_chain(&*store, *org, b"key")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.head(*org).await.unwrap().map(|(seq, _)| seq),
            Some(chain.records),
            "the chain is gapless"
        );
        verified += chain.records;
    }
    assert_eq!(
        verified,
        i64::try_from(written).unwrap(),
        "nothing of the failed journal was written"
    );
}

#[tokio::test]
async fn concurrent_appends_commit_together_on_sqlite() {
    let (store, _dir) = sqlite().await;
    concurrent_appends_commit_together(store).await;
}

#[tokio::test]
async fn concurrent_appends_commit_together_on_postgres() {
    if let Some(store) = postgres().await {
        concurrent_appends_commit_together(store).await;
    }
}

/// A journal whose records cannot all be inserted (a stray row already holds the position of
/// its third record) fails, and leaves nothing: not its first two records, which the failed
/// statement had inserted (SQLite runs the insert `OR FAIL`, keeping no statement journal, since
/// the whole transaction is dropped anyway), nor a chain head. Once the stray row is gone, the
/// same journal is written from position 1 and verifies.
async fn an_append_that_fails_partway_leaves_nothing(store: SeaStore) {
    use audit::{Actor, AuditAction, AuditStore, Journal, NewAuditEvent, Target};
    let org = rbac_core::OrgId::new();
    let journal = || {
        (0..5).fold(Journal::default(), |j, k| {
            j.and_record(NewAuditEvent::new(
                org,
                chrono::Utc::now(),
                Actor::user("usr_1", "Someone"),
                AuditAction::Login,
                Target::new("session", format!("s{k}"), ""),
            ))
        })
    };
    store
        .execute_sql(&format!(
            "INSERT INTO audit_events (org_id, seq, team_id, occurred_at, actor_type, actor_id, \
             actor_name, action, target_type, target_id, target_name, ip, user_agent, request_id, \
             outcome, reason, metadata, schema_version, prev_hash, hash) VALUES ('{org}', 3, \
             NULL, 0, 'user', 'usr_stray', '', 'auth.login', 'session', 'stray', '', '', '', '', \
             'success', '', '{{}}', 1, '', '')"
        ))
        .await
        .unwrap();
    assert!(store.append(journal()).await.is_err());
    assert_eq!(store.head(org).await.unwrap(), None, "no head was written");
    assert_eq!(
        store
            .execute_sql(&format!("DELETE FROM audit_events WHERE org_id = '{org}'"))
            .await
            .unwrap(),
        1,
        "only the stray row was there"
    );
    let written = store.append(journal()).await.unwrap();
    assert_eq!(
        written.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let chain = audit::verify_chain(&store, org, b"key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(chain.records, 5);
}

#[tokio::test]
async fn an_append_that_fails_partway_leaves_nothing_on_sqlite() {
    let (store, _dir) = sqlite().await;
    an_append_that_fails_partway_leaves_nothing(store).await;
}

#[tokio::test]
async fn an_append_that_fails_partway_leaves_nothing_on_postgres() {
    if let Some(store) = postgres().await {
        an_append_that_fails_partway_leaves_nothing(store).await;
    }
}

/// Retention passes running at once on two instances (two handles on one database), with
/// different cutoffs: each record is removed exactly once, the anchor ends at the newest record
/// any pass reached and never moves back over removed records, and the chain still verifies.
async fn concurrent_retention_passes_remove_each_record_once(a: SeaStore, b: SeaStore) {
    use audit::{Actor, AuditAction, AuditStore, Journal, NewAuditEvent, Target};
    const KEY: &[u8] = b"contract checkpoint key";
    let org = rbac_core::OrgId::new();
    let start = chrono::DateTime::from_timestamp(1_760_000_000, 0).unwrap();
    let minute = move |m: i64| start + chrono::Duration::minutes(m);
    for m in 1..=40 {
        a.append(Journal::record(NewAuditEvent::new(
            org,
            minute(m),
            Actor::user("usr_a", "Someone"),
            AuditAction::Login,
            Target::new("session", format!("s{m}"), ""),
        )))
        .await
        .unwrap();
    }
    let stores = [std::sync::Arc::new(a), std::sync::Arc::new(b)];
    // Passes with cutoffs just after records 10, 14, …, 38, alternating between the instances.
    let passes: Vec<_> = (0..8i64)
        .map(|i| {
            let store = stores[usize::try_from(i % 2).unwrap()].clone();
            let cutoff = minute(10 + 4 * i) + chrono::Duration::seconds(30);
            tokio::spawn(async move {
                let nothing = |_: &audit::Anchor, _: u64| Ok(audit::Journal::default());
                audit::prune_before(&*store, org, cutoff, KEY, minute(60), &nothing).await
            })
        })
        .collect();
    let mut removed = 0;
    for p in passes {
        if let Some((_, n)) = p.await.unwrap().unwrap() {
            removed += n;
        }
    }
    assert_eq!(removed, 38, "records 1 to 38, each removed once");
    let anchor = stores[1].anchor(org).await.unwrap().unwrap();
    assert_eq!(anchor.seq, 38);
    let left: Vec<i64> = stores[1]
        .chain_page(org, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, [39, 40]);
    let v = audit::verify_chain(&*stores[0], org, KEY).await.unwrap();
    assert!(v.is_ok(), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retention_passes_remove_each_record_once_on_sqlite() {
    let (store, url, _dir) = sqlite_with_url().await;
    concurrent_retention_passes_remove_each_record_once(store, connect(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retention_passes_remove_each_record_once_on_postgres() {
    if let Some((store, url)) = postgres_with_url().await {
        concurrent_retention_passes_remove_each_record_once(store, connect(&url).await).await;
    }
}

/// A subscription is read whole while changes commit: its plan (the organization's row) and
/// its version (the subscription's row) are never one change's and another's, which a change's
/// compare-and-swap on the version would take for the state it read.
async fn a_subscription_is_read_whole_while_it_changes(writer: SeaStore, reader: SeaStore) {
    use billing_limits::Plan;
    use tenancy::billing::BillingStore;
    let org = org(&writer).await;
    // Version v holds Pro when v is even and not 0, else Enterprise (the founding plan).
    let expected = |v: u64| {
        if v > 0 && v.is_multiple_of(2) {
            Plan::Pro
        } else {
            Plan::Enterprise
        }
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (sub, version) = reader.subscription(org).await.unwrap();
                assert_eq!(sub.plan, expected(version), "plan and version of one state");
                reads += 1;
            }
            reads
        })
    };
    for _ in 0..150 {
        let (current, version) = writer.subscription(org).await.unwrap();
        let next = billing_limits::subscription::Subscription {
            plan: expected(version + 1),
            ..current
        };
        writer
            .apply_subscription(org, version, &next, None, None, audit::Journal::default())
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reads.await.unwrap();
    assert!(reads > 0);
    assert_eq!(writer.subscription(org).await.unwrap().1, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_read_whole_while_it_changes_on_sqlite() {
    let (store, url, _dir) = sqlite_with_url().await;
    a_subscription_is_read_whole_while_it_changes(store, connect(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_read_whole_while_it_changes_on_postgres() {
    if let Some((store, url)) = postgres_with_url().await {
        a_subscription_is_read_whole_while_it_changes(store, connect(&url).await).await;
    }
}

/// A retention pass that read the organization before its log was archived (a downgrade
/// committing meanwhile) removes nothing: the store reads the archive mark again in the
/// removal's transaction.
async fn an_archived_log_is_not_pruned(store: SeaStore) {
    use audit::{Actor, AuditAction, AuditStore, Journal, NewAuditEvent, Target};
    const KEY: &[u8] = b"contract checkpoint key";
    let now = chrono::Utc::now();
    let (o, _) = org_with_owner(&store, now).await;
    let before = store.chain_page(o.id, 0, 1000).await.unwrap().len();
    for m in 1..=5 {
        store
            .append(Journal::record(NewAuditEvent::new(
                o.id,
                now - chrono::Duration::days(400) + chrono::Duration::minutes(m),
                Actor::user("usr_a", "Someone"),
                AuditAction::Login,
                Target::new("session", format!("s{m}"), ""),
            )))
            .await
            .unwrap();
    }
    store
        .execute_sql(&format!(
            "UPDATE organizations SET audit_archived_at = {} WHERE id = '{}'",
            now.timestamp_micros(),
            o.id
        ))
        .await
        .unwrap();
    let nothing = |_: &audit::Anchor, _: u64| Ok(Journal::default());
    let pruned = audit::prune_before(&store, o.id, now, KEY, now, &nothing)
        .await
        .unwrap();
    assert_eq!(pruned, None);
    assert_eq!(store.anchor(o.id).await.unwrap(), None);
    assert_eq!(
        store.chain_page(o.id, 0, 1000).await.unwrap().len(),
        before + 5,
        "every record stays"
    );
}

#[tokio::test]
async fn an_archived_log_is_not_pruned_on_sqlite() {
    let (store, _dir) = sqlite().await;
    an_archived_log_is_not_pruned(store).await;
}

#[tokio::test]
async fn an_archived_log_is_not_pruned_on_postgres() {
    if let Some(store) = postgres().await {
        an_archived_log_is_not_pruned(store).await;
    }
}

/// Noted session activity (`TenancyStore::note_activity`) returns at once; the noting store
/// shows it at once, and it is written shortly after, each session with its own latest time,
/// many sessions in one statement (`observer`, a second handle on the same database, sees
/// only what was written).
async fn noted_activity_is_written_soon(store: SeaStore, observer: SeaStore) {
    use tenancy::{AccountStore, TenancyStore};
    let start = chrono::DateTime::from_timestamp(1_760_000_000, 0).unwrap();
    let (_org, owner) = org_with_owner(&store, start).await;
    let mut sessions = Vec::new();
    for i in 0..3 {
        let s = tenancy::Session {
            id: rbac_core::SessionId::new(),
            user: owner.id,
            created_at: start,
            last_seen_at: start,
            ip: "203.0.113.7".into(),
            user_agent: "contract".into(),
            signed_out_of: Vec::new(),
        };
        store
            .create_session(
                &s,
                &format!("hash-{i}"),
                10,
                tenancy::SessionProof::Password,
                &|_| audit::Journal::default(),
            )
            .await
            .unwrap();
        sessions.push(s);
    }
    // Session 0 twice (the later time wins), session 1 once, session 2 not at all.
    let at = |m: i64| start + chrono::Duration::minutes(m);
    store.note_activity(sessions[0].id, at(5)).await.unwrap();
    store.note_activity(sessions[1].id, at(7)).await.unwrap();
    store.note_activity(sessions[0].id, at(9)).await.unwrap();
    let expected = [at(9), at(7), start];
    let mut seen = Vec::new();
    for i in 0..3 {
        let s = store.find_session(&format!("hash-{i}")).await.unwrap();
        seen.push(s.unwrap().last_seen_at);
    }
    assert_eq!(
        seen, expected,
        "the noting store shows its noted activity at once"
    );
    for _ in 0..200 {
        seen.clear();
        for i in 0..3 {
            let s = observer
                .find_session(&format!("hash-{i}"))
                .await
                .unwrap()
                .unwrap();
            seen.push(s.last_seen_at);
        }
        if seen == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(seen, expected, "activity not written within 5 s");
}

#[tokio::test]
async fn noted_activity_is_written_soon_on_sqlite() {
    let (store, url, _dir) = sqlite_with_url().await;
    noted_activity_is_written_soon(store, connect(&url).await).await;
}

#[tokio::test]
async fn noted_activity_is_written_soon_on_postgres() {
    if let Some((store, url)) = postgres_with_url().await {
        noted_activity_is_written_soon(store, connect(&url).await).await;
    }
}

/// A release rolled back to, or an older instance restarted during a rolling upgrade, runs on a
/// database a newer release migrated, when it has every migration of its own; one that lacks
/// some of its own as well is refused, and migrating it again changes nothing.
async fn a_database_migrated_by_a_newer_release_runs_an_older_one(store: SeaStore) {
    store
        .execute_sql(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29991231_000999_from_a_newer_release', 0)",
        )
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    // Without one of this release's own, it cannot be migrated by this release.
    store
        .execute_sql(
            "DELETE FROM seaql_migrations WHERE version = 'm20261206_000044_add_asset_transfer_notes'",
        )
        .await
        .unwrap();
    let refused = store.migrate().await.unwrap_err().0.to_string();
    assert!(
        refused.contains("m29991231_000999_from_a_newer_release") && refused.contains("lacks 1"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_release_runs_an_older_one_on_sqlite() {
    let (store, _dir) = sqlite().await;
    a_database_migrated_by_a_newer_release_runs_an_older_one(store).await;
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_release_runs_an_older_one_on_postgres() {
    if let Some(store) = postgres().await {
        a_database_migrated_by_a_newer_release_runs_an_older_one(store).await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_complete() {
    let (store, _dir) = sqlite().await;
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    store.migrate().await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    // `TABLES` (row counts, backup checks) names every table the migrations create, and no other.
    let counts = store.row_counts().await.unwrap();
    assert_eq!(counts.len(), store_sea::TABLES.len());
    store
        .execute_sql(
            "CREATE TEMP TABLE listed AS SELECT name FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'",
        )
        .await
        .unwrap();
    let listed = store_sea::TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",");
    let unlisted = store
        .execute_sql(&format!("DELETE FROM listed WHERE name NOT IN ({listed})"))
        .await
        .unwrap();
    assert_eq!(
        unlisted, 0,
        "a migrated table is missing from store_sea::TABLES"
    );
}

#[tokio::test]
async fn tenancy_contract_on_sqlite() {
    let (store, _dir) = sqlite().await;
    tenancy::contract::run(&store).await;
    erased_bodies_as_stored(&store).await;
    deleting_every_organization_leaves_none_of_their_rows(&store).await;
}

#[tokio::test]
async fn tenancy_contract_on_postgres() {
    if let Some(store) = postgres().await {
        tenancy::contract::run(&store).await;
        erased_bodies_as_stored(&store).await;
        deleting_every_organization_leaves_none_of_their_rows(&store).await;
    }
}

/// What the contract's erasures left in the stored event bodies, read back from the tables
/// (the contract itself only counts the bodies rewritten): of the three events that carried
/// `pat-between@example.org` (`erasure_finds_the_addresses_a_person_had_before`), the two
/// that gave it to Pat by id no longer do, the one that gave it to someone else still does.
async fn erased_bodies_as_stored(store: &SeaStore) {
    // A no-op update counts the rows that match, on both databases.
    let count = |pattern: &str| {
        let sql = format!("UPDATE outbox_events SET data = data WHERE data LIKE '{pattern}'");
        async move { store.execute_sql(&sql).await.unwrap() }
    };
    assert_eq!(
        count("%pat-between@example.org%").await,
        1,
        "only the event that gave the address to someone else keeps it"
    );
    assert_eq!(
        count("%\"invitedBy\":\"erased-%@erased.invalid\"%").await,
        1,
        "the inviter's address is the erased one"
    );
}

/// An organization, created at `at` through the tenancy service, and its Owner.
async fn org_with_owner(
    store: &SeaStore,
    at: chrono::DateTime<chrono::Utc>,
) -> (tenancy::Organization, tenancy::User) {
    let hasher =
        security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
    let req = tenancy::orgs::CreateOrgRequest {
        name: "Contract".into(),
        plan: billing_limits::Plan::Enterprise,
        owner_email: format!("o-{}@contract.example", uuid::Uuid::new_v4().simple()),
        owner_name: "Owner".into(),
        owner_password: "a long enough passphrase".into(),
    };
    tenancy::orgs::create_with_new_owner(store, &hasher, req, at)
        .await
        .unwrap()
}

/// An organization row for the adapter's foreign keys.
async fn org(store: &SeaStore) -> rbac_core::OrgId {
    org_with_owner(store, chrono::Utc::now()).await.0.id
}

/// How many webhook attempts are left without their delivery (an update that changes nothing
/// counts them).
async fn orphan_attempts(store: &SeaStore) -> u64 {
    store
        .execute_sql(
            "UPDATE webhook_attempts SET number = number \
             WHERE delivery_id NOT IN (SELECT id FROM webhook_deliveries)",
        )
        .await
        .unwrap()
}

async fn webhook_contract(store: &SeaStore) {
    let o = org(store).await;
    webhooks::contract::run(store, o).await;
    webhooks::contract::claimed_deliveries_are_read_again_before_sending(store, org(store).await)
        .await;
    webhooks::contract::endpoints_are_capped_per_organization(
        store,
        org(store).await,
        org(store).await,
    )
    .await;
    webhooks::contract::claims_skip_organizations_and_take_a_share_of_one(
        store,
        org(store).await,
        org(store).await,
    )
    .await;
    let dropped = webhooks::contract::an_endpoint_deleted_mid_attempt_keeps_nothing(store, o).await;
    let notices = webhooks::contract::outcomes_apply_to_the_state_as_stored(store, o).await;
    // No attempt outlives its delivery, and the outcome that came after the deletion committed
    // nothing.
    assert_eq!(
        orphan_attempts(store).await,
        0,
        "attempts left without their delivery"
    );
    let published = |id: rbac_core::EventId| async move {
        store
            .execute_sql(&format!(
                "UPDATE outbox_events SET id = id WHERE id = '{id}'"
            ))
            .await
            .unwrap()
    };
    assert_eq!(
        published(dropped.id).await,
        0,
        "the dropped outcome's journal was not committed"
    );
    // The same check finds an event that was committed.
    let committed = audit::DomainEvent::new(
        o,
        audit::EventKind::WebhookTest,
        chrono::Utc::now(),
        serde_json::json!({}),
    );
    audit::AuditStore::append(store, audit::Journal::default().publish(committed.clone()))
        .await
        .unwrap();
    assert_eq!(published(committed.id).await, 1);
    for n in &notices.committed {
        assert_eq!(published(n.id).await, 1, "committed: {n:?}");
    }
    for n in &notices.dropped {
        assert_eq!(published(n.id).await, 0, "dropped: {n:?}");
    }
    let o = org(store).await;
    webhooks::contract::fan_out_on_commit(store, o, |j| async move {
        audit::AuditStore::append(store, j).await.unwrap();
    })
    .await;
    an_unreadable_filter_means_no_event(store).await;
    webhook_urls_are_encrypted_at_rest(store).await;
}

/// Webhook URLs are stored encrypted (a Slack or Teams incoming-webhook URL is a credential),
/// each bound to its endpoint; URLs in clear are encrypted by the one-time pass, and only by
/// it.
async fn webhook_urls_are_encrypted_at_rest(store: &SeaStore) {
    use webhooks::WebhookStore;
    let o = org(store).await;
    let new_endpoint = |url: &str| webhooks::Endpoint {
        id: rbac_core::EndpointId::new(),
        org: o,
        url: webhooks::WebhookUrl::parse(url, true).unwrap(),
        description: String::new(),
        events: vec![],
        enabled: true,
        disabled_reason: None,
        consecutive_failures: 0,
        message: None,
        created_at: chrono::Utc::now(),
    };
    let slack = "https://hooks.slack.example/services/T000/B000/XXXXSECRETXXXX";
    let (a, b) = (new_endpoint(slack), new_endpoint("https://b.example/hook"));
    for ep in [&a, &b] {
        store
            .create_endpoint(ep, "v2:secret", audit::Journal::default())
            .await
            .unwrap();
    }
    // A no-op update counts the rows that match, on both databases.
    let rows_where = |condition: String| async move {
        store
            .execute_sql(&format!(
                "UPDATE webhook_endpoints SET url = url WHERE {condition}"
            ))
            .await
            .unwrap()
    };
    assert_eq!(
        rows_where("url LIKE '%SECRET%' OR url LIKE '%example%'".into()).await,
        0
    );
    assert_eq!(
        rows_where(format!("id = '{}' AND url LIKE 'v2:%'", a.id)).await,
        1
    );
    assert_eq!(
        store.get_endpoint(o, a.id).await.unwrap().url.as_str(),
        slack
    );
    // A change of URL is stored encrypted too.
    let change = webhooks::EndpointChange {
        url: Some(webhooks::WebhookUrl::parse("https://b.example/moved", true).unwrap()),
        ..Default::default()
    };
    store
        .update_endpoint(o, b.id, &change, audit::Journal::default())
        .await
        .unwrap();
    assert_eq!(rows_where("url LIKE '%moved%'".into()).await, 0);
    assert_eq!(
        store.get_endpoint(o, b.id).await.unwrap().url.as_str(),
        "https://b.example/moved"
    );
    // The first endpoint's URL copied onto the second's row does not open there.
    let copy_a_onto_b = format!(
        "UPDATE webhook_endpoints SET url = (SELECT w.url FROM webhook_endpoints w WHERE w.id = '{}') WHERE id = '{}'",
        a.id, b.id
    );
    store.execute_sql(&copy_a_onto_b).await.unwrap();
    assert!(store.get_endpoint(o, b.id).await.is_err());
    // A URL in clear (as an earlier version stored it) is read by no one until the one-time
    // pass encrypts it; pasted after that pass, it stays unreadable.
    let paste = |url: &str| {
        format!(
            "UPDATE webhook_endpoints SET url = '{url}' WHERE id = '{}'",
            b.id
        )
    };
    store
        .execute_sql(&paste("https://b.example/legacy"))
        .await
        .unwrap();
    assert!(store.get_endpoint(o, b.id).await.is_err());
    let key = security_policy::Cipher::new(&[7; 32]);
    assert_eq!(store.seal_webhook_urls(&key).await.unwrap(), 1);
    assert_eq!(
        store.get_endpoint(o, b.id).await.unwrap().url.as_str(),
        "https://b.example/legacy"
    );
    store
        .execute_sql(&paste("https://attacker.example/x"))
        .await
        .unwrap();
    assert_eq!(
        store.seal_webhook_urls(&key).await.unwrap(),
        0,
        "the pass was made"
    );
    assert!(matches!(
        store.get_endpoint(o, b.id).await,
        Err(webhooks::WebhookError::Unreadable(id)) if id == b.id
    ));
    // It is left out of its organization's list (the rest is listed), gets no delivery, and
    // can still be deleted, through the service.
    let listed = store.list_endpoints(o, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), [a.id]);
    let event = audit::DomainEvent::new(
        o,
        audit::EventKind::ApiKeyCreated,
        chrono::Utc::now(),
        serde_json::json!({}),
    );
    audit::AuditStore::append(store, audit::Journal::default().publish(event))
        .await
        .unwrap();
    let queued = |ep: rbac_core::EndpointId| async move {
        store
            .list_deliveries(o, ep, None, None, 10)
            .await
            .unwrap()
            .len()
    };
    assert_eq!((queued(a.id).await, queued(b.id).await), (1, 0));
    let acting = webhooks::Acting {
        actor: audit::Actor::system(),
        context: audit::RequestContext::default(),
    };
    webhooks::delete(store, &acting, o, b.id, chrono::Utc::now())
        .await
        .unwrap();
    assert!(matches!(
        store.get_endpoint(o, b.id).await,
        Err(webhooks::WebhookError::NotFound(_))
    ));
}

/// An endpoint whose stored filter names only event types this version does not know (a newer
/// version stored them) gets no event, where reading the filter as empty would send it every
/// event; an endpoint with an empty filter still gets them all.
async fn an_unreadable_filter_means_no_event(store: &SeaStore) {
    use webhooks::WebhookStore;
    let o = org(store).await;
    let new_endpoint = |events: Vec<audit::EventKind>| webhooks::Endpoint {
        id: rbac_core::EndpointId::new(),
        org: o,
        url: webhooks::WebhookUrl::parse("https://hooks.example.com/a", true).unwrap(),
        description: String::new(),
        events,
        enabled: true,
        disabled_reason: None,
        consecutive_failures: 0,
        message: None,
        created_at: chrono::Utc::now(),
    };
    let (all, future) = (
        new_endpoint(vec![]),
        new_endpoint(vec![audit::EventKind::TeamCreated]),
    );
    for ep in [&all, &future] {
        store
            .create_endpoint(ep, "v1:secret", audit::Journal::default())
            .await
            .unwrap();
    }
    store
        .execute_sql(&format!(
            "UPDATE webhook_endpoints SET events = '[\"team.renamed_in_a_later_version\"]' WHERE id = '{}'",
            future.id
        ))
        .await
        .unwrap();
    let event = audit::DomainEvent::new(
        o,
        audit::EventKind::ApiKeyCreated,
        chrono::Utc::now(),
        serde_json::json!({}),
    );
    audit::AuditStore::append(store, audit::Journal::default().publish(event))
        .await
        .unwrap();
    let queued = |ep: rbac_core::EndpointId| async move {
        store
            .list_deliveries(o, ep, None, None, 10)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(queued(all.id).await, 1);
    assert_eq!(queued(future.id).await, 0);
}

/// A store given no key neither writes webhook URLs nor reads them: it never falls back to
/// keeping them in clear.
#[tokio::test]
async fn a_store_without_a_key_keeps_no_webhook_url() {
    use webhooks::WebhookStore;
    let (store, url, _dir) = sqlite_with_url().await;
    let o = org(&store).await;
    let keyless = SeaStore::connect(&url, PoolOptions::default())
        .await
        .unwrap();
    let ep = webhooks::Endpoint {
        id: rbac_core::EndpointId::new(),
        org: o,
        url: webhooks::WebhookUrl::parse("https://hooks.example.com/a", true).unwrap(),
        description: String::new(),
        events: vec![],
        enabled: true,
        disabled_reason: None,
        consecutive_failures: 0,
        message: None,
        created_at: chrono::Utc::now(),
    };
    let refused = keyless
        .create_endpoint(&ep, "v2:secret", audit::Journal::default())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("storage"), "{refused}");
    assert!(
        keyless
            .list_endpoints(o, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .create_endpoint(&ep, "v2:secret", audit::Journal::default())
        .await
        .unwrap();
    assert!(keyless.get_endpoint(o, ep.id).await.is_err());
    assert_eq!(store.get_endpoint(o, ep.id).await.unwrap().url, ep.url);
}

#[tokio::test]
async fn webhook_contract_on_sqlite() {
    let (store, _dir) = sqlite().await;
    webhook_contract(&store).await;
}

#[tokio::test]
async fn webhook_contract_on_postgres() {
    if let Some(store) = postgres().await {
        webhook_contract(&store).await;
    }
}

/// A housekeeping pass removes each kind of stale row and keeps the rest: fresh rows, each
/// person's newest session, deliveries still pending however old, and the events they came
/// from. Rows are written directly, with the ages each rule looks at.
async fn housekeeping_removes_only_stale_rows(store: SeaStore) {
    use tenancy::housekeeping::{Cutoffs, Housekeeping, HousekeepingReport, HousekeepingStore};
    let now = chrono::Utc::now();
    let (o, owner) = org_with_owner(&store, now).await;
    let (_, quiet) = org_with_owner(&store, now).await;
    let (_, dormant) = org_with_owner(&store, now).await;
    let (org, uid, quiet) = (o.id.to_string(), owner.id.to_string(), quiet.id.to_string());
    let us = |d: chrono::Duration| (now - d).timestamp_micros();
    let days = chrono::Duration::days;
    let (d41, d40, d2, h1) = (
        us(days(41)),
        us(days(40)),
        us(days(2)),
        us(chrono::Duration::hours(1)),
    );
    let sql = [
        // Sessions: the Owner's from 40 days ago (past any policy) and from an hour ago; another
        // person's two from 41 and 40 days ago, the newer of which is their last sign-in.
        format!(
            "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, ended_at, ip, user_agent) VALUES \
             ('ses_old', 'h_old', '{uid}', {d40}, {d40}, NULL, '', ''), ('ses_new', 'h_new', '{uid}', {h1}, {h1}, NULL, '', ''), \
             ('ses_q1', 'h_q1', '{quiet}', {d41}, {d41}, {d41}, '', ''), ('ses_q2', 'h_q2', '{quiet}', {d40}, {d40}, NULL, '', '')"
        ),
        // Reset links and sign-in challenges: expired two days ago, and an hour ago.
        format!(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at, used_at) VALUES \
             ('r_old', '{uid}', {d2}, {d2}, NULL), ('r_new', '{uid}', {h1}, {h1}, {h1})"
        ),
        format!(
            "INSERT INTO login_challenges (token_hash, user_id, expires_at) VALUES ('c_old', '{uid}', {d2}), ('c_new', '{uid}', {h1})"
        ),
        // Bulk-invitation previews that expired two days ago, and an hour ago.
        format!(
            "INSERT INTO bulk_previews (id, org_id, created_by, expires_at, data, consumed_at) VALUES \
             ('b_old', '{org}', '{uid}', {d2}, '{{}}', NULL), ('b_new', '{org}', '{uid}', {h1}, '{{}}', {h1})"
        ),
        // Mail: sent 40 days ago, never sent in 40 days, sent two days ago, and not sent yet.
        format!(
            "INSERT INTO mail_outbox (id, org_id, to_addr, subject, body, kind, created_at, sent_at, attempts, last_error, available_at) VALUES \
             ('m_old', '{org}', 'a@x.example', 's', 'b', 'k', {d40}, {d40}, 1, NULL, {d40}), \
             ('m_unsent_old', '{org}', 'a@x.example', 's', 'b', 'k', {d40}, NULL, 9, 'refused', {d40}), \
             ('m_new', '', 'a@x.example', 's', 'b', 'k', {d2}, {d2}, 1, NULL, {d2}), \
             ('m_unsent', '{org}', 'a@x.example', 's', 'b', 'k', {d2}, NULL, 2, 'refused', {h1})"
        ),
        format!(
            "INSERT INTO sms_outbox (seq, to_number, body, created_at) VALUES (1, '+15550100', 'code 1', {d2}), (2, '+15550100', 'code 2', {h1})"
        ),
        // Events: one 40 days old with only finished deliveries, one 40 days old that a pending
        // delivery still comes from, one with no delivery, and a recent one.
        format!(
            "INSERT INTO outbox_events (id, org_id, kind, occurred_at, data, created_at) VALUES \
             ('evt_old', '{org}', 'member.added', {d40}, '{{}}', {d40}), ('evt_pending', '{org}', 'member.added', {d40}, '{{}}', {d40}), \
             ('evt_alone', '{org}', 'member.added', {d40}, '{{}}', {d40}), ('evt_new', '{org}', 'member.added', {d2}, '{{}}', {d2})"
        ),
        // Deliveries: delivered and failed 40 days ago (with attempts), pending since 40 days
        // ago (with an attempt), delivered two days ago, and one created 40 days ago whose last
        // attempt (it was sent again) was two days ago.
        format!(
            "INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, kind, payload, status, attempts, next_attempt_at, created_at) VALUES \
             ('d_done', '{org}', 'ep', 'evt_old', 'member.added', '{{}}', 'delivered', 1, {d40}, {d40}), \
             ('d_failed', '{org}', 'ep', 'evt_old', 'member.added', '{{}}', 'failed', 2, {d40}, {d40}), \
             ('d_pending', '{org}', 'ep', 'evt_pending', 'member.added', '{{}}', 'pending', 1, {h1}, {d40}), \
             ('d_recent', '{org}', 'ep', 'evt_new', 'member.added', '{{}}', 'delivered', 1, {d2}, {d2}), \
             ('d_resent', '{org}', 'ep', 'evt_new', 'member.added', '{{}}', 'failed', 3, {d2}, {d40})"
        ),
        format!(
            "INSERT INTO webhook_attempts (delivery_id, number, at, status, duration_ms, error, response_body) VALUES \
             ('d_done', 1, {d40}, 200, 5, NULL, ''), ('d_failed', 1, {d40}, 500, 5, NULL, ''), ('d_failed', 2, {d40}, 500, 5, NULL, ''), \
             ('d_pending', 1, {d40}, 503, 5, NULL, ''), ('d_recent', 1, {d2}, 200, 5, NULL, ''), ('d_resent', 3, {d2}, 500, 5, NULL, '')"
        ),
    ];
    for s in &sql {
        store.execute_sql(s).await.unwrap();
    }
    // More than one batch of a kind (a batch is a thousand rows).
    let bulk: Vec<String> = (0..2_500)
        .map(|i| format!("('evt_bulk_{i}', '{org}', 'member.added', {d40}, '{{}}', {d40})"))
        .collect();
    store
        .execute_sql(&format!(
            "INSERT INTO outbox_events (id, org_id, kind, occurred_at, data, created_at) VALUES {}",
            bulk.join(", ")
        ))
        .await
        .unwrap();
    // A dormant person's 2,500 old sessions, three to a microsecond (so a batch ends inside a
    // group of equal creation times), and their newest, which stays.
    let bulk: Vec<String> = (0..2_500i64)
        .map(|i| {
            let at = if i == 2_499 {
                d41 + 10_000
            } else {
                d41 + i / 3
            };
            format!(
                "('ses_bulk_{i}', 'h_bulk_{i}', '{dormant}', {at}, {at}, NULL, '', '')",
                dormant = dormant.id
            )
        })
        .collect();
    store
        .execute_sql(&format!(
            "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, ended_at, ip, user_agent) VALUES {}",
            bulk.join(", ")
        ))
        .await
        .unwrap();
    let report = store
        .prune_stale(&Cutoffs::at(now, &Housekeeping::default()))
        .await
        .unwrap();
    assert_eq!(
        report,
        HousekeepingReport {
            sessions: 2 + 2_499,
            password_resets: 1,
            login_challenges: 1,
            bulk_previews: 1,
            mails: 2,
            sms: 1,
            webhook_deliveries: 2,
            webhook_attempts: 3,
            events: 2_502,
            orphaned_organizations: 0,
        }
    );
    // Exactly the stale rows went (the organizations' creation wrote rows of their own, so rows
    // are checked by key, not counted).
    let present = |table: &'static str, key: &'static str, id: &'static str| {
        let store = store.clone();
        async move {
            store
                .execute_sql(&format!(
                    "UPDATE {table} SET {key} = {key} WHERE {key} = '{id}'"
                ))
                .await
                .unwrap()
                > 0
        }
    };
    for (table, key, gone, kept) in [
        (
            "sessions",
            "id",
            &[
                "ses_old",
                "ses_q1",
                "ses_bulk_0",
                "ses_bulk_999",
                "ses_bulk_2498",
            ][..],
            &["ses_new", "ses_q2", "ses_bulk_2499"][..],
        ),
        ("password_resets", "token_hash", &["r_old"], &["r_new"]),
        ("login_challenges", "token_hash", &["c_old"], &["c_new"]),
        (
            "mail_outbox",
            "id",
            &["m_old", "m_unsent_old"],
            &["m_new", "m_unsent"],
        ),
        ("sms_outbox", "body", &["code 1"], &["code 2"]),
        ("bulk_previews", "id", &["b_old"], &["b_new"]),
        (
            "outbox_events",
            "id",
            &["evt_old", "evt_alone"],
            &["evt_pending", "evt_new"],
        ),
        (
            "webhook_deliveries",
            "id",
            &["d_done", "d_failed"],
            &["d_pending", "d_recent", "d_resent"],
        ),
        (
            "webhook_attempts",
            "delivery_id",
            &["d_done", "d_failed"],
            &["d_pending", "d_recent", "d_resent"],
        ),
    ] {
        for id in gone {
            assert!(!present(table, key, id).await, "{table} {id} is removed");
        }
        for id in kept {
            assert!(present(table, key, id).await, "{table} {id} stays");
        }
    }
    // A second pass finds nothing.
    assert_eq!(
        store
            .prune_stale(&Cutoffs::at(now, &Housekeeping::default()))
            .await
            .unwrap()
            .total(),
        0
    );
}

#[tokio::test]
async fn housekeeping_removes_only_stale_rows_on_sqlite() {
    let (store, _dir) = sqlite().await;
    housekeeping_removes_only_stale_rows(store).await;
}

#[tokio::test]
async fn housekeeping_removes_only_stale_rows_on_postgres() {
    if let Some(store) = postgres().await {
        housekeeping_removes_only_stale_rows(store).await;
    }
}

/// Erasing a person whose account goes with it deletes the codes texted to their phone from the
/// SMS outbox, but not those of a phone another account also uses (the outbox keeps no account,
/// so those rows may be the other person's).
async fn erasure_keeps_the_sms_codes_of_a_shared_phone(store: SeaStore) {
    use tenancy::privacy::PrivacyStore;
    let now = chrono::Utc::now();
    let (o, owner) = org_with_owner(&store, now).await;
    let (org, t) = (o.id.to_string(), now.timestamp_micros());
    let (ann, bob, cat) = (
        rbac_core::UserId::new(),
        rbac_core::UserId::new(),
        rbac_core::UserId::new(),
    );
    // Ann's phone is hers alone; Cat's is also Bob's.
    for (id, tag, phone) in [
        (ann, "ann", "+15550100001"),
        (bob, "bob", "+15550100002"),
        (cat, "cat", "+15550100002"),
    ] {
        store
            .execute_sql(&format!(
                "INSERT INTO users (id, email, name, password_hash, created_at) VALUES \
                 ('{id}', '{tag}-{}@contract.example', '{tag}', 'h', {t}); \
                 INSERT INTO memberships (org_id, user_id, role, joined_at, deactivated_at) VALUES \
                 ('{org}', '{id}', 'user', {t}, NULL); \
                 INSERT INTO user_mfa (user_id, secret_enc, enabled_at, last_step, phone, sms_code_hash, sms_expires_at, failures, window_start, locked_until) VALUES \
                 ('{id}', 'x', {t}, NULL, '{phone}', NULL, NULL, 0, NULL, NULL)",
                id.as_uuid().simple()
            ))
            .await
            .unwrap();
    }
    store
        .execute_sql(&format!(
            "INSERT INTO sms_outbox (seq, to_number, body, created_at) VALUES \
             (1, '+15550100001', 'ann', {t}), (2, '+15550100002', 'bob or cat', {t}), \
             (3, '+15550100003', 'someone else', {t}), (4, '+15550100001', 'ann again', {t})"
        ))
        .await
        .unwrap();
    for who in [ann, cat] {
        let report = store
            .erase_member(
                o.id,
                who,
                Some(tenancy::members::Disposition::TransferToOwner(owner.id)),
                now,
                None,
                audit::Journal::default(),
                &|_| audit::Journal::default(),
            )
            .await
            .unwrap();
        assert!(report.account_anonymized, "{who} had no other organization");
    }
    let mut bodies: Vec<String> = store
        .sms_outbox(10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, body, _)| body)
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["bob or cat", "someone else"]);
}

#[tokio::test]
async fn erasure_keeps_the_sms_codes_of_a_shared_phone_on_sqlite() {
    let (store, _dir) = sqlite().await;
    erasure_keeps_the_sms_codes_of_a_shared_phone(store).await;
}

#[tokio::test]
async fn erasure_keeps_the_sms_codes_of_a_shared_phone_on_postgres() {
    if let Some(store) = postgres().await {
        erasure_keeps_the_sms_codes_of_a_shared_phone(store).await;
    }
}

/// Every writer of webhook deliveries at once, in one organization, for a few seconds: events
/// fanned out to the endpoints by appends; claims and their attempts (delivered, failed, or to
/// try again); endpoints created and deleted; failed deliveries requeued; finished ones pruned
/// by housekeeping; members erased whose names the queued payloads carry. On PostgreSQL two
/// of them taking the same rows in opposite orders fail with "deadlock detected": no call may
/// fail, and at the end no queued delivery is left without its endpoint (finished ones stay
/// as history) nor an attempt without its delivery.
async fn webhook_writers_race_without_deadlocks_or_orphans(store: SeaStore) {
    use audit::{AuditStore, DomainEvent, EventKind, Journal};
    use rbac_core::EndpointId;
    use std::sync::Arc;
    use tenancy::housekeeping::{Cutoffs, HousekeepingStore};
    use tenancy::privacy::PrivacyStore;
    use webhooks::{
        Attempt, AttemptOutcome, DeliveryStatus, Endpoint, WebhookError, WebhookStore, WebhookUrl,
    };
    const MEMBERS: usize = 12;
    let now = chrono::Utc::now;
    let (o, owner) = org_with_owner(&store, now()).await;
    let (org, t) = (o.id, now().timestamp_micros());
    let members: Vec<(rbac_core::UserId, String, String)> = (0..MEMBERS)
        .map(|i| {
            let id = rbac_core::UserId::new();
            let email = format!("m{i}-{}@contract.example", id.as_uuid().simple());
            (id, email, format!("Member {i}"))
        })
        .collect();
    for (id, email, name) in &members {
        store
            .execute_sql(&format!(
                "INSERT INTO users (id, email, name, password_hash, created_at) VALUES \
                 ('{id}', '{email}', '{name}', 'h', {t}); \
                 INSERT INTO memberships (org_id, user_id, role, joined_at, deactivated_at) VALUES \
                 ('{org}', '{id}', 'user', {t}, NULL)"
            ))
            .await
            .unwrap();
    }
    let new_endpoint = move || Endpoint {
        id: EndpointId::new(),
        org,
        url: WebhookUrl::parse("https://hooks.example.com/race", true).unwrap(),
        description: "race".into(),
        events: vec![],
        enabled: true,
        disabled_reason: None,
        consecutive_failures: 0,
        message: None,
        created_at: now(),
    };
    let endpoints = Arc::new(std::sync::Mutex::new(Vec::new()));
    for _ in 0..4 {
        let ep = new_endpoint();
        store
            .create_endpoint(&ep, "v1:secret", Journal::default())
            .await
            .unwrap();
        endpoints.lock().unwrap().push(ep.id);
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let running = move || std::time::Instant::now() < until;
    let mut tasks: Vec<tokio::task::JoinHandle<Result<u32, String>>> = Vec::new();
    // Events naming the members, fanned out to every endpoint.
    for _ in 0..2 {
        let (store, members) = (store.clone(), members.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while running() {
                let journal = members.iter().take(6).fold(Journal::default(), |j, m| {
                    let who = &members[(n as usize + m.2.len()) % MEMBERS];
                    j.publish(DomainEvent::new(
                        org,
                        EventKind::UserCreated,
                        now(),
                        serde_json::json!({"email": who.1, "byName": who.2}),
                    ))
                });
                store.append(journal).await.map_err(|e| format!("{e:?}"))?;
                n += 1;
            }
            Ok(n)
        }));
    }
    // Workers claiming and recording attempts.
    for _ in 0..2 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while running() {
                let claimed = store
                    .claim_deliveries(now(), now() + chrono::Duration::seconds(30), 40, &[], &[])
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let batch = claimed
                    .into_iter()
                    .map(|(d, _, _)| {
                        n += 1;
                        let status = [
                            DeliveryStatus::Delivered,
                            DeliveryStatus::Failed,
                            DeliveryStatus::Pending,
                        ][n as usize % 3];
                        let outcome = AttemptOutcome {
                            attempt: Attempt {
                                delivery: d.id.clone(),
                                number: d.attempts + 1,
                                at: now(),
                                status: Some(if status == DeliveryStatus::Delivered {
                                    200
                                } else {
                                    503
                                }),
                                duration_ms: 1,
                                error: None,
                                response_body: String::new(),
                            },
                            status,
                            next_attempt_at: now(),
                            disable: None,
                            lease: None,
                        };
                        (d, outcome)
                    })
                    .collect::<Vec<_>>();
                if batch.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                } else {
                    store
                        .record_attempts(batch)
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                }
            }
            Ok(n)
        }));
    }
    // Endpoints come and go; failed deliveries are sent again.
    {
        let (store, endpoints) = (store.clone(), endpoints.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while running() {
                let ep = new_endpoint();
                store
                    .create_endpoint(&ep, "v1:secret", Journal::default())
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let gone = {
                    let mut eps = endpoints.lock().unwrap();
                    eps.push(ep.id);
                    eps.remove(0)
                };
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                store
                    .delete_endpoint(org, gone, Journal::default())
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                n += 1;
            }
            Ok(n)
        }));
    }
    {
        let (store, endpoints) = (store.clone(), endpoints.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while running() {
                let eps = endpoints.lock().unwrap().clone();
                for ep in eps {
                    match store
                        .requeue(org, ep, None, None, now(), Journal::default())
                        .await
                    {
                        Ok(k) => n += u32::try_from(k).unwrap_or(u32::MAX),
                        // Deleted meanwhile.
                        Err(WebhookError::NotFound(_)) => {}
                        Err(e) => return Err(format!("{e:?}")),
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Ok(n)
        }));
    }
    // Housekeeping removes every finished delivery.
    {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            let epoch = chrono::DateTime::UNIX_EPOCH;
            while running() {
                let cutoffs = Cutoffs {
                    sessions_created_before: epoch,
                    tokens_expired_before: epoch,
                    mail_before: epoch,
                    sms_created_before: epoch,
                    history_before: now() + chrono::Duration::hours(1),
                };
                let report = store
                    .prune_stale(&cutoffs)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                n += u32::try_from(report.webhook_deliveries).unwrap_or(u32::MAX);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Ok(n)
        }));
    }
    // Members erased, one at a time, while their names are in the queue.
    {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for (id, _, _) in &members {
                if !running() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                store
                    .erase_member(
                        org,
                        *id,
                        Some(tenancy::members::Disposition::TransferToOwner(owner.id)),
                        now(),
                        None,
                        Journal::default(),
                        &|_| audit::Journal::default(),
                    )
                    .await
                    .map_err(|e| format!("erasing {id}: {e:?}"))?;
                n += 1;
            }
            Ok(n)
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap().expect("no writer fails"));
    }
    // Each writer did something, or the race raced nothing.
    assert!(
        done.iter().all(|&n| n > 0),
        "work done per writer: {done:?}"
    );
    let orphan_deliveries = store
        .execute_sql(
            "UPDATE webhook_deliveries SET attempts = attempts WHERE status = 'pending' \
             AND endpoint_id NOT IN (SELECT id FROM webhook_endpoints)",
        )
        .await
        .unwrap();
    assert_eq!(
        orphan_deliveries, 0,
        "queued deliveries left without their endpoint (work done per writer: {done:?})"
    );
    assert_eq!(
        orphan_attempts(&store).await,
        0,
        "attempts left without their delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_writers_race_without_deadlocks_or_orphans_on_sqlite() {
    let (store, _dir) = sqlite().await;
    webhook_writers_race_without_deadlocks_or_orphans(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_writers_race_without_deadlocks_or_orphans_on_postgres() {
    if let Some(store) = postgres().await {
        webhook_writers_race_without_deadlocks_or_orphans(store).await;
    }
}

/// Pairs of tenancy writes that reviews found could interleave badly on PostgreSQL, each pair
/// run at once for a number of rounds: a person removed from both of their organizations at
/// the same moment (their sessions must end: each removal alone saw the other membership); a
/// person erased from their only organization while their account is added to another (never
/// a member whose account is erased); a second 2FA setup racing the activation of the first (an activation that succeeded must
/// stay active); a demotion racing the confirmation of an ownership transfer to the same
/// member (one may refuse the other, but neither may fail with a deadlock); a purchase shared
/// out to the teams' credit accounts while the shares change (no deadlock either); an admin
/// demoted while inviting (no invitation of theirs outlives the demotion).
async fn tenancy_writers_race_without_deadlocks_or_lost_changes(store: SeaStore) {
    use tenancy::credits::CreditStore;
    use tenancy::members::{Disposition, OwnershipTransfer};
    use tenancy::mfa::MfaStore;
    use tenancy::privacy::PrivacyStore;
    use tenancy::{AccountStore, InvitationStore, MembershipStore, OrgStore, TenancyError};
    const ROUNDS: usize = 25;
    let now = chrono::Utc::now;
    let t = now().timestamp_micros();
    let (a, owner_a) = org_with_owner(&store, now()).await;
    let (b, owner_b) = org_with_owner(&store, now()).await;
    // Organization `a` takes every round's people: no seat limit (stores check the stored
    // limits as well as those they are given).
    let unlimited = billing_limits::LimitOverrides(
        [(billing_limits::Limit::Members, None)]
            .into_iter()
            .collect(),
    );
    store
        .set_limit_overrides(
            a.id,
            &unlimited,
            billing_limits::Plan::Enterprise,
            audit::Journal::default(),
        )
        .await
        .unwrap();
    let person = |orgs: Vec<(rbac_core::OrgId, &'static str)>| {
        let store = store.clone();
        async move {
            let id = rbac_core::UserId::new();
            let mut sql = format!(
                "INSERT INTO users (id, email, name, password_hash, created_at) VALUES \
                 ('{id}', 'p-{}@contract.example', 'P', 'h', {t}); \
                 INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, ended_at, ip, user_agent) VALUES \
                 ('ses_{}', 'th-{}', '{id}', {t}, {t}, NULL, '', '')",
                id.as_uuid().simple(),
                id.as_uuid().simple(),
                id.as_uuid().simple()
            );
            for (org, role) in orgs {
                sql.push_str(&format!(
                    "; INSERT INTO memberships (org_id, user_id, role, joined_at, deactivated_at) \
                     VALUES ('{org}', '{id}', '{role}', {t}, NULL)"
                ));
            }
            store.execute_sql(&sql).await.unwrap();
            id
        }
    };
    let not_a_deadlock = |what: &str, r: &Result<(), TenancyError>| {
        assert!(
            !matches!(r, Err(TenancyError::Store(_))),
            "{what} failed in the store: {r:?}"
        );
    };
    // Two teams with credit accounts (and shares) already.
    let teams = [rbac_core::TeamId::new(), rbac_core::TeamId::new()];
    for (i, id) in teams.iter().enumerate() {
        tenancy::WorkspaceStore::create_team(
            &store,
            &tenancy::Team {
                id: *id,
                org: a.id,
                name: format!("Shares {i}"),
                is_default: false,
                created_at: now(),
                archived_at: None,
            },
            audit::Journal::default(),
        )
        .await
        .unwrap();
    }
    store
        .set_allocations(
            a.id,
            &teams.map(|t| billing_limits::credits::Allocation::new(t, 50)),
            audit::Journal::default(),
        )
        .await
        .unwrap();
    for round in 0..ROUNDS {
        // Removed from both organizations at once.
        let p = person(vec![(a.id, "user"), (b.id, "user")]).await;
        let (ra, rb) = tokio::join!(
            store.remove_member(
                a.id,
                p,
                Disposition::TransferToOwner(owner_a.id),
                now(),
                None,
                audit::Journal::default(),
                &|_| audit::Journal::default()
            ),
            store.remove_member(
                b.id,
                p,
                Disposition::TransferToOwner(owner_b.id),
                now(),
                None,
                audit::Journal::default(),
                &|_| audit::Journal::default()
            ),
        );
        ra.unwrap();
        rb.unwrap();
        assert_eq!(
            store.list_sessions(p).await.unwrap(),
            [],
            "round {round}: in no organization any more, so signed out"
        );

        // Signed out of one organization while removed from the other: whichever commits
        // first, the sign-out holds (the session ends, or is refused in `a`).
        let so = person(vec![(a.id, "user"), (b.id, "user")]).await;
        let hash = format!("th-{}", so.as_uuid().simple());
        let (signed_out, removed) = tokio::join!(
            store.end_sessions_in(a.id, so, None, now(), &|_| audit::Journal::default()),
            store.remove_member(
                b.id,
                so,
                Disposition::TransferToOwner(owner_b.id),
                now(),
                None,
                audit::Journal::default(),
                &|_| audit::Journal::default()
            ),
        );
        assert_eq!(signed_out.unwrap(), 1, "round {round}");
        removed.unwrap();
        let left = store.find_session(&hash).await.unwrap();
        assert!(
            left.as_ref().is_none_or(|s| s.signed_out_of == [a.id]),
            "round {round}: the sign-out from `a` was lost: {left:?}"
        );

        // Erased from their only organization while an admin adds the account to another:
        // either the erasure sees the new membership and keeps the account, or the account is
        // erased and the join refused; never a member with an erased account.
        let e = person(vec![(a.id, "user")]).await;
        let account = store.get_user(e).await.unwrap().expect("the account");
        let team_b = store.default_team(b.id).await.unwrap();
        let limits_b = b.limits();
        let (erased, joined) = tokio::join!(
            store.erase_member(
                a.id,
                e,
                Some(Disposition::TransferToOwner(owner_a.id)),
                now(),
                None,
                audit::Journal::default(),
                &|_| audit::Journal::default()
            ),
            store.add_member(
                b.id,
                &account,
                None,
                rbac_core::OrgRole::User,
                team_b.id,
                rbac_core::TeamRole::Member,
                &limits_b,
                audit::Journal::default()
            ),
        );
        let erased = erased.unwrap();
        not_a_deadlock("the join", &joined);
        assert_eq!(
            erased.account_anonymized,
            joined.is_err(),
            "round {round}: erased {erased:?}, joined {joined:?}"
        );
        assert_eq!(
            store.get_member(b.id, e).await.unwrap().is_some(),
            joined.is_ok(),
            "round {round}"
        );

        // A second setup while the first is being activated.
        let q = person(vec![(a.id, "user")]).await;
        store.start_totp(q, "v1:first").await.unwrap();
        let codes = ["code".to_owned()];
        let (setup, activation) = tokio::join!(store.start_totp(q, "v1:second"), async {
            store
                .activate_totp(q, "v1:first", 1, &codes, None, now(), &|_| {
                    audit::Journal::default()
                })
                .await
                .map(|_| ())
        },);
        not_a_deadlock("the second setup", &setup);
        not_a_deadlock("the activation", &activation);
        let record = store.mfa(q).await.unwrap().expect("a factor record");
        if activation.is_ok() {
            assert!(
                record.enabled_at.is_some(),
                "round {round}: an activation that succeeded stays active ({setup:?})"
            );
        }

        // A demotion while the transfer to the same member is confirmed.
        let (o, owner) = org_with_owner(&store, now()).await;
        let m = person(vec![(o.id, "admin")]).await;
        let transfer = OwnershipTransfer {
            org: o.id,
            from: owner.id,
            to: m,
            proposed_at: now(),
            expires_at: now() + chrono::Duration::hours(72),
        };
        store
            .save_transfer(&transfer, audit::Journal::default())
            .await
            .unwrap();
        let (confirmed, demoted) = tokio::join!(
            store.complete_transfer(&transfer, now(), audit::Journal::default()),
            store.set_role(
                o.id,
                m,
                rbac_core::OrgRole::Admin,
                rbac_core::OrgRole::User,
                None,
                audit::Journal::default()
            ),
        );
        not_a_deadlock("the confirmation", &confirmed);
        not_a_deadlock("the demotion", &demoted);
        // The Owner's proposal outlives a demotion, so the confirmation always goes through;
        // the demotion goes through only if it came first (after the confirmation the role
        // it was decided on has changed), and never demotes the new Owner.
        let role = store.get_member(o.id, m).await.unwrap().unwrap().role;
        assert!(
            confirmed.is_ok(),
            "round {round}: the transfer stands: {confirmed:?} / {demoted:?}"
        );
        assert!(
            demoted.is_ok() || matches!(demoted, Err(tenancy::TenancyError::Conflict(_))),
            "round {round}: {demoted:?}"
        );
        assert_eq!(role, rbac_core::OrgRole::Owner, "round {round}");
        let owners = store
            .list_members(o.id, None, 10)
            .await
            .unwrap()
            .iter()
            .filter(|x| x.role == rbac_core::OrgRole::Owner)
            .count();
        assert_eq!(owners, 1, "round {round}: one Owner");

        // An admin demoted while they invite someone as an Admin: the demotion withdraws
        // their pending invitations, and the new one must not outlive it.
        let inviter = person(vec![(a.id, "admin")]).await;
        let invitation = tenancy::invitations::Invitation {
            id: rbac_core::InvitationId::new(),
            org: a.id,
            email: tenancy::Email::parse(&format!("inv-{round}-{inviter}@contract.example"))
                .unwrap(),
            role: rbac_core::OrgRole::Admin,
            invited_by: inviter,
            created_at: now(),
            expires_at: now() + chrono::Duration::days(7),
            accepted_at: None,
            revoked_at: None,
            team: None,
        };
        // No seat limit here (nor in the organization's row): a refusal must be for the
        // inviter's role, not for a full plan.
        let limits_a = billing_limits::PlanLimits {
            members: None,
            ..a.limits()
        };
        let token = format!("race-token-{round}");
        let (demoted, invited) = tokio::join!(
            store.set_role(
                a.id,
                inviter,
                rbac_core::OrgRole::Admin,
                rbac_core::OrgRole::User,
                None,
                audit::Journal::default()
            ),
            store.create_invitation(&invitation, &token, &limits_a, audit::Journal::default()),
        );
        demoted.unwrap();
        assert!(
            matches!(
                invited,
                Ok(()) | Err(TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin))
            ),
            "round {round}: {invited:?}"
        );
        let open = store
            .list_invitations(a.id, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.invited_by == inviter && i.revoked_at.is_none())
            .count();
        assert_eq!(
            open, 0,
            "round {round}: a demoted admin's invitation outlived the demotion ({invited:?})"
        );

        // A purchase shared out to the teams while the shares change.
        let plan = [
            billing_limits::credits::Allocation::new(teams[1], 60),
            billing_limits::credits::Allocation::new(teams[0], 40),
        ];
        let postings =
            billing_limits::credits::purchase(billing_limits::credits::Account::Pool, 100, &plan)
                .unwrap();
        let buy = tenancy::credits::NewOperation {
            id: rbac_core::CreditOperationId::new(),
            org: a.id,
            idempotency_key: format!("race-{round}"),
            fingerprint: billing_limits::credits::fingerprint("purchase", &postings),
            kind: billing_limits::credits::EntryKind::Purchase,
            reverses: None,
            postings,
            description: "race".into(),
            actor: "contract".into(),
            actor_id: "contract".into(),
            created_at: now(),
            low_credit: tenancy::credits::LowCreditAlerts::none(),
        };
        let (posted, shared) = tokio::join!(
            store.post_credits(&buy, None, audit::Journal::default()),
            store.set_allocations(a.id, &plan, audit::Journal::default()),
        );
        not_a_deadlock("the purchase", &posted.map(|_| ()));
        not_a_deadlock("the new shares", &shared);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenancy_writers_race_without_deadlocks_or_lost_changes_on_sqlite() {
    let (store, _dir) = sqlite().await;
    tenancy_writers_race_without_deadlocks_or_lost_changes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenancy_writers_race_without_deadlocks_or_lost_changes_on_postgres() {
    if let Some(store) = postgres().await {
        tenancy_writers_race_without_deadlocks_or_lost_changes(store).await;
    }
}

/// Migration 30 gives the keys that existed before it the scope their team implies: a key of
/// the default team reaches the organization, a key of any other team only that team. The
/// database is taken back to before the migration (its column dropped and its record removed)
/// with keys of both kinds in it, then migrated again.
async fn key_scopes_are_backfilled_by_their_team(store: SeaStore) {
    let (o, owner) = org_with_owner(&store, chrono::Utc::now()).await;
    let (org, uid) = (o.id.to_string(), owner.id.to_string());
    for sql in [
        format!(
            "INSERT INTO teams (id, org_id, name, is_default, created_at, archived_at) \
             VALUES ('tm_client', '{org}', 'Client', FALSE, 0, NULL)"
        ),
        format!(
            "INSERT INTO api_keys (id, org_id, team_id, scope, created_by, name, prefix, secret_hash, created_at) \
             SELECT 'key_org', org_id, id, 'organization', '{uid}', 'org', 'axk_0001', 'h1', 0 \
             FROM teams WHERE org_id = '{org}' AND is_default = TRUE"
        ),
        format!(
            "INSERT INTO api_keys (id, org_id, team_id, scope, created_by, name, prefix, secret_hash, created_at) \
             VALUES ('key_team', '{org}', 'tm_client', 'organization', '{uid}', 'team', 'axk_0002', 'h2', 0)"
        ),
        "ALTER TABLE api_keys DROP COLUMN scope".to_owned(),
        "DELETE FROM seaql_migrations WHERE version = 'm20261201_000030_add_api_key_scope'"
            .to_owned(),
    ] {
        store.execute_sql(&sql).await.unwrap();
    }
    assert_eq!(store.pending_migrations().await.unwrap(), 1);
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    // An update that changes nothing counts the rows it matches.
    let matching = |id: &str, scope: &str| {
        format!("UPDATE api_keys SET scope = scope WHERE id = '{id}' AND scope = '{scope}'")
    };
    for (id, scope) in [("key_org", "organization"), ("key_team", "team")] {
        assert_eq!(
            store.execute_sql(&matching(id, scope)).await.unwrap(),
            1,
            "{id} should have the scope {scope}"
        );
    }
}

#[tokio::test]
async fn key_scopes_are_backfilled_by_their_team_on_sqlite() {
    let (store, _dir) = sqlite().await;
    key_scopes_are_backfilled_by_their_team(store).await;
}

#[tokio::test]
async fn key_scopes_are_backfilled_by_their_team_on_postgres() {
    if let Some(store) = postgres().await {
        key_scopes_are_backfilled_by_their_team(store).await;
    }
}

/// Records that name a person, appended while the person is erased, keep none of their
/// personal data once both are done: the erasure blanks those committed before it, and those
/// committed after it are blanked as they are appended (PostgreSQL orders the two through the
/// chain head; SQLite through its one writer).
async fn records_racing_an_erasure_keep_no_name(store: SeaStore) {
    use tenancy::members::Disposition;
    use tenancy::privacy::PrivacyStore;
    const ROUNDS: usize = 8;
    let (o, owner) = org_with_owner(&store, chrono::Utc::now()).await;
    let t = chrono::Utc::now().timestamp_micros();
    for _ in 0..ROUNDS {
        let p = rbac_core::UserId::new();
        store
            .execute_sql(&format!(
                "INSERT INTO users (id, email, name, password_hash, created_at) VALUES \
                 ('{p}', 'p-{}@contract.example', 'Pat Racer', 'h', {t}); \
                 INSERT INTO memberships (org_id, user_id, role, joined_at, deactivated_at) \
                 VALUES ('{}', '{p}', 'user', {t}, NULL)",
                p.as_uuid().simple(),
                o.id
            ))
            .await
            .unwrap();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                let org = o.id;
                tokio::spawn(async move {
                    for _ in 0..5 {
                        let mut e = audit::NewAuditEvent::new(
                            org,
                            chrono::Utc::now(),
                            audit::Actor::user(p, "Pat Racer"),
                            audit::AuditAction::AnalyticsViewed,
                            audit::Target::new("organization", org, "Org"),
                        );
                        e.context.ip = "203.0.113.9".into();
                        audit::AuditStore::append(&store, audit::Journal::record(e))
                            .await
                            .unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        store
            .erase_member(
                o.id,
                p,
                Some(Disposition::TransferTo(owner.id)),
                chrono::Utc::now(),
                None,
                audit::Journal::default(),
                &|_| audit::Journal::default(),
            )
            .await
            .unwrap();
        for w in writers {
            w.await.unwrap();
        }
        // An update that changes nothing counts the rows it matches.
        let named = store
            .execute_sql(&format!(
                "UPDATE audit_events SET seq = seq WHERE org_id = '{}' AND actor_id = '{p}' \
                 AND (actor_name <> '{}' OR ip <> '')",
                o.id,
                audit::ERASED
            ))
            .await
            .unwrap();
        assert_eq!(named, 0, "records still name the erased person");
        let all = store
            .execute_sql(&format!(
                "UPDATE audit_events SET seq = seq WHERE org_id = '{}' AND actor_id = '{p}'",
                o.id
            ))
            .await
            .unwrap();
        assert_eq!(all, 20, "every record was written");
    }
    assert!(
        audit::verify_chain(&store, o.id, b"contract key 32 bytes long......")
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn records_racing_an_erasure_keep_no_name_on_sqlite() {
    let (store, _dir) = sqlite().await;
    records_racing_an_erasure_keep_no_name(store).await;
}

#[tokio::test]
async fn records_racing_an_erasure_keep_no_name_on_postgres() {
    if let Some(store) = postgres().await {
        records_racing_an_erasure_keep_no_name(store).await;
    }
}

/// How many rows of `table` belong to one of `orgs` (an update that changes nothing, for its
/// count of rows).
async fn rows_of(store: &SeaStore, table: &str, orgs: &str) -> u64 {
    store
        .execute_sql(&format!(
            "UPDATE {table} SET org_id = org_id WHERE org_id IN ({orgs})"
        ))
        .await
        .unwrap()
}

/// After the tenancy contract has filled the store, every organization it made is deleted
/// through its Owner (`OrgStore::delete_org`), and no table keeps a row of any of them. Every
/// table with an `org_id` column is in `store_sea::ORG_TABLES`, so a table added later without
/// joining that list fails here.
async fn deleting_every_organization_leaves_none_of_their_rows(store: &SeaStore) {
    use tenancy::OrgStore;
    for table in store_sea::TABLES {
        let has_org = store
            .execute_sql(&format!("UPDATE {table} SET org_id = org_id WHERE 1 = 0"))
            .await
            .is_ok();
        assert_eq!(
            has_org,
            store_sea::ORG_TABLES.contains(table),
            "{table}: an `org_id` column if and only if in ORG_TABLES"
        );
    }
    let owned = store_sea::testing::org_owners(store).await.unwrap();
    assert!(
        owned.len() > 20,
        "the contract made organizations: {}",
        owned.len()
    );
    let ids = owned
        .iter()
        .map(|(o, _)| format!("'{o}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut filled = 0;
    for table in store_sea::ORG_TABLES {
        if rows_of(store, table, &ids).await > 0 {
            filled += 1;
        }
    }
    // 23 of the 30 when this was written (no webhook endpoints or deliveries, no SCIM group,
    // no usage alert, …): enough that a deletion that skipped tables would be seen.
    assert!(
        filled >= 20,
        "the contract left rows in most of the organizations' tables: {filled}"
    );
    // Not by someone else: an Admin, or the Owner of another organization.
    let (first, first_owner) = owned[0];
    let other_owner = owned
        .iter()
        .map(|(_, u)| *u)
        .find(|u| *u != first_owner)
        .unwrap();
    assert!(matches!(
        store
            .delete_org(first, other_owner, audit::Journal::default())
            .await,
        Err(tenancy::TenancyError::Conflict(_))
    ));
    assert!(rows_of(store, "memberships", &format!("'{first}'")).await > 0);
    // Before the deletions, the organizations' logs are all live.
    let live = store.live_organizations().await.unwrap();
    let with_log = store.organizations().await.unwrap();
    assert!(
        owned.iter().filter(|(o, _)| live.contains(o)).count() > 20,
        "{} of {} live",
        live.len(),
        owned.len()
    );
    assert!(
        with_log
            .iter()
            .filter(|o| owned.iter().any(|(x, _)| x == *o))
            .all(|o| live.contains(o)),
        "every existing organization with a log is live"
    );
    let documents = store
        .execute_sql(&format!(
            "UPDATE assets SET org_id = org_id WHERE kind = 'document' AND org_id IN ({ids})"
        ))
        .await
        .unwrap();
    assert!(documents > 0, "the contract made documents");
    let mut returned = 0;
    for (org, owner) in &owned {
        returned += store
            .delete_org(*org, *owner, audit::Journal::default())
            .await
            .unwrap()
            .len() as u64;
    }
    assert_eq!(
        returned, documents,
        "every deleted document's id, for its bytes"
    );
    for table in store_sea::ORG_TABLES {
        assert_eq!(rows_of(store, table, &ids).await, 0, "{table}");
    }
    assert_eq!(
        store
            .execute_sql(&format!(
                "UPDATE organizations SET name = name WHERE id IN ({ids})"
            ))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .execute_sql(
                "UPDATE webhook_attempts SET number = number \
                 WHERE delivery_id NOT IN (SELECT id FROM webhook_deliveries)"
            )
            .await
            .unwrap(),
        0,
        "no attempt outlives its delivery"
    );
    assert!(matches!(
        store
            .delete_org(first, first_owner, audit::Journal::default())
            .await,
        Err(tenancy::TenancyError::NotFound(_))
    ));
    // A record appended a moment after the deletion (a request already past its checks)
    // leaves a head; the workers' list passes over it.
    use audit::AuditStore;
    store
        .append(audit::Journal::record(audit::NewAuditEvent::new(
            first,
            chrono::Utc::now(),
            audit::Actor::system(),
            audit::AuditAction::AccessDenied,
            audit::Target::new("organization", first, "late"),
        )))
        .await
        .unwrap();
    assert!(store.organizations().await.unwrap().contains(&first));
    assert!(!store.live_organizations().await.unwrap().contains(&first));
    // And a usage count of another deleted organization. Housekeeping removes both
    // organizations' late rows, and nothing of a live one.
    let (second, live) = (owned[1].0, org(store).await);
    store
        .execute_sql(&format!(
            "INSERT INTO usage_monthly (org_id, month, metric, count) VALUES \
             ('{second}', '2026-12', 'api_calls', 1), ('{live}', '2026-12', 'api_calls', 1)"
        ))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let report = tenancy::housekeeping::HousekeepingStore::prune_stale(
        store,
        &tenancy::housekeeping::Cutoffs::at(now, &tenancy::housekeeping::Housekeeping::default()),
    )
    .await
    .unwrap();
    assert_eq!(report.orphaned_organizations, 2, "{report:?}");
    for table in ["audit_heads", "audit_events", "usage_monthly"] {
        assert_eq!(
            rows_of(store, table, &format!("'{first}', '{second}'")).await,
            0,
            "{table}"
        );
    }
    assert!(!store.organizations().await.unwrap().contains(&first));
    assert_eq!(
        rows_of(store, "usage_monthly", &format!("'{live}'")).await,
        1
    );
    assert!(rows_of(store, "audit_heads", &format!("'{live}'")).await > 0);
}

/// An address an earlier version accepted and today's `Email::parse` refuses (here a domain
/// IDNA refuses) stays readable: the member reads as stored, the member list reads at all.
async fn an_address_from_an_earlier_check_stays_readable(store: SeaStore) {
    let (o, owner) = org_with_owner(&store, chrono::Utc::now()).await;
    let old = format!("legacy-{}@xn--a.example", uuid::Uuid::new_v4().simple());
    assert!(tenancy::Email::parse(&old).is_err());
    let n = store
        .execute_sql(&format!(
            "UPDATE users SET email = '{old}' WHERE id = '{}'",
            owner.id
        ))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let m = tenancy::OrgStore::get_member(&store, o.id, owner.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.user.email.as_str(), old);
    let listed = tenancy::OrgStore::list_members(&store, o.id, None, 50)
        .await
        .unwrap();
    assert!(listed.iter().any(|m| m.user.email.as_str() == old));
}

#[tokio::test]
async fn an_address_from_an_earlier_check_stays_readable_on_sqlite() {
    let (store, _dir) = sqlite().await;
    an_address_from_an_earlier_check_stays_readable(store).await;
}

#[tokio::test]
async fn an_address_from_an_earlier_check_stays_readable_on_postgres() {
    if let Some(store) = postgres().await {
        an_address_from_an_earlier_check_stays_readable(store).await;
    }
}
