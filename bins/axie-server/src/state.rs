//! Shared application state handed to every handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
use security_policy::{IpAllowlistEntry, PasswordHasher};
use store_sea::SeaStore;

use crate::config::Settings;

/// The server's clock. Production reads the system time; tests shift it to cross timeouts.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl AppState {
    /// The payment provider and prices, as the billing services take them.
    #[must_use]
    pub fn payments(&self) -> tenancy::billing::Payments<'_> {
        tenancy::billing::Payments {
            provider: &*self.payments,
            prices: &self.prices,
        }
    }
}

impl Clock {
    /// The current time, to the microsecond as the stores keep times, so that an answer shows
    /// the time a later read returns.
    pub fn now(&self) -> DateTime<Utc> {
        chrono::SubsecRound::trunc_subsecs(
            Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed)),
            6,
        )
    }

    /// Moves the clock forward (tests only call this).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

/// Everything handlers need.
#[derive(Clone)]
pub struct AppState {
    /// The storage adapter (all ports).
    pub store: Arc<SeaStore>,
    /// Password hashing.
    pub hasher: Arc<PasswordHasher>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Audit checkpoint signing key.
    pub checkpoint_key: Arc<Vec<u8>>,
    /// Keeps each organization's newest checkpoint outside the database.
    pub witness: Arc<dyn audit::CheckpointWitness>,
    /// Parsed trusted proxy networks.
    pub trusted_proxies: Arc<Vec<IpAllowlistEntry>>,
    /// Places client addresses in countries (`security.geoip_database`), when configured.
    pub geoip: Option<Arc<security_policy::GeoIp>>,
    /// The clock.
    pub clock: Clock,
    /// Encrypts secrets at rest.
    pub cipher: Arc<security_policy::Cipher>,
    /// HTTP client for webhook deliveries (no redirects, SSRF-guarded resolver).
    pub http: reqwest::Client,
    /// Where document bytes live.
    pub blobs: Arc<dyn tenancy::assets::BlobStore>,
    /// Checks custom domains' TXT records.
    pub domains: Arc<dyn tenancy::assets::DomainVerifier>,
    /// Document upload rules.
    pub documents: Arc<tenancy::assets::DocumentRules>,
    /// Sends text messages (2FA backup codes).
    pub sms: Arc<dyn tenancy::mfa::SmsSender>,
    /// Takes payment (the manual-invoice adapter).
    pub payments: Arc<dyn billing_limits::payment::PaymentProvider>,
    /// The price list.
    pub prices: Arc<billing_limits::subscription::PriceList>,
    /// API calls reserved in blocks and handed out in memory.
    pub meter: Arc<tenancy::metering::CallMeter>,
    /// Failed logins per client address.
    pub address_throttle: Arc<security_policy::AddressThrottle>,
    /// Failed logins per email that names no account (locked as an account would be).
    pub name_throttle: Arc<security_policy::NameThrottle>,
    /// The refusals during a lock already recorded (one per account and address per lock).
    pub refusal_marks: Arc<security_policy::RefusalMarks>,
    /// Password reset requests per client address (each request counts).
    pub reset_throttle: Arc<security_policy::AddressThrottle>,
    /// Background workers' heartbeats (for `/readyz` and metrics).
    pub health: Arc<crate::prom::WorkerHealth>,
}

impl AppState {
    /// The audit log with its checkpoints witnessed outside the database: what verification,
    /// checkpoints and retention go through.
    #[must_use]
    pub fn audit_log(&self) -> audit::Witnessed<'_> {
        audit::Witnessed::new(&*self.store, &*self.witness)
    }
}
