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

/// The state after one more failure at `now`.
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
        Some(s) if s.locked_until.is_none() && now < s.window_start + window => *s,
        _ => fresh,
    };
    s.failures += 1;
    if s.failures >= policy.max_failures {
        s.locked_until = Some(now + Duration::minutes(i64::from(policy.lockout_minutes)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
