//! Builds the application: settings → database → bootstrap → HTTP server and workers.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use security_policy::{HashParams, PasswordHasher};
use store_sea::{PoolOptions, SeaStore};

use crate::bootstrap::{BootstrapReport, ensure_first_org};
use crate::config::Settings;
use crate::error::{json_error, path_error, query_error};
use crate::state::{AppState, Clock};
use crate::{middleware, routes, workers};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[source] audit::StoreError),
    /// First-start bootstrap failed.
    #[error("bootstrap: {0}")]
    Bootstrap(#[source] tenancy::TenancyError),
    /// Files or sockets.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Crypto parameters.
    #[error("security: {0}")]
    Security(String),
}

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    state: AppState,
    bootstrap: Option<BootstrapReport>,
    metrics_server: Option<(u16, actix_web::dev::Server)>,
}

/// Writes a new key file readable only by the owner, refusing to overwrite one.
pub(crate) fn write_key_file(path: &std::path::Path, key: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(key.as_bytes())
}

/// Reads the key file at `path`, or creates it with `make()` and says so (`true`). A new key is
/// written whole to a file of its own first and then linked into place, so that instances
/// starting at once on one data directory agree: one creates it, the others read that one,
/// never a half-written file. Where the file system has no hard links the key is written in
/// place, refusing to overwrite one (`create_new`).
fn read_or_create_key(
    path: &std::path::Path,
    make: impl FnOnce() -> String,
) -> std::io::Result<(String, bool)> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok((text, false));
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let key = make();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let own = dir.join(format!(".{name}.{}.new", uuid::Uuid::new_v4().simple()));
    write_key_file(&own, &key)?;
    let linked = std::fs::hard_link(&own, path);
    let _ = std::fs::remove_file(&own);
    let placed = match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => write_key_file(path, &key),
    };
    match placed {
        Ok(()) => Ok((key, true)),
        // Another instance's key is there: this one uses it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((std::fs::read_to_string(path)?, false))
        }
        Err(e) => Err(e),
    }
}

/// Warns of configured secrets short enough to guess or to weaken what they sign: a metrics
/// token under 16 characters (anyone may try tokens at `/metrics`), a checkpoint key under 32
/// bytes (it signs the audit log's checkpoints). Kept as warnings: refusing them would stop a
/// running deployment from starting after an upgrade.
fn warn_of_short_secrets(settings: &Settings) {
    for warning in short_secrets(settings) {
        tracing::warn!("{warning}");
    }
}

/// The warnings [`warn_of_short_secrets`] gives.
fn short_secrets(settings: &Settings) -> Vec<&'static str> {
    let mut out = Vec::new();
    if (1..16).contains(&settings.metrics.token.expose_secret().chars().count()) {
        out.push("`metrics.token` is short enough to guess; use 16 or more random characters");
    }
    if (1..32).contains(&settings.security.checkpoint_key.expose_secret().len()) {
        out.push(
            "`security.checkpoint_key` is shorter than 32 bytes; audit checkpoints are only as strong as it (use 32 or more random bytes)",
        );
    }
    out
}

/// Reads the encryption key from settings, or reads or creates `<data_dir>/encryption.key`.
pub fn encryption_key(settings: &Settings) -> Result<security_policy::Cipher, StartupError> {
    let configured = settings.security.encryption_key.expose_secret();
    let text = if configured.is_empty() {
        let path = settings.server.data_dir.join("encryption.key");
        let (key, created) = read_or_create_key(&path, security_policy::Cipher::generate_key)?;
        if created {
            tracing::warn!(path = %path.display(), "created a new encryption key for secrets at rest; back it up");
        }
        key
    } else {
        configured.to_owned()
    };
    security_policy::Cipher::from_text(&text)
        .map_err(|e| StartupError::Security(format!("`security.encryption_key`: {e}")))
}

/// The GeoIP database of `security.geoip_database`, read whole at start-up, if one is set.
fn geoip_database(
    settings: &Settings,
) -> Result<Option<Arc<security_policy::GeoIp>>, StartupError> {
    let path = &settings.security.geoip_database;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|e| {
        StartupError::Security(format!(
            "`security.geoip_database` ({}): {e}",
            path.display()
        ))
    })?;
    let db = security_policy::GeoIp::from_bytes(bytes).map_err(|e| {
        StartupError::Security(format!(
            "`security.geoip_database` ({}): {e}",
            path.display()
        ))
    })?;
    tracing::info!(path = %path.display(), kind = db.database_type(), "GeoIP database loaded");
    Ok(Some(Arc::new(db)))
}

/// The key file at `path`, which must exist: for the operator's commands, which read what the
/// server wrote and must not mint a key of their own when run with another data directory (a
/// new checkpoint key would report every chain broken; a new encryption key, every secret
/// unreadable).
fn existing_key(path: &std::path::Path, setting: &str) -> Result<String, StartupError> {
    std::fs::read_to_string(path).map_err(|e| {
        StartupError::Security(format!(
            "no key at {} ({e}): run this where the server's data directory is (`server.data_dir`), or set `{setting}`",
            path.display()
        ))
    })
}

/// [`encryption_key`] without creating one: an error when neither the configuration nor the
/// data directory holds it.
///
/// # Errors
/// [`StartupError::Security`] naming the missing file, or for a malformed key.
pub fn existing_encryption_key(
    settings: &Settings,
) -> Result<security_policy::Cipher, StartupError> {
    if settings.security.encryption_key.expose_secret().is_empty() {
        existing_key(
            &settings.server.data_dir.join("encryption.key"),
            "security.encryption_key",
        )?;
    }
    encryption_key(settings)
}

/// [`checkpoint_key`] without creating one, as [`existing_encryption_key`].
///
/// # Errors
/// [`StartupError::Security`] naming the missing file.
pub fn existing_checkpoint_key(settings: &Settings) -> Result<Vec<u8>, StartupError> {
    if settings.security.checkpoint_key.expose_secret().is_empty() {
        existing_key(
            &settings.server.data_dir.join("checkpoint.key"),
            "security.checkpoint_key",
        )?;
    }
    checkpoint_key(settings)
}

/// Reads or creates the checkpoint key file (hex, 32 random bytes).
///
/// # Errors
/// File errors.
pub fn checkpoint_key(settings: &Settings) -> Result<Vec<u8>, StartupError> {
    let configured = settings.security.checkpoint_key.expose_secret();
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = settings.server.data_dir.join("checkpoint.key");
    let (key, created) = read_or_create_key(&path, || security_policy::mint("ck", 32).secret)?;
    if created {
        tracing::warn!(path = %path.display(), "created a new audit checkpoint key; back it up and keep it outside the database");
    }
    Ok(key.trim().as_bytes().to_vec())
}

impl Application {
    /// Opens the database, runs migrations, bootstraps, and binds the listener.
    ///
    /// # Errors
    /// [`StartupError`] with the failing step.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::default()).await
    }

    /// As [`Application::build`], with a given clock (tests move it).
    ///
    /// # Errors
    /// [`StartupError`] with the failing step.
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let (state, bootstrap) = prepare(settings, clock).await?;
        let listener = TcpListener::bind((
            state.settings.server.host.as_str(),
            state.settings.server.port,
        ))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let limit = state.settings.server.body_limit_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(json_error),
                )
                .app_data(web::PayloadConfig::new(limit))
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .app_data(web::PathConfig::default().error_handler(path_error))
                .configure(routes::configure)
                .service(crate::scim::scope())
                .default_service(web::to(not_found))
                .wrap(from_fn(middleware::same_origin))
                .wrap(from_fn(middleware::observe))
        })
        .shutdown_timeout(10);
        let server = match tls_config(&state.settings)? {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        }
        .run();
        let metrics_server = metrics_listener(&state)?;
        Ok(Self {
            port,
            server,
            state,
            bootstrap,
            metrics_server,
        })
    }

    /// A handle that stops the HTTP server ([`Application::run_until_stopped`] then stops the
    /// workers and returns), as SIGTERM does.
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the first start created, if this start created it.
    pub fn bootstrap(&self) -> Option<&BootstrapReport> {
        self.bootstrap.as_ref()
    }

    /// The port of the separate metrics listener, when configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(p, _)| *p)
    }

    /// The shared state (tests use its clock and store).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the server stops. SIGINT/SIGTERM (or [`Application::server_handle`]) trigger
    /// a graceful shutdown: the HTTP server finishes the requests under way, then the workers
    /// what they have under way ([`workers::Workers::shutdown`]).
    ///
    /// # Errors
    /// I/O errors of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let workers = if self.state.settings.server.workers {
            Some(workers::spawn(self.state.clone()))
        } else {
            tracing::info!(
                "background workers are off here (server.workers = false): run `axie-server worker`"
            );
            None
        };
        let (stop_meter, meter_stopped) = tokio::sync::oneshot::channel();
        let meter = tokio::spawn(workers::meter_flush(self.state.clone(), meter_stopped));
        // This server's beats, of which the uptime reports are made.
        let beat = i64::try_from(self.state.settings.uptime.heartbeat_secs).unwrap_or(300);
        self.state
            .health
            .register("uptime", beat * 3 + 30, self.state.clock.now().timestamp());
        let (stop_beats, beats_stopped) = tokio::sync::oneshot::channel();
        let beats = tokio::spawn(workers::uptime_beats(self.state.clone(), beats_stopped));
        let metrics = self.metrics_server.map(|(_, m)| {
            tokio::spawn(async move {
                if let Err(e) = m.await {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            })
        });
        let result = self.server.await;
        // No beat once it no longer serves.
        let _ = stop_beats.send(());
        let _ = beats.await;
        // What the workers have under way (webhook attempts, a mail) finishes first.
        if let Some(workers) = workers {
            workers.shutdown().await;
        }
        if let Some(m) = metrics {
            m.abort();
        }
        // The calls counted since the last write are not left in memory.
        let _ = stop_meter.send(());
        if let Err(e) = meter.await {
            tracing::warn!(error = %e, "the API-call counters' last write did not finish");
        }
        result
    }
}

async fn not_found() -> Result<actix_web::HttpResponse, crate::error::ApiError> {
    Err(crate::error::ApiError::not_found("route"))
}

/// The domain verifier: DNS through the configured servers (a bad address is a startup error),
/// or the system's resolvers; when the system has none configured, verification answers
/// with that reason instead of keeping the server from starting.
fn dns_verifier(
    settings: &Settings,
) -> Result<Arc<dyn tenancy::assets::DomainVerifier>, StartupError> {
    let servers = settings
        .workspace
        .dns_servers
        .iter()
        .map(|s| {
            s.parse::<std::net::SocketAddr>().map_err(|_| {
                StartupError::Security(format!(
                    "workspace.dns_servers: `{s}` is not an address like 127.0.0.1:53"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match crate::workspace_io::DnsVerifier::new(&servers) {
        Ok(v) => Ok(Arc::new(v)),
        Err(e) if servers.is_empty() => {
            tracing::warn!(error = %e, "no system DNS configuration: custom domains cannot be verified until workspace.dns_servers is set");
            Ok(Arc::new(crate::workspace_io::NoResolver(e.to_string())))
        }
        Err(e) => Err(StartupError::Security(format!("DNS resolver: {e}"))),
    }
}

fn sms_sender(
    settings: &Settings,
    store: &Arc<store_sea::SeaStore>,
    cipher: &Arc<security_policy::Cipher>,
) -> Arc<dyn tenancy::mfa::SmsSender> {
    if settings.sms.gateway_url.trim().is_empty() {
        Arc::new(crate::sms::SealedOutbox {
            store: store.clone(),
            cipher: cipher.clone(),
        })
    } else {
        // Bounded, as a webhook attempt is: a gateway that hangs must not hold the sign-in
        // request that asked for the text.
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(
                settings.webhooks.timeout_secs.max(1),
            ))
            .build()
            .unwrap_or_default();
        Arc::new(crate::sms::HttpSms::new(
            client,
            settings.sms.gateway_url.clone(),
            settings.sms.gateway_token.clone(),
        ))
    }
}

/// The rustls configuration when `server.tls_cert` and `server.tls_key` are set.
fn tls_config(settings: &Settings) -> Result<Option<rustls::ServerConfig>, StartupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (&settings.server.tls_cert, &settings.server.tls_key);
    match (cert.as_os_str().is_empty(), key.as_os_str().is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {}
        _ => {
            return Err(StartupError::Security(
                "server.tls_cert and server.tls_key must be set together".into(),
            ));
        }
    }
    let tls_err =
        |what: &str, e: &dyn std::fmt::Display| StartupError::Security(format!("TLS {what}: {e}"));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err("certificate", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err("certificate", &e))?;
    if chain.is_empty() {
        return Err(tls_err("certificate", &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err("key", &e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocols", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err("certificate and key", &e))?;
    Ok(Some(config))
}

/// The separate, unauthenticated `/metrics` listener, when `metrics.listen` is set.
fn metrics_listener(
    state: &AppState,
) -> Result<Option<(u16, actix_web::dev::Server)>, StartupError> {
    let addr = state.settings.metrics.listen.trim();
    if addr.is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(addr)?;
    let port = listener.local_addr()?.port();
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/metrics",
            web::get().to(|st: web::Data<AppState>| async move {
                crate::routes::health::scrape(&st).await
            }),
        )
    })
    .workers(1)
    .listen(listener)?
    .shutdown_timeout(5)
    .run();
    Ok(Some((port, server)))
}

/// Opens the database, runs migrations, bootstraps, and assembles the shared state.
async fn prepare(
    settings: Settings,
    clock: Clock,
) -> Result<(AppState, Option<BootstrapReport>), StartupError> {
    billing_limits::configure_deployment(settings.plans.deployment()?);
    let url = settings.database_url()?;
    if url.is_sqlite() {
        std::fs::create_dir_all(&settings.server.data_dir)?;
    }
    let pool = PoolOptions {
        max_connections: settings.database.max_connections,
        ..PoolOptions::default()
    };
    let store = SeaStore::connect(&url, pool)
        .await
        .map_err(StartupError::Database)?;
    store.migrate().await.map_err(StartupError::Database)?;
    tracing::info!(database = %url, "database ready");
    let hasher = PasswordHasher::new(HashParams::default())
        .map_err(|e| StartupError::Security(e.to_string()))?;
    let bootstrap = ensure_first_org(&store, &hasher, &settings.bootstrap, &clock)
        .await
        .map_err(StartupError::Bootstrap)?;
    if let (Some(report), true) = (&bootstrap, settings.bootstrap.demo) {
        crate::demo::seed(&store, &hasher, &report.org, &clock)
            .await
            .map_err(StartupError::Bootstrap)?;
        // The demo members' password is published (the README gives it): fine on a laptop,
        // not on a server others reach.
        tracing::warn!(
            "bootstrap.demo added demo members (an Admin among them) whose password the README publishes; remove them, or start from a fresh database without it, before anyone else can reach this server"
        );
    }
    warn_of_short_secrets(&settings);
    let trusted = security_policy::parse_allowlist(&settings.server.trusted_proxies)
        .map_err(|e| StartupError::Security(e.to_string()))?;
    let cipher = Arc::new(encryption_key(&settings)?);
    let store_handle = Arc::new(store.with_cipher(cipher.clone()));
    // Secrets an earlier version stored unbound are bound to their rows, once per database,
    // before anything reads them (`Cipher::decrypt_bound` refuses unbound values).
    let bound = store_handle.bind_secrets(&cipher).await.map_err(|e| {
        StartupError::Security(format!("binding the stored secrets to their rows: {e}"))
    })?;
    if bound.rewritten > 0 {
        tracing::info!(
            bound = bound.rewritten,
            "stored secrets bound to their rows"
        );
    }
    for what in &bound.unreadable {
        tracing::warn!(
            secret = %what,
            "a stored secret does not open with the configured key; it stays unusable"
        );
    }
    // Webhook URLs an earlier version stored in clear are encrypted, once per database.
    let sealed = store_handle
        .seal_webhook_urls(&cipher)
        .await
        .map_err(|e| StartupError::Security(format!("encrypting the stored webhook URLs: {e}")))?;
    if sealed > 0 {
        tracing::info!(sealed, "stored webhook URLs encrypted");
    }
    let state = AppState {
        checkpoint_key: Arc::new(checkpoint_key(&settings)?),
        witness: Arc::new(
            crate::witness::FileWitness::for_settings(&settings)
                .map_err(|e| StartupError::Security(format!("audit witness directory: {e}")))?,
        ),
        store: store_handle.clone(),
        hasher: Arc::new(hasher),
        trusted_proxies: Arc::new(trusted),
        geoip: geoip_database(&settings)?,
        cipher: cipher.clone(),
        http: crate::deliver::client(&settings.webhooks)
            .map_err(|e| StartupError::Security(e.to_string()))?,
        blobs: Arc::new(
            crate::workspace_io::FsBlobStore::open(
                &settings.workspace.blob_dir(&settings.server.data_dir),
                cipher.clone(),
            )
            .map_err(|e| StartupError::Security(format!("blob directory: {e}")))?,
        ),
        domains: dns_verifier(&settings)?,
        documents: Arc::new(settings.workspace.document_rules()),
        sms: sms_sender(&settings, &store_handle, &cipher),
        payments: Arc::new(billing_limits::payment::ManualInvoice {
            net_days: settings.billing.invoice_net_days,
        }),
        prices: Arc::new(settings.billing.prices()),
        meter: Arc::new(tenancy::metering::CallMeter::new(
            settings.plans.api_call_block_max,
        )),
        address_throttle: Arc::new(security_policy::AddressThrottle::new(
            security_policy::LoginThrottlePolicy {
                max_failures: settings.security.address_login_failures.max(1),
                window_minutes: 15,
                lockout_minutes: 15,
            },
            100_000,
        )),
        name_throttle: Arc::new(security_policy::NameThrottle::new(
            security_policy::LoginThrottlePolicy::default(),
            100_000,
        )),
        refusal_marks: Arc::new(security_policy::RefusalMarks::new(100_000)),
        reset_throttle: Arc::new(security_policy::AddressThrottle::new(
            security_policy::LoginThrottlePolicy {
                max_failures: settings.accounts.reset_requests_per_address.max(1),
                window_minutes: 15,
                lockout_minutes: 15,
            },
            100_000,
        )),
        health: Arc::default(),
        settings: Arc::new(settings),
        clock,
    };
    crate::prom::install();
    Ok((state, bootstrap))
}

/// Runs only the background workers (webhook delivery, mail, checkpoints), without the HTTP
/// server: `axie-server worker`, next to servers started with `server.workers = false`.
/// Returns on SIGINT or SIGTERM.
///
/// # Errors
/// [`StartupError`] with the failing step.
pub async fn run_workers(settings: Settings) -> Result<(), StartupError> {
    let (state, _) = prepare(settings, Clock::default()).await?;
    let workers = workers::spawn(state);
    tracing::info!(count = workers.len(), "workers running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: finishing what the workers have under way");
    workers.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Settings, read_or_create_key, short_secrets};

    #[test]
    fn short_configured_secrets_are_warned_of() {
        let mut s = Settings::load(None).unwrap();
        assert!(short_secrets(&s).is_empty(), "nothing configured");
        s.metrics.token = "scrape".to_owned().into();
        s.security.checkpoint_key = "k".repeat(31).into();
        assert_eq!(short_secrets(&s).len(), 2);
        s.metrics.token = "x".repeat(16).into();
        s.security.checkpoint_key = "k".repeat(32).into();
        assert!(short_secrets(&s).is_empty());
    }

    /// Instances starting at once on one data directory end up with one key: one creates it,
    /// every other reads it whole.
    #[test]
    fn racing_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption.key");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    read_or_create_key(&path, || format!("key-{i}-{}", "x".repeat(64))).unwrap()
                })
            })
            .collect();
        let got: Vec<(String, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            got.iter().filter(|(_, created)| *created).count(),
            1,
            "{got:?}"
        );
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(got.iter().all(|(k, _)| *k == on_disk), "{got:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no working files are left behind");
    }
}
