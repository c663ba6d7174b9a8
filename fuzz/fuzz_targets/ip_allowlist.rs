//! Allowlist parsing never panics; an accepted entry round-trips through its display form (and
//! an accepted list's display forms are accepted again as the same list: no host bits, no
//! duplicates), and the decision for an address agrees with a direct containment check.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use security_policy::{IpAllowlistEntry, IpDecision, check_ip, parse_allowlist};

#[derive(Arbitrary, Debug)]
struct Input {
    entries: Vec<String>,
    v4: [u8; 4],
    v6: [u8; 16],
    use_v6: bool,
}

fuzz_target!(|input: Input| {
    let Ok(list) = parse_allowlist(&input.entries) else {
        return;
    };
    for e in &list {
        let again = IpAllowlistEntry::parse(&e.to_string()).expect("display form parses");
        assert_eq!(&again, e);
    }
    let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(
        parse_allowlist(&shown).expect("an accepted list's display form is accepted"),
        list
    );
    let ip = if input.use_v6 {
        std::net::IpAddr::from(input.v6)
    } else {
        std::net::IpAddr::from(input.v4)
    };
    let inside = list.iter().any(|e| e.contains(ip));
    match check_ip(&list, ip) {
        IpDecision::AllowedNoList => assert!(list.is_empty()),
        IpDecision::Allowed => assert!(inside),
        IpDecision::Denied => assert!(!list.is_empty() && !inside),
    }
});
