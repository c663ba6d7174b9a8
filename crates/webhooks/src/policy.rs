//! Pure delivery rules: the retry schedule, what a response means, and which
//! destinations are refused (SSRF protection).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::WebhookError;

/// The guide's schedule: attempt 1 at once, then 2, 4, 8 and 16 seconds after the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all (guide: 5).
    pub max_attempts: u32,
    /// Delay before attempt 2, doubled each time (guide: 2 s).
    pub base_delay_ms: u64,
    /// Consecutive failed deliveries after which an endpoint is disabled (0: never; a 410
    /// Gone always disables it).
    pub disable_after_failures: u32,
    /// Up to this share of a scheduled delay (in percent, at most 100) is added to it, a
    /// different share for each delivery, so that deliveries that failed together (a receiver
    /// that was down) do not all come back in the same instant. A receiver's `Retry-After` is
    /// kept as it is.
    #[serde(default = "default_jitter_percent")]
    pub jitter_percent: u32,
}

fn default_jitter_percent() -> u32 {
    10
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay_ms: 2_000,
            disable_after_failures: 20,
            jitter_percent: default_jitter_percent(),
        }
    }
}

/// The longest wait between two attempts, whatever the schedule or the receiver asks.
pub const MAX_RETRY_DELAY_MS: u64 = 24 * 3_600_000;

impl RetryPolicy {
    /// Delay after failed attempt `n` (1-based) before the next, or `None` when none is left;
    /// at most [`MAX_RETRY_DELAY_MS`].
    #[must_use]
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let factor = 1u64
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u64::MAX);
        let ms = self
            .base_delay_ms
            .saturating_mul(factor)
            .min(MAX_RETRY_DELAY_MS);
        Some(Duration::milliseconds(
            i64::try_from(ms).unwrap_or(i64::MAX),
        ))
    }

    /// [`Self::delay_after`] with this policy's jitter: `key` (the delivery's id, say) picks
    /// the share added, the same for the same key and attempt. At most
    /// [`MAX_RETRY_DELAY_MS`] still.
    #[must_use]
    pub fn jittered_delay_after(&self, attempt: u32, key: u64) -> Option<Duration> {
        let delay = self.delay_after(attempt)?;
        let ms = u64::try_from(delay.num_milliseconds()).unwrap_or(0);
        let most = ms.saturating_mul(u64::from(self.jitter_percent.min(100))) / 100;
        let extra = if most == 0 {
            0
        } else {
            spread(key ^ u64::from(attempt).rotate_left(32)) % (most + 1)
        };
        let ms = ms.saturating_add(extra).min(MAX_RETRY_DELAY_MS);
        Some(Duration::milliseconds(
            i64::try_from(ms).unwrap_or(i64::MAX),
        ))
    }
}

/// SplitMix64's finaliser: neighbouring keys (ids, attempt numbers) give unrelated numbers.
fn spread(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "next", rename_all = "snake_case")]
pub enum AttemptVerdict {
    /// 2xx: done.
    Delivered,
    /// Try again at this time.
    RetryAt {
        /// When.
        at: DateTime<Utc>,
    },
    /// No attempts left.
    GiveUp,
    /// 410 Gone: the receiver asks to be removed; disable the endpoint.
    DisableEndpoint,
}

/// Decides what follows attempt number `attempt` that got `status` (`None` = no response).
/// A 429 or 503 with `Retry-After` (in seconds) waits that long (capped at one hour) instead
/// of the schedule; otherwise the wait is the schedule's with its jitter, picked by `key`
/// (see [`RetryPolicy::jittered_delay_after`]).
#[must_use]
pub fn judge(
    policy: &RetryPolicy,
    attempt: u32,
    status: Option<u16>,
    retry_after_secs: Option<u64>,
    now: DateTime<Utc>,
    key: u64,
) -> AttemptVerdict {
    match status {
        Some(s) if (200..300).contains(&s) => return AttemptVerdict::Delivered,
        Some(410) => return AttemptVerdict::DisableEndpoint,
        _ => {}
    }
    let Some(delay) = policy.jittered_delay_after(attempt, key) else {
        return AttemptVerdict::GiveUp;
    };
    let delay = match (status, retry_after_secs) {
        (Some(429 | 503), Some(secs)) => {
            Duration::seconds(i64::try_from(secs.min(3600)).unwrap_or(3600))
        }
        _ => delay,
    };
    AttemptVerdict::RetryAt { at: now + delay }
}

/// A webhook destination URL: absolute http(s), no credentials, at most 2,000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Validates the shape (the address is checked at delivery time, after resolution).
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] naming the problem.
    pub fn parse(s: &str, https_only: bool) -> Result<Self, WebhookError> {
        let s = s.trim();
        let bad = |why: &str| {
            WebhookError::Invalid(format!(
                "`{}` is not a usable webhook URL: {why}",
                s.chars().take(200).collect::<String>()
            ))
        };
        if s.len() > 2000 {
            return Err(bad("too long"));
        }
        let rest = if let Some(r) = s.strip_prefix("https://") {
            r
        } else if let Some(r) = s.strip_prefix("http://") {
            if https_only {
                return Err(bad("only https is allowed"));
            }
            r
        } else {
            return Err(bad("use http:// or https://"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty()
            || authority.contains('@')
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("no host, or credentials or spaces in it"));
        }
        Ok(Self(s.to_owned()))
    }

    /// [`Self::parse`] for a new or changed endpoint, which must also be a URL the HTTP client
    /// can read (the `url` crate's parser) and name an allowed port ([`port_allowed`]). Endpoints stored before the port rule still read back with
    /// [`Self::parse`]; the delivery worker checks their port before each attempt.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] naming the problem.
    pub fn parse_new(s: &str, https_only: bool) -> Result<Self, WebhookError> {
        let url = Self::parse(s, https_only)?;
        // HTTP clients end the host at a backslash too: one could hide the real port from
        // this check (`https://h:25\:8443/`).
        if url.0.contains('\\') {
            return Err(WebhookError::Invalid(
                "a webhook URL may not contain a backslash (it could hide the port)".into(),
            ));
        }
        // What the HTTP client cannot read would fail every delivery.
        if let Err(e) = url::Url::parse(url.as_str()) {
            return Err(WebhookError::Invalid(format!(
                "`{}` is not a usable webhook URL: {e}",
                url.0.chars().take(200).collect::<String>()
            )));
        }
        match url.port() {
            Some(p) if port_allowed(p) => Ok(url),
            Some(p) => Err(WebhookError::Invalid(format!(
                "webhooks are not sent to port {p}: use 80, 443 or a port from 1024 up"
            ))),
            None => Err(WebhookError::Invalid(
                "the URL's port is not a number from 1 to 65535".into(),
            )),
        }
    }

    /// The URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The port deliveries go to: the URL's own, or its scheme's (80, 443); `None` when the
    /// URL names one that is not a number from 1 to 65535, or is not one the HTTP client can
    /// read (a stored endpoint from before [`Self::parse_new`]'s checks).
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        // The `url` crate's reading, which is the HTTP client's (reqwest parses with it).
        url::Url::parse(&self.0)
            .ok()?
            .port_or_known_default()
            .filter(|&p| p != 0)
    }

    /// `scheme://host[:port]` only: for audit records and notices, since paths and queries
    /// of webhook URLs often carry credentials.
    #[must_use]
    pub fn host_label(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        format!(
            "{scheme}://{}",
            rest.split(['/', '?', '#', '\\']).next().unwrap_or("")
        )
    }
}

/// Whether webhooks may go to `port`: 80, 443 and every port from 1024 up. The ports below
/// 1024 are those of other protocols (mail, SSH, directory, file sharing), which a webhook
/// should never be able to reach, even on a public address.
#[must_use]
pub fn port_allowed(port: u16) -> bool {
    port == 80 || port == 443 || port >= 1024
}

/// Networks never delivered to unless allowlisted: loopback, private, link-local, CGNAT,
/// multicast, unspecified, benchmarking and documentation ranges, IPv6 unique-local,
/// link-local, site-local and discard-only, and the IPv6 ranges that carry an IPv4 address
/// to a translator or tunnel (IPv4-compatible, NAT64 well-known and local-use, 6to4, Teredo),
/// which could reach an internal IPv4 address through them.
const FORBIDDEN: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Whether delivering to `ip` is allowed: public addresses always, internal ones only
/// inside `allow` (IPv4-mapped IPv6 is judged as IPv4).
#[must_use]
pub fn destination_allowed(ip: IpAddr, allow: &[IpNetwork]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if allow.iter().any(|n| n.contains(ip)) {
        return true;
    }
    !FORBIDDEN
        .iter()
        .filter_map(|n| n.parse::<IpNetwork>().ok())
        .any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_matches_the_guide() {
        let p = RetryPolicy::default();
        let delays: Vec<i64> = (1..=5)
            .filter_map(|a| p.delay_after(a))
            .map(|d| d.num_seconds())
            .collect();
        assert_eq!(
            delays,
            vec![2, 4, 8, 16],
            "attempts at 0, 2, 6, 14, 30 s: 5 in all"
        );
    }

    #[test]
    fn jitter_spreads_retries_within_its_share_and_keeps_retry_after() {
        let p = RetryPolicy::default();
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        for attempt in 1..=4 {
            let exact = p.delay_after(attempt).unwrap();
            let waits: Vec<Duration> = (0..1_000u64)
                .map(|key| p.jittered_delay_after(attempt, key).unwrap())
                .collect();
            assert!(
                waits.iter().all(|w| *w >= exact && *w <= exact * 11 / 10),
                "attempt {attempt}: within 10 % above the guide's {exact}"
            );
            // Millisecond steps: 201 possible waits after attempt 1, 1,601 after attempt 4.
            let possible = usize::try_from(exact.num_milliseconds() / 10 + 1).unwrap();
            let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
            assert!(
                distinct.len() * 5 > possible.min(waits.len()) * 2,
                "attempt {attempt}: {} different waits of {possible}",
                distinct.len()
            );
            let longest = waits.iter().max().unwrap();
            assert!(
                *longest >= exact + exact / 20,
                "spread over the whole share"
            );
            assert_eq!(
                p.jittered_delay_after(attempt, 42),
                p.jittered_delay_after(attempt, 42),
                "the same delivery and attempt wait the same"
            );
        }
        assert_eq!(p.jittered_delay_after(5, 1), None, "no attempt left");
        let flat = RetryPolicy {
            jitter_percent: 0,
            ..p
        };
        assert_eq!(flat.jittered_delay_after(2, 99), p.delay_after(2));
        // Two deliveries that failed together come back at different times...
        let a = judge(&p, 1, Some(500), None, now, 1);
        let b = judge(&p, 1, Some(500), None, now, 2);
        assert_ne!(a, b);
        // ...but a receiver's Retry-After is honoured to the second.
        assert_eq!(
            judge(&p, 1, Some(503), Some(30), now, 1),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(30)
            }
        );
    }

    #[test]
    fn ports_other_protocols_use_are_refused_for_new_endpoints() {
        let port = |u: &str| WebhookUrl::parse(u, false).unwrap().port();
        assert_eq!(port("https://hooks.example.com/a"), Some(443));
        assert_eq!(port("http://hooks.example.com"), Some(80));
        assert_eq!(port("https://hooks.example.com:8443/a:b"), Some(8443));
        assert_eq!(port("http://[2001:db8::1]/x"), Some(80));
        assert_eq!(port("http://[2001:db8::1]:9000/x"), Some(9000));
        assert_eq!(port("http://h:0/"), None);
        assert_eq!(port("http://h:70000/"), None);
        // An empty port is the scheme's, as the HTTP client reads it.
        assert_eq!(port("http://h:/"), Some(80));
        assert_eq!(port("http://h:+80/"), None);
        for ok in [
            "https://hooks.example.com/a",
            "http://hooks.example.com:80/a",
            "https://hooks.example.com:443",
            "https://hooks.example.com:1024/a",
            "http://127.0.0.1:65535/x",
        ] {
            assert!(WebhookUrl::parse_new(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://mail.example.com:25/",
            "http://hooks.example.com:22",
            "https://hooks.example.com:1023/a",
            "http://[2001:db8::1]:445/x",
            "http://h:99999/",
            "https://smtp.example.com:25\\:8443/",
        ] {
            let e = WebhookUrl::parse_new(refused, false).unwrap_err();
            assert!(e.to_string().contains("port"), "{refused}: {e}");
            // A stored endpoint with such a port still reads back; delivery refuses it.
            assert!(WebhookUrl::parse(refused, false).is_ok());
        }
        // Shapes the HTTP client cannot read are refused up front, not at every delivery.
        for unreadable in [
            "http://[2001:db8::1/x",
            "https://exa%mple.com/",
            "http://h:8a/",
        ] {
            let e = WebhookUrl::parse_new(unreadable, false).unwrap_err();
            assert!(e.to_string().contains("not a usable"), "{unreadable}: {e}");
            assert_eq!(WebhookUrl::parse(unreadable, false).unwrap().port(), None);
        }
    }

    #[test]
    fn verdicts() {
        let p = RetryPolicy {
            jitter_percent: 0,
            ..RetryPolicy::default()
        };
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        assert_eq!(
            judge(&p, 1, Some(204), None, now, 7),
            AttemptVerdict::Delivered
        );
        assert_eq!(
            judge(&p, 1, Some(500), None, now, 7),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(2)
            }
        );
        assert_eq!(
            judge(&p, 3, None, None, now, 7),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(8)
            }
        );
        assert_eq!(
            judge(&p, 5, Some(500), None, now, 7),
            AttemptVerdict::GiveUp
        );
        assert_eq!(
            judge(&p, 2, Some(410), None, now, 7),
            AttemptVerdict::DisableEndpoint
        );
        assert_eq!(
            judge(&p, 1, Some(429), Some(30), now, 7),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(30)
            }
        );
        assert_eq!(
            judge(&p, 1, Some(429), Some(999_999), now, 7),
            AttemptVerdict::RetryAt {
                at: now + Duration::hours(1)
            }
        );
        assert_eq!(
            judge(&p, 1, Some(301), None, now, 7),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(2)
            },
            "redirects are not followed"
        );
        assert_eq!(
            judge(&p, 1, Some(503), Some(45), now, 7),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(45)
            },
            "an unavailable receiver says when to come back too"
        );
        // Whatever the schedule, one wait is at most a day (no overflow from a huge base).
        let huge = RetryPolicy {
            max_attempts: 20,
            base_delay_ms: u64::MAX / 2,
            disable_after_failures: 0,
            jitter_percent: 100,
        };
        assert_eq!(
            judge(&huge, 19, Some(500), None, now, 7),
            AttemptVerdict::RetryAt {
                at: now + Duration::days(1)
            }
        );
    }

    #[test]
    fn urls() {
        assert!(WebhookUrl::parse("https://hooks.example.com/axie", true).is_ok());
        assert_eq!(
            WebhookUrl::parse(
                "https://hooks.slack.com:8443/services/T0/B0/secret?x=1",
                true
            )
            .unwrap()
            .host_label(),
            "https://hooks.slack.com:8443"
        );
        assert!(WebhookUrl::parse("http://hooks.example.com/axie", true).is_err());
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/x", false).is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https://user:pw@host/",
            "https://a b/",
            "hooks.example.com",
        ] {
            assert!(WebhookUrl::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssrf_ranges() {
        let none: Vec<IpNetwork> = vec![];
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(
                !destination_allowed(internal.parse().unwrap(), &none),
                "{internal}"
            );
        }
        assert!(destination_allowed("93.184.216.34".parse().unwrap(), &none));
        for documentation in ["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1"] {
            assert!(
                !destination_allowed(documentation.parse().unwrap(), &none),
                "{documentation}"
            );
        }
        for translated in [
            "64:ff9b::7f00:1",
            "64:ff9b:1:7f00:0:100::",
            "2002:7f00:1::1",
            "2001:0:7f00:1::1",
            "::7f00:1",
        ] {
            assert!(
                !destination_allowed(translated.parse().unwrap(), &none),
                "{translated} embeds an IPv4 address"
            );
        }
        assert!(destination_allowed(
            "2606:2800:220:1::1".parse().unwrap(),
            &none
        ));
        let loopback: Vec<IpNetwork> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(destination_allowed("127.0.0.1".parse().unwrap(), &loopback));
        assert!(destination_allowed(
            "::ffff:127.0.0.1".parse().unwrap(),
            &loopback
        ));
        assert!(!destination_allowed(
            "127.0.0.2".parse().unwrap(),
            &loopback
        ));
    }
}
