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
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay_ms: 2_000,
            disable_after_failures: 20,
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
/// of the schedule.
#[must_use]
pub fn judge(
    policy: &RetryPolicy,
    attempt: u32,
    status: Option<u16>,
    retry_after_secs: Option<u64>,
    now: DateTime<Utc>,
) -> AttemptVerdict {
    match status {
        Some(s) if (200..300).contains(&s) => return AttemptVerdict::Delivered,
        Some(410) => return AttemptVerdict::DisableEndpoint,
        _ => {}
    }
    let Some(delay) = policy.delay_after(attempt) else {
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

    /// The URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]` only: for audit records and notices, since paths and queries
    /// of webhook URLs often carry credentials.
    #[must_use]
    pub fn host_label(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        format!(
            "{scheme}://{}",
            rest.split(['/', '?', '#']).next().unwrap_or("")
        )
    }
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
    fn verdicts() {
        let p = RetryPolicy::default();
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        assert_eq!(
            judge(&p, 1, Some(204), None, now),
            AttemptVerdict::Delivered
        );
        assert_eq!(
            judge(&p, 1, Some(500), None, now),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(2)
            }
        );
        assert_eq!(
            judge(&p, 3, None, None, now),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(8)
            }
        );
        assert_eq!(judge(&p, 5, Some(500), None, now), AttemptVerdict::GiveUp);
        assert_eq!(
            judge(&p, 2, Some(410), None, now),
            AttemptVerdict::DisableEndpoint
        );
        assert_eq!(
            judge(&p, 1, Some(429), Some(30), now),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(30)
            }
        );
        assert_eq!(
            judge(&p, 1, Some(429), Some(999_999), now),
            AttemptVerdict::RetryAt {
                at: now + Duration::hours(1)
            }
        );
        assert_eq!(
            judge(&p, 1, Some(301), None, now),
            AttemptVerdict::RetryAt {
                at: now + Duration::seconds(2)
            },
            "redirects are not followed"
        );
        assert_eq!(
            judge(&p, 1, Some(503), Some(45), now),
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
        };
        assert_eq!(
            judge(&huge, 19, Some(500), None, now),
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
