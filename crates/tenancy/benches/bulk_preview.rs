//! Parsing and checking a 10,000-row bulk invitation CSV (target ≤ 200 ms), against a bare
//! `csv` read of the same bytes as the in-run baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use criterion::{Criterion, criterion_group, criterion_main};

fn file(rows: usize) -> Vec<u8> {
    let mut s = String::from("\u{feff}email,role,name\n");
    for i in 0..rows {
        let role = if i % 10 == 0 { "admin" } else { "user" };
        s.push_str(&format!(
            "person{i}@company.example,{role},Person Number {i}\n"
        ));
    }
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let bytes = file(10_000);
    let mut g = c.benchmark_group("bulk_preview_10k_rows");
    g.sample_size(20);
    g.bench_function("baseline_csv_read", |b| {
        b.iter(|| {
            let mut rd = csv::Reader::from_reader(&bytes[..]);
            rd.records().filter_map(Result::ok).count()
        })
    });
    g.bench_function("tenancy_bulk_parse", |b| {
        b.iter(|| tenancy::bulk::parse(&bytes).unwrap().len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
