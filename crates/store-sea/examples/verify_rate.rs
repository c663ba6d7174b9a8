//! Chain verification and CSV export from a SQLite file, in one process, the rounds
//! alternating. Verification two ways: the store's own `chain_links` (each row hashed from its
//! bytes where rusqlite reads it) and the trait's default (records read through rusqlite, then
//! hashed on the walk's task, as verification worked before `chain_links`). The CSV export as
//! the server streams it (`audit::for_each_page`, pages of `MAX_PAGE`, into a sink), and the CSV
//! writer alone on records already in memory. Two read-only baselines run in each round too:
//! the same pages as whole records one after the other, and the export's pages read two at
//! once. It measures changes in `docs/benchmarks.md`, "Audit log through the store".
//!
//! `cargo run --release -p store-sea --example verify_rate` (`EVENTS`, default 500,000;
//! `ROUNDS`, default 3). The log is built in a temporary directory and removed afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a measuring tool: failing loudly is its job"
)]

use std::time::Instant;

use async_trait::async_trait;
use audit::{
    Actor, Anchor, AuditAction, AuditError, AuditEvent, AuditQuery, AuditStore, Checkpoint,
    Journal, NewAuditEvent, Outcome, PruneJournal, Target,
};
use chrono::{DateTime, Utc};
use rbac_core::{OrgId, UserId};
use store_sea::{DatabaseUrl, PoolOptions, SeaStore};

/// `SeaStore` with the trait's default `chain_links`: everything else is the store's.
struct RecordsPath<'a>(&'a SeaStore);

#[async_trait]
impl AuditStore for RecordsPath<'_> {
    async fn append(&self, journal: Journal) -> Result<Vec<AuditEvent>, AuditError> {
        self.0.append(journal).await
    }
    async fn search(&self, org: OrgId, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuditError> {
        self.0.search(org, query).await
    }
    async fn chain_page(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.0.chain_page(org, after, limit).await
    }
    async fn chain_page_for_verification(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.0.chain_page_for_verification(org, after, limit).await
    }
    async fn head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, AuditError> {
        self.0.head(org).await
    }
    async fn save_checkpoint(&self, cp: &Checkpoint, journal: Journal) -> Result<(), AuditError> {
        self.0.save_checkpoint(cp, journal).await
    }
    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, AuditError> {
        self.0.latest_checkpoint(org).await
    }
    async fn save_rotated_checkpoint(
        &self,
        cp: &Checkpoint,
        anchor: Option<(&Anchor, &Anchor)>,
    ) -> Result<(), AuditError> {
        self.0.save_rotated_checkpoint(cp, anchor).await
    }
    async fn erase_personal_data(
        &self,
        org: OrgId,
        subject_id: &str,
        journal: Journal,
    ) -> Result<u64, AuditError> {
        self.0.erase_personal_data(org, subject_id, journal).await
    }
    async fn anchor(&self, org: OrgId) -> Result<Option<Anchor>, AuditError> {
        self.0.anchor(org).await
    }
    async fn prune(&self, anchor: &Anchor, journal: PruneJournal<'_>) -> Result<u64, AuditError> {
        self.0.prune(anchor, journal).await
    }
    async fn organizations(&self) -> Result<Vec<OrgId>, AuditError> {
        self.0.organizations().await
    }
}

/// Record `i` of `n`, as the audit store benchmark writes them (metadata, 2 % denied).
fn event(org: OrgId, i: u64, actors: &[UserId]) -> NewAuditEvent {
    let at = DateTime::<Utc>::from_timestamp(1_760_000_000 + i64::try_from(i).unwrap(), 0).unwrap();
    let actor = actors[usize::try_from(i).unwrap() % actors.len()];
    let mut e = NewAuditEvent::new(
        org,
        at,
        Actor::user(actor, format!("Person {}", i % 200)),
        AuditAction::ChatInterfaceUpdated,
        Target::new(
            "chat_interface",
            format!("res_{:032x}", i % 5000),
            "Customer Support",
        ),
    )
    .with_metadata(
        audit::Metadata::from_value(
            serde_json::json!({"changes": ["name", "model"], "role": "user"}),
        )
        .unwrap(),
    );
    e.context.ip = "203.0.113.7".into();
    if i.is_multiple_of(50) {
        e = e.with_outcome(Outcome::Denied {
            reason: "role_lacks_permission".into(),
        });
    }
    e
}

#[tokio::main]
async fn main() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (events, rounds) = (var("EVENTS", 500_000), var("ROUNDS", 3));
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("verify.db").display()
    ))
    .unwrap();
    let store = SeaStore::connect(&url, PoolOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let org = OrgId::new();
    let actors: Vec<UserId> = (0..200).map(|_| UserId::new()).collect();
    let t = Instant::now();
    let mut i = 0;
    while i < events {
        let j = (i..(i + 1000).min(events)).fold(Journal::default(), |j, k| {
            j.and_record(event(org, k, &actors))
        });
        store.append(j).await.unwrap();
        i += 1000;
    }
    println!(
        "{events} records written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let rate = |n: i64, t: Instant| n as f64 / t.elapsed().as_secs_f64();
    let in_memory = store.chain_page(org, 0, 100_000).await.unwrap();
    println!(
        "| round | read the pages only, rows/s | search pages two at once, rows/s | verification, records path, events/s | verification, links, events/s | CSV export, rows/s | CSV writer alone, rows/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for round in 1..=rounds {
        let t = Instant::now();
        let (mut after, mut read) = (0, 0);
        loop {
            let page = store
                .chain_page(org, after, audit::WALK_PAGE)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            read += i64::try_from(page.len()).unwrap();
        }
        let read = rate(read, t);
        let t = Instant::now();
        let (mut before, mut both) = (i64::MAX, 0);
        loop {
            let q = |b: i64| AuditQuery {
                before_seq: Some(b),
                limit: audit::MAX_PAGE,
                ..AuditQuery::default()
            };
            let (qa, qb) = (q(before), q(before.saturating_sub(audit::MAX_PAGE.into())));
            let (a, b) = futures::join!(store.search(org, &qa), store.search(org, &qb));
            let (a, b) = (a.unwrap(), b.unwrap());
            both += i64::try_from(a.len() + b.len()).unwrap();
            let Some(last) = b.last().or(a.last()) else {
                break;
            };
            before = last.seq;
        }
        let both = rate(both, t);
        let t = Instant::now();
        let v = audit::verify_chain(&RecordsPath(&store), org, b"k")
            .await
            .unwrap()
            .unwrap();
        let records = rate(v.records, t);
        let t = Instant::now();
        let w = audit::verify_chain(&store, org, b"k")
            .await
            .unwrap()
            .unwrap();
        let links = rate(w.records, t);
        assert_eq!((v.records, v.head), (w.records, w.head));
        let t = Instant::now();
        let mut x = audit::export::CsvExporter::new(std::io::sink()).unwrap();
        let query = AuditQuery {
            limit: audit::MAX_PAGE,
            ..AuditQuery::default()
        };
        let exported = audit::for_each_page(&store, org, query, |p| {
            let wrote = p.iter().try_for_each(|r| x.write(r));
            std::future::ready(wrote.map_err(|e| AuditError::Store(audit::StoreError::new(e))))
        })
        .await
        .unwrap();
        x.finish().unwrap();
        let csv = rate(i64::try_from(exported).unwrap(), t);
        let t = Instant::now();
        let mut x = audit::export::CsvExporter::new(std::io::sink()).unwrap();
        for r in &in_memory {
            x.write(r).unwrap();
        }
        x.finish().unwrap();
        let writer = rate(i64::try_from(in_memory.len()).unwrap(), t);
        println!(
            "| {round} | {read:.0} | {both:.0} | {records:.0} | {links:.0} | {csv:.0} | {writer:.0} |"
        );
    }
    store.close().await.unwrap();
}
