//! A bare actix-web "hello world" on the same runtime settings as the server: the load script's
//! in-run baseline (`bench/load/run.sh`). `cargo run --release -p axie-server --example hello -- <port>`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program"
)]

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18080);
    HttpServer::new(|| {
        App::new().default_service(web::to(|| async { HttpResponse::Ok().body("hello world") }))
    })
    .max_connections(25_000)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
