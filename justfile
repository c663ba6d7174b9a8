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
