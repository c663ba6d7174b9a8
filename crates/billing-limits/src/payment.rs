//! Taking payment: the [`PaymentProvider`] port and the [`ManualInvoice`] adapter (an invoice
//! to be paid by bank transfer; no card processing).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rbac_core::OrgId;
use serde::{Deserialize, Serialize};

/// A request to be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Who pays.
    pub org: OrgId,
    /// The organization's billing details as entered (company name, address, tax id).
    pub bill_to: String,
    /// Amount in the smallest currency unit.
    pub amount_cents: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// The invoice line.
    pub description: String,
    /// Unique per charge: a provider must not charge twice for one key, and must refuse a key
    /// it has charged for another amount (as payment services do) rather than answer with the
    /// first charge. A credit purchase's key is the client's `Idempotency-Key` in its
    /// organization, so two concurrent requests with one key are one charge.
    pub idempotency_key: String,
    /// When.
    pub now: DateTime<Utc>,
}

/// Whether the money arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Paid.
    Paid,
    /// Invoiced, to be paid by the due date.
    Open,
    /// Cancelled before it was paid: nothing is owed (the credits it bought were reversed).
    Void,
}

impl ChargeStatus {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Paid => "paid",
            ChargeStatus::Open => "open",
            ChargeStatus::Void => "void",
        }
    }

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [ChargeStatus::Paid, ChargeStatus::Open, ChargeStatus::Void]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// What the provider did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider's name.
    pub provider: &'static str,
    /// Its reference (invoice number, payment id).
    pub reference: String,
    /// Paid or open.
    pub status: ChargeStatus,
    /// When an open charge is due.
    pub due_at: Option<DateTime<Utc>>,
}

/// Why a charge failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment failed: {0}")]
pub struct PaymentError(pub String);

/// Takes payment for a charge. Implementations talk to a payment service; the domain only
/// needs to know whether the charge is paid or invoiced.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Charges `req`.
    ///
    /// # Errors
    /// [`PaymentError`] when the provider refuses it; nothing is changed then.
    async fn charge(&self, req: &ChargeRequest) -> Result<Charge, PaymentError>;

    /// Gives back `charge`, made for `req`, whose change was never applied (another change to
    /// the same subscription was committed first): a card payment is refunded, an invoice
    /// voided. Never called for a charge that some request applied, but it may be called more
    /// than once for one charge (two requests with one idempotency key share it, and both may
    /// lose to a third change): an implementation must give a charge back once, however often
    /// it is asked (a refund keyed by the charge's reference, say).
    ///
    /// # Errors
    /// [`PaymentError`] when the provider refuses; the caller logs it with the charge's
    /// reference for the operator to settle by hand.
    async fn cancel(&self, charge: &Charge, req: &ChargeRequest) -> Result<(), PaymentError>;
}

/// Issues an invoice payable by bank transfer within `net_days`; the plan or credits take
/// effect at once (the operator follows up unpaid invoices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualInvoice {
    /// Payment term in days.
    pub net_days: u32,
}

impl Default for ManualInvoice {
    fn default() -> Self {
        Self { net_days: 30 }
    }
}

#[async_trait]
impl PaymentProvider for ManualInvoice {
    async fn charge(&self, req: &ChargeRequest) -> Result<Charge, PaymentError> {
        if req.currency.len() != 3 || !req.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(PaymentError(format!(
                "`{}` is not an ISO 4217 currency code",
                req.currency
            )));
        }
        // The invoice number follows from the charge's whole key (48 bits of its SHA-256), so
        // a retried charge is the same invoice and keys that differ anywhere are not (the
        // key's last characters alone collided: the same change a thousand versions apart).
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(req.idempotency_key.as_bytes());
        let tail = hex::encode_upper(&digest[..6]);
        Ok(Charge {
            provider: "manual_invoice",
            reference: format!("INV-{}-{tail}", req.now.format("%Y%m")),
            status: ChargeStatus::Open,
            due_at: Some(req.now + Duration::days(i64::from(self.net_days))),
        })
    }

    /// Nothing to give back: the invoice exists only once the change that made it is stored
    /// (and mailed with it), so an unapplied one was never issued.
    async fn cancel(&self, _: &Charge, _: &ChargeRequest) -> Result<(), PaymentError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str) -> ChargeRequest {
        ChargeRequest {
            org: OrgId::new(),
            bill_to: "Acme AB".into(),
            amount_cents: 2_900,
            currency: "EUR".into(),
            description: "pro".into(),
            idempotency_key: key.into(),
            now: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_manual_invoice_is_open_and_stable_per_key() {
        let p = ManualInvoice::default();
        let a = p.charge(&req("inv_0193abcdef12")).await.unwrap();
        let b = p.charge(&req("inv_0193abcdef12")).await.unwrap();
        assert_eq!(a.reference, b.reference);
        let tail = a.reference.rsplit('-').next().unwrap();
        assert!(
            tail.len() == 12 && tail.bytes().all(|c| c.is_ascii_hexdigit()),
            "{}",
            a.reference
        );
        // Keys that end alike are other invoices.
        let (v1, v1001) = (
            p.charge(&req("org_1-000001-subscribe")).await.unwrap(),
            p.charge(&req("org_1-001001-subscribe")).await.unwrap(),
        );
        assert_ne!(v1.reference, v1001.reference);
        assert_eq!(a.status, ChargeStatus::Open);
        assert!(a.due_at.unwrap() > req("x").now + Duration::days(29));
        let mut bad = req("k");
        bad.currency = "euro".into();
        assert!(p.charge(&bad).await.is_err());
    }
}
