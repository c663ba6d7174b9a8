//! The bulk-invitation CSV parser never panics, and what it accepts is consistent: at most
//! MAX_ROWS rows, each valid row has a parseable email, and no two valid rows share an email.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = tenancy::bulk::parse(data) {
        assert!(rows.len() <= tenancy::bulk::MAX_ROWS);
        let mut seen = std::collections::HashSet::new();
        for r in rows.iter().filter(|r| r.problem.is_none()) {
            let email = tenancy::Email::parse(&r.email).expect("a valid row has a valid email");
            assert!(seen.insert(email.as_str().to_owned()), "duplicate accepted: {}", r.email);
        }
    }
});
