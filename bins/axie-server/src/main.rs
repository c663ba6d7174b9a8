//! `axie-server`: run the server, or an operator command.

use std::path::PathBuf;
use std::process::ExitCode;

use axie_server::{Application, Settings, bootstrap, routes, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "axie-server",
    version,
    about = "Axie Enterprise reference server"
)]
struct Cli {
    /// A TOML config file (else AXIE_CONFIG, else built-in defaults plus AXIE_* variables).
    #[arg(long, global = true, env = "AXIE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Run only the background workers (webhook delivery, mail, checkpoints), no HTTP server.
    Worker,
    /// Print the OpenAPI document.
    Openapi,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration with secrets redacted.
    PrintConfig,
    /// Print the configuration reference (docs/configuration.md) as Markdown.
    ConfigReference,
    /// Verify an organization's audit chain against its newest signed checkpoint.
    VerifyAudit {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
    },
    /// After restoring an older database: accept an organization's audit log as the database
    /// holds it, once it verifies on its own, setting aside the witness's newer checkpoint
    /// (recorded as `audit.witness_reset`). It cannot tell a restore from records rewritten
    /// after the database's newest checkpoint: run it only after a restore.
    AcceptRestoredAudit {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
        /// The position of the witness's checkpoint, as `verify-audit` reports it (the
        /// `checkpoint` of `truncated`, the `seq` of `checkpoint_mismatch`): the loss accepted.
        #[arg(long)]
        witnessed_seq: i64,
    },
    /// Re-encrypt stored secrets under a new key (stop the server first).
    RotateEncryptionKey {
        /// The new key (32 bytes, hex or base64); required when the key is set in the configuration.
        /// Prefer the environment variable, which process listings and shell history do not show.
        #[arg(long, env = "AXIE_NEW_ENCRYPTION_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
    /// Verify every audit chain, then sign fresh checkpoints with a new key (stop the server first).
    RotateCheckpointKey {
        /// The new key; required when the key is set in the configuration. Prefer the
        /// environment variable, which process listings and shell history do not show.
        #[arg(long, env = "AXIE_NEW_CHECKPOINT_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
    /// Create an organization for a customer, owned by an existing account or a new one.
    CreateOrg {
        /// The organization's name.
        #[arg(long)]
        name: String,
        /// `free`, `pro` or `enterprise`.
        #[arg(long, default_value = "enterprise")]
        plan: String,
        /// The Owner's email (an existing account becomes the Owner; otherwise one is created).
        #[arg(long)]
        owner_email: String,
        /// Display name for a new account.
        #[arg(long)]
        owner_name: Option<String>,
        /// A new account's password; generated and printed when omitted.
        #[arg(long, env = "AXIE_OWNER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Reset the Owner's access (their own email: new password, sessions ended, second factor
    /// removed), or make another person the Owner (created when they have no account).
    ResetOwner {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
        /// The Owner's email, or the new Owner's.
        #[arg(long)]
        email: String,
        /// Display name for a new account.
        #[arg(long)]
        name: Option<String>,
        /// The password; generated and printed when omitted.
        #[arg(long, env = "AXIE_RESET_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Clear an organization's IP allowlist and blocked countries, when they lock its Owner out
    /// (recorded in its audit log as the system's change)
    ClearNetworkRules {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
    },
    /// Record that an organization's open invoice was paid (a bank transfer for a manual
    /// invoice arrived; recorded in its audit log as the system's)
    MarkInvoicePaid {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
        /// The invoice number (`INV-…`), as `GET …/billing/invoices` lists it.
        #[arg(long)]
        invoice: String,
        /// A note for the audit record, such as the payment's reference.
        #[arg(long)]
        note: Option<String>,
    },
    /// List open invoices past their due date (of one organization, or of all), oldest due
    /// first, for the operator to follow up; the Owner is reminded by mail as each falls due,
    /// a week and two weeks later
    OverdueInvoices {
        /// Only this organization (`org_…`).
        #[arg(long)]
        org: Option<String>,
    },
    /// Tell the Owner and Admins of every Enterprise organization of an incident of the service
    /// (or, with `--resolved`, of its end) by mail, recorded in each organization's audit log;
    /// once per organization, reference and state, so it can run again
    NotifyIncident {
        /// Your reference for it (`2026-12-06-api-latency`): letters, digits, `-`, `_`, `.`.
        #[arg(long)]
        reference: String,
        /// One line: "Slow API responses".
        #[arg(long)]
        title: String,
        /// What happens, what is affected, what to do.
        #[arg(long)]
        message: String,
        /// The incident is over.
        #[arg(long)]
        resolved: bool,
        /// The service could not be used (not only slowed): the incident counts as an outage
        /// in the uptime reports, from this notice to its `--resolved` one (which ends it
        /// with or without `--outage`).
        #[arg(long)]
        outage: bool,
    },
    /// Print the service's uptime report of a month (this month by default) as its beats and
    /// the declared outages show it: what Enterprise's Owner and Admins are mailed when a month
    /// is over.
    UptimeReport {
        /// The month, `YYYY-MM` (UTC).
        #[arg(long)]
        month: Option<String>,
    },
    /// Delete an organization and everything of it, its audit log included (export it first);
    /// people's accounts stay, and its Owner and Admins are mailed.
    DeleteOrg {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
        /// The organization's name, exactly as it is, to confirm.
        #[arg(long)]
        confirm_name: String,
    },
    /// Agree a monthly price for a paid plan with an organization (a custom Enterprise deal),
    /// or take it back with `--clear`; its next charge for that plan is priced by it
    /// (recorded in its audit log as the system's)
    SetPrice {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
        /// `pro` or `enterprise`.
        #[arg(long, required_unless_present = "clear")]
        plan: Option<String>,
        /// The price per month on the monthly cycle, in the smallest unit of the deployment's
        /// currency (annual: twelve months less 20 %).
        #[arg(long, required_unless_present = "clear")]
        monthly_cents: Option<u64>,
        /// Back to the deployment's list prices.
        #[arg(long, conflicts_with_all = ["plan", "monthly_cents"])]
        clear: bool,
    },
    /// Set an organization's negotiated limits (custom enterprise deals) on top of its plan's.
    SetLimits {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
        /// `limit=number` or `limit=unlimited`, repeatable (`members`, `chat_interfaces`,
        /// `knowledge_bases`, `documents`, `api_keys`, `custom_domains`, `api_calls_per_month`,
        /// `storage_bytes`). Limits not given return to the plan's.
        #[arg(long = "limit")]
        limits: Vec<String>,
    },
    /// Write an organization's audit log (CSV, a JSON array, NDJSON or a PDF report) to standard
    /// output.
    ExportAudit {
        /// The organization id (`org_…`).
        #[arg(long)]
        org: String,
        /// `csv`, `json`, `ndjson` or `pdf`.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Write a consistent copy of the SQLite database while the server runs (PostgreSQL: use pg_dump).
    Backup {
        /// The new file to write.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Print the number of rows in every table.
    Stats,
    /// Print the newest mail about accounts themselves (password reset links), kept in the
    /// outbox while no SMTP relay is configured; no organization's outbox shows it.
    AccountMail {
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Print the newest text messages kept in the SMS outbox (no SMS gateway configured).
    SmsOutbox {
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axie-server: {e}");
            let mut src = std::error::Error::source(&*e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// What the audit commands work with: the database, the checkpoint key and the witness.
async fn audit_tools(
    settings: &axie_server::Settings,
) -> Result<
    (
        store_sea::SeaStore,
        Vec<u8>,
        axie_server::witness::FileWitness,
    ),
    Box<dyn std::error::Error>,
> {
    let store =
        store_sea::SeaStore::connect(&settings.database_url()?, store_sea::PoolOptions::default())
            .await?;
    let key = axie_server::startup::existing_checkpoint_key(settings)?;
    let witness = axie_server::witness::FileWitness::for_settings(settings)?;
    Ok((store, key, witness))
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(Command::Openapi) = cli.command {
        println!("{}", routes::openapi::json());
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref())?;
    let _telemetry = telemetry::init(&settings.log, &settings.telemetry)?;
    match cli.command {
        Some(Command::Worker) => {
            axie_server::startup::run_workers(settings).await?;
            Ok(())
        }
        Some(Command::ConfigReference) => {
            print!("{}", axie_server::config::reference_markdown());
            Ok(())
        }
        Some(Command::PrintConfig) => {
            println!("{}", settings.redacted_toml());
            Ok(())
        }
        Some(Command::Migrate) => {
            let url = settings.database_url()?;
            if url.is_sqlite() {
                std::fs::create_dir_all(&settings.server.data_dir)?;
            }
            let store =
                store_sea::SeaStore::connect(&url, store_sea::PoolOptions::default()).await?;
            store.migrate().await?;
            println!("migrations applied to {url}");
            Ok(())
        }
        Some(Command::VerifyAudit { org }) => {
            let org: rbac_core::OrgId = org.parse()?;
            let (store, key, witness) = audit_tools(&settings).await?;
            if audit::CheckpointWitness::latest(&witness, org)
                .await?
                .is_none()
                && audit::AuditStore::latest_checkpoint(&store, org)
                    .await?
                    .is_some()
            {
                eprintln!(
                    "note: {} holds no checkpoint of {org}: the chain is checked against the database's checkpoints alone (is audit.witness_dir the server's?)",
                    witness.dir().display()
                );
            }
            match axie_server::admin::verify_audit(&store, &witness, org, &key).await? {
                Ok(v) => {
                    println!(
                        "{org}: {} records verified; checkpoint at {:?}",
                        v.records, v.checkpoint_seq
                    );
                    Ok(())
                }
                Err(b) => Err(format!("{org}: the audit chain is broken: {b}").into()),
            }
        }
        Some(Command::AcceptRestoredAudit { org, witnessed_seq }) => {
            let org: rbac_core::OrgId = org.parse()?;
            let (store, key, witness) = audit_tools(&settings).await?;
            let accepted = axie_server::admin::accept_restored_audit(
                &store,
                &witness,
                org,
                &key,
                witnessed_seq,
                chrono::Utc::now(),
            )
            .await?;
            match accepted {
                axie_server::admin::Acceptance::NothingToAccept => {
                    println!(
                        "{org}: the audit log verifies against the witness in {} (or it holds nothing of {org}: is audit.witness_dir the server's?); nothing changed",
                        witness.dir().display()
                    );
                }
                axie_server::admin::Acceptance::Accepted {
                    witnessed,
                    set_aside,
                    database_checkpoint,
                    database_seq,
                    now,
                } => {
                    let covered = database_checkpoint.as_ref().map_or(0, |c| c.seq);
                    println!(
                        "{org}: accepted the database's log of {database_seq} records.\n  the witness's checkpoint: record {} signed {}, kept in {}\n  the database's newest checkpoint: {}\n  records {}..={database_seq} were signed by no checkpoint of the database: they are taken as it holds them\n  now witnessed: {}",
                        witnessed.seq,
                        witnessed.signed_at,
                        set_aside.display(),
                        database_checkpoint.as_ref().map_or_else(
                            || "none".to_owned(),
                            |c| format!("record {} signed {}", c.seq, c.signed_at)
                        ),
                        covered + 1,
                        now.map_or_else(
                            || "nothing (an empty log)".to_owned(),
                            |c| format!("record {}", c.seq)
                        )
                    );
                }
            }
            Ok(())
        }
        Some(Command::RotateEncryptionKey { new_key }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let report =
                axie_server::keys::rotate_encryption_key(&settings, &store, new_key.as_deref())
                    .await?;
            println!("{report}");
            Ok(())
        }
        Some(Command::RotateCheckpointKey { new_key }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let report =
                axie_server::keys::rotate_checkpoint_key(&settings, &store, new_key.as_deref())
                    .await?;
            println!("{report}");
            Ok(())
        }
        Some(Command::CreateOrg {
            name,
            plan,
            owner_email,
            owner_name,
            password,
        }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            store.migrate().await?;
            let report = axie_server::admin::create_org(
                &store,
                &name,
                &plan,
                &owner_email,
                owner_name.as_deref(),
                password.as_deref(),
            )
            .await?;
            println!("{report}");
            Ok(())
        }
        Some(Command::ResetOwner {
            org,
            email,
            name,
            password,
        }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let report = axie_server::admin::reset_owner(
                &store,
                org.parse()?,
                &email,
                name.as_deref(),
                password.as_deref(),
            )
            .await?;
            println!("{report}");
            Ok(())
        }
        Some(Command::ExportAudit { org, format }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let mut out = std::io::stdout().lock();
            let n =
                axie_server::admin::export_audit(&store, org.parse()?, &format, &mut out).await?;
            eprintln!("{n} records exported");
            Ok(())
        }
        Some(Command::Backup { to }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            store.backup_sqlite(&to).await?;
            println!(
                "wrote {}; back up {} (the keys) and {} (document bytes) with it",
                to.display(),
                settings.server.data_dir.join("*.key").display(),
                settings
                    .workspace
                    .blob_dir(&settings.server.data_dir)
                    .display()
            );
            Ok(())
        }
        Some(Command::DeleteOrg { org, confirm_name }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let org: rbac_core::OrgId = org.parse()?;
            let blob_dir = settings.workspace.blob_dir(&settings.server.data_dir);
            let documents =
                axie_server::admin::delete_org(&store, org, &confirm_name, &blob_dir).await?;
            tracing::warn!(%org, "organization deleted by the operator");
            println!("deleted the organization {org} and everything of it ({documents} documents)");
            Ok(())
        }
        Some(Command::ClearNetworkRules { org }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let org: rbac_core::OrgId = org.parse()?;
            let said = axie_server::admin::clear_network_rules(&store, org).await?;
            tracing::warn!(%org, "network rules cleared by the operator");
            println!("{said}");
            Ok(())
        }
        Some(Command::MarkInvoicePaid { org, invoice, note }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let org: rbac_core::OrgId = org.parse()?;
            let said =
                axie_server::admin::mark_invoice_paid(&store, org, &invoice, note.as_deref())
                    .await?;
            tracing::info!(%org, %invoice, "invoice marked paid by the operator");
            println!("{said}");
            Ok(())
        }
        Some(Command::OverdueInvoices { org }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let org = org.map(|o| o.parse::<rbac_core::OrgId>()).transpose()?;
            let lines =
                axie_server::admin::overdue_invoices(&store, org, chrono::Utc::now()).await?;
            if lines.is_empty() {
                println!("no invoice is overdue");
            }
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
        Some(Command::NotifyIncident {
            reference,
            title,
            message,
            resolved,
            outage,
        }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let said = axie_server::admin::notify_incident(
                &store,
                &reference,
                &title,
                &message,
                resolved,
                outage,
                chrono::Utc::now(),
            )
            .await?;
            tracing::info!(%reference, resolved, outage, "incident notice sent by the operator");
            println!("{said}");
            Ok(())
        }
        Some(Command::UptimeReport { month }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let text = axie_server::admin::uptime_report(
                &store,
                month.as_deref(),
                settings.uptime.tolerance(),
                chrono::Utc::now(),
            )
            .await?;
            print!("{text}");
            Ok(())
        }
        Some(Command::SetPrice {
            org,
            plan,
            monthly_cents,
            clear,
        }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let org: rbac_core::OrgId = org.parse()?;
            let deal = match (clear, plan, monthly_cents) {
                (true, _, _) => None,
                (false, Some(plan), Some(cents)) => Some((plan, cents)),
                _ => return Err("give --plan and --monthly-cents, or --clear".into()),
            };
            let said = axie_server::admin::set_price(
                &store,
                org,
                deal.as_ref().map(|(p, c)| (p.as_str(), *c)),
                &settings.billing.prices(),
            )
            .await?;
            tracing::info!(%org, "price deal set by the operator");
            println!("{said}");
            Ok(())
        }
        Some(Command::SetLimits { org, limits }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let org: rbac_core::OrgId = org.parse()?;
            let effective = axie_server::admin::set_limits(&store, org, &limits).await?;
            println!("{}", serde_json::to_string_pretty(&effective)?);
            Ok(())
        }
        Some(Command::Stats) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            for (table, n) in store.row_counts().await? {
                println!("{table:<22} {n}");
            }
            Ok(())
        }
        Some(Command::AccountMail { limit }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let cipher = axie_server::startup::existing_encryption_key(&settings)?;
            for m in audit::MailOutbox::list_mails(&store, None, None, limit).await? {
                let state = m.sent_at.map_or("queued", |_| "sent");
                let body = tenancy::mail_secrets::open_body_for_display(&cipher, &m.to, &m.body);
                println!(
                    "{} | {state} | {} | {}\n{}",
                    m.created_at.format("%Y-%m-%d %H:%M:%S"),
                    m.to,
                    m.subject,
                    body
                );
            }
            Ok(())
        }
        Some(Command::SmsOutbox { limit }) => {
            let store = store_sea::SeaStore::connect(
                &settings.database_url()?,
                store_sea::PoolOptions::default(),
            )
            .await?;
            let cipher = axie_server::startup::existing_encryption_key(&settings)?;
            for (to, text, at) in store.sms_outbox(limit).await? {
                let text = axie_server::sms::open(&cipher, &to, &text);
                println!("{} | {to} | {text}", at.format("%Y-%m-%d %H:%M:%S"));
            }
            Ok(())
        }
        Some(Command::Openapi) | Some(Command::Serve) | None => {
            let app = Application::build(settings).await?;
            let base = app.state().settings.server.local_base(app.port());
            if let Some(report) = app.bootstrap() {
                println!("{}", bootstrap::banner(report, &base));
            }
            tracing::info!(%base, "listening");
            println!("Axie Enterprise listening on {base} (Ctrl-C to stop)");
            app.run_until_stopped().await?;
            Ok(())
        }
    }
}
