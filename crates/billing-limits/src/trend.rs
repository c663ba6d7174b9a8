//! Usage trends (the guide's "trend analysis" among its usage alerts): a metric's last seven
//! complete days against the seven before them, its daily rate, and where this month's count
//! is heading at that rate, with the day it would reach the plan's limit.
//!
//! Pure arithmetic on daily counts; the caller reads them (`tenancy::metering`).
//!
//! ```
//! use billing_limits::trend::{trend, Window};
//! use chrono::{NaiveDate, TimeZone, Utc};
//! let now = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
//! let resets = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
//! let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
//! // 1,000 calls a day for the last week, 500 a day the week before.
//! let days: Vec<(NaiveDate, u64)> = (1..=14)
//!     .map(|d| (day(d), if d >= 8 { 1_000 } else { 500 }))
//!     .collect();
//! let t = trend(&days, 10_500, Some(20_000), Window::new(now, resets, None));
//! assert_eq!((t.last_7_days, t.previous_7_days), (7_000, 3_500));
//! assert_eq!(t.change_percent, Some(100));
//! assert_eq!(t.per_day, 1_000);
//! assert_eq!(t.projected_month_end, 26_000);
//! assert_eq!(t.limit_reached_on, Some(day(25)));
//! ```

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

/// The length of each of the two windows a trend compares, in days.
pub const WINDOW_DAYS: i64 = 7;

const DAY_SECONDS: u128 = 86_400;

/// When a trend is taken: the time, when the month's counters start again, and since when what
/// is counted exists (an organization, a team: time before it is not time without use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    now: DateTime<Utc>,
    resets_at: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
}

impl Window {
    /// A window at `now`, in a month whose counters start again at `resets_at`, for what was
    /// created at `since` (`None`: long enough ago).
    #[must_use]
    pub fn new(now: DateTime<Utc>, resets_at: DateTime<Utc>, since: Option<DateTime<Utc>>) -> Self {
        Self {
            now,
            resets_at,
            since,
        }
    }

    /// The first day of the last seven complete days before today (UTC); the previous window
    /// starts seven days earlier.
    #[must_use]
    pub fn last_start(&self) -> NaiveDate {
        self.now.date_naive() - Duration::days(WINDOW_DAYS)
    }

    /// The first day of the seven before the last seven: the earliest day a trend reads.
    #[must_use]
    pub fn previous_start(&self) -> NaiveDate {
        self.now.date_naive() - Duration::days(2 * WINDOW_DAYS)
    }

    /// The seconds of the last window (up to today, 00:00 UTC) that what is counted existed
    /// for: all of it, or from its creation (whose day's use is in the window) on; 0 when it
    /// was created today.
    fn seconds_lived_of_last(&self) -> u128 {
        let (start, end) = (midnight(self.last_start()), midnight(self.now.date_naive()));
        let from = self.since.map_or(start, |s| s.max(start));
        u128::try_from((end - from).num_seconds().max(0)).unwrap_or(0)
    }

    /// Whether what is counted existed for the whole of the previous window.
    fn whole_previous(&self) -> bool {
        self.since
            .is_none_or(|s| s <= midnight(self.previous_start()))
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// A metric's trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Trend {
    /// The count of the last seven complete days (UTC) before today.
    pub last_7_days: u64,
    /// The count of the seven days before those.
    pub previous_7_days: u64,
    /// The change from the previous seven days to the last seven, in percent, rounded toward
    /// zero; `None` when there is nothing to compare with (no use in the previous seven days,
    /// or the organization did not exist for all of them).
    pub change_percent: Option<i64>,
    /// The recent daily rate: the last seven days' count over the time of them (up to today,
    /// 00:00 UTC) that what is counted existed for, per day, rounded down (0 when it was
    /// created today).
    pub per_day: u64,
    /// This month's count when the counters start again, if the recent rate holds: the count
    /// so far plus the rate over the time left, rounded down.
    pub projected_month_end: u64,
    /// The day (UTC) the count would reach the limit at the recent rate, when that is before the
    /// counters start again and it has not been reached yet; `None` otherwise (unlimited, no
    /// recent use, reached already, or not this month).
    pub limit_reached_on: Option<NaiveDate>,
}

/// The trend of a metric from its daily counts (`days`, in any order; several entries for one
/// day add up, as per-team counts do; days outside the two windows are ignored), this month's
/// count so far (`month_to_date`, what the limit is checked against) and the limit (`max`,
/// `None`: unlimited).
#[must_use]
pub fn trend(
    days: &[(NaiveDate, u64)],
    month_to_date: u64,
    max: Option<u64>,
    window: Window,
) -> Trend {
    let today = window.now.date_naive();
    let (last_start, previous_start) = (window.last_start(), window.previous_start());
    let sum = |from: NaiveDate, to: NaiveDate| -> u64 {
        days.iter()
            .filter(|(d, _)| *d >= from && *d < to)
            .fold(0u64, |acc, (_, n)| acc.saturating_add(*n))
    };
    let last = sum(last_start, today);
    let previous = sum(previous_start, last_start);
    let change_percent = (window.whole_previous() && previous > 0).then(|| {
        let diff = i128::from(last) - i128::from(previous);
        i64::try_from(diff * 100 / i128::from(previous)).unwrap_or(i64::MAX)
    });
    // The rate is kept as a fraction, the count over the seconds it took (`span`).
    let span = window.seconds_lived_of_last();
    let per_day = u64::try_from(
        (u128::from(last) * DAY_SECONDS)
            .checked_div(span)
            .unwrap_or(0),
    )
    .unwrap_or(u64::MAX);
    let left = u128::try_from((window.resets_at - window.now).num_seconds().max(0)).unwrap_or(0);
    let coming = (u128::from(last) * left).checked_div(span).unwrap_or(0);
    let projected_month_end = u64::try_from(u128::from(month_to_date) + coming).unwrap_or(u64::MAX);
    // Reached this month when the time it takes, `(m - so far) * span / last` seconds, is less
    // than the time left (compared exactly, in integers); dated by the second it falls in.
    let limit_reached_on = max
        .filter(|m| month_to_date < *m && last > 0 && span > 0)
        .and_then(|m| {
            let needed = u128::from(m - month_to_date) * span;
            if needed >= u128::from(last) * left {
                return None;
            }
            let secs = i64::try_from(needed / u128::from(last)).ok()?;
            Some((window.now + Duration::seconds(secs)).date_naive())
        });
    Trend {
        last_7_days: last,
        previous_7_days: previous,
        change_percent,
        per_day,
        projected_month_end,
        limit_reached_on,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn reset() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn today_and_days_outside_the_windows_are_not_counted() {
        let days = [
            (NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(), 1_000), // 15 days before: outside
            (day(1), 5),    // 14 days before the 15th: the previous window's first
            (day(8), 7),    // first day of the last window
            (day(14), 3),   // yesterday
            (day(14), 4),   // another team's count of the same day
            (day(15), 900), // today: not over
        ];
        let t = trend(&days, 0, None, Window::new(at(15, 12), reset(), None));
        assert_eq!((t.last_7_days, t.previous_7_days), (14, 5));
        assert_eq!(t.change_percent, Some(180));
        assert_eq!(t.per_day, 2);
        assert_eq!(t.limit_reached_on, None, "unlimited");
    }

    #[test]
    fn a_fall_is_a_negative_change_and_nothing_before_is_no_change() {
        let w = Window::new(at(15, 0), reset(), None);
        let t = trend(&[(day(3), 400), (day(10), 100)], 500, Some(1_000), w);
        assert_eq!(t.change_percent, Some(-75));
        assert_eq!(trend(&[(day(10), 100)], 100, None, w).change_percent, None);
    }

    #[test]
    fn the_projection_adds_the_rate_over_the_time_left() {
        // 700 in the last week: 100 a day; 15 days and 12 hours left on the 15th at noon.
        let w = Window::new(at(15, 12), reset(), None);
        let t = trend(&[(day(10), 700)], 2_000, Some(3_000), w);
        assert_eq!(t.per_day, 100);
        assert_eq!(t.projected_month_end, 2_000 + 1_550);
        // 1,000 to go at 100 a day: ten days on, the 25th at noon.
        assert_eq!(t.limit_reached_on, Some(day(25)));
        // Not this month: the counters start again first.
        let t = trend(&[(day(10), 700)], 2_000, Some(4_000), w);
        assert_eq!(t.limit_reached_on, None);
        // Reached already: nothing to forecast.
        let t = trend(&[(day(10), 700)], 3_000, Some(3_000), w);
        assert_eq!(t.limit_reached_on, None);
        // A limit of zero is reached.
        assert_eq!(trend(&[(day(10), 7)], 0, Some(0), w).limit_reached_on, None);
        // No recent use: no date, and the month ends where it stands.
        let t = trend(&[], 2_000, Some(3_000), w);
        assert_eq!((t.projected_month_end, t.limit_reached_on), (2_000, None));
    }

    #[test]
    fn a_young_organization_is_rated_over_the_time_it_lived() {
        // Created on the 12th at 00:00: the 12th, 13th and 14th are complete; 300 over them.
        let w = Window::new(at(15, 0), reset(), Some(at(12, 0)));
        let t = trend(
            &[(day(12), 100), (day(13), 100), (day(14), 100)],
            300,
            Some(1_000),
            w,
        );
        assert_eq!(t.per_day, 100);
        assert_eq!(t.change_percent, None, "no previous week to compare with");
        assert_eq!(t.projected_month_end, 300 + 1_600);
        assert_eq!(t.limit_reached_on, Some(day(22)));
        // Created on the 12th at noon: 300 over two and a half days is 120 a day.
        let w = Window::new(at(15, 0), reset(), Some(at(12, 12)));
        let t = trend(
            &[(day(12), 50), (day(13), 125), (day(14), 125)],
            300,
            Some(1_000),
            w,
        );
        assert_eq!(t.per_day, 120);
        assert_eq!(t.projected_month_end, 300 + 1_920);
        // 700 to go at 120 a day: 5 days and 20 hours, the 20th at 20:00.
        assert_eq!(t.limit_reached_on, Some(day(20)));
        // Created today: no complete day, no rate.
        let w = Window::new(at(15, 9), reset(), Some(at(15, 8)));
        let t = trend(&[(day(15), 50)], 50, Some(100), w);
        assert_eq!(
            (t.per_day, t.projected_month_end, t.limit_reached_on),
            (0, 50, None)
        );
        // Created within the previous window: its change is not a week's.
        let w = Window::new(at(15, 0), reset(), Some(at(5, 0)));
        let t = trend(&[(day(5), 10), (day(9), 70)], 80, None, w);
        assert_eq!(
            (t.previous_7_days, t.change_percent, t.per_day),
            (10, None, 10)
        );
        // Created as the previous window began: a whole week to compare with; an hour later, not.
        let days = [(day(5), 10), (day(9), 70)];
        let w = Window::new(at(15, 0), reset(), Some(at(1, 0)));
        assert_eq!(trend(&days, 80, None, w).change_percent, Some(600));
        let w = Window::new(at(15, 0), reset(), Some(at(1, 1)));
        assert_eq!(trend(&days, 80, None, w).change_percent, None);
    }

    #[test]
    fn huge_counts_saturate_rather_than_overflow() {
        let w = Window::new(at(15, 0), reset(), None);
        let t = trend(
            &[(day(10), u64::MAX), (day(11), u64::MAX)],
            u64::MAX - 1,
            Some(u64::MAX),
            w,
        );
        assert_eq!(t.last_7_days, u64::MAX);
        assert_eq!(t.projected_month_end, u64::MAX);
        assert_eq!(t.limit_reached_on, Some(day(15)));
    }

    proptest! {
        #[test]
        fn a_forecast_date_is_this_month_and_consistent_with_the_projection(
            counts in proptest::collection::vec(0u64..1_000_000, 14),
            so_far in 0u64..10_000_000,
            max in 0u64..20_000_000,
            d in 1u32..=30,
            h in 0u32..24,
        ) {
            let now = at(d, h);
            let days: Vec<(NaiveDate, u64)> = (0..14)
                .map(|i| (now.date_naive() - Duration::days(14 - i), counts[i as usize]))
                .collect();
            let t = trend(&days, so_far, Some(max), Window::new(now, reset(), None));
            prop_assert!(t.projected_month_end >= so_far);
            prop_assert_eq!(t.per_day, t.last_7_days / 7);
            match t.limit_reached_on {
                Some(on) => {
                    prop_assert!(so_far < max);
                    prop_assert!(on >= now.date_naive() && on < reset().date_naive());
                    // Reaching it this month means the projection gets there too.
                    prop_assert!(t.projected_month_end >= max);
                }
                None => prop_assert!(so_far >= max || t.projected_month_end <= max),
            }
            // The date is the first day by whose end the projection reaches the limit: a month
            // ending as that day begins would not reach it.
            if let Some(on) = t.limit_reached_on {
                let day_starts = Utc.from_utc_datetime(&on.and_hms_opt(0, 0, 0).unwrap());
                if day_starts > now {
                    let earlier = trend(&days, so_far, Some(max), Window::new(now, day_starts, None));
                    prop_assert!(earlier.projected_month_end <= max, "reached before {}", on);
                    prop_assert_eq!(earlier.limit_reached_on, None);
                }
            }
        }
    }
}
