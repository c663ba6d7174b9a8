//! Operator commands that work on the database directly, without the API: creating an
//! organization for a customer, resetting or replacing an organization's Owner, and exporting
//! an audit log.

use std::io::Write;

use audit::export::{CsvExporter, JsonArrayExporter, ndjson_line};
use audit::{AuditQuery, AuditStore};
use rbac_core::OrgId;
use store_sea::SeaStore;
use tenancy::orgs::{OwnerReset, reset_owner_as_system};

type Failure = Box<dyn std::error::Error>;

/// A password for an operator to hand on, when they gave none: 16 random bytes as text.
fn generated_password() -> String {
    security_policy::mint("", 16)
        .secret
        .trim_start_matches('_')
        .to_owned()
}

/// Resets the Owner's access (their own email) or makes someone else the Owner; prints the
/// password to use when it was generated.
///
/// # Errors
/// The domain's refusal, or storage failure.
pub async fn reset_owner(
    store: &SeaStore,
    org: OrgId,
    email: &str,
    name: Option<&str>,
    password: Option<&str>,
) -> Result<String, Failure> {
    let hasher = security_policy::PasswordHasher::new(security_policy::HashParams::default())?;
    let password = password.map_or_else(generated_password, str::to_owned);
    let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or(email));
    let done = reset_owner_as_system(
        store,
        &hasher,
        org,
        email,
        name,
        &password,
        chrono::Utc::now(),
    )
    .await?;
    Ok(match done {
        OwnerReset::AccessReset {
            owner,
            sessions_ended,
        } => format!(
            "reset the access of the Owner {} ({sessions_ended} sessions ended, second factor and login lock removed); sign in with password: {password}",
            owner.email
        ),
        OwnerReset::Transferred { to, from } => format!(
            "{} is now the Owner ({} is an Admin); if the account was created now, sign in with password: {password}",
            to.email, from.email
        ),
    })
}

/// Creates an organization for a customer on `plan`, owned by the account with `owner_email`:
/// an existing one, or a new one (its password `password`, or generated and printed).
///
/// # Errors
/// The domain's refusal (a bad name or email, a weak password), or storage failure.
pub async fn create_org(
    store: &SeaStore,
    name: &str,
    plan: &str,
    owner_email: &str,
    owner_name: Option<&str>,
    password: Option<&str>,
) -> Result<String, Failure> {
    let plan = billing_limits::Plan::parse(plan)
        .ok_or_else(|| format!("unknown plan `{plan}` (free, pro or enterprise)"))?;
    let now = chrono::Utc::now();
    let email = tenancy::Email::parse(owner_email)?;
    if let Some((owner, _)) = tenancy::AccountStore::find_user_by_email(store, &email).await? {
        let org = tenancy::orgs::create_as_system_for(store, &owner, name, plan, now).await?;
        return Ok(format!(
            "created {} ({}, {} plan); its Owner is the existing account {}",
            org.name,
            org.id,
            org.plan.as_str(),
            owner.email
        ));
    }
    let hasher = security_policy::PasswordHasher::new(security_policy::HashParams::default())?;
    let password = password.map_or_else(generated_password, str::to_owned);
    let (org, owner) = tenancy::orgs::create_with_new_owner(
        store,
        &hasher,
        tenancy::orgs::CreateOrgRequest {
            name: name.to_owned(),
            plan,
            owner_email: owner_email.to_owned(),
            owner_name: owner_name
                .unwrap_or_else(|| owner_email.split('@').next().unwrap_or(owner_email))
                .to_owned(),
            owner_password: password.clone(),
        },
        now,
    )
    .await?;
    Ok(format!(
        "created {} ({}, {} plan); its Owner {} signs in with password: {password}",
        org.name,
        org.id,
        org.plan.as_str(),
        owner.email
    ))
}

/// A record of an operator's command about `org`'s audit log, by the system.
fn about_the_log(org: OrgId, action: audit::AuditAction) -> audit::NewAuditEvent {
    audit::NewAuditEvent::new(
        org,
        chrono::Utc::now(),
        audit::Actor::system(),
        action,
        audit::Target::new("audit_log", org, "audit log"),
    )
}

/// Refuses an id that names no organization (mistyped, or deleted): the commands would
/// otherwise report an empty log as verified or exported, and record that in a log of its own.
async fn existing(store: &SeaStore, org: OrgId) -> Result<(), Failure> {
    match tenancy::OrgStore::get_org(store, org).await {
        Ok(_) => Ok(()),
        Err(tenancy::TenancyError::NotFound(_)) => Err(format!("no organization {org}").into()),
        Err(e) => Err(e.into()),
    }
}

/// Verifies an organization's audit chain against its newest signed checkpoint (the
/// database's, or the witness's when that one is newer), and records
/// the verification (`audit.verified`, by the system) with what it found.
///
/// # Errors
/// Storage failure (a broken chain is an `Ok(Err(..))`); no organization of that id.
pub async fn verify_audit(
    store: &SeaStore,
    witness: &dyn audit::CheckpointWitness,
    org: OrgId,
    checkpoint_key: &[u8],
) -> Result<Result<audit::VerifiedChain, audit::ChainBreak>, Failure> {
    existing(store, org).await?;
    let log = audit::Witnessed::new(store, witness);
    let outcome = audit::verify_chain(&log, org, checkpoint_key).await?;
    let record = about_the_log(org, audit::AuditAction::AuditVerified)
        .with_metadata(audit::verification_metadata(&outcome));
    store.append(audit::Journal::record(record)).await?;
    Ok(outcome)
}

/// What [`accept_restored_audit`] did.
#[allow(
    clippy::large_enum_variant,
    reason = "made once per operator command, never stored"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// The log verifies against the witness (or the witness holds nothing for the
    /// organization): nothing was changed.
    NothingToAccept,
    /// The witness held a checkpoint the restored log does not reach (or contradicts); it was
    /// moved to `set_aside`, and the database's log was signed again and witnessed.
    Accepted {
        /// The checkpoint the witness held.
        witnessed: audit::Checkpoint,
        /// Where its file went.
        set_aside: std::path::PathBuf,
        /// The database's newest checkpoint: the records after it were signed by nothing but
        /// the witness's checkpoint, and are taken as the database holds them.
        database_checkpoint: Option<audit::Checkpoint>,
        /// The records the database held when they were accepted.
        database_seq: i64,
        /// The checkpoint now witnessed (`None` for an empty log).
        now: Option<audit::Checkpoint>,
    },
}

/// After restoring an older database (a backup, a failover to a replica that missed the last
/// commits): accepts the database's audit log of `org` as it is. It must verify on its own
/// (against the database's checkpoints and retention anchor), and `witnessed_seq` must name the
/// position of the checkpoint the witness holds (what `verify-audit` reported), so that the
/// operator accepts the loss they looked at. Then the acceptance is recorded
/// (`audit.witness_reset`, by the system, with the witnessed checkpoint, the database's newest
/// one and the records accepted), the witness's file is moved aside
/// ([`crate::witness::FileWitness::set_aside`]) and a checkpoint of the log as it now is is
/// signed and witnessed; if that fails, the file is put back.
///
/// This cannot tell a restored backup from a database whose records after its newest
/// checkpoint were rewritten by someone who can write to it: those records are accepted as
/// they are. Run it only when a restore is what happened.
///
/// # Errors
/// The database's own log does not verify, or `witnessed_seq` is not the witness's position
/// (nothing is changed then); storage or file failures.
pub async fn accept_restored_audit(
    store: &SeaStore,
    witness: &crate::witness::FileWitness,
    org: OrgId,
    checkpoint_key: &[u8],
    witnessed_seq: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Acceptance, Failure> {
    if let Err(b) = audit::verify_chain(store, org, checkpoint_key).await? {
        return Err(format!(
            "{org}: the database's own audit log does not verify ({b}); nothing was changed"
        )
        .into());
    }
    let log = audit::Witnessed::new(store, witness);
    if audit::verify_chain(&log, org, checkpoint_key)
        .await?
        .is_ok()
    {
        return Ok(Acceptance::NothingToAccept);
    }
    let Some(held) = audit::CheckpointWitness::latest(witness, org).await? else {
        return Ok(Acceptance::NothingToAccept);
    };
    if held.seq != witnessed_seq {
        return Err(format!(
            "{org}: the witness holds a checkpoint at record {}, not {witnessed_seq}; run verify-audit and give the position it reports; nothing was changed",
            held.seq
        )
        .into());
    }
    let database_checkpoint = audit::AuditStore::latest_checkpoint(store, org).await?;
    let database_seq = audit::AuditStore::head(store, org)
        .await?
        .map_or(0, |(seq, _)| seq);
    // Recorded first, on its own: whatever fails after, the decision is in the log, and the
    // checkpoint signed next covers it.
    let record = audit::NewAuditEvent::new(
        org,
        now,
        audit::Actor::system(),
        audit::AuditAction::AuditWitnessReset,
        audit::Target::new("audit_log", org, "audit log"),
    )
    .with_metadata(audit::Metadata::from_value(serde_json::json!({
        "witnessed_seq": held.seq,
        "witnessed_head": hex::encode(held.head),
        "witnessed_signed_at": held.signed_at,
        "database_checkpoint_seq": database_checkpoint.as_ref().map(|c| c.seq),
        "database_seq": database_seq,
    }))?);
    store.append(audit::Journal::record(record)).await?;
    let Some((witnessed, set_aside)) = witness.set_aside(org, now).await? else {
        return Err(format!(
            "{org}: the witness's file went away while this ran (another acceptance?); the acceptance is recorded, nothing else changed"
        )
        .into());
    };
    match audit::take_checkpoint(&log, org, checkpoint_key, now).await {
        Ok(signed) => Ok(Acceptance::Accepted {
            witnessed,
            set_aside,
            database_checkpoint,
            database_seq,
            now: signed,
        }),
        Err(e) => {
            if let Err(back) = witness.put_back(org, &set_aside).await {
                tracing::error!(error = %back, file = %set_aside.display(), "could not put the witness's file back");
            }
            Err(e.into())
        }
    }
}

/// Writes an organization's whole audit log, newest first, as CSV, a JSON array or NDJSON
/// (streamed), or a PDF report of the newest events.
///
/// # Errors
/// Unknown format, storage or write failure.
pub async fn export_audit(
    store: &SeaStore,
    org: OrgId,
    format: &str,
    out: &mut dyn Write,
) -> Result<u64, Failure> {
    if !matches!(format, "csv" | "json" | "ndjson" | "pdf") {
        return Err(format!("unknown format `{format}`; use csv, json, ndjson or pdf").into());
    }
    existing(store, org).await?;
    // The export is itself audited, as through the API; by the system (the operator's command).
    let record = about_the_log(org, audit::AuditAction::DataExported).with_metadata(
        audit::Metadata::from_value(
            serde_json::json!({ "format": format, "by": "export-audit command" }),
        )?,
    );
    store.append(audit::Journal::record(record)).await?;
    let query = AuditQuery {
        limit: audit::MAX_PAGE,
        ..AuditQuery::default()
    };
    let written = match format {
        "csv" => {
            // Rows go straight to `out`: memory stays bounded by two pages.
            let mut x = CsvExporter::new(&mut *out)?;
            let n = audit::for_each_page(store, org, query, |page| {
                std::future::ready(
                    page.iter()
                        .try_for_each(|r| x.write(r))
                        .map_err(Failure::from),
                )
            })
            .await?;
            x.finish()?;
            n
        }
        "pdf" => {
            let (events, more) = audit::pdf::newest_events(store, org, query, &[]).await?;
            let o = tenancy::OrgStore::get_org(store, org).await?;
            let header = audit::pdf::ReportHeader {
                organization: o.name,
                organization_id: org.to_string(),
                filters: Vec::new(),
                period: "the whole log".into(),
                generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            };
            out.write_all(&audit::pdf::render_pdf(&header, &events, more))?;
            events.len() as u64
        }
        "ndjson" => {
            audit::for_each_page(store, org, query, |page| {
                std::future::ready(page.iter().try_for_each(|r| -> Result<(), Failure> {
                    out.write_all(ndjson_line(r)?.as_bytes())?;
                    Ok(())
                }))
            })
            .await?
        }
        "json" => {
            let mut array = JsonArrayExporter::new();
            let n = audit::for_each_page(store, org, query, |page| {
                std::future::ready(
                    array
                        .page(&page)
                        .map_err(Failure::from)
                        .and_then(|text| Ok(out.write_all(text.as_bytes())?)),
                )
            })
            .await?;
            out.write_all(array.finish().as_bytes())?;
            n
        }
        other => {
            return Err(format!("unknown format `{other}`; use csv, json, ndjson or pdf").into());
        }
    };
    Ok(written)
}

/// Parses `limit=value` pairs (`value` a number or `unlimited`) and stores them as the
/// organization's negotiated limits; returns the limits that now apply.
///
/// # Errors
/// A malformed pair, an unknown limit, or storage failure.
pub async fn set_limits(
    store: &SeaStore,
    org: OrgId,
    pairs: &[String],
) -> Result<billing_limits::PlanLimits, Failure> {
    let mut overrides = billing_limits::LimitOverrides::default();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not `limit=value`"))?;
        let limit = billing_limits::Limit::parse(name.trim())
            .ok_or_else(|| format!("unknown limit `{name}`"))?;
        let value = match value.trim() {
            "unlimited" => None,
            n => Some(
                n.parse::<u64>()
                    .map_err(|_| format!("`{n}` is not a number or `unlimited`"))?,
            ),
        };
        overrides.0.insert(limit, value);
    }
    Ok(
        tenancy::orgs::set_limit_overrides_as_system(store, org, overrides, chrono::Utc::now())
            .await?,
    )
}

/// Clears an organization's IP allowlist and blocked countries (the `clear-network-rules`
/// command) and says what was removed.
///
/// # Errors
/// Unknown organization, settings changed meanwhile, or a store failure.
pub async fn clear_network_rules(store: &SeaStore, org: OrgId) -> Result<String, Failure> {
    let cleared =
        tenancy::security::clear_network_rules_as_system(store, org, chrono::Utc::now()).await?;
    if cleared.ip_allowlist.is_empty() && cleared.blocked_countries.is_empty() {
        return Ok(format!(
            "the organization {org} has no IP allowlist and blocks no country: nothing to clear"
        ));
    }
    let countries: Vec<String> = cleared
        .blocked_countries
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(format!(
        "cleared the IP allowlist ({}) and the blocked countries ({}) of the organization {org}; every address may reach it again until its Owner or an Admin sets new ones",
        if cleared.ip_allowlist.is_empty() {
            "none".to_owned()
        } else {
            cleared.ip_allowlist.join(", ")
        },
        if countries.is_empty() {
            "none".to_owned()
        } else {
            countries.join(", ")
        },
    ))
}

/// Records that an organization's open invoice was paid (the `mark-invoice-paid` command: a
/// bank transfer for a manual invoice arrived), with an optional note such as the payment's
/// reference; audited as the system's `billing.invoice_paid`.
///
/// # Errors
/// Unknown organization or invoice, an invoice paid or void already, or a store failure.
pub async fn mark_invoice_paid(
    store: &SeaStore,
    org: OrgId,
    number: &str,
    note: Option<&str>,
) -> Result<String, Failure> {
    let i =
        tenancy::billing::mark_paid_as_system(store, org, number, note, chrono::Utc::now()).await?;
    Ok(format!(
        "invoice {} of the organization {org} ({}.{:02} {}, {}) is marked paid",
        i.number,
        i.amount_cents / 100,
        i.amount_cents % 100,
        i.currency,
        i.description
    ))
}

/// Agrees a monthly price for a paid plan with an organization, or takes it back with `None`
/// (the `set-price` command); audited as the system's `billing.price_agreed`. Says what the
/// organization now pays for that plan, from the deployment's `list`.
///
/// # Errors
/// Unknown organization or plan, a deal for Free or over the highest price, or a store failure.
pub async fn set_price(
    store: &SeaStore,
    org: OrgId,
    deal: Option<(&str, u64)>,
    list: &billing_limits::subscription::PriceList,
) -> Result<String, Failure> {
    use billing_limits::subscription::BillingCycle::{Annual, Monthly};
    let deal = match deal {
        Some((plan, cents)) => Some((
            billing_limits::Plan::parse(plan)
                .ok_or_else(|| format!("unknown plan `{plan}`: use `pro` or `enterprise`"))?,
            cents,
        )),
        None => None,
    };
    let made =
        tenancy::billing::set_price_deal_as_system(store, org, deal, chrono::Utc::now()).await?;
    let prices = list.with_deal(made.as_ref());
    let money = |c: u64| format!("{}.{:02} {}", c / 100, c % 100, prices.currency);
    Ok(match made {
        Some(d) => format!(
            "the organization {org} pays {} a month for {} ({} a year on the annual cycle) from its next charge for it",
            money(prices.price_cents(d.plan, Monthly)),
            d.plan.as_str(),
            money(prices.price_cents(d.plan, Annual)),
        ),
        None => format!("the organization {org} pays the list prices again"),
    })
}

/// The service's uptime report of `month` (`YYYY-MM`; this month when `None`) as text, against
/// Enterprise's commitment (the `uptime-report` command; `tenancy::uptime`).
///
/// # Errors
/// A month that is not one or has not begun; a store failure.
pub async fn uptime_report(
    store: &SeaStore,
    month: Option<&str>,
    tolerance: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, Failure> {
    use tenancy::uptime::Month;
    let month = month
        .map(Month::parse)
        .transpose()?
        .unwrap_or_else(|| Month::of(now));
    let report = tenancy::uptime::month_report(store, month, now, tolerance).await?;
    Ok(report.text(billing_limits::catalogue::sla_uptime_per_mille(
        billing_limits::Plan::Enterprise,
    )))
}

/// Tells the active Owner and Admins of every Enterprise organization of an incident of the
/// service, or of its end (the `notify-incident` command; `tenancy::notices`): once per
/// organization, incident and state, so the command can run again after a failure. With
/// `outage` (the service could not be used, which its own beats may not show), the incident
/// counts as an outage in the uptime reports from its notice to its resolved notice
/// (`tenancy::uptime::UptimeStore::declare_outage`; any resolved notice ends it). Returns what
/// it did, for the operator.
///
/// # Errors
/// Bad input; the resolved notice of an outage never declared begun; a store failure after
/// which the organizations not yet told are told by running the command again.
pub async fn notify_incident(
    store: &SeaStore,
    reference: &str,
    title: &str,
    message: &str,
    resolved: bool,
    outage: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, Failure> {
    use tenancy::notices::{Incident, IncidentState};
    let state = if resolved {
        IncidentState::Resolved
    } else {
        IncidentState::Investigating
    };
    let incident = Incident::new(reference, title, message, state)?;
    // Recorded before anyone is told, so that a notice never announces an outage the reports
    // do not count.
    tenancy::uptime::note_incident(store, &incident.reference, now, resolved, outage).await?;
    let (mut told, mut before, mut failed) = (0u64, 0u64, 0u64);
    // One organization that cannot be told (deleted meanwhile, a log that does not verify)
    // holds back none of the others; it is logged, and a run again tells it.
    for id in store.live_organizations().await? {
        let o = match tenancy::OrgStore::get_org(store, id).await {
            Ok(o) => o,
            Err(tenancy::TenancyError::NotFound(_)) => continue,
            Err(e) => {
                tracing::error!(org = %id, error = %e, "incident notice not sent");
                failed += 1;
                continue;
            }
        };
        if o.plan != billing_limits::Plan::Enterprise {
            continue;
        }
        match tenancy::notices::notify_incident_as_system(store, &o, &incident, now).await {
            Ok(true) => told += 1,
            Ok(false) => before += 1,
            Err(e) => {
                tracing::error!(org = %id, error = %e, "incident notice not sent");
                failed += 1;
            }
        }
    }
    let said = format!(
        "incident {} ({}): {told} Enterprise organizations told now, {before} told before",
        incident.reference,
        state.as_str()
    );
    if failed > 0 {
        return Err(format!("{said}, {failed} not told (see the log; run it again)").into());
    }
    Ok(said)
}

/// The open invoices past their due date, of one organization or of all (the
/// `overdue-invoices` command: what the operator follows up), one line each, oldest due first:
/// organization id and name, number, amount, due date and days overdue, tab-separated.
///
/// # Errors
/// Unknown organization or a store failure.
pub async fn overdue_invoices(
    store: &SeaStore,
    org: Option<OrgId>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, Failure> {
    use tenancy::billing::BillingStore as _;
    let orgs = match org {
        Some(o) => vec![o],
        None => store.live_organizations().await?,
    };
    let mut found = Vec::new();
    for id in orgs {
        let o = tenancy::OrgStore::get_org(store, id).await?;
        for i in store.overdue_invoices(id, now).await? {
            let due = i.due_at.unwrap_or(now);
            found.push((due, o.id, o.name.clone(), i));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.3.number.cmp(&b.3.number)));
    Ok(found
        .into_iter()
        .map(|(due, org, name, i)| {
            format!(
                "{org}\t{name}\t{}\t{}.{:02} {}\tdue {}\t{} days overdue",
                i.number,
                i.amount_cents / 100,
                i.amount_cents % 100,
                i.currency,
                due.format("%Y-%m-%d"),
                (now - due).num_days(),
            )
        })
        .collect())
}

/// Deletes an organization and everything of it (the `delete-org` command), after checking
/// its name; its Owner and Admins are mailed, and its documents' bytes are removed from
/// `blob_dir` after the commit. Returns how many documents were deleted.
///
/// # Errors
/// Unknown organization, a name that does not match, or a store failure.
pub async fn delete_org(
    store: &SeaStore,
    org: OrgId,
    confirm_name: &str,
    blob_dir: &std::path::Path,
) -> Result<usize, Failure> {
    let documents =
        tenancy::orgs::delete_as_system(store, org, confirm_name, chrono::Utc::now()).await?;
    for d in &documents {
        if let Err(e) = crate::workspace_io::FsBlobStore::remove_at(blob_dir, &d.to_string()) {
            tracing::warn!(error = %e, blob = %d, "could not remove a deleted document's bytes");
        }
    }
    Ok(documents.len())
}
