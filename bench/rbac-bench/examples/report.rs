//! Prints the figures of the last `cargo bench` run: median ns per check per engine and size.
//!
//! Reads criterion's `target/criterion/<engine>/<tenants>/new/{estimates,benchmark}.json`;
//! run `cargo bench` first, then `cargo run --release --example report`.

use std::path::{Path, PathBuf};

use serde_json::Value;

const ENGINES: [&str; 4] = [
    "rbac-core",
    "rbac-core-sequential",
    "cedar-policy",
    "casbin",
];
const SIZES: [&str; 2] = ["100", "10000"];

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Median, lower and upper bound of the median, in ns per check.
fn ns_per_check(dir: &Path) -> Option<(f64, f64, f64)> {
    let est = read(&dir.join("new/estimates.json"))?;
    let bench = read(&dir.join("new/benchmark.json"))?;
    let elements = bench["throughput"]["Elements"].as_f64()?;
    let median = &est["median"];
    Some((
        median["point_estimate"].as_f64()? / elements,
        median["confidence_interval"]["lower_bound"].as_f64()? / elements,
        median["confidence_interval"]["upper_bound"].as_f64()? / elements,
    ))
}

fn main() {
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion"));
    let mut medians = std::collections::HashMap::new();
    println!("| engine | tenants | median ns/check | 95% CI of the median |");
    println!("|---|---:|---:|---|");
    for engine in ENGINES {
        for size in SIZES {
            match ns_per_check(&root.join(engine).join(size)) {
                Some((m, lo, hi)) => {
                    println!("| {engine} | {size} | {m:.1} | {lo:.1} to {hi:.1} |");
                    medians.insert((engine, size), m);
                }
                None => println!("| {engine} | {size} | not measured | |"),
            }
        }
    }
    println!();
    for size in SIZES {
        for other in ["cedar-policy", "casbin"] {
            if let (Some(o), Some(r)) = (
                medians.get(&(other, size)),
                medians.get(&("rbac-core", size)),
            ) {
                println!("{other} / rbac-core at {size} tenants: {:.0}x", o / r);
            }
        }
    }
    for engine in ["rbac-core", "rbac-core-sequential"] {
        if let (Some(big), Some(small)) = (
            medians.get(&(engine, "10000")),
            medians.get(&(engine, "100")),
        ) {
            println!("{engine} 10000 / 100 tenants: {:.2}x", big / small);
        }
    }
}
