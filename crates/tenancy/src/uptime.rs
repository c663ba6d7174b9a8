//! Monthly uptime reports: the guide's Enterprise "Uptime Guarantee" ("99.9% uptime SLA",
//! "Proactive monitoring", "Monthly uptime reports").
//!
//! Each running server notes at a steady beat that it is up ([`UptimeStore::note_up`]): a beat
//! that comes within the tolerance of its instance's last one extends that instance's span, a
//! later one starts a new span. A month's availability is how much of it the spans of every
//! instance cover ([`report`]): a gap between them longer than the tolerance is an outage,
//! counted from the last beat before it to the first after it (a shorter one, a restart, is
//! not). Time before the first beat ever is not monitored and not counted.
//!
//! This is the service as it measures itself: it sees a server that is stopped, has crashed, or
//! cannot write to its database, not one that runs but cannot be reached or used (a fault in
//! the network in front of it, a dependency down). The operator declares such an outage with
//! its incident notice ([`crate::notices`], `notify-incident --outage`,
//! [`UptimeStore::declare_outage`]), and it counts from the notice to its resolved notice, as
//! any other outage (an outage both seen and declared is counted once).
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use tenancy::uptime::{Month, UptimeSpan, report};
//!
//! let at = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
//! let spans = [
//!     UptimeSpan { instance: "a".into(), started_at: at(1, 0), last_seen: at(10, 12) },
//!     // Down for an hour on the 10th, then up to the end of the month.
//!     UptimeSpan { instance: "b".into(), started_at: at(10, 13), last_seen: at(30, 23) },
//! ];
//! let nov = Month::parse("2026-11").unwrap();
//! let r = report(nov, &spans, &[], at(30, 23), Duration::seconds(90))
//!     .unwrap();
//! assert_eq!(r.down.num_seconds(), 3_600);
//! assert_eq!(r.outages.len(), 1);
//! assert_eq!(r.percent().as_deref(), Some("99.860"));
//! assert_eq!(r.meets(999), Some(false));
//! ```

use std::fmt;

use async_trait::async_trait;
use audit::{Actor, AuditAction, Journal, Metadata, NewAuditEvent, OutboundMail, Target};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;

use crate::error::TenancyError;
use crate::metering::MeteringStore;
use crate::model::Organization;
use crate::store::TenancyStore;

/// One instance's unbroken run of beats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptimeSpan {
    /// The server process that beat (a fresh id each start).
    pub instance: String,
    /// Its first beat.
    pub started_at: DateTime<Utc>,
    /// Its latest beat.
    pub last_seen: DateTime<Utc>,
}

/// Storage of the beats.
#[async_trait]
pub trait UptimeStore: Send + Sync {
    /// Notes that `instance` is up at `now`: its latest span (the last it started at or before
    /// `now`) is extended to `now` when that span's last beat is at most `tolerance` before
    /// `now` (and not after it: a clock set back starts a new span, which the next beats
    /// extend); otherwise a new span starts at `now`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn note_up(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<(), TenancyError>;

    /// Declares the outage of the incident `reference` begun at `at`, or with `ended` over at
    /// `at`. Declared again, the first start and the first end are kept (the operator's command
    /// may run again after a failure).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for the end of an outage never declared begun;
    /// [`TenancyError::Invalid`] for an end before its start; [`TenancyError::Conflict`] for
    /// the start of an outage under a reference whose outage is over (a new incident takes a
    /// new reference); [`TenancyError::Store`].
    async fn declare_outage(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        ended: bool,
    ) -> Result<(), TenancyError>;

    /// The declared outages that reach into `from..to` (begun before `to`, not over before
    /// `from`), by start and reference.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn declared_outages(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DeclaredOutage>, TenancyError>;

    /// Every instance's spans that reach into `from..to` (last beat at or after `from`, first
    /// before `to`), the latest span that ended before `from` (where an outage that runs into
    /// the window began) and the first that started at or after `to` (where one that runs out
    /// of it ended), ordered by first beat, instance and last beat.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn uptime_spans(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UptimeSpan>, TenancyError>;
}

/// A calendar month, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// `2026-11`.
    ///
    /// # Errors
    /// [`TenancyError::Invalid`] for anything but a month from 2000-01 to 9999-12 written so.
    pub fn parse(text: &str) -> Result<Self, TenancyError> {
        let bad = || TenancyError::Invalid(format!("`{text}` is not a month such as 2026-11"));
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.chars().chain(m.chars())).all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if year < 2000 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// The month `t` falls in.
    #[must_use]
    pub fn of(t: DateTime<Utc>) -> Self {
        Self {
            year: t.year(),
            month: t.month(),
        }
    }

    /// The month before.
    #[must_use]
    pub const fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The month after.
    #[must_use]
    pub const fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Its first instant.
    #[must_use]
    pub fn start(self) -> DateTime<Utc> {
        let day = NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN);
        Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
    }

    /// The first instant of the month after.
    #[must_use]
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// An outage the operator declared with an incident (the service ran but could not be
/// reached or used), which the beats do not show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredOutage {
    /// The incident's reference.
    pub reference: String,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while it lasts.
    pub ended_at: Option<DateTime<Utc>>,
}

/// The refusal of a new start of the declared outage `reference`, which is over.
#[must_use]
pub fn over_already(reference: &str) -> TenancyError {
    TenancyError::Conflict(format!(
        "the outage of incident {reference} is over: a new incident takes a new reference"
    ))
}

/// The refusal of the end of the declared outage `reference` before its start.
#[must_use]
pub fn ends_before_it_began(reference: &str) -> TenancyError {
    TenancyError::Invalid(format!(
        "the outage of incident {reference} cannot end before it began"
    ))
}

/// A time the service was down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The last beat before it, or a declared outage's start (or the start of the month, for
    /// one that began before).
    pub from: DateTime<Utc>,
    /// The first beat after it, or a declared outage's end (or the end of the month, or now for
    /// one still under way).
    pub to: DateTime<Utc>,
    /// Whether it was still under way when the report was made.
    pub ongoing: bool,
    /// The references of the incidents declared as outages within it (empty: seen by the
    /// beats alone).
    pub declared: Vec<String>,
}

impl Outage {
    /// How long it lasted within the month, in seconds.
    #[must_use]
    pub fn seconds(&self) -> i64 {
        (self.to - self.from).num_seconds()
    }
}

/// A month's availability, as the beats and the declared outages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptimeReport {
    /// The month.
    pub month: Month,
    /// Since when it was monitored: the month's start, or the first beat ever when that came
    /// later; `None` when none of the month was.
    pub monitored_from: Option<DateTime<Utc>>,
    /// Until when: the month's end, or the time of the report for the month under way.
    pub monitored_to: DateTime<Utc>,
    /// How long it was monitored.
    pub monitored: Duration,
    /// How long it was down, the sum of [`Self::outages`].
    pub down: Duration,
    /// The outages, oldest first.
    pub outages: Vec<Outage>,
    /// Whether the month is over (the figures no longer change).
    pub complete: bool,
}

impl UptimeReport {
    /// The share of the monitored time the service was up, in millionths (rounded down);
    /// `None` when nothing was monitored.
    #[must_use]
    pub fn availability_per_million(&self) -> Option<u32> {
        let monitored = i128::from(self.monitored.num_microseconds()?);
        if monitored <= 0 {
            return None;
        }
        let down = i128::from(self.down.num_microseconds()?).min(monitored);
        u32::try_from((monitored - down) * 1_000_000 / monitored).ok()
    }

    /// The availability as a percentage with three decimals (`"99.953"`), rounded down, so a
    /// month below the commitment never shows as meeting it.
    #[must_use]
    pub fn percent(&self) -> Option<String> {
        self.availability_per_million()
            .map(|p| format!("{}.{:03}", p / 10_000, (p % 10_000) / 10))
    }

    /// The report as text (the mail's, the `uptime-report` command's), against the
    /// `committed` uptime in per mille.
    #[must_use]
    pub fn text(&self, committed: Option<u32>) -> String {
        use fmt::Write as _;
        let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        let Some(percent) = self.percent() else {
            return format!("Nothing of {} was monitored.\n", self.month);
        };
        let mut out = format!(
            "The service was available {percent} % of {month}{so_far} (monitored from {from} to {to}).\n",
            month = self.month,
            so_far = if self.complete { "" } else { " so far" },
            from = self.monitored_from.map_or_else(|| "-".to_owned(), stamp),
            to = stamp(self.monitored_to),
        );
        if let Some((c, met)) = committed.and_then(|c| self.meets(c).map(|m| (c, m))) {
            let _ = writeln!(
                out,
                "Committed: {} %. {}",
                per_mille_percent(c),
                if met { "Met." } else { "Not met." }
            );
        }
        if self.outages.is_empty() {
            out.push_str("There was no outage.\n");
        } else {
            let _ = writeln!(
                out,
                "Outages ({}, {} minutes in all):",
                self.outages.len(),
                self.down.num_minutes()
            );
            for o in &self.outages {
                let declared = if o.declared.is_empty() {
                    String::new()
                } else {
                    format!(", declared: {}", o.declared.join(", "))
                };
                let _ = writeln!(
                    out,
                    "- {} to {} ({} minutes{declared})",
                    stamp(o.from),
                    stamp(o.to),
                    (o.to - o.from).num_minutes()
                );
            }
        }
        out
    }

    /// Whether the availability reaches `per_mille` (999: 99.9 %); `None` when nothing was
    /// monitored.
    #[must_use]
    pub fn meets(&self, per_mille: u32) -> Option<bool> {
        self.availability_per_million()
            .map(|p| u64::from(p) >= u64::from(per_mille) * 1_000)
    }
}

/// The report of `month` as of `now` from `spans` (what [`UptimeStore::uptime_spans`] returns
/// for the month), where a gap between beats longer than `tolerance` is an outage: to the
/// first beat after it, or, when none has come yet, to `now` (under way while the month is);
/// so is each of the `declared` outages ([`UptimeStore::declared_outages`]), those that
/// overlap counted once.
///
/// # Errors
/// [`TenancyError::Invalid`] for a month that has not begun.
pub fn report(
    month: Month,
    spans: &[UptimeSpan],
    declared: &[DeclaredOutage],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<UptimeReport, TenancyError> {
    let start = month.start();
    if start > now {
        return Err(TenancyError::Invalid(format!(
            "{month} has not begun: there is no report of it yet"
        )));
    }
    let end = month.end().min(now);
    let complete = month.end() <= now;
    let empty = UptimeReport {
        month,
        monitored_from: None,
        monitored_to: end,
        monitored: Duration::zero(),
        down: Duration::zero(),
        outages: Vec::new(),
        complete,
    };
    let mut sorted: Vec<(DateTime<Utc>, DateTime<Utc>)> = spans
        .iter()
        .map(|s| (s.started_at, s.last_seen.max(s.started_at)))
        .filter(|(a, _)| *a <= now)
        .collect();
    sorted.sort();
    let Some(began) = sorted.first().map(|s| s.0) else {
        return Ok(empty);
    };
    let from = start.max(began);
    if from >= end {
        return Ok(empty);
    }
    // The times some instance was up, overlapping spans merged.
    let mut up: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(sorted.len());
    for (a, b) in sorted {
        match up.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => up.push((a, b)),
        }
    }
    // Each with whether it is still under way: the gap after the last beat, a declared
    // outage not over.
    let mut gaps: Vec<(DateTime<Utc>, DateTime<Utc>, bool)> =
        up.windows(2).map(|w| (w[0].1, w[1].0, false)).collect();
    if let Some(last) = up.last() {
        gaps.push((last.1, now, true));
    }
    // A gap is judged whole (one across the month's start too); the declared outages join
    // them, those that overlap merged; then each is counted within the month.
    let mut down: Vec<Down> = gaps
        .into_iter()
        .filter(|(a, b, _)| *b - *a > tolerance)
        .map(|(from, to, open)| Down {
            from,
            to,
            open,
            declared: Vec::new(),
        })
        .chain(
            declared
                .iter()
                .filter(|d| d.started_at < now)
                .map(|d| Down {
                    from: d.started_at,
                    to: d.ended_at.map_or(now, |e| e.min(now)),
                    open: d.ended_at.is_none_or(|e| e > now),
                    declared: vec![d.reference.clone()],
                }),
        )
        .collect();
    down.sort_by_key(|d| (d.from, d.to));
    let mut merged: Vec<Down> = Vec::new();
    for d in down {
        match merged.last_mut() {
            // Overlapping: one outage. Two gaps on either side of a single beat only touch, and
            // stay two.
            Some(last) if d.from < last.to => {
                last.to = last.to.max(d.to);
                last.open |= d.open;
                last.declared.extend(d.declared);
            }
            _ => merged.push(d),
        }
    }
    let outages: Vec<Outage> = merged
        .into_iter()
        .filter_map(|d| {
            let (ca, cb) = (d.from.max(from), d.to.min(end));
            (ca < cb).then_some(Outage {
                from: ca,
                to: cb,
                ongoing: !complete && d.open,
                declared: d.declared,
            })
        })
        .collect();
    Ok(UptimeReport {
        month,
        monitored_from: Some(from),
        monitored_to: end,
        monitored: end - from,
        down: outages.iter().map(|o| o.to - o.from).sum(),
        outages,
        complete,
    })
}

/// A time down before it is counted within the month: a gap between beats or a declared outage,
/// and whether it is still under way.
struct Down {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    open: bool,
    declared: Vec<String>,
}

/// A commitment in per mille as a percentage: 999 is `"99.9"`, 990 `"99.0"`.
#[must_use]
pub fn per_mille_percent(per_mille: u32) -> String {
    format!("{}.{}", per_mille / 10, per_mille % 10)
}

/// The report of `month` as of `now`, of what `store` holds: every instance's beats and the
/// declared outages ([`report`]).
///
/// # Errors
/// [`TenancyError::Invalid`] for a month that has not begun; [`TenancyError::Store`].
pub async fn month_report<S: UptimeStore + ?Sized>(
    store: &S,
    month: Month,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<UptimeReport, TenancyError> {
    let spans = store.uptime_spans(month.start(), month.end()).await?;
    let declared = store.declared_outages(month.start(), month.end()).await?;
    report(month, &spans, &declared, now, tolerance)
}

/// The month whose report goes out at `now`: the month before, once `tolerance` has passed
/// since it ended (a gap in its last moments is then told from a beat on its way); `None`
/// before that. A report goes out once, so not earlier.
#[must_use]
pub fn month_to_send(now: DateTime<Utc>, tolerance: Duration) -> Option<Month> {
    let month = Month::of(now).previous();
    (now >= month.end() + tolerance).then_some(month)
}

/// What an incident notice means for the declared outages: with `outage`, its notice starts
/// (or, `resolved`, ends) the incident's declared outage; any resolved notice ends the
/// incident's declared outage if it has one, with or without `outage`
/// ([`UptimeStore::declare_outage`]).
///
/// # Errors
/// As [`UptimeStore::declare_outage`] (a resolved `outage` notice of an outage never begun is
/// [`TenancyError::NotFound`]).
pub async fn note_incident<S: UptimeStore + ?Sized>(
    store: &S,
    reference: &str,
    at: DateTime<Utc>,
    resolved: bool,
    outage: bool,
) -> Result<(), TenancyError> {
    if !outage && !resolved {
        return Ok(());
    }
    match store.declare_outage(reference, at, resolved).await {
        Err(TenancyError::NotFound(_)) if !outage => Ok(()),
        done => done,
    }
}

/// The report of `month` (this month when `None`) for the caller's organization, with the
/// uptime its plan commits to (`None` on Free): any member (`view_settings`: the report is of
/// the service, which every member uses, and tells nothing of the organization).
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Invalid`] for a month that has not begun;
/// [`TenancyError::Store`].
pub async fn view<S: UptimeStore + ?Sized>(
    store: &S,
    caller: &crate::Caller,
    month: Option<Month>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(UptimeReport, Option<u32>), TenancyError> {
    caller.check_org(rbac_core::Permission::ViewSettings)?;
    let month = month.unwrap_or_else(|| Month::of(now));
    Ok((
        month_report(store, month, now, tolerance).await?,
        billing_limits::catalogue::sla_uptime_per_mille(caller.org.plan),
    ))
}

/// Mails `org`'s active Owner and Admins the report of a month that is over, when it is on
/// Enterprise (a trial included: the plan with the uptime commitment) and was not sent this
/// month's report before; returns whether it was sent now. The mails (kind `uptime_report`)
/// and the system's `service.uptime_reported` record commit in one transaction with the
/// insert-once record that keeps a second run, or a second instance, from repeating them
/// ([`MeteringStore::record_alert`], under `uptime_report`). A month nothing of which was
/// monitored is not reported.
///
/// # Errors
/// [`TenancyError::Invalid`] for a month not over yet; [`TenancyError::Store`].
pub async fn send_report_as_system<S: TenancyStore + MeteringStore + ?Sized>(
    store: &S,
    org: &Organization,
    report: &UptimeReport,
    now: DateTime<Utc>,
) -> Result<bool, TenancyError> {
    if !report.complete {
        return Err(TenancyError::Invalid(format!(
            "{} is not over: its report goes out when it is",
            report.month
        )));
    }
    if org.plan != billing_limits::Plan::Enterprise {
        return Ok(false);
    }
    let Some(percent) = report.percent() else {
        return Ok(false);
    };
    let month = report.month.to_string();
    // Sent already (the hourly pass comes by all month): nothing more to read or write.
    if store
        .alert_periods(org.id, "uptime_report", 0)
        .await?
        .contains(&month)
    {
        return Ok(false);
    }
    let committed = billing_limits::catalogue::sla_uptime_per_mille(org.plan);
    let met = committed.and_then(|c| report.meets(c));
    let body = report.text(committed);
    let mut journal = Journal::record(
        NewAuditEvent::new(
            org.id,
            now,
            Actor::system(),
            AuditAction::UptimeReported,
            Target::new("uptime_report", &month, format!("Uptime {month}")),
        )
        .with_metadata(Metadata::from_value(json!({
            "month": month,
            "availabilityPercent": percent,
            "downSeconds": report.down.num_seconds(),
            "outages": report.outages.len(),
            "met": met,
        }))?),
    );
    for m in store.admins(org.id).await? {
        if m.deactivated_at.is_some() {
            continue;
        }
        journal = journal.mail(OutboundMail {
            org: Some(org.id),
            to: m.user.email.as_str().to_owned(),
            subject: format!("Uptime report {month}: {percent} %"),
            body: format!(
                "Hello {name},\n\n{body}\nYou receive this as an administrator of {org_name} on \
                 the Enterprise plan.\n",
                name = m.user.name,
                org_name = org.name,
            ),
            kind: "uptime_report".into(),
        });
    }
    store
        .record_alert(org.id, "uptime_report", &month, 0, journal)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn span(instance: &str, a: DateTime<Utc>, b: DateTime<Utc>) -> UptimeSpan {
        UptimeSpan {
            instance: instance.into(),
            started_at: a,
            last_seen: b,
        }
    }

    const NOV: &str = "2026-11";

    fn tol() -> Duration {
        Duration::seconds(90)
    }

    #[test]
    fn months_parse_and_border() {
        let m = Month::parse(NOV).unwrap();
        assert_eq!(m.to_string(), NOV);
        assert_eq!(m.start(), at(1, 0, 0));
        assert_eq!(m.end(), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(
            Month::parse("2026-01").unwrap().previous().to_string(),
            "2025-12"
        );
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert_eq!(Month::of(at(30, 23, 59)), m);
        for bad in [
            "2026-13",
            "2026-00",
            "26-11",
            "2026-1",
            "2026/11",
            "1999-12",
            "２０２６-11",
            "",
        ] {
            assert!(
                matches!(Month::parse(bad), Err(TenancyError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn gaps_longer_than_the_tolerance_are_outages_counted_whole() {
        let m = Month::parse(NOV).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
        let spans = [
            span("a", at(1, 0, 0), at(5, 10, 0)),
            // A restart: 60 s without a beat is within the tolerance.
            span("b", at(5, 10, 1), at(12, 8, 0)),
            // Down 2 hours.
            span(
                "c",
                at(12, 10, 0),
                Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap(),
            ),
        ];
        let r = report(m, &spans, &[], now, tol()).unwrap();
        assert!(r.complete);
        assert_eq!(r.outages.len(), 1);
        assert_eq!(
            (r.outages[0].from, r.outages[0].to),
            (at(12, 8, 0), at(12, 10, 0))
        );
        assert!(!r.outages[0].ongoing);
        assert_eq!(r.down.num_seconds(), 7_200);
        assert_eq!(r.monitored.num_seconds(), 30 * 86_400);
        // 1 - 7200 / 2592000 = 99.7222… %
        assert_eq!(r.availability_per_million(), Some(997_222));
        assert_eq!(r.percent().as_deref(), Some("99.722"));
        assert_eq!(r.meets(999), Some(false));
        assert_eq!(r.meets(990), Some(true));
    }

    #[test]
    fn overlapping_instances_cover_each_other() {
        let m = Month::parse(NOV).unwrap();
        let now = at(20, 0, 0);
        // Two instances; one stops for a day while the other runs.
        let spans = [
            span("a", at(1, 0, 0), at(10, 0, 0)),
            span("b", at(2, 0, 0), at(19, 23, 59)),
            span("a", at(11, 0, 0), at(19, 23, 59)),
        ];
        let r = report(m, &spans, &[], now, tol()).unwrap();
        assert_eq!(r.outages, vec![]);
        assert_eq!(r.percent().as_deref(), Some("100.000"));
        assert!(!r.complete);
        assert_eq!(r.monitored_to, now);
    }

    #[test]
    fn an_outage_across_the_start_of_the_month_counts_its_part() {
        let m = Month::parse(NOV).unwrap();
        let oct = Utc.with_ymd_and_hms(2026, 10, 31, 23, 0, 0).unwrap();
        let spans = [
            span(
                "a",
                Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
                oct,
            ),
            span("a", at(1, 1, 0), at(30, 23, 59)),
        ];
        let r = report(m, &spans, &[], at(30, 23, 59), tol()).unwrap();
        assert_eq!(r.monitored_from, Some(at(1, 0, 0)));
        assert_eq!(r.outages.len(), 1);
        assert_eq!(
            (r.outages[0].from, r.outages[0].to),
            (at(1, 0, 0), at(1, 1, 0))
        );
        assert_eq!(r.down.num_seconds(), 3_600);
    }

    #[test]
    fn a_server_down_now_has_an_ongoing_outage_and_one_up_now_has_none() {
        let m = Month::parse(NOV).unwrap();
        let spans = [span("a", at(1, 0, 0), at(10, 0, 0))];
        let r = report(m, &spans, &[], at(10, 1, 0), tol()).unwrap();
        assert_eq!(r.outages.len(), 1);
        assert!(r.outages[0].ongoing);
        assert_eq!(r.down.num_seconds(), 3_600);
        // Its last beat a minute ago: within the tolerance, up.
        let r = report(m, &spans, &[], at(10, 0, 1), tol()).unwrap();
        assert_eq!(r.outages, vec![]);
        // The month over and the server down since: the outage runs to the month's end.
        let later = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let r = report(m, &spans, &[], later, tol()).unwrap();
        assert_eq!(r.outages.len(), 1);
        assert!(!r.outages[0].ongoing);
        assert_eq!(r.outages[0].to, m.end());
    }

    #[test]
    fn a_restart_across_the_end_of_the_month_is_no_outage() {
        let m = Month::parse(NOV).unwrap();
        let dec = |s: u32| Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, s).unwrap();
        let spans = [
            span("a", at(1, 0, 0), m.end() - Duration::seconds(10)),
            // The first span after the month (as the store returns it): 30 s without a beat.
            span("b", dec(20), dec(40)),
        ];
        let r = report(m, &spans, &[], dec(50) + Duration::days(3), tol()).unwrap();
        assert_eq!(r.outages, vec![]);
        assert!(r.complete);
        // Without it (no beat since), the rest of the month is an outage, not under way: the
        // month is over.
        let r = report(m, &spans[..1], &[], dec(50) + Duration::days(3), tol()).unwrap();
        assert_eq!(r.outages.len(), 1);
        assert_eq!(r.outages[0].to, m.end());
        assert!(!r.outages[0].ongoing);
    }

    #[test]
    fn time_before_the_first_beat_is_not_monitored() {
        let m = Month::parse(NOV).unwrap();
        let spans = [span("a", at(15, 0, 0), at(30, 0, 0))];
        let r = report(m, &spans, &[], at(30, 0, 0), tol()).unwrap();
        assert_eq!(r.monitored_from, Some(at(15, 0, 0)));
        assert_eq!(r.monitored.num_seconds(), 15 * 86_400);
        assert_eq!(r.down.num_seconds(), 0);
        // Nothing monitored: no availability, not a 100 %.
        let r = report(m, &[], &[], at(30, 0, 0), tol()).unwrap();
        assert_eq!(r.monitored_from, None);
        assert_eq!(r.availability_per_million(), None);
        assert_eq!(r.meets(999), None);
        // Monitoring began after the month.
        let dec = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
        let r = report(m, &[span("a", dec, dec)], &[], dec, tol()).unwrap();
        assert_eq!(r.monitored.num_seconds(), 0);
        // A month not begun has no report.
        let r = report(
            Month::parse("2026-12").unwrap(),
            &spans,
            &[],
            at(30, 0, 0),
            tol(),
        );
        assert!(matches!(r, Err(TenancyError::Invalid(_))));
    }

    #[test]
    fn declared_outages_count_once_with_what_the_beats_show() {
        let m = Month::parse(NOV).unwrap();
        let spans = [
            span("a", at(1, 0, 0), at(10, 0, 0)),
            // A gap the beats show: 10th, 0:00 to 1:00.
            span("a", at(10, 1, 0), at(30, 0, 0)),
        ];
        let declared = |r: &str, a, b| DeclaredOutage {
            reference: r.into(),
            started_at: a,
            ended_at: b,
        };
        let outages = [
            // Overlapping the gap: merged with it, counted once (23:30 to 1:00).
            declared("dns", at(9, 23, 30), Some(at(10, 0, 30))),
            // While the server beat: only the declaration shows it (20 minutes).
            declared("network", at(20, 12, 0), Some(at(20, 12, 20))),
            // Still under way, from 23:50 to now.
            declared("provider", at(29, 23, 50), None),
        ];
        let r = report(m, &spans, &outages, at(30, 0, 0), tol()).unwrap();
        let outage = |from, to, ongoing, r: &str| Outage {
            from,
            to,
            ongoing,
            declared: vec![r.to_owned()],
        };
        assert_eq!(
            r.outages,
            vec![
                outage(at(9, 23, 30), at(10, 1, 0), false, "dns"),
                outage(at(20, 12, 0), at(20, 12, 20), false, "network"),
                outage(at(29, 23, 50), at(30, 0, 0), true, "provider"),
            ]
        );
        assert_eq!(r.down.num_minutes(), 90 + 20 + 10);
        // A single beat between two gaps: two outages.
        let single = [
            span("a", at(1, 0, 0), at(2, 0, 0)),
            span("a", at(3, 0, 0), at(3, 0, 0)),
            span("a", at(4, 0, 0), at(30, 0, 0)),
        ];
        let two = report(m, &single, &[], at(30, 0, 0), tol()).unwrap();
        assert_eq!(two.outages.len(), 2);
        let text = r.text(Some(999));
        assert!(text.contains("declared: network"), "{text}");
        // Declared before the month: counted from its start.
        let before = [declared(
            "long",
            at(1, 0, 0) - Duration::days(1),
            Some(at(1, 2, 0)),
        )];
        let older = [span("a", at(1, 0, 0) - Duration::days(40), at(30, 0, 0))];
        let r = report(m, &older, &before, at(30, 0, 0), tol()).unwrap();
        assert_eq!(r.down.num_minutes(), 120);
    }

    #[test]
    fn the_percentage_rounds_down() {
        let m = Month::parse(NOV).unwrap();
        // 30 days = 2,592,000 s; down 2,593 s: 99.89996… %, shown 99.899, which misses 99.9.
        let spans = [
            span("a", at(1, 0, 0), at(10, 0, 0)),
            span("a", at(10, 0, 0) + Duration::seconds(2_593), m.end()),
        ];
        let r = report(m, &spans, &[], m.end(), tol()).unwrap();
        assert_eq!(r.percent().as_deref(), Some("99.899"));
        assert_eq!(r.meets(999), Some(false));
        let body = r.text(Some(999));
        assert!(body.contains("Committed: 99.9 %. Not met."), "{body}");
        assert!(body.contains("Outages (1, 43 minutes in all)"), "{body}");
    }
}
