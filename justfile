# Conveniences on top of plain cargo; the README's commands work without just.

pg := "postgres://postgres@127.0.0.1:5432/test"

# Run the server on SQLite (./data/axie.db), creating the first Owner on first start.
run:
    cargo run

# Run the server with the enterprise guide's demo team seeded.
demo:
    AXIE_BOOTSTRAP__DEMO=true cargo run

# All tests on SQLite (and PostgreSQL when AXIE_TEST_POSTGRES_URL is set): what CI runs.
test:
    cargo test --workspace

# All tests, PostgreSQL pass included.
test-pg:
    AXIE_TEST_POSTGRES_URL={{pg}} cargo test --workspace

# Format check and clippy with warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy -p audit --no-default-features --lib -- -D warnings

# License and advisory checks (needs cargo-deny).
deny:
    cargo deny check

# Benchmarks; figures go to docs/benchmarks.md.
bench:
    cargo bench -p audit -p tenancy

# Everything CI does.
ci:
    bash .ci/run

# rbac-core vs cedar-policy vs casbin; its own workspace, so neither engine is a product dependency.
bench-rbac:
    cd bench/rbac-bench && cargo bench

# The audit log at a million events (SQLite and PostgreSQL): through the store, then over HTTP.
# `just bench-audit 10000000` for ten million: about 40 minutes for the store benchmark on both
# databases (8–9 GB of disk each), and the HTTP one as long again.
bench-audit events="1000000":
    AXIE_BENCH_EVENTS={{events}} AXIE_TEST_POSTGRES_URL={{pg}} cargo bench -p store-sea --bench audit_store
    AXIE_BENCH_EVENTS={{events}} AXIE_TEST_POSTGRES_URL={{pg}} cargo bench -p axie-server --bench audit_http

# A long schemathesis run: the end-to-end fuzzing test with 200 cases per operation and phase
# (SQLite, and PostgreSQL too when AXIE_TEST_POSTGRES_URL is set).
fuzz-api examples="200":
    AXIE_FUZZ_EXAMPLES={{examples}} cargo test -p axie-tests --test api -- fuzzing:: --nocapture --test-threads 1

# Load test: the release server on SQLite and PostgreSQL, 1,000 seeded organizations of 20
# members, wrk at 256 connections for 60 s per run, a bare actix-web hello world as the baseline.
load:
    AXIE_TEST_POSTGRES_URL={{pg}} bash bench/load/run.sh

# A quick read-load run on SQLite with a perf profile (needs perf and wrk); MODE=mix for the
# load run's mix, PG=<url> for PostgreSQL, PERF=0 for memory figures only.
profile-load:
    bash bench/load/profile.sh

# Quota check-and-increment and credit consumption through the store; metering overhead over HTTP.
bench-quota:
    AXIE_TEST_POSTGRES_URL={{pg}} cargo bench -p store-sea --bench quota
    AXIE_TEST_POSTGRES_URL={{pg}} cargo bench -p axie-server --bench metering

# Coverage-guided fuzzing, 10 minutes per target (needs a nightly toolchain and cargo-fuzz;
# the corpora in fuzz/corpus grow as it runs).
fuzz minutes="10":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd fuzz
    for t in bulk_csv ip_allowlist webhook_verify audit_canonical; do
      cargo +nightly fuzz run "$t" -- -max_total_time=$(( {{minutes}} * 60 ))
    done
