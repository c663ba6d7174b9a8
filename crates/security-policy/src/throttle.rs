//! Brute-force throttling of logins per account: too many failures in a window lock the account's
//! password logins for a while.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The throttling rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginThrottlePolicy {
    /// Failures allowed within the window before the lock.
    pub max_failures: u32,
    /// Length of the counting window, in minutes.
    pub window_minutes: u32,
    /// Length of the lock, in minutes.
    pub lockout_minutes: u32,
}

impl Default for LoginThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window_minutes: 15,
            lockout_minutes: 15,
        }
    }
}

/// What is remembered about an account's recent failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// Failures counted in the current window.
    pub failures: u32,
    /// Start of the current window.
    pub window_start: DateTime<Utc>,
    /// Password logins are refused strictly before this instant.
    pub locked_until: Option<DateTime<Utc>>,
}

/// When the account is locked at `now`, the instant the lock ends.
#[must_use]
pub fn locked_until(state: Option<&ThrottleState>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    state
        .and_then(|s| s.locked_until)
        .filter(|until| now < *until)
}

/// The state after one more failure at `now`. A failure while a lock holds leaves the lock as
/// it is: a request checked before the lock began (and finishing after it) neither lifts it
/// nor extends it.
#[must_use]
pub fn after_failure(
    policy: &LoginThrottlePolicy,
    state: Option<&ThrottleState>,
    now: DateTime<Utc>,
) -> ThrottleState {
    let window = Duration::minutes(i64::from(policy.window_minutes));
    let fresh = ThrottleState {
        failures: 0,
        window_start: now,
        locked_until: None,
    };
    let mut s = match state {
        Some(s) if locked_until(Some(s), now).is_some() => return *s,
        Some(s) if s.locked_until.is_none() && now < s.window_start + window => *s,
        _ => fresh,
    };
    s.failures += 1;
    if s.failures >= policy.max_failures {
        s.locked_until = Some(now + Duration::minutes(i64::from(policy.lockout_minutes)));
    }
    s
}

/// Wrong passwords a familiar address (one the person signed in from recently) may still
/// give while the account is locked, before the lock holds for it too.
pub const FAMILIAR_FAILURES_DURING_LOCK: u32 = 5;

/// The state after one more failure at `now` from a familiar address: while a lock holds it is
/// counted (the lock itself neither lifted nor extended), so that familiar addresses run out
/// of their allowance ([`admits_familiar`]); otherwise as [`after_failure`].
#[must_use]
pub fn after_familiar_failure(
    policy: &LoginThrottlePolicy,
    state: Option<&ThrottleState>,
    now: DateTime<Utc>,
) -> ThrottleState {
    match state {
        Some(s) if locked_until(Some(s), now).is_some() => ThrottleState {
            failures: s.failures.saturating_add(1),
            ..*s
        },
        _ => after_failure(policy, state, now),
    }
}

/// [`after_familiar_failure`] for a failure from a familiar address, else [`after_failure`].
#[must_use]
pub fn after_failure_from(
    policy: &LoginThrottlePolicy,
    state: Option<&ThrottleState>,
    now: DateTime<Utc>,
    familiar_address: bool,
) -> ThrottleState {
    if familiar_address {
        after_familiar_failure(policy, state, now)
    } else {
        after_failure(policy, state, now)
    }
}

/// Whether a lock holding at `now` still lets familiar addresses try a password: until they
/// have given [`FAMILIAR_FAILURES_DURING_LOCK`] wrong ones during it. Someone who locks an
/// account from elsewhere so keeps out only the addresses its owner has not signed in from;
/// someone at a familiar address (a shared office network) gets that many more guesses per
/// lock, no more.
#[must_use]
pub fn admits_familiar(
    policy: &LoginThrottlePolicy,
    state: Option<&ThrottleState>,
    now: DateTime<Utc>,
) -> bool {
    state.is_some_and(|s| {
        locked_until(Some(s), now).is_some()
            && s.failures
                < policy
                    .max_failures
                    .saturating_add(FAMILIAR_FAILURES_DURING_LOCK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_addresses_keep_a_small_allowance_during_a_lock() {
        let p = LoginThrottlePolicy {
            max_failures: 3,
            window_minutes: 15,
            lockout_minutes: 10,
        };
        let mut s = None;
        for i in 0..3 {
            assert!(!admits_familiar(&p, s.as_ref(), t(i)), "not locked yet");
            s = Some(after_failure(&p, s.as_ref(), t(i)));
        }
        let locked = s.unwrap();
        assert_eq!(locked_until(Some(&locked), t(3)), Some(t(602)));
        // Failures from elsewhere during the lock change nothing.
        assert_eq!(after_failure(&p, Some(&locked), t(4)), locked);
        // A familiar address's count, without touching the lock.
        let mut f = locked;
        for i in 0..FAMILIAR_FAILURES_DURING_LOCK {
            assert!(admits_familiar(&p, Some(&f), t(10)), "failure {i}");
            f = after_familiar_failure(&p, Some(&f), t(10));
            assert_eq!(f.locked_until, locked.locked_until);
        }
        assert!(!admits_familiar(&p, Some(&f), t(10)), "allowance spent");
        // The lock ends for everyone at its end, and a new window starts.
        assert!(!admits_familiar(&p, Some(&f), t(602)));
        let after = after_familiar_failure(&p, Some(&f), t(700));
        assert_eq!((after.failures, after.locked_until), (1, None));
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn locks_at_the_limit_and_unlocks_after_the_lockout() {
        let p = LoginThrottlePolicy {
            max_failures: 3,
            window_minutes: 15,
            lockout_minutes: 10,
        };
        let mut s = None;
        for i in 0..2 {
            s = Some(after_failure(&p, s.as_ref(), t(i)));
            assert_eq!(locked_until(s.as_ref(), t(i)), None);
        }
        s = Some(after_failure(&p, s.as_ref(), t(2)));
        assert_eq!(locked_until(s.as_ref(), t(2)), Some(t(2 + 600)));
        assert_eq!(locked_until(s.as_ref(), t(2 + 599)), Some(t(602)));
        assert_eq!(
            locked_until(s.as_ref(), t(2 + 600)),
            None,
            "the lock ends exactly at its end"
        );
        // Failures of requests checked before the lock began, finishing while it holds.
        let during = after_failure(&p, s.as_ref(), t(3));
        assert_eq!(
            locked_until(Some(&during), t(3)),
            Some(t(602)),
            "a failure during the lock neither lifts nor extends it"
        );
        let after = after_failure(&p, s.as_ref(), t(700));
        assert_eq!(after.failures, 1, "a new window starts after a lock");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let p = LoginThrottlePolicy {
            max_failures: 2,
            window_minutes: 1,
            lockout_minutes: 10,
        };
        let s = after_failure(&p, None, t(0));
        let s = after_failure(&p, Some(&s), t(61));
        assert_eq!(s.failures, 1);
        assert_eq!(locked_until(Some(&s), t(61)), None);
    }
}

/// Per-address login throttling kept in memory by one server instance: failures from one
/// client address across all accounts. Bounded: at most `capacity` addresses are tracked, and
/// entries whose window and lock have passed are dropped first.
///
/// An IPv6 client is counted by its /64 network ([`client_key`]): a home or office network gets
/// at least a /64 and may pick any address in it, so counting single addresses would let one
/// client rotate past the limit. A site gets a /48 (or a /56) and could rotate across its /64s,
/// so each /48 is counted too, with [`NETWORK_FACTOR`] times the failures allowed: enough for
/// the many people of a large site, not for one client walking its networks.
#[derive(Debug)]
pub struct AddressThrottle {
    policy: LoginThrottlePolicy,
    /// The policy of a /48: the same window and lock, more failures.
    network_policy: LoginThrottlePolicy,
    capacity: usize,
    state: std::sync::Mutex<Counters>,
}

/// The failures counted per client key and per IPv6 /48.
#[derive(Debug, Default)]
struct Counters {
    clients: std::collections::HashMap<std::net::IpAddr, ThrottleState>,
    networks: std::collections::HashMap<std::net::Ipv6Addr, ThrottleState>,
}

/// How many times a client's allowance of failures an IPv6 /48 gets.
pub const NETWORK_FACTOR: u32 = 16;

/// The /48 an IPv6 client key lies in; none for IPv4.
fn network_key(key: std::net::IpAddr) -> Option<std::net::Ipv6Addr> {
    match key {
        std::net::IpAddr::V6(v6) => Some((u128::from(v6) & !(u128::MAX >> 48)).into()),
        std::net::IpAddr::V4(_) => None,
    }
}

/// Counts a failure at `now` under `key`, keeping at most `capacity` keys: entries whose window
/// and lock have passed go first, then the oldest window.
fn count<K: Copy + Eq + std::hash::Hash>(
    map: &mut std::collections::HashMap<K, ThrottleState>,
    key: K,
    policy: &LoginThrottlePolicy,
    capacity: usize,
    now: DateTime<Utc>,
) {
    if map.len() >= capacity && !map.contains_key(&key) {
        let window = Duration::minutes(i64::from(policy.window_minutes));
        map.retain(|_, s| s.window_start + window > now || s.locked_until.is_some_and(|u| u > now));
        if map.len() >= capacity {
            // Still full of live entries: rather than grow, forget the unlocked one with the
            // oldest window, or else the lock that ends soonest (locks are what a flood of new
            // keys would otherwise push out first).
            let victim = map
                .iter()
                .filter(|(_, s)| locked_until(Some(s), now).is_none())
                .min_by_key(|(_, s)| s.window_start)
                .or_else(|| map.iter().min_by_key(|(_, s)| s.locked_until))
                .map(|(k, _)| *k);
            if let Some(v) = victim {
                map.remove(&v);
            }
        }
    }
    let next = after_failure(policy, map.get(&key), now);
    map.insert(key, next);
}

impl AddressThrottle {
    /// A throttle with `policy`, tracking at most `capacity` addresses (and as many /48s).
    #[must_use]
    pub fn new(policy: LoginThrottlePolicy, capacity: usize) -> Self {
        let network_policy = LoginThrottlePolicy {
            max_failures: policy.max_failures.saturating_mul(NETWORK_FACTOR),
            ..policy
        };
        Self {
            policy,
            network_policy,
            capacity: capacity.max(1),
            state: std::sync::Mutex::default(),
        }
    }

    /// When `ip` is locked at `now` (its own key, or its /48), the instant the lock ends.
    #[must_use]
    pub fn locked_until(&self, ip: std::net::IpAddr, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let c = self.state.lock().ok()?;
        let key = client_key(ip);
        let own = locked_until(c.clients.get(&key), now);
        let network = network_key(key).and_then(|n| locked_until(c.networks.get(&n), now));
        own.max(network)
    }

    /// Counts one failed login from `ip` at `now`.
    pub fn record_failure(&self, ip: std::net::IpAddr, now: DateTime<Utc>) {
        let Ok(mut c) = self.state.lock() else {
            return;
        };
        let key = client_key(ip);
        count(&mut c.clients, key, &self.policy, self.capacity, now);
        if let Some(n) = network_key(key) {
            count(&mut c.networks, n, &self.network_policy, self.capacity, now);
        }
    }
}

/// Failed logins per account name (an email) kept in memory by one server instance, for the
/// names that name no account: such a name is locked after as many failures, for as long, as
/// an account would be, so that a lock's answer (429 rather than 401) does not tell an account
/// that exists from one that does not. Names are kept as their SHA-256 (trimmed, in lower
/// case). Bounded: at most `capacity` names, those whose window and lock have passed dropped
/// first.
#[derive(Debug)]
pub struct NameThrottle {
    policy: LoginThrottlePolicy,
    capacity: usize,
    state: std::sync::Mutex<std::collections::HashMap<[u8; 32], ThrottleState>>,
}

impl NameThrottle {
    /// A throttle with `policy` (an account's), tracking at most `capacity` names.
    #[must_use]
    pub fn new(policy: LoginThrottlePolicy, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            state: std::sync::Mutex::default(),
        }
    }

    fn key(name: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(name.trim().to_lowercase().as_bytes()).into()
    }

    /// When `name` is locked at `now`, the instant the lock ends.
    #[must_use]
    pub fn locked_until(&self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let names = self.state.lock().ok()?;
        locked_until(names.get(&Self::key(name)), now)
    }

    /// Counts one failed login of `name` at `now`.
    pub fn record_failure(&self, name: &str, now: DateTime<Utc>) {
        if let Ok(mut names) = self.state.lock() {
            count(
                &mut names,
                Self::key(name),
                &self.policy,
                self.capacity,
                now,
            );
        }
    }
}

/// Which refusals during a lock get an audit record: the first of each account from each client
/// address while one lock holds. Decided without looking at the password, so the time a
/// refusal takes (a record written or not) tells nothing of whether the password was right;
/// and the guesses that keep coming during a lock do not flood the person's organizations'
/// logs. Kept in memory by one server instance, as the SHA-256 of each key, bounded.
#[derive(Debug)]
pub struct RefusalMarks {
    capacity: usize,
    state: std::sync::Mutex<Marks>,
}

/// The refusals marked per account and address, and how many per account during its lock.
#[derive(Debug, Default)]
struct Marks {
    clients: std::collections::HashMap<[u8; 32], DateTime<Utc>>,
    accounts: std::collections::HashMap<[u8; 32], (DateTime<Utc>, u32)>,
}

/// How many refusals of one account are recorded during one lock, from as many addresses: a
/// caller with many addresses (a botnet, an IPv6 network) gets no more records than that.
pub const REFUSALS_RECORDED_PER_LOCK: u32 = 16;

/// Keeps `map` within `capacity` before a new key goes in: entries whose lock has ended go
/// first, then the one ending soonest.
fn make_room<V>(
    map: &mut std::collections::HashMap<[u8; 32], V>,
    capacity: usize,
    now: DateTime<Utc>,
    until: impl Fn(&V) -> DateTime<Utc>,
) {
    if map.len() < capacity {
        return;
    }
    map.retain(|_, v| until(v) > now);
    if map.len() >= capacity
        && let Some(soonest) = map.iter().min_by_key(|(_, v)| until(v)).map(|(k, _)| *k)
    {
        map.remove(&soonest);
    }
}

impl RefusalMarks {
    /// Marks for at most `capacity` keys.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: std::sync::Mutex::default(),
        }
    }

    /// Whether this refusal of `account` from `client` (a client key) is the first from there
    /// during the lock that ends at `until`, and one of the first
    /// [`REFUSALS_RECORDED_PER_LOCK`] of the account during it; marks it. When full, marks
    /// whose lock has ended go first, then the one ending soonest.
    pub fn first(
        &self,
        account: &str,
        client: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        use sha2::Digest;
        let a: [u8; 32] = sha2::Sha256::digest(account.as_bytes()).into();
        let c: [u8; 32] = sha2::Sha256::digest(format!("{account}|{client}").as_bytes()).into();
        let Ok(mut marks) = self.state.lock() else {
            return true;
        };
        if marks.clients.get(&c) == Some(&until) {
            return false;
        }
        let recorded = match marks.accounts.get(&a) {
            Some((u, n)) if *u == until => *n,
            _ => 0,
        };
        if recorded >= REFUSALS_RECORDED_PER_LOCK {
            return false;
        }
        if !marks.clients.contains_key(&c) {
            make_room(&mut marks.clients, self.capacity, now, |u| *u);
        }
        marks.clients.insert(c, until);
        if !marks.accounts.contains_key(&a) {
            make_room(&mut marks.accounts, self.capacity, now, |(u, _)| *u);
        }
        marks.accounts.insert(a, (until, recorded + 1));
        true
    }

    /// Takes back the mark [`first`](Self::first) just set for this refusal, whose record could
    /// not be written: the next refusal from `client` during the lock is recorded instead.
    pub fn unmark(&self, account: &str, client: &str, until: DateTime<Utc>) {
        use sha2::Digest;
        let a: [u8; 32] = sha2::Sha256::digest(account.as_bytes()).into();
        let c: [u8; 32] = sha2::Sha256::digest(format!("{account}|{client}").as_bytes()).into();
        let Ok(mut marks) = self.state.lock() else {
            return;
        };
        if marks.clients.get(&c) == Some(&until) {
            marks.clients.remove(&c);
            if let Some((u, n)) = marks.accounts.get_mut(&a)
                && *u == until
            {
                *n = n.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn a_refusal_left_unrecorded_gives_its_mark_back() {
        let at = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let marks = RefusalMarks::new(100);
        for _ in 0..REFUSALS_RECORDED_PER_LOCK * 2 {
            assert!(marks.first("usr_1", "203.0.113.9", at(900), at(0)));
            marks.unmark("usr_1", "203.0.113.9", at(900));
        }
        assert!(marks.first("usr_1", "203.0.113.9", at(900), at(1)));
        assert!(!marks.first("usr_1", "203.0.113.9", at(900), at(2)));
        // Another lock's mark is not taken back.
        marks.unmark("usr_1", "203.0.113.9", at(901));
        assert!(!marks.first("usr_1", "203.0.113.9", at(900), at(3)));
    }

    #[test]
    fn only_the_first_refusal_of_a_lock_is_marked() {
        let at = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let marks = RefusalMarks::new(100);
        assert!(marks.first("usr_1", "203.0.113.9", at(900), at(0)));
        assert!(!marks.first("usr_1", "203.0.113.9", at(900), at(1)));
        assert!(
            marks.first("usr_1", "198.51.100.7", at(900), at(1)),
            "another address"
        );
        assert!(
            marks.first("usr_2", "203.0.113.9", at(900), at(1)),
            "another account"
        );
        assert!(
            marks.first("usr_1", "203.0.113.9", at(1_900), at(1_000)),
            "the next lock"
        );
        // However many addresses, an account gets so many records per lock.
        let recorded = (0..100)
            .filter(|i| marks.first("usr_3", &format!("192.0.2.{i}"), at(900), at(2)))
            .count();
        assert_eq!(recorded, REFUSALS_RECORDED_PER_LOCK as usize);
        let small = RefusalMarks::new(3);
        for i in 0..100 {
            assert!(small.first(&format!("usr_{i}"), "x", at(900 + i), at(0)));
        }
        let m = small.state.lock().unwrap();
        assert!(m.clients.len() <= 3 && m.accounts.len() <= 3);
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn a_name_locks_like_an_account_and_only_that_name() {
        let p = LoginThrottlePolicy {
            max_failures: 3,
            window_minutes: 15,
            lockout_minutes: 10,
        };
        let t = NameThrottle::new(p, 100);
        let at = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        for i in 0..2 {
            t.record_failure("nobody@example.com", at(i));
            assert_eq!(t.locked_until("nobody@example.com", at(i)), None);
        }
        t.record_failure(" Nobody@Example.com", at(2));
        assert_eq!(
            t.locked_until("NOBODY@example.com ", at(3)),
            Some(at(602)),
            "the same name however it is written"
        );
        assert_eq!(t.locked_until("somebody@example.com", at(3)), None);
        assert_eq!(t.locked_until("nobody@example.com", at(602)), None);
    }

    #[test]
    fn it_keeps_at_most_its_capacity() {
        let t = NameThrottle::new(LoginThrottlePolicy::default(), 10);
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for i in 0..1_000 {
            t.record_failure(&format!("n{i}@example.com"), now);
        }
        assert!(t.state.lock().unwrap().len() <= 10);
    }
}

/// The key a client address is counted under: IPv4 as it is, IPv6 as its /64 network. An
/// IPv4 client seen through a NAT64 or SIIT translator (the well-known prefix `64:ff9b::/96`,
/// RFC 6052) counts as its IPv4 address, as an IPv4-mapped address does: by /64, every IPv4
/// client of a server behind such a translator would share one key, and one client's
/// failures would lock out all of them.
#[must_use]
pub fn client_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    /// `64:ff9b::/96`: the top 96 bits.
    const NAT64_WELL_KNOWN: u128 = 0x0064_ff9b_u128 << 96;
    match crate::ip::normalize(ip) {
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            if bits >> 32 == NAT64_WELL_KNOWN >> 32 {
                #[allow(clippy::cast_possible_truncation, reason = "the low 32 bits")]
                return std::net::IpAddr::V4((bits as u32).into());
            }
            std::net::IpAddr::V6((bits & !u128::from(u64::MAX)).into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod address_tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn an_address_is_locked_after_its_failures_and_only_that_address() {
        let policy = LoginThrottlePolicy {
            max_failures: 3,
            window_minutes: 15,
            lockout_minutes: 15,
        };
        let t = AddressThrottle::new(policy, 2);
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let a: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        let b: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(t.locked_until(a, now), None);
            t.record_failure(mapped, now);
        }
        let until = t.locked_until(a, now).unwrap();
        assert_eq!(until, now + Duration::minutes(15));
        assert_eq!(t.locked_until(b, now), None);
        assert_eq!(t.locked_until(a, until), None, "the lock ends");
        // Capacity is respected: a third address evicts rather than grows the map.
        t.record_failure(b, now);
        t.record_failure("192.0.2.1".parse().unwrap(), now);
        assert!(t.state.lock().unwrap().clients.len() <= 2);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_network() {
        let policy = LoginThrottlePolicy {
            max_failures: 3,
            window_minutes: 15,
            lockout_minutes: 15,
        };
        let t = AddressThrottle::new(policy, 10);
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        // Three addresses of one /64, as a client picking a new one per request would.
        for a in [
            "2001:db8:1:2::1",
            "2001:db8:1:2:aaaa::7",
            "2001:db8:1:2:ffff:ffff:ffff:ffff",
        ] {
            assert_eq!(t.locked_until(a.parse().unwrap(), now), None);
            t.record_failure(a.parse().unwrap(), now);
        }
        assert!(
            t.locked_until("2001:db8:1:2::99".parse().unwrap(), now)
                .is_some()
        );
        assert_eq!(
            t.locked_until("2001:db8:1:3::1".parse().unwrap(), now),
            None,
            "the next /64 is another client"
        );
        assert_eq!(
            client_key("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7".parse::<std::net::IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_client_rotating_across_the_64s_of_its_48_is_locked_too() {
        let policy = LoginThrottlePolicy {
            max_failures: 2,
            window_minutes: 15,
            lockout_minutes: 15,
        };
        let t = AddressThrottle::new(policy, 1_000);
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let in_48 =
            |n: u32| -> std::net::IpAddr { format!("2001:db8:7:{n:x}::1").parse().unwrap() };
        // One failure from each of its /64s: no /64 reaches its two.
        for n in 0..(2 * NETWORK_FACTOR) {
            assert_eq!(t.locked_until(in_48(n), now), None, "failure {n}");
            t.record_failure(in_48(n), now);
        }
        assert!(
            t.locked_until(in_48(0xbeef), now).is_some(),
            "a fresh /64 of the same /48"
        );
        assert_eq!(
            t.locked_until("2001:db8:8::1".parse().unwrap(), now),
            None,
            "the next /48 is another site"
        );
        assert_eq!(
            t.locked_until("203.0.113.7".parse().unwrap(), now),
            None,
            "IPv4 has no /48"
        );
    }

    #[test]
    fn ipv4_clients_behind_a_nat64_translator_are_counted_apart() {
        let policy = LoginThrottlePolicy {
            max_failures: 2,
            window_minutes: 15,
            lockout_minutes: 15,
        };
        let t = AddressThrottle::new(policy, 16);
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let a: std::net::IpAddr = "64:ff9b::203.0.113.7".parse().unwrap();
        let b: std::net::IpAddr = "64:ff9b::198.51.100.1".parse().unwrap();
        assert_eq!(
            client_key(a),
            "203.0.113.7".parse::<std::net::IpAddr>().unwrap()
        );
        for _ in 0..2 {
            t.record_failure(a, now);
        }
        assert!(t.locked_until(a, now).is_some());
        assert!(
            t.locked_until("203.0.113.7".parse().unwrap(), now)
                .is_some(),
            "the same IPv4 client, seen without the translator"
        );
        assert_eq!(t.locked_until(b, now), None, "another IPv4 client");
        // Only the well-known /96: the rest of 64:ff9b::/64 is ordinary IPv6.
        assert_eq!(
            client_key("64:ff9b::1:0:0:1".parse().unwrap()),
            "64:ff9b::".parse::<std::net::IpAddr>().unwrap()
        );
    }
}
