//! Session lifetime rules: absolute timeout, idle timeout, concurrent-session limit.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::SecurityError;

/// The organization's session settings (guide defaults: 8 h, 30 min, 3 sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPolicy {
    /// A session ends this many minutes after login, whatever happens.
    pub absolute_timeout_minutes: u32,
    /// A session ends after this many minutes without a request.
    pub idle_timeout_minutes: u32,
    /// At most this many live sessions per person; a new login ends the oldest.
    pub max_concurrent: u32,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            absolute_timeout_minutes: 8 * 60,
            idle_timeout_minutes: 30,
            max_concurrent: 3,
        }
    }
}

/// The longest absolute session timeout a policy may set: 30 days. No session created longer
/// ago than this is usable under any policy.
pub const MAX_ABSOLUTE_TIMEOUT_MINUTES: u32 = 30 * 24 * 60;

impl SessionPolicy {
    /// Checks bounds.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] for zero or absurd values, or an idle timeout above the absolute one.
    pub fn validate(&self) -> Result<(), SecurityError> {
        if self.absolute_timeout_minutes == 0
            || self.absolute_timeout_minutes > MAX_ABSOLUTE_TIMEOUT_MINUTES
        {
            return Err(SecurityError::Invalid(
                "`absolute_timeout_minutes` must be between 1 and 43200".into(),
            ));
        }
        if self.idle_timeout_minutes == 0
            || self.idle_timeout_minutes > self.absolute_timeout_minutes
        {
            return Err(SecurityError::Invalid(
                "`idle_timeout_minutes` must be at least 1 and at most the absolute timeout".into(),
            ));
        }
        if self.max_concurrent == 0 || self.max_concurrent > 100 {
            return Err(SecurityError::Invalid(
                "`max_concurrent` must be between 1 and 100".into(),
            ));
        }
        Ok(())
    }

    /// The strictest combination of several organizations' policies (a person in two
    /// organizations gets the shorter timeouts and the smaller limit).
    #[must_use]
    pub fn strictest(policies: impl IntoIterator<Item = SessionPolicy>) -> SessionPolicy {
        policies
            .into_iter()
            .reduce(|a, b| SessionPolicy {
                absolute_timeout_minutes: a
                    .absolute_timeout_minutes
                    .min(b.absolute_timeout_minutes),
                idle_timeout_minutes: a.idle_timeout_minutes.min(b.idle_timeout_minutes),
                max_concurrent: a.max_concurrent.min(b.max_concurrent),
            })
            .unwrap_or_default()
    }

    /// How stale a session's recorded last activity may get before a request writes it again:
    /// a twentieth of the idle timeout, at most a minute (3 s for a 1-minute timeout, 60 s for
    /// the default 30 minutes). A session is then judged idle at most that much early, 5 % of
    /// its idle timeout, and a busy session costs one write a minute, not one per request.
    #[must_use]
    pub fn activity_granularity(&self) -> Duration {
        (Duration::minutes(i64::from(self.idle_timeout_minutes)) / 20).min(Duration::minutes(1))
    }
}

/// Whether a session may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Usable.
    Active,
    /// Past the absolute timeout.
    Expired,
    /// No request for longer than the idle timeout.
    Idle,
}

/// Decides a session's status at `now`. A session is usable strictly before each limit.
#[must_use]
pub fn check_session(
    policy: &SessionPolicy,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> SessionStatus {
    if now >= created_at + Duration::minutes(i64::from(policy.absolute_timeout_minutes)) {
        SessionStatus::Expired
    } else if now >= last_seen_at + Duration::minutes(i64::from(policy.idle_timeout_minutes)) {
        SessionStatus::Idle
    } else {
        SessionStatus::Active
    }
}

/// How many of a person's `live` sessions to end (oldest first) before adding one more.
#[must_use]
pub fn sessions_to_evict(policy: &SessionPolicy, live: usize) -> usize {
    (live + 1).saturating_sub(policy.max_concurrent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn boundaries() {
        let p = SessionPolicy::default();
        let start = t(0);
        assert_eq!(
            check_session(&p, start, start, t(30 * 60 - 1)),
            SessionStatus::Active
        );
        assert_eq!(
            check_session(&p, start, start, t(30 * 60)),
            SessionStatus::Idle
        );
        let busy = t(8 * 3600 - 60);
        assert_eq!(
            check_session(&p, start, busy, t(8 * 3600 - 1)),
            SessionStatus::Active
        );
        assert_eq!(
            check_session(&p, start, busy, t(8 * 3600)),
            SessionStatus::Expired
        );
    }

    #[test]
    fn activity_is_written_within_a_twentieth_of_the_idle_timeout_and_at_least_each_minute() {
        let idle = |m| SessionPolicy {
            idle_timeout_minutes: m,
            ..SessionPolicy::default()
        };
        assert_eq!(idle(1).activity_granularity(), Duration::seconds(3));
        assert_eq!(idle(10).activity_granularity(), Duration::seconds(30));
        assert_eq!(idle(30).activity_granularity(), Duration::minutes(1));
        assert_eq!(idle(8 * 60).activity_granularity(), Duration::minutes(1));
    }

    #[test]
    fn eviction_count() {
        let p = SessionPolicy::default();
        assert_eq!(sessions_to_evict(&p, 0), 0);
        assert_eq!(sessions_to_evict(&p, 2), 0);
        assert_eq!(sessions_to_evict(&p, 3), 1);
        assert_eq!(sessions_to_evict(&p, 5), 3);
    }

    #[test]
    fn strictest_combines() {
        let a = SessionPolicy {
            absolute_timeout_minutes: 60,
            idle_timeout_minutes: 30,
            max_concurrent: 5,
        };
        let b = SessionPolicy {
            absolute_timeout_minutes: 120,
            idle_timeout_minutes: 10,
            max_concurrent: 2,
        };
        assert_eq!(
            SessionPolicy::strictest([a, b]),
            SessionPolicy {
                absolute_timeout_minutes: 60,
                idle_timeout_minutes: 10,
                max_concurrent: 2
            }
        );
        assert_eq!(SessionPolicy::strictest([]), SessionPolicy::default());
    }

    #[test]
    fn validation() {
        assert!(SessionPolicy::default().validate().is_ok());
        assert!(
            SessionPolicy {
                idle_timeout_minutes: 0,
                ..SessionPolicy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SessionPolicy {
                idle_timeout_minutes: 9 * 60,
                ..SessionPolicy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SessionPolicy {
                max_concurrent: 0,
                ..SessionPolicy::default()
            }
            .validate()
            .is_err()
        );
    }
}
