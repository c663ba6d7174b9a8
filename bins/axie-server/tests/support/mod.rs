//! Shared by the tests that run the real binary in a process of its own (`crash`,
//! `deployment_limits`, `otlp`) and by the benchmarks that run the server in theirs
//! (`#[path = "../tests/support/mod.rs"]`): ports, processes, readiness, logging in, and
//! stand-in HTTP receivers on loopback.
#![allow(dead_code, reason = "each test and benchmark uses some of these")]

use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The bootstrap owner's password everywhere.
pub(crate) const PASSWORD: &str = "tilted windmill at sunrise";

/// A port on loopback that was free a moment ago.
/// Ports [`free_port`] handed out, which no listener of this process takes afterwards.
static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

pub(crate) fn free_port() -> u16 {
    // The port is free when asked, not when the server binds it: tests running side by side in
    // this process must not be handed the same one (a second server would fail to bind, and its
    // test would talk to the first one's server), so ports already given out are skipped.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The server binary (`args` first, e.g. `worker`) keeping its data in `dir`, logging warnings
/// and above, its output discarded. Callers add the port, database and the rest.
pub(crate) fn binary(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_axie-server"));
    c.args(args)
        .env("AXIE_SERVER__DATA_DIR", dir)
        .env("AXIE_LOG__LEVEL", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// [`binary`] serving on `port`, with `owner` as the bootstrap owner (password [`PASSWORD`]).
pub(crate) fn server(dir: &Path, port: u16, owner: &str) -> Command {
    let mut c = binary(dir, &[]);
    c.env("AXIE_SERVER__PORT", port.to_string())
        .env("AXIE_BOOTSTRAP__OWNER_EMAIL", owner)
        .env("AXIE_BOOTSTRAP__OWNER_PASSWORD", PASSWORD);
    c
}

/// A child process, killed and reaped when dropped: a failing assertion must not leave servers
/// running against a test database.
pub(crate) struct Reaped(pub(crate) Child);

impl Reaped {
    /// Starts `command`.
    pub(crate) fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("start axie-server"))
    }

    /// SIGKILL, then reaps the process.
    pub(crate) fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 30 s for `base`'s `/readyz` to answer with a success.
pub(crate) async fn wait_ready(c: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs `email` in with [`PASSWORD`]: the session token and the person's first organization.
pub(crate) async fn login(c: &reqwest::Client, base: &str, email: &str) -> (String, String) {
    let res: Value = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = res["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {res}"))
        .to_owned();
    let me = get_json(c, format!("{base}/api/v1/me"), &token).await;
    let org = me["memberships"][0]["org_id"].as_str().unwrap().to_owned();
    (token, org)
}

/// GETs `url` as `token`'s bearer and reads the answer as JSON.
pub(crate) async fn get_json(c: &reqwest::Client, url: String, token: &str) -> Value {
    c.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An HTTP server on a loopback port, with `workers` threads, answering every request with
/// `answer(request, body)`; returns its base URL (`http://127.0.0.1:<port>`).
pub(crate) fn stand_in<F, R>(workers: usize, answer: F) -> String
where
    F: Fn(HttpRequest, web::Bytes) -> R + Clone + Send + 'static,
    R: Future<Output = HttpResponse> + 'static,
{
    // Not a port handed out for a server that has not bound it yet: the server would fail
    // to bind, and its test would talk to this stand-in instead (the ports tried are held
    // until one fits, so the kernel does not offer the same one again).
    let mut tried = Vec::new();
    let listener = loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            break l;
        }
        tried.push(l);
    };
    drop(tried);
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || App::new().default_service(web::to(answer.clone())))
        .workers(workers)
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// The bootstrap owner of the servers benchmarks run in their own process.
pub(crate) const BENCH_OWNER: &str = "owner@bench.example";

/// Settings for a server in this process: any free port, its data in `dir`, SQLite there or a
/// fresh database on the PostgreSQL server at `postgres`, 16 connections, [`BENCH_OWNER`] with
/// [`PASSWORD`] as the bootstrap owner, no periodic audit checkpoints, only errors logged.
pub(crate) async fn in_process(dir: &Path, postgres: Option<&str>) -> axie_server::Settings {
    let mut s = axie_server::Settings::load(None).unwrap();
    s.server.port = 0;
    s.server.data_dir = dir.to_path_buf();
    s.database.url = match postgres {
        Some(server) => store_sea::testing::fresh_postgres(server)
            .await
            .unwrap()
            .expose()
            .to_owned(),
        None => String::new(),
    };
    s.database.max_connections = 16;
    s.bootstrap.owner_email = BENCH_OWNER.into();
    s.bootstrap.owner_password = PASSWORD.to_owned().into();
    s.audit.checkpoint_interval_secs = 0;
    s.log.level = "error".into();
    s
}
