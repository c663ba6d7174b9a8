//! Typed settings: embedded defaults, then an optional TOML file, then `AXIE_*` environment variables.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use store_sea::DatabaseUrl;

/// The commented defaults, compiled in.
pub const DEFAULTS: &str = include_str!("../config.default.toml");

/// Everything the server reads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP listener.
    pub server: ServerSettings,
    /// Database.
    pub database: DatabaseSettings,
    /// First-start organization and Owner.
    pub bootstrap: BootstrapSettings,
    /// Keys.
    pub security: SecuritySettings,
    /// Invitations.
    pub invitations: InvitationSettings,
    /// Accounts: self-service password reset.
    pub accounts: AccountSettings,
    /// Outgoing mail.
    pub smtp: SmtpSettings,
    /// Outgoing text messages.
    pub sms: SmsSettings,
    /// Outgoing webhooks.
    pub webhooks: WebhookSettings,
    /// Workspace resources.
    pub workspace: WorkspaceSettings,
    /// Audit log.
    pub audit: AuditSettings,
    /// Removal of stale sessions, links, sent mail and delivery history.
    pub housekeeping: HousekeepingSettings,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// Logging.
    pub log: LogSettings,
    /// Trace export.
    pub telemetry: TelemetrySettings,
    /// Prices and invoicing.
    pub billing: BillingSettings,
    /// Deployment-wide plan limits and usage alerts.
    pub plans: PlanSettings,
    /// The support desk.
    pub support: SupportSettings,
    /// The service's own uptime monitoring.
    pub uptime: UptimeSettings,
}

/// The service's beats, from which the monthly uptime reports are made (`tenancy::uptime`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UptimeSettings {
    /// Seconds between an instance's beats; a gap of more than three is an outage.
    pub heartbeat_secs: u64,
}

impl UptimeSettings {
    /// The longest gap between beats that is not an outage: three beats.
    #[must_use]
    pub fn tolerance(&self) -> chrono::Duration {
        chrono::Duration::seconds(
            i64::try_from(self.heartbeat_secs.saturating_mul(3)).unwrap_or(900),
        )
    }
}

/// The support desk (`POST /orgs/{org}/support-requests`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupportSettings {
    /// Where support requests are mailed (empty: the server takes none).
    pub email: String,
    /// Days the desk is closed (public holidays, a company day off), as dates in Central
    /// Europe: business hours do not run on them.
    pub closed_days: Vec<chrono::NaiveDate>,
}

/// One limit's value in the configuration: a number, or `"unlimited"`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LimitValue {
    /// At most this many.
    Count(u64),
    /// `"unlimited"`.
    Word(String),
}

/// The deployment's changes to the guide's plan table (each entry: a limit name and a number
/// or `"unlimited"`), and the usage-alert thresholds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    /// Free plan changes.
    pub free: std::collections::BTreeMap<String, LimitValue>,
    /// Pro plan changes.
    pub pro: std::collections::BTreeMap<String, LimitValue>,
    /// Enterprise plan changes (its "higher" limits).
    pub enterprise: std::collections::BTreeMap<String, LimitValue>,
    /// Usage alerts go out when use reaches these percentages of a limit.
    pub alert_thresholds: Vec<u64>,
    /// Count requests made with API keys against the monthly API-call limit (false: no
    /// counting, no 429 answers, no API-call figures).
    pub meter_api_calls: bool,
    /// The most API calls an instance reserves from the database at a time (blocks are 0.1 %
    /// of the monthly limit, at least 1); 1 writes every call.
    pub api_call_block_max: u64,
}

impl PlanSettings {
    /// The deployment these settings describe.
    ///
    /// # Errors
    /// [`ConfigError`] for an unknown limit name, a word other than `unlimited`, or a
    /// threshold outside 1–100.
    pub fn deployment(&self) -> Result<billing_limits::Deployment, ConfigError> {
        use billing_limits::{Limit, LimitOverrides, Plan};
        let mut plans = std::collections::BTreeMap::new();
        for (plan, table) in [
            (Plan::Free, &self.free),
            (Plan::Pro, &self.pro),
            (Plan::Enterprise, &self.enterprise),
        ] {
            let mut o = LimitOverrides::default();
            for (name, value) in table {
                let limit = Limit::parse(name).ok_or_else(|| {
                    ConfigError(format!(
                        "`plans.{}.{name}` is not a limit; use one of {}",
                        plan.as_str(),
                        Limit::ALL.map(Limit::as_str).join(", ")
                    ))
                })?;
                let v = match value {
                    LimitValue::Count(n) => Some(*n),
                    LimitValue::Word(w) if w == "unlimited" => None,
                    LimitValue::Word(w) => {
                        return Err(ConfigError(format!(
                            "`plans.{}.{name}` must be a number or \"unlimited\", not `{w}`",
                            plan.as_str()
                        )));
                    }
                };
                o.0.insert(limit, v);
            }
            if !o.0.is_empty() {
                plans.insert(plan, o);
            }
        }
        if self.alert_thresholds.iter().any(|t| !(1..=100).contains(t)) {
            return Err(ConfigError(
                "`plans.alert_thresholds` must be percentages between 1 and 100".into(),
            ));
        }
        Ok(billing_limits::Deployment {
            plans,
            alert_thresholds: self.alert_thresholds.clone(),
        })
    }
}

/// Prices (in the currency's smallest unit) and the manual-invoice payment terms.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// ISO 4217 currency code of every price.
    pub currency: String,
    /// Pro per month on monthly billing (annual is twelve months less 20 %).
    pub pro_monthly_cents: u64,
    /// Enterprise per month on monthly billing (negotiated per deployment).
    pub enterprise_monthly_cents: u64,
    /// One team credit.
    pub credit_cents: u64,
    /// Days to pay a manual invoice.
    pub invoice_net_days: u32,
}

impl BillingSettings {
    /// The price list.
    #[must_use]
    pub fn prices(&self) -> billing_limits::subscription::PriceList {
        billing_limits::subscription::PriceList {
            currency: self.currency.clone(),
            pro_monthly_cents: self.pro_monthly_cents,
            enterprise_monthly_cents: self.enterprise_monthly_cents,
            credit_cents: self.credit_cents,
        }
    }
}

/// OpenTelemetry trace export settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP collector base URL (empty = no export).
    pub otlp_endpoint: String,
    /// `http/protobuf` or `http/json`.
    pub otlp_protocol: String,
    /// `service.name` of exported spans.
    pub service_name: String,
    /// Fraction of root spans sampled.
    pub sample_ratio: f64,
}

/// Prometheus metrics settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Bearer token for `/metrics` on the main listener (empty = not served there).
    #[serde(serialize_with = "redact_secret")]
    pub token: SecretString,
    /// Address of a separate, unauthenticated metrics listener (empty = none).
    pub listen: String,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub host: String,
    /// Listen port (0 = any free port).
    pub port: u16,
    /// Request body limit in bytes.
    pub body_limit_bytes: usize,
    /// Seconds a request body may take to arrive whole (an upload: between two of its
    /// chunks) before the request is answered 408 (1 to 3600).
    pub body_timeout_secs: u64,
    /// Trusted reverse-proxy networks.
    pub trusted_proxies: Vec<String>,
    /// Secure flag on the session cookie. It is set anyway when the server serves TLS itself
    /// or `public_url` is `https://` ([`ServerSettings::session_cookie_secure`]).
    pub cookie_secure: bool,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Public base URL for links in emails.
    pub public_url: String,
    /// PEM certificate chain for TLS (empty = plain HTTP).
    pub tls_cert: PathBuf,
    /// PEM private key for TLS.
    pub tls_key: PathBuf,
    /// Run the background workers in this process.
    pub workers: bool,
}

impl ServerSettings {
    /// Whether the session cookie is marked Secure: when `cookie_secure` says so, and always
    /// when the server serves TLS itself or is reached at an `https://` public URL, where a
    /// cookie sent over plain HTTP (a first visit without HSTS) could only leak it.
    #[must_use]
    pub fn session_cookie_secure(&self) -> bool {
        self.cookie_secure
            || !self.tls_cert.as_os_str().is_empty()
            || self
                .public_url
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// The URL this server answers at on this machine, listening on `port`, for the first-start
    /// instructions: `https` when it serves TLS itself, an address that listens everywhere as
    /// loopback, an IPv6 address in brackets.
    #[must_use]
    pub fn local_base(&self, port: u16) -> String {
        let scheme = if self.tls_cert.as_os_str().is_empty() {
            "http"
        } else {
            "https"
        };
        let host = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
            Ok(ip) if ip.is_unspecified() => "[::1]".to_owned(),
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        };
        format!("{scheme}://{host}:{port}")
    }
}

/// Invitation settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationSettings {
    /// Days a link stays valid.
    pub expiry_days: u32,
    /// Path of the accept page under `public_url`.
    pub accept_path: String,
}

/// Account settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// Path of the page that sets a new password under `public_url`.
    pub reset_path: String,
    /// Minutes a password reset link stays valid.
    pub reset_expiry_minutes: u32,
    /// Reset links sent to one person in any hour, at most.
    pub resets_per_hour: u32,
    /// Reset requests from one client address in 15 minutes, at most (for any accounts).
    pub reset_requests_per_address: u32,
}

/// Housekeeping settings (`tenancy::housekeeping`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HousekeepingSettings {
    /// Days an email stays in the outbox, sent or not.
    pub mail_days: u32,
    /// Days a finished webhook delivery and its attempts stay in the delivery history after its
    /// last attempt, and a domain event in the outbox table once no delivery refers to it.
    pub webhook_history_days: u32,
}

impl HousekeepingSettings {
    /// The domain's settings.
    #[must_use]
    pub const fn policy(&self) -> tenancy::housekeeping::Housekeeping {
        tenancy::housekeeping::Housekeeping {
            mail_days: self.mail_days,
            webhook_history_days: self.webhook_history_days,
        }
    }
}

/// SMTP settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Relay host; empty keeps mail in the outbox.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    /// Login name (optional).
    pub username: String,
    /// Login password (optional).
    #[serde(serialize_with = "redact_secret")]
    pub password: SecretString,
    /// Sender address.
    pub from: String,
    /// Seconds each exchange with the relay may take (1 to 300); a whole message is cut off
    /// at three times this.
    pub timeout_secs: u64,
}

/// Database settings (`Debug` redacts the URL's password).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Database URL; empty means the SQLite file in the data directory.
    #[serde(serialize_with = "redact_url")]
    pub url: String,
    /// PostgreSQL pool size; on SQLite, the reader connections beside the one writer (at most 4).
    pub max_connections: u32,
}

/// First-start settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSettings {
    /// Organization name.
    pub org_name: String,
    /// Owner email.
    pub owner_email: String,
    /// Owner display name.
    pub owner_name: String,
    /// Owner password; empty = generated.
    #[serde(serialize_with = "redact_secret")]
    pub owner_password: SecretString,
    /// Seed the guide's marketing-team demo.
    pub demo: bool,
}

/// Key settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Audit checkpoint signing key; empty = file in the data directory.
    #[serde(serialize_with = "redact_secret")]
    pub checkpoint_key: SecretString,
    /// Encryption key for secrets at rest; empty = file in the data directory.
    #[serde(serialize_with = "redact_secret")]
    pub encryption_key: SecretString,
    /// Failed logins per client address (15-minute window) before the address is locked out.
    pub address_login_failures: u32,
    /// Issuer name in authenticator apps.
    pub totp_issuer: String,
    /// GeoIP2 / GeoLite2 Country or City database (`.mmdb`); empty = none.
    pub geoip_database: PathBuf,
}

/// SMS gateway settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// Gateway URL; empty keeps messages in the SMS outbox.
    pub gateway_url: String,
    /// Bearer token for the gateway.
    #[serde(serialize_with = "redact_secret")]
    pub gateway_token: SecretString,
}

/// Webhook delivery settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Attempt timeout in seconds.
    pub timeout_secs: u64,
    /// Refuse http:// URLs: new ones, and deliveries to those stored before this was on.
    pub https_only: bool,
    /// Internal networks allowed as destinations.
    pub allow_cidrs: Vec<String>,
    /// Attempts per delivery.
    pub max_attempts: u32,
    /// First retry delay in milliseconds.
    pub base_delay_ms: u64,
    /// Failed deliveries in a row after which an endpoint is disabled (0: never; a 410 Gone
    /// always disables it).
    pub disable_after_failures: u32,
    /// Up to this share of each scheduled retry delay, in percent (0 to 100), is added to it,
    /// a different share for each delivery, so that deliveries that failed together do not
    /// all retry in the same instant; a receiver's `Retry-After` is kept exactly.
    pub retry_jitter_percent: u32,
}

/// Workspace resource settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// Directory of document bytes (empty = `<data_dir>/blobs`).
    pub blob_dir: PathBuf,
    /// Largest document upload in bytes.
    pub document_max_bytes: u64,
    /// Accepted document media types.
    pub document_types: Vec<String>,
    /// DNS servers for domain verification (`host:port`), empty = system resolvers.
    pub dns_servers: Vec<String>,
}

impl WorkspaceSettings {
    /// The blob directory, resolved against the data directory.
    #[must_use]
    pub fn blob_dir(&self, data_dir: &Path) -> PathBuf {
        if self.blob_dir.as_os_str().is_empty() {
            data_dir.join("blobs")
        } else {
            self.blob_dir.clone()
        }
    }

    /// The upload rules.
    #[must_use]
    pub fn document_rules(&self) -> tenancy::assets::DocumentRules {
        tenancy::assets::DocumentRules {
            max_bytes: self.document_max_bytes,
            content_types: self
                .document_types
                .iter()
                .map(|t| t.trim().to_ascii_lowercase())
                .collect(),
        }
    }
}

/// Audit settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Seconds between automatic checkpoints (0 = off).
    pub checkpoint_interval_secs: u64,
    /// Directory where each organization's newest checkpoint is also kept, outside the
    /// database (empty = `<data_dir>/audit-witness`).
    pub witness_dir: PathBuf,
}

impl AuditSettings {
    /// The witness directory, resolved against the data directory.
    #[must_use]
    pub fn witness_dir(&self, data_dir: &Path) -> PathBuf {
        if self.witness_dir.as_os_str().is_empty() {
            data_dir.join("audit-witness")
        } else {
            self.witness_dir.clone()
        }
    }
}

/// Log settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// tracing filter directive.
    pub level: String,
}

/// The settings that hold secrets (each a `SecretString`), read from the environment as text.
const SECRET_KEYS: [&str; 6] = [
    "metrics.token",
    "smtp.password",
    "bootstrap.owner_password",
    "security.checkpoint_key",
    "security.encryption_key",
    "sms.gateway_token",
];

fn redact_secret<S: serde::Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(if s.expose_secret().is_empty() {
        ""
    } else {
        "***"
    })
}

fn redact_url<S: serde::Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
    match DatabaseUrl::parse(s) {
        Ok(u) => ser.serialize_str(&u.redacted()),
        // Not shown: it may hold a password this server would not know to hide.
        Err(_) => ser.serialize_str("<an unsupported database URL>"),
    }
}

/// Renders figment's errors without any value a secret setting might hold.
///
/// figment's own rendering quotes the offending value (`found string "…" for key
/// "smtp.password"`) and a TOML syntax error quotes the offending line of the file with a caret
/// under it; either can be a password, printed to the terminal or the service's log. Values are
/// named only for settings that hold no secret, and a syntax error keeps its position and
/// reason but not the line.
fn describe(errors: figment::Error) -> String {
    use figment::error::Kind;
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let secret = SECRET_KEYS.contains(&key.as_str()) || key == "database.url";
            let text = match &e.kind {
                Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) if secret => {
                    format!("`{key}` must be {expected}")
                }
                // A TOML syntax error: "TOML parse error at line 3, column 20", the line with a
                // caret under it, the reason.
                Kind::Message(m) => m
                    .lines()
                    .filter(|l| {
                        let t = l
                            .trim_start()
                            .trim_start_matches(|c: char| c.is_ascii_digit());
                        !t.trim_start().starts_with('|') && !l.trim().is_empty()
                    })
                    .collect::<Vec<_>>()
                    .join(": "),
                _ => return e.to_string(),
            };
            match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(source) => format!("{text} (in {source})"),
                None => text,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A configuration problem, reported at start with the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads defaults, then `file` (if any), then the environment, and validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key that is wrong.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::new().merge(Toml::string(DEFAULTS));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError(format!(
                    "config file `{}` does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Every setting sits in a section, so only `AXIE_<SECTION>__<KEY>` variables are settings;
        // others such as `AXIE_CONFIG` or `AXIE_TEST_POSTGRES_URL` are left alone.
        fig = fig.merge(
            Env::prefixed("AXIE_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        // Secrets are text whatever they look like: figment reads an environment value as
        // TOML where it can, so an all-digit token (`0123…`) became a number, refused with the
        // secret in the error (or losing its leading zeros), and `true` a boolean.
        for key in SECRET_KEYS {
            let var = format!("AXIE_{}", key.replace('.', "__").to_ascii_uppercase());
            if let Ok(value) = std::env::var(&var) {
                fig = fig.merge(Serialized::default(key, value));
            }
        }
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            fig = fig.merge(Serialized::default("database.url", url));
        }
        let settings: Settings = fig.extract().map_err(|e| ConfigError(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.body_limit_bytes < 1024 {
            return Err(ConfigError(
                "`server.body_limit_bytes` must be at least 1024".into(),
            ));
        }
        if !(1..=3600).contains(&self.server.body_timeout_secs) {
            return Err(ConfigError(
                "`server.body_timeout_secs` must be between 1 and 3600".into(),
            ));
        }
        let gateway = self.sms.gateway_url.trim();
        if !gateway.is_empty()
            && !reqwest::Url::parse(gateway)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        {
            return Err(ConfigError(
                "`sms.gateway_url` must be an http:// or https:// URL (or empty, for the SMS outbox)"
                    .into(),
            ));
        }
        let proxies = security_policy::parse_allowlist(&self.server.trusted_proxies)
            .map_err(|e| ConfigError(format!("`server.trusted_proxies`: {e}")))?;
        // A client inside a trusted network can name any address in X-Forwarded-For: trusting
        // every address would let every client past the IP allowlists and the throttles.
        if let Some(all) = proxies.iter().find(|p| p.network().prefix() == 0) {
            return Err(ConfigError(format!(
                "`server.trusted_proxies`: `{}` trusts every address; list the proxies' own networks",
                all.network()
            )));
        }
        if !self.database.url.is_empty() {
            DatabaseUrl::parse(&self.database.url)
                .map_err(|e| ConfigError(format!("`database.url`: {e}")))?;
        }
        if self.smtp.timeout_secs == 0 || self.smtp.timeout_secs > 300 {
            return Err(ConfigError(
                "`smtp.timeout_secs` must be between 1 and 300".into(),
            ));
        }
        if !matches!(self.smtp.security.as_str(), "none" | "starttls" | "tls") {
            return Err(ConfigError(
                "`smtp.security` must be `none`, `starttls` or `tls`".into(),
            ));
        }
        if !self.smtp.host.is_empty() && self.smtp.from.parse::<lettre::message::Mailbox>().is_err()
        {
            return Err(ConfigError(format!(
                "`smtp.from` is not a valid mailbox: `{}`",
                self.smtp.from
            )));
        }
        let endpoint = &self.telemetry.otlp_endpoint;
        if !endpoint.is_empty()
            && !endpoint.starts_with("http://")
            && !endpoint.starts_with("https://")
        {
            return Err(ConfigError(
                "`telemetry.otlp_endpoint` must be an http:// or https:// URL".into(),
            ));
        }
        if !matches!(
            self.telemetry.otlp_protocol.as_str(),
            "http/protobuf" | "http/json"
        ) {
            return Err(ConfigError(
                "`telemetry.otlp_protocol` must be `http/protobuf` or `http/json`".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(ConfigError(
                "`telemetry.sample_ratio` must be between 0.0 and 1.0".into(),
            ));
        }
        self.plans.deployment()?;
        let currency = &self.billing.currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError(
                "`billing.currency` must be an ISO 4217 code such as `EUR`".into(),
            ));
        }
        self.billing
            .prices()
            .validate()
            .map_err(|e| ConfigError(format!("`billing.{}` is at most {}", e.field, e.max)))?;
        if self.billing.invoice_net_days == 0 || self.billing.invoice_net_days > 365 {
            return Err(ConfigError(
                "`billing.invoice_net_days` must be between 1 and 365".into(),
            ));
        }
        if self.invitations.expiry_days == 0 || self.invitations.expiry_days > 90 {
            return Err(ConfigError(
                "`invitations.expiry_days` must be between 1 and 90".into(),
            ));
        }
        if !(5..=1440).contains(&self.accounts.reset_expiry_minutes) {
            return Err(ConfigError(
                "`accounts.reset_expiry_minutes` must be between 5 and 1440".into(),
            ));
        }
        for (name, days) in [
            ("mail_days", self.housekeeping.mail_days),
            (
                "webhook_history_days",
                self.housekeeping.webhook_history_days,
            ),
        ] {
            if !(1..=3650).contains(&days) {
                return Err(ConfigError(format!(
                    "`housekeeping.{name}` must be between 1 and 3650"
                )));
            }
        }
        // Without SMTP the outbox is where an invitation's link is read: it must outlive the link.
        if self.housekeeping.mail_days < self.invitations.expiry_days {
            return Err(ConfigError(
                "`housekeeping.mail_days` must be at least `invitations.expiry_days`".into(),
            ));
        }
        // Values that start but break the server later: a pool with no connection waits
        // forever; one failed login locking every address out for 15 minutes; a checkpoint
        // interval whose arithmetic overflows; an upload limit the server cannot hold in memory.
        if self.database.max_connections == 0 || self.database.max_connections > 1_000 {
            return Err(ConfigError(
                "`database.max_connections` must be between 1 and 1000".into(),
            ));
        }
        if self.security.address_login_failures < 3 {
            return Err(ConfigError(
                "`security.address_login_failures` must be at least 3 (fewer would lock an address out for a mistyped password)".into(),
            ));
        }
        if self.audit.checkpoint_interval_secs > 30 * 86_400 {
            return Err(ConfigError(
                "`audit.checkpoint_interval_secs` must be at most 2592000 (30 days), or 0 for none"
                    .into(),
            ));
        }
        if self.workspace.document_max_bytes > 1 << 30 {
            return Err(ConfigError(
                "`workspace.document_max_bytes` must be at most 1073741824 (1 GiB): an upload is held in memory".into(),
            ));
        }
        if !reqwest::Url::parse(&self.server.public_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        {
            return Err(ConfigError(
                "`server.public_url` must be an http:// or https:// URL (the address people use, for links in mail)".into(),
            ));
        }
        if self.support.closed_days.len() > 1_000 {
            return Err(ConfigError(
                "`support.closed_days` lists at most 1000 days".into(),
            ));
        }
        if !(1..=300).contains(&self.uptime.heartbeat_secs) {
            return Err(ConfigError(
                "`uptime.heartbeat_secs` must be between 1 and 300".into(),
            ));
        }
        if !self.support.email.is_empty() && tenancy::Email::parse(&self.support.email).is_err() {
            return Err(ConfigError(
                "`support.email` must be an email address, or empty".into(),
            ));
        }
        if self.accounts.reset_requests_per_address == 0 {
            return Err(ConfigError(
                "`accounts.reset_requests_per_address` must be at least 1".into(),
            ));
        }
        if !(1..=20).contains(&self.accounts.resets_per_hour) {
            return Err(ConfigError(
                "`accounts.resets_per_hour` must be between 1 and 20".into(),
            ));
        }
        for c in &self.webhooks.allow_cidrs {
            c.parse::<ipnetwork::IpNetwork>().map_err(|_| {
                ConfigError(format!(
                    "`webhooks.allow_cidrs`: `{c}` is not a CIDR network"
                ))
            })?;
        }
        if self.webhooks.timeout_secs == 0 || self.webhooks.timeout_secs > 300 {
            return Err(ConfigError(
                "`webhooks.timeout_secs` must be between 1 and 300".into(),
            ));
        }
        if self.webhooks.retry_jitter_percent > 100 {
            return Err(ConfigError(
                "`webhooks.retry_jitter_percent` must be between 0 and 100".into(),
            ));
        }
        if self.webhooks.max_attempts == 0 || self.webhooks.max_attempts > 20 {
            return Err(ConfigError(
                "`webhooks.max_attempts` must be between 1 and 20".into(),
            ));
        }
        if self.webhooks.base_delay_ms == 0
            || self.webhooks.base_delay_ms > webhooks::MAX_RETRY_DELAY_MS
        {
            return Err(ConfigError(format!(
                "`webhooks.base_delay_ms` must be between 1 and {} (a day)",
                webhooks::MAX_RETRY_DELAY_MS
            )));
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return Err(ConfigError(
                "`log.format` must be `pretty` or `json`".into(),
            ));
        }
        Ok(())
    }

    /// The database URL to use.
    ///
    /// # Errors
    /// Never after validation; kept fallible for callers that build settings by hand.
    pub fn database_url(&self) -> Result<DatabaseUrl, ConfigError> {
        if self.database.url.is_empty() {
            Ok(DatabaseUrl::sqlite_file(
                &self.server.data_dir.join("axie.db"),
            ))
        } else {
            DatabaseUrl::parse(&self.database.url).map_err(ConfigError)
        }
    }

    /// The effective configuration as TOML with secrets redacted.
    #[must_use]
    pub fn redacted_toml(&self) -> String {
        toml_string(self)
    }
}

fn toml_string(s: &Settings) -> String {
    // figment's TOML support is read-only; JSON is an exact, readable rendering too.
    serde_json::to_string_pretty(s).unwrap_or_default()
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = DatabaseUrl::parse(&self.url).map_or_else(
            |_| "<an unsupported database URL>".to_owned(),
            |u| u.redacted(),
        );
        f.debug_struct("DatabaseSettings")
            .field("url", &url)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The configuration reference (`docs/configuration.md`), generated from the commented
/// defaults the server itself loads, so the two cannot drift apart.
#[must_use]
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated by `cargo run -- config-reference` from `bins/axie-server/config.default.toml`, \
         the defaults compiled into the server; a test fails when this file is out of date.\n\n\
         Settings are read from those defaults, then an optional TOML file (`--config path` or \
         `AXIE_CONFIG`), then environment variables `AXIE_<SECTION>__<KEY>`; `DATABASE_URL`, when \
         set, wins over `database.url`. Lists are given in the environment as TOML arrays, for \
         example `AXIE_SERVER__TRUSTED_PROXIES='[\"10.0.0.0/8\"]'`.\n",
    );
    let mut section = String::new();
    let mut comments: Vec<String> = Vec::new();
    let mut after_key = false;
    for line in DEFAULTS.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.to_owned();
            out.push_str(&format!(
                "\n## `[{section}]`\n\n| Setting | Type | Default | Environment variable | Meaning |\n|---|---|---|---|---|\n"
            ));
            comments.clear();
        } else if let Some(c) = t.strip_prefix('#') {
            if after_key {
                comments.clear();
                after_key = false;
            }
            if !section.is_empty() {
                comments.push(c.trim().to_owned());
            }
        } else if let Some((key, value)) = t.split_once('=') {
            let (key, value) = (key.trim(), value.trim());
            let kind = if value.starts_with('"') {
                "string"
            } else if value.starts_with('[') {
                "list"
            } else if value == "true" || value == "false" {
                "boolean"
            } else {
                "integer"
            };
            let shown = if value == "\"\"" {
                "(empty)".to_owned()
            } else {
                format!("`{value}`")
            };
            out.push_str(&format!(
                "| `{section}.{key}` | {kind} | {shown} | `AXIE_{}__{}` | {} |\n",
                section.to_uppercase(),
                key.to_uppercase(),
                comments.join(" ").replace('|', "\\|")
            ));
            comments.clear();
            after_key = true;
        } else if t.is_empty() {
            comments.clear();
            after_key = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        s.validate().unwrap();
        assert_eq!(s.server.port, 8080);
        assert!(s.database_url().unwrap().is_sqlite());
        // Secure by default: webhooks go over HTTPS only unless the operator says otherwise.
        assert!(s.webhooks.https_only);
    }

    /// Trusting every address as a proxy would let any client name its own address.
    #[test]
    fn trusting_every_address_as_a_proxy_is_refused() {
        let mut s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        for all in ["0.0.0.0/0", "::/0"] {
            s.server.trusted_proxies = vec!["10.0.0.0/8".into(), all.into()];
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("trusts every address"), "{all}: {e}");
        }
        s.server.trusted_proxies = vec!["10.0.0.0/8".into(), "fd00::/8".into()];
        s.validate().unwrap();
    }

    /// Values that would start and then break the server are refused at start, naming the key.
    #[test]
    fn values_that_break_the_server_later_are_refused() {
        let base: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        type Breaks = fn(&mut Settings);
        let cases: [(&str, Breaks); 6] = [
            ("database.max_connections", |s| {
                s.database.max_connections = 0
            }),
            ("security.address_login_failures", |s| {
                s.security.address_login_failures = 0;
            }),
            ("audit.checkpoint_interval_secs", |s| {
                s.audit.checkpoint_interval_secs = u64::MAX;
            }),
            ("workspace.document_max_bytes", |s| {
                s.workspace.document_max_bytes = u64::MAX;
            }),
            ("server.public_url", |s| {
                s.server.public_url = "chat.example.com".into()
            }),
            ("server.public_url", |s| {
                s.server.public_url = "ftp://chat.example.com".into()
            }),
        ];
        for (key, break_it) in cases {
            let mut s = base.clone();
            break_it(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    /// The first start prints a URL that works: TLS, IPv6 and listening everywhere.
    #[test]
    fn the_local_base_is_a_url_that_answers() {
        let mut s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        let at = |s: &Settings| s.server.local_base(8080);
        assert_eq!(at(&s), "http://127.0.0.1:8080");
        s.server.host = "0.0.0.0".into();
        assert_eq!(at(&s), "http://127.0.0.1:8080");
        s.server.host = "::".into();
        assert_eq!(at(&s), "http://[::1]:8080");
        s.server.host = "::1".into();
        assert_eq!(at(&s), "http://[::1]:8080");
        s.server.host = "axie.internal".into();
        s.server.tls_cert = "/etc/axie/cert.pem".into();
        assert_eq!(at(&s), "https://axie.internal:8080");
    }

    /// An SMS gateway URL that no request could reach is refused at start, not at the first
    /// text (a 500 for every sign-in that asks for one).
    #[test]
    fn an_sms_gateway_is_an_http_url() {
        let mut s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        for bad in ["sms.example.com/send", "ftp://sms.example.com", "https://"] {
            s.sms.gateway_url = bad.into();
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("sms.gateway_url"), "{bad}: {e}");
        }
        for good in ["", "https://sms.example.com/send", "http://127.0.0.1:9000"] {
            s.sms.gateway_url = good.into();
            s.validate().unwrap();
        }
    }

    #[test]
    fn the_session_cookie_is_secure_wherever_the_server_is_reached_over_tls() {
        let mut s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        assert!(!s.server.session_cookie_secure(), "plain HTTP on a laptop");
        s.server.public_url = "HTTPS://chat.example.com".into();
        assert!(s.server.session_cookie_secure(), "behind a TLS proxy");
        s.server.public_url = "http://localhost:8080".into();
        s.server.tls_cert = "/etc/axie/cert.pem".into();
        assert!(s.server.session_cookie_secure(), "TLS served by the server");
        s.server.tls_cert = PathBuf::new();
        s.server.cookie_secure = true;
        assert!(s.server.session_cookie_secure());
    }

    #[test]
    fn housekeeping_keeps_history_at_least_a_day() {
        let mut s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        assert_eq!(
            s.housekeeping.policy(),
            tenancy::housekeeping::Housekeeping::default()
        );
        s.housekeeping.mail_days = 0;
        let e = s.validate().unwrap_err();
        assert!(e.0.contains("housekeeping.mail_days"), "{}", e.0);
        s.housekeeping.mail_days = 6;
        let e = s.validate().unwrap_err();
        assert!(e.0.contains("invitations.expiry_days"), "{}", e.0);
        s.housekeeping.mail_days = 7;
        s.validate().unwrap();
        s.housekeeping.webhook_history_days = 3651;
        assert!(s.validate().is_err());
    }

    #[test]
    fn a_price_that_could_overflow_is_refused() {
        let mut s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        s.billing.credit_cents = billing_limits::subscription::MAX_CREDIT_CENTS + 1;
        let e = s.validate().unwrap_err();
        assert!(e.0.contains("`billing.credit_cents` is at most"), "{}", e.0);
        s.billing.credit_cents = 1;
        s.billing.pro_monthly_cents = u64::MAX;
        let e = s.validate().unwrap_err();
        assert!(e.0.contains("`billing.pro_monthly_cents`"), "{}", e.0);
    }

    /// A mistyped or malformed secret in the file is reported without the secret.
    #[test]
    fn configuration_errors_do_not_print_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("axie.toml");
        std::fs::write(&file, "[smtp]\npassword = \"s3cretpw\n").unwrap();
        let e = Settings::load(Some(&file)).unwrap_err().0;
        assert!(!e.contains("s3cretpw"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("axie.toml"), "{e}");

        std::fs::write(&file, "[smtp]\npassword = 8675309\n").unwrap();
        let e = Settings::load(Some(&file)).unwrap_err().0;
        assert!(!e.contains("8675309"), "{e}");
        assert!(e.contains("`smtp.password` must be a string"), "{e}");

        // Settings that hold no secret still show what was found.
        std::fs::write(&file, "[server]\nport = \"eighty\"\n").unwrap();
        let e = Settings::load(Some(&file)).unwrap_err().0;
        assert!(e.contains("eighty") && e.contains("server.port"), "{e}");
    }

    #[test]
    fn printing_redacts_secrets() {
        let mut s: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        s.database.url = "postgres://axie:hunter2@db/axie".into();
        s.security.checkpoint_key = SecretString::from("topsecretkey");
        let out = s.redacted_toml();
        assert!(!out.contains("hunter2"));
        assert!(!out.contains("topsecretkey"));
        assert!(out.contains("***"));
    }

    #[test]
    fn the_configuration_reference_is_current_and_complete() {
        let generated = reference_markdown();
        let committed = include_str!("../../../docs/configuration.md");
        assert!(
            generated == committed,
            "docs/configuration.md is out of date: run `cargo run -- config-reference > docs/configuration.md`"
        );
        // Every setting the server has is documented (the defaults load into `Settings` with
        // unknown keys refused, and every field serializes back out).
        let settings = Settings::load(None).unwrap();
        let value = serde_json::to_value(&settings).unwrap();
        for (section, fields) in value.as_object().unwrap() {
            for key in fields.as_object().unwrap().keys() {
                assert!(
                    generated.contains(&format!("| `{section}.{key}` |")),
                    "{section}.{key} is missing from the reference"
                );
            }
        }
    }
}
