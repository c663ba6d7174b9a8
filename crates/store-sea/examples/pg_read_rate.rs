//! How fast PostgreSQL hands rows of the audit table's shape to one reader on this machine,
//! read four ways: pages through SeaORM (as the store reads them), the same pages through sqlx
//! with columns read by position, one statement for all rows, and `COPY … TO STDOUT` split into
//! fields. It bounds what an export or a verification from PostgreSQL can reach
//! (`docs/benchmarks.md`, "Audit log through the store").
//!
//! `AXIE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo run --release -p store-sea --example pg_read_rate`
//! (`ROWS`, default 200,000; `PAGE`, default 1,000). It creates, fills and drops a table of its
//! own, `read_rate_probe`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a measuring tool: failing loudly is its job"
)]

use std::time::Instant;

use futures::TryStreamExt;
use sea_orm::sqlx::postgres::PgPoolCopyExt;
use sea_orm::sqlx::{self, Row};
use sea_orm::{ConnectionTrait, Database, FromQueryResult, Statement};

/// One row, as the store's model has it.
#[derive(Debug, FromQueryResult)]
#[allow(dead_code, reason = "read to be paid for, not used")]
struct Record {
    org_id: String,
    seq: i64,
    team_id: Option<String>,
    occurred_at: i64,
    actor_type: String,
    actor_id: String,
    actor_name: String,
    action: String,
    target_type: String,
    target_id: String,
    target_name: String,
    ip: String,
    user_agent: String,
    request_id: String,
    outcome: String,
    reason: String,
    metadata: String,
    schema_version: i32,
    prev_hash: String,
    hash: String,
}

const COLUMNS: &str = "org_id, seq, team_id, occurred_at, actor_type, actor_id, actor_name, action, \
    target_type, target_id, target_name, ip, user_agent, request_id, outcome, reason, metadata, \
    schema_version, prev_hash, hash";

const ORG: &str = "org_0193a6a400007000800000000000001";

fn env_number(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let url = std::env::var("AXIE_TEST_POSTGRES_URL").expect("AXIE_TEST_POSTGRES_URL");
    let rows = env_number("ROWS", 200_000);
    let page = env_number("PAGE", 1_000);
    let db = Database::connect(&url).await.unwrap();
    db.execute_unprepared("DROP TABLE IF EXISTS read_rate_probe")
        .await
        .unwrap();
    db.execute_unprepared(
        "CREATE TABLE read_rate_probe (org_id text NOT NULL, seq bigint NOT NULL, team_id text, \
         occurred_at bigint NOT NULL, actor_type text NOT NULL, actor_id text NOT NULL, \
         actor_name text NOT NULL, action text NOT NULL, target_type text NOT NULL, \
         target_id text NOT NULL, target_name text NOT NULL, ip text NOT NULL, \
         user_agent text NOT NULL, request_id text NOT NULL, outcome text NOT NULL, \
         reason text NOT NULL, metadata text NOT NULL, schema_version integer NOT NULL, \
         prev_hash text NOT NULL, hash text NOT NULL, PRIMARY KEY (org_id, seq))",
    )
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO read_rate_probe SELECT '{ORG}', g, NULL, 1763893815000000 + g, 'user', \
         'usr_0193a6a4000070008000000000000aa', 'Sarah Owner', 'chat_interface.updated', \
         'chat_interface', 'ast_0193a6a4000070008000000000000bb', 'Customer Support', \
         '203.0.113.5', 'Mozilla/5.0 (X11; Linux x86_64)', 'req-' || g, 'success', '', \
         '{{\"fields\":[\"name\"]}}', 1, md5(g::text) || md5((g + 1)::text), \
         md5((g + 2)::text) || md5((g + 3)::text) FROM generate_series(1, {rows}) g"
    ))
    .await
    .unwrap();
    db.execute_unprepared("ANALYZE read_rate_probe")
        .await
        .unwrap();
    let pool = db.get_postgres_connection_pool();
    let paged = format!(
        "SELECT {COLUMNS} FROM read_rate_probe WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    println!(
        "| round | SeaORM pages | sqlx pages, by position | one statement, one column | COPY, split into fields |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for round in 1..=3 {
        let rate = |n: usize, t: Instant| n as f64 / t.elapsed().as_secs_f64();

        let t = Instant::now();
        let (mut after, mut n) = (0i64, 0usize);
        loop {
            let got = Record::find_by_statement(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                paged.clone(),
                [ORG.into(), after.into(), page.into()],
            ))
            .all(&db)
            .await
            .unwrap();
            let Some(last) = got.last() else { break };
            after = last.seq;
            n += got.len();
        }
        let sea = rate(n, t);

        let t = Instant::now();
        let (mut after, mut n) = (0i64, 0usize);
        loop {
            let got: Vec<Record> = sqlx::query(sqlx::AssertSqlSafe(paged.clone()))
                .bind(ORG)
                .bind(after)
                .bind(page)
                .fetch(pool)
                .map_ok(|r| Record {
                    org_id: r.get(0),
                    seq: r.get(1),
                    team_id: r.get(2),
                    occurred_at: r.get(3),
                    actor_type: r.get(4),
                    actor_id: r.get(5),
                    actor_name: r.get(6),
                    action: r.get(7),
                    target_type: r.get(8),
                    target_id: r.get(9),
                    target_name: r.get(10),
                    ip: r.get(11),
                    user_agent: r.get(12),
                    request_id: r.get(13),
                    outcome: r.get(14),
                    reason: r.get(15),
                    metadata: r.get(16),
                    schema_version: r.get(17),
                    prev_hash: r.get(18),
                    hash: r.get(19),
                })
                .try_collect()
                .await
                .unwrap();
            let Some(last) = got.last() else { break };
            after = last.seq;
            n += got.len();
        }
        let by_position = rate(n, t);

        let t = Instant::now();
        let n: usize = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM read_rate_probe WHERE org_id = $1 ORDER BY seq"
        )))
        .bind(ORG)
        .fetch(pool)
        .try_fold(0usize, |n, r| async move {
            let _hash: &str = r.try_get(19)?;
            Ok(n + 1)
        })
        .await
        .unwrap();
        let one_statement = rate(n, t);

        let t = Instant::now();
        let mut stream = pool
            .copy_out_raw(&format!(
                "COPY (SELECT {COLUMNS} FROM read_rate_probe WHERE org_id = '{ORG}' ORDER BY seq) TO STDOUT"
            ))
            .await
            .unwrap();
        let (mut n, mut fields, mut buf) = (0usize, 0usize, Vec::new());
        while let Some(chunk) = stream.try_next().await.unwrap() {
            buf.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
                fields += buf[start..start + end].split(|b| *b == b'\t').count();
                n += 1;
                start += end + 1;
            }
            buf.drain(..start);
        }
        assert_eq!(fields, n * 20, "twenty fields a row");
        let copy = rate(n, t);
        println!("| {round} | {sea:.0} | {by_position:.0} | {one_statement:.0} | {copy:.0} |");
    }
    db.execute_unprepared("DROP TABLE read_rate_probe")
        .await
        .unwrap();
}
