//! Team credits: the rules of an append-only, double-entry-style ledger.
//!
//! An organization has a credit *pool* (what it bought and has not allocated) and one account
//! per team. Every operation is a list of [`Posting`]s applied in one transaction; a posting
//! never changes once written, and a correction is a compensating operation
//! ([`reversal_of`]). Purchases create credits; allocations, transfers and reversals of them move
//! credits between accounts and conserve the total; consumption removes them.
//!
//! ```
//! use billing_limits::credits::{Account, Allocation, split_by_allocation};
//! use rbac_core::TeamId;
//! let (dev, test, prod) = (TeamId::new(), TeamId::new(), TeamId::new());
//! // The team organization guide's example: 30 % / 20 % / 50 %.
//! let plan = [Allocation::new(dev, 30), Allocation::new(test, 20), Allocation::new(prod, 50)];
//! let shares = split_by_allocation(1_000, &plan).unwrap();
//! assert_eq!(shares, vec![(dev, 300), (test, 200), (prod, 500)]);
//! # let _ = Account::Pool;
//! ```

use std::collections::{BTreeMap, HashSet};

use rbac_core::TeamId;
use serde::{Deserialize, Serialize};

/// The largest single amount accepted (keeps every sum far from `i64` overflow).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Errors of credit rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreditError {
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Allocations would exceed 100 %.
    #[error("allocations add up to {0} %, more than 100 %")]
    OverAllocated(u32),
    /// The debit would take the account below zero (or below its overdraft).
    #[error("{account} has {balance} credits; {needed} are needed (overdraft {overdraft})")]
    Insufficient {
        /// The account.
        account: Account,
        /// Its balance before.
        balance: i64,
        /// The amount asked for.
        needed: i64,
        /// The overdraft it may use.
        overdraft: i64,
    },
    /// The idempotency key was used before for a different request.
    #[error("the idempotency key `{0}` was used for a different request")]
    KeyReused(String),
}

/// One credit account of an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// Bought and not allocated to a team.
    Pool,
    /// A team's account.
    Team(TeamId),
}

impl Account {
    /// The storage and wire key: `pool` or the team id.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Account::Pool => "pool".into(),
            Account::Team(t) => t.to_string(),
        }
    }

    /// Parses [`Account::key`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if s == "pool" {
            return Some(Account::Pool);
        }
        s.parse().ok().map(Account::Team)
    }

    /// The team, if a team account.
    #[must_use]
    pub fn team(&self) -> Option<TeamId> {
        match self {
            Account::Pool => None,
            Account::Team(t) => Some(*t),
        }
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl Serialize for Account {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Account::parse(&s).ok_or_else(|| serde::de::Error::custom("expected `pool` or a team id"))
    }
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Credits bought (top-up).
    Purchase,
    /// Credits moved from the pool to a team by the allocation (negative on the pool).
    Allocation,
    /// Credits used by a team.
    Consumption,
    /// Credits moved between accounts on request (negative on the source).
    Transfer,
    /// A compensating entry that cancels an earlier one.
    Reversal,
}

impl EntryKind {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Purchase => "purchase",
            EntryKind::Allocation => "allocation",
            EntryKind::Consumption => "consumption",
            EntryKind::Transfer => "transfer",
            EntryKind::Reversal => "reversal",
        }
    }

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            EntryKind::Purchase,
            EntryKind::Allocation,
            EntryKind::Consumption,
            EntryKind::Transfer,
            EntryKind::Reversal,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One change to one account, as an operation asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posting {
    /// The account.
    pub account: Account,
    /// Signed amount: credits added (positive) or taken (negative).
    pub amount: i64,
    /// What it is.
    pub kind: EntryKind,
}

/// A team's share of the organization's purchases, in whole percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The team.
    pub team: TeamId,
    /// Its share, 1 to 100.
    pub percent: u8,
}

impl Allocation {
    /// An allocation of `percent` to `team`.
    #[must_use]
    pub const fn new(team: TeamId, percent: u8) -> Self {
        Self { team, percent }
    }
}

/// Checks an allocation plan: each share 1–100 %, each team once, the total at most 100 %.
///
/// # Errors
/// [`CreditError::Invalid`] or [`CreditError::OverAllocated`].
pub fn validate_allocations(plan: &[Allocation]) -> Result<(), CreditError> {
    let mut seen = HashSet::new();
    for a in plan {
        if a.percent == 0 || a.percent > 100 {
            return Err(CreditError::Invalid(format!(
                "the share of {} must be between 1 and 100 %",
                a.team
            )));
        }
        if !seen.insert(a.team) {
            return Err(CreditError::Invalid(format!(
                "{} appears more than once",
                a.team
            )));
        }
    }
    let total: u32 = plan.iter().map(|a| u32::from(a.percent)).sum();
    if total > 100 {
        return Err(CreditError::OverAllocated(total));
    }
    Ok(())
}

/// Each team's share of `amount` under `plan`, rounded down (what rounding leaves stays in the
/// pool, so the shares never add up to more than `amount`). Teams with a zero share are left out.
///
/// # Errors
/// As [`validate_allocations`], and [`CreditError::Invalid`] for a negative amount.
pub fn split_by_allocation(
    amount: i64,
    plan: &[Allocation],
) -> Result<Vec<(TeamId, i64)>, CreditError> {
    validate_allocations(plan)?;
    check_amount(amount)?;
    Ok(plan
        .iter()
        .map(|a| (a.team, amount * i64::from(a.percent) / 100))
        .filter(|(_, s)| *s > 0)
        .collect())
}

/// Checks an amount given by a caller: positive and at most [`MAX_AMOUNT`].
///
/// # Errors
/// [`CreditError::Invalid`].
pub fn check_amount(amount: i64) -> Result<(), CreditError> {
    if amount <= 0 || amount > MAX_AMOUNT {
        return Err(CreditError::Invalid(format!(
            "`amount` must be a whole number of credits between 1 and {MAX_AMOUNT}"
        )));
    }
    Ok(())
}

/// The postings of a purchase into `account`; a purchase into the pool is distributed at once
/// by `plan` (the rest stays in the pool).
///
/// # Errors
/// As [`split_by_allocation`].
pub fn purchase(
    account: Account,
    amount: i64,
    plan: &[Allocation],
) -> Result<Vec<Posting>, CreditError> {
    check_amount(amount)?;
    let mut out = vec![Posting {
        account,
        amount,
        kind: EntryKind::Purchase,
    }];
    if account == Account::Pool {
        for (team, share) in split_by_allocation(amount, plan)? {
            out.push(Posting {
                account: Account::Pool,
                amount: -share,
                kind: EntryKind::Allocation,
            });
            out.push(Posting {
                account: Account::Team(team),
                amount: share,
                kind: EntryKind::Allocation,
            });
        }
    }
    Ok(out)
}

/// The posting of a team's consumption.
///
/// # Errors
/// [`CreditError::Invalid`] for a bad amount.
pub fn consume(team: TeamId, amount: i64) -> Result<Vec<Posting>, CreditError> {
    check_amount(amount)?;
    Ok(vec![Posting {
        account: Account::Team(team),
        amount: -amount,
        kind: EntryKind::Consumption,
    }])
}

/// The postings of a transfer (conserves the total).
///
/// # Errors
/// [`CreditError::Invalid`] for a bad amount or the same account on both sides.
pub fn transfer(from: Account, to: Account, amount: i64) -> Result<Vec<Posting>, CreditError> {
    check_amount(amount)?;
    if from == to {
        return Err(CreditError::Invalid(
            "a transfer needs two different accounts".into(),
        ));
    }
    Ok(vec![
        Posting {
            account: from,
            amount: -amount,
            kind: EntryKind::Transfer,
        },
        Posting {
            account: to,
            amount,
            kind: EntryKind::Transfer,
        },
    ])
}

/// The compensating postings that cancel `original`: every amount negated, last posting first,
/// so the reversal walks back through the balances the operation passed through. A purchase
/// allocated to teams is undone team by team, each team's credits returning to the pool before
/// the pool gives up the purchase: the pool need not hold the whole purchase at once (with the
/// debits first it had to, and a fully allocated purchase could never be reversed). Whether the
/// balances can carry it is checked at every step, in one transaction, by the store.
#[must_use]
pub fn reversal_of(original: &[Posting]) -> Vec<Posting> {
    original
        .iter()
        .rev()
        .map(|p| Posting {
            account: p.account,
            amount: -p.amount,
            kind: EntryKind::Reversal,
        })
        .collect()
}

/// The balance after applying `amount` to `balance`, or why it may not go there: a debit may
/// take the balance down to `-overdraft` and no further (a credit is always accepted).
///
/// # Errors
/// [`CreditError::Insufficient`].
pub fn apply(
    account: Account,
    balance: i64,
    amount: i64,
    overdraft: i64,
) -> Result<i64, CreditError> {
    let after = balance.saturating_add(amount);
    if amount < 0 && after < -overdraft {
        return Err(CreditError::Insufficient {
            account,
            balance,
            needed: -amount,
            overdraft,
        });
    }
    Ok(after)
}

/// Whether a change from `before` to `after` falls below the low-credit `threshold` (it was at
/// or above, it is now below): the moment a low-credit alert goes out, once per fall.
#[must_use]
pub fn fell_below(before: i64, after: i64, threshold: Option<i64>) -> bool {
    threshold.is_some_and(|t| before >= t && after < t)
}

/// A canonical description of a request, stored with its idempotency key: a retry with the same
/// key must describe the same request.
#[must_use]
pub fn fingerprint(operation: &str, postings: &[Posting]) -> String {
    let mut s = String::from(operation);
    for p in postings {
        s.push_str(&format!("|{}:{}:{}", p.account, p.kind.as_str(), p.amount));
    }
    s
}

/// The prefix of the service's own idempotency keys (a reversal's is `reversal:<operation>`),
/// which clients may not use.
pub const RESERVED_KEY_PREFIX: &str = "reversal:";

/// Checks an idempotency key: 1–255 visible ASCII characters, not starting with
/// [`RESERVED_KEY_PREFIX`].
///
/// # Errors
/// [`CreditError::Invalid`].
pub fn check_idempotency_key(key: &str) -> Result<(), CreditError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CreditError::Invalid(
            "the idempotency key must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    // The keys of reversals (`reversal:<operation>`) are the service's own: a client's key of
    // that shape would take a purchase's reversal key and make the purchase irreversible.
    if key
        .get(..RESERVED_KEY_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_KEY_PREFIX))
    {
        return Err(CreditError::Invalid(format!(
            "idempotency keys starting with `{RESERVED_KEY_PREFIX}` are reserved"
        )));
    }
    Ok(())
}

/// One ledger entry as read back for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEntry {
    /// The account.
    pub account: Account,
    /// What it is.
    pub kind: EntryKind,
    /// Signed amount.
    pub amount: i64,
    /// The account's balance after it.
    pub balance_after: i64,
    /// Whether it falls inside the report's period (entries before it only set the opening balance).
    pub in_period: bool,
}

/// One team's line of the chargeback report: what it received and used in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChargebackLine {
    /// The account (`pool` or the team id).
    pub account: String,
    /// The team's name (empty for the pool).
    pub name: String,
    /// Balance at the start of the period.
    pub opening_balance: i64,
    /// Credits bought into the account.
    pub purchased: i64,
    /// Credits received (positive) or handed out (negative) by the allocation.
    pub allocated: i64,
    /// Net transfers in (positive) or out (negative).
    pub transferred: i64,
    /// Credits consumed (a positive number).
    pub consumed: i64,
    /// Net effect of reversals.
    pub reversed: i64,
    /// Balance at the end of the period.
    pub closing_balance: i64,
}

/// Builds the chargeback report from the ledger read in order (entries before the period
/// included, for the opening balances), one entry at a time, so memory stays bounded by the
/// number of accounts. Every line satisfies
/// `opening + purchased + allocated + transferred - consumed + reversed = closing`.
#[derive(Debug, Default)]
pub struct Chargeback {
    lines: BTreeMap<Account, ChargebackLine>,
}

impl Chargeback {
    /// Adds the next entry.
    pub fn add(&mut self, e: &ReportEntry) {
        let line = self
            .lines
            .entry(e.account)
            .or_insert_with(|| ChargebackLine {
                account: e.account.key(),
                ..ChargebackLine::default()
            });
        if !e.in_period {
            line.opening_balance = e.balance_after;
            line.closing_balance = e.balance_after;
            return;
        }
        match e.kind {
            EntryKind::Purchase => line.purchased += e.amount,
            EntryKind::Allocation => line.allocated += e.amount,
            EntryKind::Transfer => line.transferred += e.amount,
            EntryKind::Consumption => line.consumed -= e.amount,
            EntryKind::Reversal => line.reversed += e.amount,
        }
        line.closing_balance = e.balance_after;
    }

    /// The lines, one per account in `names` and per account with entries, named.
    #[must_use]
    pub fn finish(mut self, names: &BTreeMap<Account, String>) -> Vec<ChargebackLine> {
        for (account, name) in names {
            self.lines
                .entry(*account)
                .or_insert_with(|| ChargebackLine {
                    account: account.key(),
                    ..ChargebackLine::default()
                })
                .name
                .clone_from(name);
        }
        self.lines.into_values().collect()
    }
}

/// Where a report's period lies in the ledger, read in its order (by sequence number, the
/// order entries were committed). An entry is dated when its operation was asked for, before the
/// payment provider answered, so entries of operations committed close together can be out of
/// date order. A period therefore begins at the first entry, in ledger order, dated at or after
/// `from`, and ends before the first dated at or after `to`: an entry late to commit counts in
/// the period it was committed in, and every line's opening balance plus what the period shows
/// is its closing balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    begun: bool,
}

/// Where [`Period::place`] puts the next entry of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Before the period: it sets the opening balance.
    Before,
    /// In the period.
    In,
    /// The period is over: this entry and every later one are after it.
    After,
}

impl Period {
    /// The period from `from` (inclusive) to `to` (exclusive).
    #[must_use]
    pub fn new(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            from,
            to,
            begun: false,
        }
    }

    /// Places the next entry of the ledger, dated `at`.
    pub fn place(&mut self, at: chrono::DateTime<chrono::Utc>) -> Placed {
        if at >= self.to {
            return Placed::After;
        }
        self.begun |= at >= self.from;
        if self.begun {
            Placed::In
        } else {
            Placed::Before
        }
    }
}

/// [`Chargeback`] over a whole list of entries.
#[must_use]
pub fn chargeback<'a>(
    entries: impl IntoIterator<Item = &'a ReportEntry>,
    names: &BTreeMap<Account, String>,
) -> Vec<ChargebackLine> {
    let mut c = Chargeback::default();
    for e in entries {
        c.add(e);
    }
    c.finish(names)
}

/// The chargeback report as CSV (RFC 4180, a header row).
///
/// # Errors
/// [`CreditError::Invalid`] if writing fails.
pub fn chargeback_csv(lines: &[ChargebackLine]) -> Result<String, CreditError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for l in lines {
        let mut l = l.clone();
        l.name = audit::export::neutralize(&l.name).into_owned();
        w.serialize(l)
            .map_err(|e| CreditError::Invalid(e.to_string()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CreditError::Invalid(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| CreditError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allocations_never_exceed_a_hundred_percent() {
        let (a, b) = (TeamId::new(), TeamId::new());
        assert!(validate_allocations(&[Allocation::new(a, 60), Allocation::new(b, 40)]).is_ok());
        assert_eq!(
            validate_allocations(&[Allocation::new(a, 60), Allocation::new(b, 41)]),
            Err(CreditError::OverAllocated(101))
        );
        assert!(matches!(
            validate_allocations(&[Allocation::new(a, 10), Allocation::new(a, 10)]),
            Err(CreditError::Invalid(_))
        ));
        assert!(matches!(
            validate_allocations(&[Allocation::new(a, 0)]),
            Err(CreditError::Invalid(_))
        ));
        assert!(validate_allocations(&[]).is_ok());
    }

    #[test]
    fn a_pool_purchase_is_distributed_and_the_rest_stays() {
        let (a, b) = (TeamId::new(), TeamId::new());
        let p = purchase(
            Account::Pool,
            101,
            &[Allocation::new(a, 30), Allocation::new(b, 50)],
        )
        .unwrap();
        let pool: i64 = p
            .iter()
            .filter(|p| p.account == Account::Pool)
            .map(|p| p.amount)
            .sum();
        assert_eq!(pool, 101 - 30 - 50);
        assert!(p.contains(&Posting {
            account: Account::Team(a),
            amount: 30,
            kind: EntryKind::Allocation
        }));
        // A purchase straight into a team is not distributed.
        assert_eq!(
            purchase(Account::Team(a), 5, &[Allocation::new(b, 50)])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn debits_respect_the_overdraft() {
        let t = Account::Team(TeamId::new());
        assert_eq!(apply(t, 10, -10, 0), Ok(0));
        assert!(matches!(
            apply(t, 10, -11, 0),
            Err(CreditError::Insufficient {
                balance: 10,
                needed: 11,
                ..
            })
        ));
        assert_eq!(apply(t, 10, -15, 5), Ok(-5));
        assert!(apply(t, -5, -1, 5).is_err());
        // Credits are always accepted, also into an overdrawn account.
        assert_eq!(apply(t, -5, 3, 5), Ok(-2));
    }

    #[test]
    fn low_credit_is_reported_once_per_fall() {
        assert!(fell_below(100, 99, Some(100)));
        assert!(!fell_below(99, 50, Some(100)));
        assert!(!fell_below(500, 100, Some(100)));
        assert!(!fell_below(500, 0, None));
    }

    #[test]
    fn amounts_and_keys_are_checked() {
        assert!(check_amount(0).is_err());
        assert!(check_amount(-1).is_err());
        assert!(check_amount(MAX_AMOUNT + 1).is_err());
        assert!(check_idempotency_key("order-42").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        // A reversal's key is the service's, in any case.
        for reserved in ["reversal:cop_1", "Reversal:x"] {
            assert!(check_idempotency_key(reserved).is_err(), "{reserved}");
        }
        assert!(check_idempotency_key("reversal").is_ok());
        assert!(transfer(Account::Pool, Account::Pool, 1).is_err());
    }

    #[test]
    fn chargeback_lines_reconcile_and_csv_is_neutralised() {
        let a = Account::Team(TeamId::new());
        let e = |kind, amount, balance_after, in_period| ReportEntry {
            account: a,
            kind,
            amount,
            balance_after,
            in_period,
        };
        let entries = [
            e(EntryKind::Purchase, 100, 100, false),
            e(EntryKind::Consumption, -30, 70, true),
            e(EntryKind::Transfer, 10, 80, true),
            e(EntryKind::Reversal, 30, 110, true),
        ];
        let names = BTreeMap::from([(a, "=HYPERLINK(\"x\")".to_owned())]);
        let lines = chargeback(&entries, &names);
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(
            (l.opening_balance, l.consumed, l.closing_balance),
            (100, 30, 110)
        );
        assert_eq!(
            l.opening_balance + l.purchased + l.allocated + l.transferred - l.consumed + l.reversed,
            l.closing_balance
        );
        let csv = chargeback_csv(&lines).unwrap();
        assert!(csv.starts_with("account,name,opening_balance,"));
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
        // Full-width signs, and signs behind white space, which spreadsheets run as well.
        for name in ["＝HYPERLINK(1)", " =1+1", "\u{a0}@SUM(A1)"] {
            let names = BTreeMap::from([(a, name.to_owned())]);
            let csv = chargeback_csv(&chargeback(&entries, &names)).unwrap();
            assert!(csv.contains(&format!("'{name}")), "{csv}");
        }
    }

    /// An entry committed after another but dated before it (its payment took longer)
    /// counts where the ledger has it: lines still add up across the boundary.
    #[test]
    fn a_period_follows_the_ledger_order() {
        let t = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let a = Account::Team(TeamId::new());
        // The ledger: a purchase, then a consumption dated after midnight, then a purchase
        // asked for before midnight but committed after the consumption.
        let ledger = [
            (t(-100), EntryKind::Purchase, 100, 100),
            (t(1), EntryKind::Consumption, -10, 90),
            (t(-2), EntryKind::Purchase, 20, 110),
            (t(50), EntryKind::Consumption, -5, 105),
        ];
        let report = |from, to| {
            let mut period = Period::new(from, to);
            let mut c = Chargeback::default();
            for (at, kind, amount, balance_after) in ledger {
                let in_period = match period.place(at) {
                    Placed::After => break,
                    placed => placed == Placed::In,
                };
                c.add(&ReportEntry {
                    account: a,
                    kind,
                    amount,
                    balance_after,
                    in_period,
                });
            }
            c.finish(&BTreeMap::new()).remove(0)
        };
        let (before, after) = (report(t(-1000), t(0)), report(t(0), t(1000)));
        assert_eq!((before.purchased, before.closing_balance), (100, 100));
        assert_eq!(
            (
                after.opening_balance,
                after.purchased,
                after.consumed,
                after.closing_balance
            ),
            (100, 20, 15, 105)
        );
        for l in [before, after] {
            assert_eq!(
                l.opening_balance + l.purchased + l.allocated + l.transferred - l.consumed
                    + l.reversed,
                l.closing_balance,
                "{l:?}"
            );
        }
    }

    proptest! {
        /// Shares never add up to more than the purchase, and each is within one credit of
        /// its exact percentage.
        #[test]
        fn shares_are_bounded_by_the_purchase(amount in 1i64..1_000_000_000, p in proptest::collection::vec(1u8..=40, 0..4)) {
            let plan: Vec<Allocation> = p.iter().map(|&pc| Allocation::new(TeamId::new(), pc)).collect();
            prop_assume!(validate_allocations(&plan).is_ok());
            let shares = split_by_allocation(amount, &plan).unwrap();
            let total: i64 = shares.iter().map(|(_, s)| s).sum();
            prop_assert!(total <= amount);
            for (team, share) in shares {
                let pc = plan.iter().find(|a| a.team == team).unwrap().percent;
                let exact = i128::from(amount) * i128::from(pc);
                prop_assert!(i128::from(share) * 100 <= exact && exact < (i128::from(share) + 1) * 100);
            }
        }

        /// Random operations applied with the overdraft rule: balances never go below the
        /// overdraft, transfers and allocations conserve the total, and reversing an applied
        /// operation restores every balance.
        #[test]
        fn the_ledger_conserves_credits(ops in proptest::collection::vec((0u8..4, 0usize..3, 0usize..3, 1i64..500), 1..40), overdraft in 0i64..50) {
            let teams = [TeamId::new(), TeamId::new(), TeamId::new()];
            let plan = [Allocation::new(teams[0], 30), Allocation::new(teams[1], 20), Allocation::new(teams[2], 50)];
            let mut balances: BTreeMap<Account, i64> = BTreeMap::new();
            let mut bought = 0i64;
            let mut used = 0i64;
            for (op, x, y, amount) in ops {
                let postings = match op {
                    0 => purchase(Account::Pool, amount, &plan).unwrap(),
                    1 => purchase(Account::Team(teams[x]), amount, &plan).unwrap(),
                    2 => consume(teams[x], amount).unwrap(),
                    _ => match transfer(Account::Team(teams[x]), Account::Team(teams[y]), amount) { Ok(p) => p, Err(_) => continue },
                };
                let before = balances.clone();
                let mut next = balances.clone();
                let ok = postings.iter().all(|p| {
                    let od = if p.account == Account::Pool { 0 } else { overdraft };
                    let b = next.get(&p.account).copied().unwrap_or(0);
                    match apply(p.account, b, p.amount, od) { Ok(a) => { next.insert(p.account, a); true } Err(_) => false }
                });
                if !ok { continue; }
                balances = next;
                match op { 0 | 1 => bought += amount, 2 => used += amount, _ => {} }
                for (acc, b) in &balances {
                    let od = if *acc == Account::Pool { 0 } else { overdraft };
                    prop_assert!(*b >= -od);
                }
                prop_assert_eq!(balances.values().sum::<i64>(), bought - used);
                // Reversal, right after, is accepted step by step under the same overdraft
                // rule (an allocated purchase included) and restores the previous balances
                // exactly (checked on a copy).
                let mut undone = balances.clone();
                for p in reversal_of(&postings) {
                    let od = if p.account == Account::Pool { 0 } else { overdraft };
                    let b = undone.get(&p.account).copied().unwrap_or(0);
                    let after = apply(p.account, b, p.amount, od);
                    prop_assert!(after.is_ok(), "reversal refused: {:?} of {:?}", p, postings);
                    undone.insert(p.account, after.unwrap_or(b));
                }
                for (acc, b) in &undone {
                    prop_assert_eq!(*b, before.get(acc).copied().unwrap_or(0));
                }
            }
        }
    }
}
