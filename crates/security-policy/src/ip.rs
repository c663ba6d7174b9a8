//! IP allowlists and client-address resolution behind trusted proxies.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::SecurityError;

/// One allowlist entry: an IPv4 or IPv6 network in CIDR form (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpAllowlistEntry(IpNetwork);

impl IpAllowlistEntry {
    /// Parses `203.0.113.0/24`, `198.51.100.50` or `2001:db8::/32`. An IPv4-mapped IPv6
    /// network (`::ffff:192.0.2.0/120`) is its IPv4 network, and host bits are cleared
    /// (`203.0.113.7/24` is `203.0.113.0/24`, the addresses it admits): what was saved loads
    /// as it matched. New lists go through [`parse_allowlist`], which refuses host bits.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] naming the input.
    pub fn parse(s: &str) -> Result<Self, SecurityError> {
        Self::parse_written(s).map(|(entry, _)| entry)
    }

    /// The entry, and the address `s` wrote when it set host bits (an address inside the
    /// network, not its first one).
    fn parse_written(s: &str) -> Result<(Self, Option<IpAddr>), SecurityError> {
        let s = s.trim();
        let bad = || SecurityError::Invalid(format!("`{s}` is not an IP address or CIDR network"));
        let net: IpNetwork = s.parse().map_err(|_| bad())?;
        // Normalise IPv4-mapped IPv6 networks to IPv4.
        let net = match net {
            IpNetwork::V6(v6) if v6.prefix() >= 96 => match v6.ip().to_ipv4_mapped() {
                Some(v4) => IpNetwork::new(IpAddr::V4(v4), v6.prefix() - 96).map_err(|_| bad())?,
                None => net,
            },
            other => other,
        };
        let host = (net.ip() != net.network()).then(|| net.ip());
        let net = IpNetwork::new(net.network(), net.prefix()).map_err(|_| bad())?;
        Ok((Self(net), host))
    }

    /// Whether `ip` is inside the network.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(normalize(ip))
    }

    /// The network.
    #[must_use]
    pub fn network(&self) -> IpNetwork {
        self.0
    }
}

impl std::fmt::Display for IpAllowlistEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for IpAllowlistEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpAllowlistEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is treated as the IPv4 address.
#[must_use]
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The result of an allowlist check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpDecision {
    /// The list is empty: everyone is allowed.
    AllowedNoList,
    /// Inside an entry.
    Allowed,
    /// Outside every entry.
    Denied,
}

impl IpDecision {
    /// Whether the address may proceed.
    #[must_use]
    pub const fn is_allowed(self) -> bool {
        !matches!(self, IpDecision::Denied)
    }
}

/// Checks `ip` against `list`; an empty list allows everyone.
#[must_use]
pub fn check_ip(list: &[IpAllowlistEntry], ip: IpAddr) -> IpDecision {
    if list.is_empty() {
        IpDecision::AllowedNoList
    } else if list.iter().any(|e| e.contains(ip)) {
        IpDecision::Allowed
    } else {
        IpDecision::Denied
    }
}

/// Whether a person may act on their own account (sign in, change their password or second
/// factor) from `ip`: when at least one of their organizations' allowlists admits it (an empty
/// list admits everyone), or they belong to none. A phished password used from an address
/// none of the person's organizations admit opens nothing.
#[must_use]
pub fn admitted_by_any<'a>(
    lists: impl IntoIterator<Item = &'a [IpAllowlistEntry]>,
    ip: IpAddr,
) -> bool {
    let mut none = true;
    for list in lists {
        none = false;
        if check_ip(list, ip).is_allowed() {
            return true;
        }
    }
    none
}

/// The client address: the socket peer, unless it is a trusted proxy, in which case
/// the right-most `X-Forwarded-For` hop that is not itself a trusted proxy.
///
/// `forwarded_for` is every `X-Forwarded-For` line of the request joined with commas, in
/// order: a proxy that adds a line of its own (rather than appending to the client's) must
/// not leave the client's forged line as the only one read. A hop may carry a port
/// (`198.51.100.7:4711`, `[2001:db8::1]:4711`) or brackets (`[2001:db8::1]`); empty hops are
/// skipped. A hop that is no
/// address at all, where the walk needs it, fails closed: the unspecified address
/// `0.0.0.0`, which only an empty allowlist or an entry covering `0.0.0.0/8` admits, rather
/// than the proxy's own (often an internal network an allowlist names).
#[must_use]
pub fn client_ip(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted_proxies: &[IpAllowlistEntry],
) -> IpAddr {
    let peer = normalize(peer);
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|p| p.contains(ip));
    if !trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for hop in header.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
        let parsed = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            .or_else(|| {
                hop.strip_prefix('[')?
                    .strip_suffix(']')?
                    .parse::<std::net::Ipv6Addr>()
                    .ok()
                    .map(IpAddr::V6)
            });
        let Some(ip) = parsed else {
            return IpAddr::from([0, 0, 0, 0]);
        };
        let ip = normalize(ip);
        if !trusted(ip) {
            return ip;
        }
        last = ip;
    }
    last
}

/// Entries at most in one allowlist (an organization's, or the trusted proxies).
pub const MAX_ALLOWLIST_ENTRIES: usize = 1_000;

/// Parses a whole allowlist as written by a person: at most [`MAX_ALLOWLIST_ENTRIES`]
/// entries, none twice, none with host bits set (`10.0.0.5/24` is refused, naming
/// `10.0.0.0/24` and `10.0.0.5/32`, rather than guessed at).
///
/// # Errors
/// [`SecurityError::Invalid`] naming the first bad entry.
pub fn parse_allowlist(entries: &[String]) -> Result<Vec<IpAllowlistEntry>, SecurityError> {
    if entries.len() > MAX_ALLOWLIST_ENTRIES {
        return Err(SecurityError::Invalid(format!(
            "an allowlist holds at most {MAX_ALLOWLIST_ENTRIES} entries; {} were given",
            entries.len()
        )));
    }
    let mut out: Vec<IpAllowlistEntry> = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for e in entries {
        let (parsed, host) = IpAllowlistEntry::parse_written(e)?;
        if let Some(address) = host {
            let one = if address.is_ipv4() { 32 } else { 128 };
            return Err(SecurityError::Invalid(format!(
                "`{}` has host bits set: write the network `{parsed}`, or `{address}/{one}` for the one address",
                e.trim()
            )));
        }
        if !seen.insert(parsed) {
            return Err(SecurityError::Invalid(format!(
                "`{}` is listed twice",
                e.trim()
            )));
        }
        out.push(parsed);
    }
    Ok(out)
}

/// The longest label of an allowlist entry, in characters.
pub const MAX_ALLOWLIST_LABEL_CHARS: usize = 64;

/// A person's label for an allowlist entry (the guide's "Office network", "VPN", "Home
/// office"), trimmed; empty is no label. At most [`MAX_ALLOWLIST_LABEL_CHARS`] characters,
/// none of them a control character, a bidirectional mark or override, or a zero-width
/// character (a label is shown next to the network it names and must not rearrange it).
///
/// # Errors
/// [`SecurityError::Invalid`] for a label too long or with such a character.
pub fn parse_allowlist_label(label: &str) -> Result<Option<String>, SecurityError> {
    let label = label.trim();
    if label.is_empty() {
        return Ok(None);
    }
    if label.chars().count() > MAX_ALLOWLIST_LABEL_CHARS {
        return Err(SecurityError::Invalid(format!(
            "an allowlist label is at most {MAX_ALLOWLIST_LABEL_CHARS} characters"
        )));
    }
    // Bidirectional marks, embeddings, overrides and isolates, and zero-width characters.
    let bidi = |c: char| matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
    if label.chars().any(|c| c.is_control() || bidi(c)) {
        return Err(SecurityError::Invalid(
            "an allowlist label holds no control, bidirectional formatting or zero-width characters"
                .into(),
        ));
    }
    Ok(Some(label.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_trimmed_short_and_plain() {
        assert_eq!(
            parse_allowlist_label("  Office network ")
                .unwrap()
                .as_deref(),
            Some("Office network")
        );
        assert_eq!(parse_allowlist_label("   ").unwrap(), None);
        assert!(parse_allowlist_label(&"x".repeat(64)).is_ok());
        assert!(parse_allowlist_label(&"x".repeat(65)).is_err());
        assert!(
            parse_allowlist_label(&"é".repeat(64)).is_ok(),
            "characters, not bytes"
        );
        assert!(parse_allowlist_label("VPN\nAdmin").is_err());
        assert!(parse_allowlist_label("VPN\u{202e}").is_err());
        assert!(parse_allowlist_label("V\u{200b}PN").is_err());
        assert!(parse_allowlist_label("VPN\u{061c}").is_err());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(entries: &[&str]) -> Vec<IpAllowlistEntry> {
        parse_allowlist(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn one_admitting_organization_is_enough_and_none_admits_all() {
        let office = list(&["203.0.113.0/24"]);
        let lab = list(&["198.51.100.0/24"]);
        let home = ip("192.0.2.7");
        assert!(admitted_by_any([], home), "no organization, no list");
        assert!(!admitted_by_any([&office[..]], home));
        assert!(!admitted_by_any([&office[..], &lab[..]], home));
        assert!(
            admitted_by_any([&office[..], &[][..]], home),
            "an empty list admits"
        );
        assert!(admitted_by_any([&office[..], &lab[..]], ip("198.51.100.9")));
    }

    #[test]
    fn guide_example() {
        let l = list(&["203.0.113.0/24", "198.51.100.50", "192.0.2.100"]);
        assert_eq!(check_ip(&l, ip("203.0.113.77")), IpDecision::Allowed);
        assert_eq!(check_ip(&l, ip("198.51.100.50")), IpDecision::Allowed);
        assert_eq!(check_ip(&l, ip("198.51.100.51")), IpDecision::Denied);
        assert_eq!(check_ip(&[], ip("8.8.8.8")), IpDecision::AllowedNoList);
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let l = list(&["2001:db8::/32", "192.0.2.0/24"]);
        assert!(check_ip(&l, ip("2001:db8::1")).is_allowed());
        assert!(check_ip(&l, ip("::ffff:192.0.2.9")).is_allowed());
        assert!(!check_ip(&l, ip("::ffff:192.0.3.9")).is_allowed());
        let mapped = list(&["::ffff:10.0.0.0/104"]);
        assert!(check_ip(&mapped, ip("10.1.2.3")).is_allowed());
    }

    #[test]
    fn bad_entries_are_named() {
        let err = parse_allowlist(&["10.0.0.0/33".to_string()]).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/33"));
        assert!(parse_allowlist(&["nonsense".to_string()]).is_err());
        assert!(parse_allowlist(&["10.0.0.1".to_string(), "10.0.0.1/32".to_string()]).is_err());
    }

    #[test]
    fn host_bits_are_refused_in_a_new_list_and_cleared_in_a_saved_one() {
        let err = parse_allowlist(&["203.0.113.7/24".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`203.0.113.0/24`") && err.contains("`203.0.113.7/32`"),
            "{err}"
        );
        let err = parse_allowlist(&["::ffff:10.0.0.5/120".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`10.0.0.0/24`") && err.contains("`10.0.0.5/32`"),
            "{err}"
        );
        let err = parse_allowlist(&["2001:db8::1/64".to_string()]).unwrap_err();
        assert!(err.to_string().contains("`2001:db8::/64`"), "{err}");
        // What an earlier version saved loads as the network it matched.
        let saved: IpAllowlistEntry = serde_json::from_str("\"203.0.113.7/24\"").unwrap();
        assert_eq!(saved.to_string(), "203.0.113.0/24");
        assert!(saved.contains(ip("203.0.113.200")));
        assert!(!saved.contains(ip("203.0.114.1")));
        // The same network written two ways is one entry.
        let err = parse_allowlist(&["10.0.0.0/8".to_string(), "::ffff:10.0.0.0/104".to_string()])
            .unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn an_allowlist_is_bounded() {
        let most: Vec<String> = (0..MAX_ALLOWLIST_ENTRIES)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        assert_eq!(parse_allowlist(&most).unwrap().len(), MAX_ALLOWLIST_ENTRIES);
        let mut over = most;
        over.push("192.0.2.1".to_string());
        let err = parse_allowlist(&over).unwrap_err().to_string();
        assert!(err.contains("at most 1000 entries"), "{err}");
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxies = list(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.5"), Some("1.2.3.4"), &proxies),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("1.2.3.4, 198.51.100.7"), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                Some("1.2.3.4, 198.51.100.7, 10.0.0.9"),
                &proxies
            ),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), None, &proxies), ip("10.0.0.2"));
        // Garbage where the client's address should be fails closed, not to the proxy.
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("garbage"), &proxies),
            ip("0.0.0.0")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("1.2.3.4, unknown, 10.0.0.9"), &proxies),
            ip("0.0.0.0")
        );
        // Garbage the client wrote before the first untrusted hop is never read.
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("garbage, 198.51.100.7"), &proxies),
            ip("198.51.100.7")
        );
        // Ports, as some proxies write them, and empty hops.
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("198.51.100.7:4711, "), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("[2001:db8::1]:4711"), &proxies),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("[2001:db8::1]"), &proxies),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some(""), &proxies),
            ip("10.0.0.2")
        );
    }
}
