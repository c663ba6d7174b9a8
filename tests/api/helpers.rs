//! `spawn_app`: the real server on a random port against a fresh database.

use std::sync::OnceLock;

use axie_server::{Application, Clock, Settings};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use store_sea::testing::{fresh_postgres, postgres_server};

pub const OWNER_EMAIL: &str = "owner@acme.example";
pub const OWNER_PASSWORD: &str = "tilted windmill at sunrise";
pub const DEMO_PASSWORD: &str = axie_server::demo::DEMO_PASSWORD;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Defines `<name>_sqlite` and `<name>_postgres` tests from one async body taking a `Backend`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_enabled() {
                    ($body)($crate::helpers::Backend::Postgres).await;
                }
            }
        }
    };
}

pub fn postgres_enabled() -> bool {
    static SAID: OnceLock<()> = OnceLock::new();
    let on = postgres_server().is_some();
    if !on {
        SAID.get_or_init(|| store_sea::testing::say_postgres_skipped("end-to-end suite"));
    }
    on
}

fn init_tracing() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let settings = Settings::load(None).expect("default settings load");
            // No trace export here, so the guard has nothing to flush.
            drop(axie_server::telemetry::init(
                &settings.log,
                &settings.telemetry,
            ));
        }
    });
}

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub org_id: String,
    pub owner_token: String,
    pub clock: Clock,
    pub store: std::sync::Arc<store_sea::SeaStore>,
    /// The settings the server was started with (same data directory and database).
    pub settings: Settings,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    pub demo: bool,
    /// Port of a local SMTP server to deliver mail to.
    pub smtp_port: Option<u16>,
    /// Address of the DNS server that verifies custom domains.
    pub dns: Option<std::net::SocketAddr>,
    /// Trust X-Forwarded-For from loopback (to test client addresses).
    pub trust_loopback_proxy: bool,
    /// Failed logins per address before it is locked out.
    pub address_login_failures: Option<u32>,
    /// Serve HTTPS with this PEM certificate and key (the client trusts the certificate).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// `plans.api_call_block_max` (default here 1: every API call is written, so tests that set
    /// the month's counter in the database see exact counts).
    pub api_call_block_max: Option<u64>,
    /// `security.geoip_database`: a `.mmdb` file placing addresses in countries.
    pub geoip_database: Option<std::path::PathBuf>,
    /// `smtp.timeout_secs` (with `smtp_port`).
    pub smtp_timeout_secs: Option<u64>,
    /// `server.body_timeout_secs`.
    pub body_timeout_secs: Option<u64>,
    /// `server.workers = false`: the server runs no background workers.
    pub no_workers: bool,
    /// `uptime.heartbeat_secs`.
    pub heartbeat_secs: Option<u64>,
}

/// A server with the demo data that sends its mail to the SMTP server `sink`.
pub async fn spawn_app_mailing_to(backend: Backend, sink: &SmtpSink) -> TestApp {
    spawn_app_with(
        backend,
        Options {
            demo: true,
            smtp_port: Some(sink.port),
            ..Options::default()
        },
    )
    .await
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        Options {
            demo: true,
            ..Options::default()
        },
    )
    .await
}

pub async fn spawn_app_with(backend: Backend, opts: Options) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::load(None).expect("default settings load");
    settings.server.port = 0;
    settings.server.data_dir = dir.path().to_path_buf();
    settings.database.url = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => {
            let server = postgres_server().expect("postgres server url");
            fresh_postgres(&server)
                .await
                .expect("fresh postgres database")
                .expose()
                .to_owned()
        }
    };
    settings.database.max_connections = 5;
    settings.bootstrap.org_name = "Acme Corp".into();
    settings.bootstrap.owner_email = OWNER_EMAIL.into();
    settings.bootstrap.owner_name = "Sarah Owner".into();
    settings.bootstrap.owner_password = OWNER_PASSWORD.to_owned().into();
    settings.bootstrap.demo = opts.demo;
    settings.support.email = "desk@support.example".into();
    // The desk is closed this week (so a response due in business hours is due after it).
    let today = chrono::Utc::now()
        .with_timezone(&billing_limits::catalogue::BUSINESS_ZONE)
        .date_naive();
    settings.support.closed_days = (0..8).map(|d| today + chrono::Duration::days(d)).collect();
    settings.audit.checkpoint_interval_secs = 0;
    // Webhook tests deliver to a receiver on loopback, which is refused unless allowlisted.
    settings.webhooks.allow_cidrs = vec!["127.0.0.1/32".into()];
    // The test receivers speak plain HTTP on loopback.
    settings.webhooks.https_only = false;
    if let Some(port) = opts.smtp_port {
        settings.smtp.host = "127.0.0.1".into();
        settings.smtp.port = port;
        settings.smtp.security = "none".into();
        if let Some(secs) = opts.smtp_timeout_secs {
            settings.smtp.timeout_secs = secs;
        }
    }
    settings.server.workers = !opts.no_workers;
    if let Some(secs) = opts.heartbeat_secs {
        settings.uptime.heartbeat_secs = secs;
    }
    if let Some(secs) = opts.body_timeout_secs {
        settings.server.body_timeout_secs = secs;
    }
    if opts.trust_loopback_proxy {
        settings.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    }
    if let Some((cert, key)) = &opts.tls {
        settings.server.tls_cert = cert.clone();
        settings.server.tls_key = key.clone();
    }
    settings.plans.api_call_block_max = opts.api_call_block_max.unwrap_or(1);
    if let Some(n) = opts.address_login_failures {
        settings.security.address_login_failures = n;
    }
    if let Some(path) = opts.geoip_database {
        settings.security.geoip_database = path;
    }
    if let Some(dns) = opts.dns {
        settings.workspace.dns_servers = vec![dns.to_string()];
    }
    let clock = Clock::default();
    let started_with = settings.clone();
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("app builds");
    let address = match &opts.tls {
        Some(_) => format!("https://localhost:{}", app.port()),
        None => format!("http://127.0.0.1:{}", app.port()),
    };
    let org_id = app
        .bootstrap()
        .expect("first start bootstraps")
        .org
        .id
        .to_string();
    let store = app.state().store.clone();
    let health = app.state().health.clone();
    tokio::spawn(app.run_until_stopped());
    // The periodic workers' first passes run at start, with the clock as it is then: let them
    // finish before a test moves the clock and runs a pass itself, so the two never race.
    let first_passes_done = || {
        ["billing", "retention", "uptime"]
            .iter()
            .all(|w| health.passes(w) > 0)
    };
    for _ in 0..600 {
        if opts.no_workers || first_passes_done() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        opts.no_workers || first_passes_done(),
        "the periodic workers' first passes did not finish within 30 s"
    );
    let mut builder = Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some((cert, _)) = &opts.tls {
        let pem = std::fs::read(cert).expect("certificate");
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM certificate"))
            .https_only(true);
    }
    let client = builder.build().expect("client");
    let mut t = TestApp {
        address,
        client,
        org_id,
        owner_token: String::new(),
        clock,
        store,
        settings: started_with,
        _dir: dir,
    };
    t.owner_token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    t
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn org(&self, rest: &str) -> String {
        self.url(&format!("/api/v1/orgs/{}{}", self.org_id, rest))
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request")
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self.login_response(email, password).await;
        assert_eq!(res.status(), StatusCode::OK, "login of {email} failed");
        let body: Value = res.json().await.expect("login json");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn get(&self, url: &str, token: &str) -> Response {
        self.client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, url: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch(&self, url: &str, token: &str, body: &Value) -> Response {
        self.client
            .patch(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn put(&self, url: &str, token: &str, body: &Value) -> Response {
        self.client
            .put(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    /// Another server on the same data directory and database (for restarts and scale-out):
    /// it reads the key files and configuration afresh.
    pub async fn another_instance(&self) -> String {
        self.another_instance_with(|_| {}).await
    }

    /// [`Self::another_instance`] with its settings changed by `change`.
    pub async fn another_instance_with(&self, change: impl FnOnce(&mut Settings)) -> String {
        self.stoppable_instance_with(change).await.0
    }

    /// [`Self::another_instance_with`], with the handle that stops it (as SIGTERM would) and
    /// its run, which ends once it has stopped.
    pub async fn stoppable_instance_with(
        &self,
        change: impl FnOnce(&mut Settings),
    ) -> (
        String,
        actix_web::dev::ServerHandle,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let mut settings = self.settings.clone();
        settings.server.port = 0;
        change(&mut settings);
        let app = Application::build_with_clock(settings, self.clock.clone())
            .await
            .expect("second instance builds");
        assert!(
            app.bootstrap().is_none(),
            "an existing database is not bootstrapped again"
        );
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.server_handle();
        (address, handle, tokio::spawn(app.run_until_stopped()))
    }

    /// The server's witness of its audit checkpoints (the files in its data directory).
    pub fn witness(&self) -> axie_server::witness::FileWitness {
        axie_server::witness::FileWitness::for_settings(&self.settings).unwrap()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().to_path_buf()
    }

    /// Posts raw bytes with a media type (document uploads).
    pub async fn upload(
        &self,
        url: &str,
        token: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        self.client
            .post(url)
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload")
    }

    /// Makes a knowledge base with one small document as `token`; the document's id. Its
    /// bytes are stored outside the database, under [`Self::data_dir`]`/blobs`.
    pub async fn new_document(&self, token: &str) -> String {
        let kb = json_of(
            self.post(
                &self.org("/knowledge-bases"),
                token,
                &serde_json::json!({ "name": "Manuals" }),
            )
            .await,
        )
        .await["id"]
            .as_str()
            .expect("knowledge base id")
            .to_owned();
        let doc = self
            .upload(
                &self.org(&format!("/knowledge-bases/{kb}/documents?name=a.md")),
                token,
                "text/markdown",
                b"# A\n".to_vec(),
            )
            .await;
        assert_eq!(doc.status(), StatusCode::CREATED);
        json_of(doc).await["id"]
            .as_str()
            .expect("document id")
            .to_owned()
    }

    pub async fn delete(&self, url: &str, token: &str) -> Response {
        self.client
            .delete(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE")
    }

    /// The user id of a member, by email, via the API.
    pub async fn member_id(&self, email: &str) -> String {
        let page = json_of(
            self.get(&self.org("/members?limit=200"), &self.owner_token)
                .await,
        )
        .await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|m| m["email"] == email)
            .map(|m| m["user_id"].as_str().expect("id").to_owned())
            .unwrap_or_else(|| panic!("{email} is not a member"))
    }

    /// Makes the database itself refuse to store the audit records for which `condition` (SQL
    /// over the new row, `NEW.action = '…'`) holds, with a trigger, as a full disk or a broken
    /// constraint would refuse them; [`Self::accept_audit_records`] takes the trigger away.
    pub async fn refuse_audit_records(&self, condition: &str) {
        let postgres = self.settings.database.url.starts_with("postgres");
        let statements = if postgres {
            vec![
                format!(
                    "CREATE FUNCTION refuse_audit_records() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF {condition} THEN RAISE EXCEPTION 'audit record refused'; END IF; \
                     RETURN NEW; END $$"
                ),
                "CREATE TRIGGER refuse_audit_records BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit_records()"
                    .to_owned(),
            ]
        } else {
            vec![format!(
                "CREATE TRIGGER refuse_audit_records BEFORE INSERT ON audit_events \
                 WHEN {condition} BEGIN SELECT RAISE(ABORT, 'audit record refused'); END"
            )]
        };
        for sql in statements {
            self.store.execute_sql(&sql).await.expect(&sql);
        }
    }

    /// Takes away the trigger of [`Self::refuse_audit_records`].
    pub async fn accept_audit_records(&self) {
        let postgres = self.settings.database.url.starts_with("postgres");
        let mut statements = vec!["DROP TRIGGER refuse_audit_records ON audit_events"];
        if postgres {
            statements.push("DROP FUNCTION refuse_audit_records()");
        } else {
            statements[0] = "DROP TRIGGER refuse_audit_records";
        }
        for sql in statements {
            self.store.execute_sql(sql).await.expect(sql);
        }
    }

    /// Audit records of the organization, newest first.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let res = self
            .get(
                &self.org(&format!("/audit-events?{query}")),
                &self.owner_token,
            )
            .await;
        let body = json_of(res).await;
        body["items"].as_array().expect("items").clone()
    }
}

/// Asserts a 2xx (or the given status) and returns the JSON body.
pub async fn json_of(res: Response) -> Value {
    let status = res.status();
    let text = res.text().await.expect("body");
    assert!(
        status.is_success(),
        "expected success, got {status}: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts a problem+json answer with `status` and `code`, and returns it.
pub async fn problem(res: Response, status: StatusCode, code: &str) -> Value {
    let got = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "status for {text}");
    assert_eq!(ct, "application/problem+json", "content type of {text}");
    let v: Value = serde_json::from_str(&text).expect("problem json");
    assert_eq!(v["code"], code, "problem code in {text}");
    assert_eq!(v["status"], status.as_u16());
    assert!(
        v["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:axie:problem:"))
    );
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    v
}

/// A real SMTP server (PyPI's aiosmtpd) on a free loopback port, storing mail in a Maildir.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_with("aiosmtpd.handlers.Mailbox").await
    }

    /// A server that refuses for good (550) every recipient whose address starts with
    /// `bounce` (`api/smtp_rejecting.py`).
    pub async fn start_rejecting() -> Self {
        Self::start_with("smtp_rejecting.Rejecting").await
    }

    async fn start_with(handler: &str) -> Self {
        let dir = tempfile::tempdir().expect("maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(ensure_python_checkers())
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                handler,
            ])
            .arg(dir.path().join("mail"))
            .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/api"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd, from the checkers' virtual environment");
        let sink = Self { port, dir, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        sink
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("mail").join("new");
        let mut out: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(new)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| {
                        (
                            e.metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(std::time::UNIX_EPOCH),
                            std::fs::read_to_string(e.path()).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|m| m.0);
        out.into_iter().map(|m| m.1).collect()
    }

    /// Waits (polling, with a timeout) until a message to `to` arrives, and returns it.
    pub async fn wait_for(&self, to: &str, nth: usize) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let mine: Vec<String> = self
                .messages()
                .into_iter()
                .filter(|m| {
                    m.lines()
                        .any(|l| l.to_lowercase().starts_with("to:") && l.contains(to))
                })
                .collect();
            if mine.len() > nth {
                return mine[nth].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no mail #{nth} to {to} arrived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The invitation token in a mail (plain or quoted-printable body).
pub fn token_in(mail: &str) -> String {
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    let start = unfolded.find("axi_").expect("a token in the mail");
    unfolded[start..start + 4 + 64].to_owned()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
    pub at: std::time::Instant,
}

/// Scripted answers of the receiver: (status, Retry-After).
type Script =
    std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(u16, Option<&'static str>)>>>;

/// A webhook receiver on loopback whose answers can be scripted (default 200).
pub struct Receiver {
    pub url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    script: Script,
    _server: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Self {
        use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
        let got: std::sync::Arc<std::sync::Mutex<Vec<Received>>> = Default::default();
        let script: Script = Default::default();
        let (g, s) = (got.clone(), script.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (g, s) = (g.clone(), s.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    g.lock().unwrap().push(Received {
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        at: std::time::Instant::now(),
                    });
                    let (status, retry_after) =
                        s.lock().unwrap().pop_front().unwrap_or((200, None));
                    let mut res =
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                    if let Some(r) = retry_after {
                        res.insert_header(("retry-after", r));
                    }
                    res.body("ok")
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            got,
            script,
            _server: handle,
        }
    }

    /// The next answers, in order (status, Retry-After).
    pub fn answer(&self, answers: &[(u16, Option<&'static str>)]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (polling, with a timeout) for at least `n` requests.
    pub async fn wait_for(&self, n: usize, timeout_secs: u64) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} webhook requests arrived",
                got.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The independent checkers this suite uses come from PyPI, in a virtual environment of their
/// own under `target/` (a system Python may refuse packages, PEP 668); `.ci/run` creates it,
/// else the first test that needs it does. Returns its Python, with which they are run.
pub fn ensure_python_checkers() -> &'static std::path::Path {
    static PYTHON: OnceLock<std::path::PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        tool_venv(
            "checkers-venv",
            &CHECKERS,
            "import aiosmtpd, standardwebhooks, openapi_spec_validator, jsonschema, pyotp",
        )
    })
}

/// The PyPI checkers (`.ci/run` installs the same list into the same environment).
pub const CHECKERS: [&str; 4] = [
    "aiosmtpd",
    "standardwebhooks",
    "openapi-spec-validator",
    "pyotp",
];

/// A DNS server on loopback (UDP) answering TXT queries from a table the test fills in;
/// every other question gets an empty answer. Real DNS messages, so the server's resolver
/// runs its production path.
pub struct DnsStub {
    pub addr: std::net::SocketAddr,
    records: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl DnsStub {
    pub async fn start() -> Self {
        use hickory_proto::op::{Message, MessageType, ResponseCode};
        use hickory_proto::rr::rdata::TXT;
        use hickory_proto::rr::{RData, Record, RecordType};
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let records: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
        let table = records.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply = Message::new();
                reply.set_id(query.id());
                reply.set_message_type(MessageType::Response);
                reply.set_op_code(query.op_code());
                reply.set_recursion_desired(query.recursion_desired());
                reply.set_recursion_available(true);
                reply.set_authoritative(true);
                reply.set_response_code(ResponseCode::NoError);
                for q in query.queries() {
                    reply.add_query(q.clone());
                    if q.query_type() != RecordType::TXT {
                        continue;
                    }
                    let name = q
                        .name()
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase();
                    for (n, v) in table.lock().unwrap().iter() {
                        if *n == name {
                            reply.add_answer(Record::from_rdata(
                                q.name().clone(),
                                1,
                                RData::TXT(TXT::new(vec![v.clone()])),
                            ));
                        }
                    }
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Self { addr, records }
    }

    pub fn publish(&self, name: &str, value: &str) {
        self.records
            .lock()
            .unwrap()
            .push((name.to_owned(), value.to_owned()));
    }
}

/// A TOTP code computed by PyPI's pyotp from an `otpauth://` URI, for the given Unix time:
/// an authenticator implementation independent of ours.
/// An RFC 3339 time of an answer, in UTC.
pub fn utc_of(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("an RFC 3339 string"))
        .expect("an RFC 3339 time")
        .with_timezone(&chrono::Utc)
}

pub fn pyotp_code(uri: &str, unix_time: i64) -> String {
    let out = std::process::Command::new(ensure_python_checkers())
        .args([
            "-c",
            "import sys, pyotp\nprint(pyotp.parse_uri(sys.argv[1]).at(int(sys.argv[2])))",
            uri,
            &unix_time.to_string(),
        ])
        .output()
        .expect("python3 with pyotp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The SCIM conformance tools (PyPI's scim2-tester with scim2-cli, and scim-sanity), pinned,
/// in their own virtual environment under the target directory so their dependencies never
/// meet the other checkers'. `.ci/run` creates it; a plain `cargo test` creates it on first use.
pub fn scim_python() -> std::path::PathBuf {
    static VENV: OnceLock<std::path::PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        tool_venv(
            "scim-venv",
            &SCIM_TOOLS,
            "import scim2_tester, scim2_cli, scim_sanity",
        )
    })
    .clone()
}

/// PyPI's schemathesis, pinned, in its own virtual environment (see [`scim_python`]).
pub fn schemathesis() -> std::path::PathBuf {
    static VENV: OnceLock<std::path::PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        tool_venv("schemathesis-venv", &[SCHEMATHESIS], "import schemathesis")
            .parent()
            .expect("venv bin")
            .join("schemathesis")
    })
    .clone()
}

/// The pinned schemathesis (`.ci/run` installs the same).
pub const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// A Python virtual environment `target/<name>` with `packages`, created when `probe` fails in
/// it; returns its interpreter. A file lock keeps two test binaries from installing at once.
fn tool_venv(name: &str, packages: &[&str], probe: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let venv = target.join(name);
    let python = venv.join("bin").join("python");
    let ready = || {
        std::process::Command::new(&python)
            .args(["-c", probe])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready() {
        let _ = std::fs::create_dir_all(&target);
        let file = std::fs::File::create(target.join(format!("{name}.lock"))).expect("lock file");
        file.lock().expect("lock the venv install");
        if !ready() {
            eprintln!("installing {packages:?} from PyPI into {}", venv.display());
            let made = std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
            assert!(made, "could not create a Python virtual environment");
            let ok = std::process::Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(packages)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "could not install {packages:?}");
        }
    }
    python
}

/// The pinned conformance tools (`.ci/run` installs the same list).
pub const SCIM_TOOLS: [&str; 3] = [
    "scim2-tester==0.5.2",
    "scim2-cli==0.6.0",
    "scim-sanity==0.7.4",
];

/// Turns TOTP on for the holder of `token` (confirmed with `password`): the `otpauth://` URI
/// and the recovery codes.
pub async fn enrol_totp(t: &TestApp, token: &str, password: &str) -> (String, Vec<String>) {
    let res = t
        .post(
            &t.url("/api/v1/me/mfa/totp"),
            token,
            &json!({ "password": password }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let e: Value = res.json().await.unwrap();
    let uri = e["otpauth_uri"].as_str().unwrap().to_owned();
    let code = pyotp_code(&uri, t.clock.now().timestamp());
    let res = t
        .post(
            &t.url("/api/v1/me/mfa/totp/activate"),
            token,
            &json!({ "code": code }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (uri, codes)
}
