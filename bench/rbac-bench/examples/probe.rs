use std::time::Instant;
use rbac_bench::{cedar_engine::CedarEngine, fixture::*, REQUESTS, SEED};
fn main() {
    let tenants: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let fx = Fixture::generate(FixtureConfig { tenants, requests: REQUESTS, seed: SEED });
    let cedar = CedarEngine::new(&fx);
    for _ in 0..1 {
        let t = Instant::now();
        let mut n = 0;
        for r in &cedar.requests { n += usize::from(cedar.decide(r)); }
        eprintln!("cedar {tenants}: {:.0} ns/check ({n})", t.elapsed().as_nanos() as f64 / REQUESTS as f64);
    }
}
