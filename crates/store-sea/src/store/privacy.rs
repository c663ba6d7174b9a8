//! [`PrivacyStore`] on SeaORM: consent records and the erasure transaction.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, Utc};
use rbac_core::{ConsentId, OrgId, UserId};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use tenancy::TenancyError;
use tenancy::members::Disposition;
use tenancy::privacy::{
    ConsentDecision, ConsentRecord, ErasureReport, MAX_CONSENT_PURPOSES, PrivacyStore, Recorded,
    restates, too_many_purposes,
};

use super::members::remove_in;
use super::tenancy::{commit, lock_user, store};
use crate::SeaStore;
use crate::convert::{corrupt, id, micros, time};
use crate::entity::{
    bulk_preview, consent, invitation, login_challenge, login_throttle, mail, membership,
    outbox_event, password_reset, recovery_code, scim_group, session, sms_outbox, user, user_mfa,
    webhook_attempt, webhook_delivery,
};

#[async_trait]
impl PrivacyStore for SeaStore {
    async fn record_consent(
        &self,
        c: &ConsentDecision,
        journal: Journal,
    ) -> Result<Recorded, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // One person's decisions take turns: the newest ones read below are still the newest
        // when this one is appended, its id comes after theirs, and two new purposes cannot
        // both take the last place.
        lock_user(&txn, c.user).await?;
        let theirs = Condition::all()
            .add(consent::Column::OrgId.eq(c.org.to_string()))
            .add(consent::Column::UserId.eq(c.user.to_string()));
        let newest = consent::Entity::find()
            .filter(theirs.clone())
            .filter(consent::Column::Purpose.eq(c.purpose.as_str()))
            .order_by_desc(consent::Column::Id)
            .one(&txn)
            .await
            .map_err(store)?
            .map(|m| consent_record(c.org, m))
            .transpose()?;
        if let Some(newest) = newest.as_ref().filter(|n| restates(Some(n), c)) {
            return Ok(Recorded::Unchanged(newest.clone()));
        }
        if newest.is_none() {
            let purposes = consent::Entity::find()
                .select_only()
                .column(consent::Column::Purpose)
                .distinct()
                .filter(theirs.clone())
                .count(&txn)
                .await
                .map_err(store)?;
            if purposes >= MAX_CONSENT_PURPOSES as u64 {
                return Err(too_many_purposes());
            }
        }
        let latest = consent::Entity::find()
            .filter(theirs)
            .order_by_desc(consent::Column::Id)
            .one(&txn)
            .await
            .map_err(store)?
            .map(|m| consent_record(c.org, m))
            .transpose()?;
        let kept = c.kept_as(ConsentId::next_after(latest.map(|l| l.id)));
        consent::Entity::insert(consent::ActiveModel {
            id: Set(kept.id.as_uuid().simple().to_string()),
            org_id: Set(kept.org.to_string()),
            user_id: Set(kept.user.to_string()),
            purpose: Set(kept.purpose.clone()),
            granted: Set(kept.granted),
            at: Set(micros(kept.at)),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        commit(txn, journal).await?;
        Ok(Recorded::Appended(kept))
    }

    async fn consents(
        &self,
        org: OrgId,
        u: Option<UserId>,
        after: Option<ConsentId>,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>, TenancyError> {
        let mut q = consent::Entity::find().filter(consent::Column::OrgId.eq(org.to_string()));
        if let Some(u) = u {
            q = q.filter(consent::Column::UserId.eq(u.to_string()));
        }
        if let Some(after) = after {
            q = q.filter(consent::Column::Id.gt(after.as_uuid().simple().to_string()));
        }
        q.order_by_asc(consent::Column::Id)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(|m| consent_record(org, m))
            .collect()
    }

    async fn erase_member(
        &self,
        org: OrgId,
        u: UserId,
        disposition: Option<Disposition>,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
        sessions: tenancy::SessionsEndedJournal<'_>,
    ) -> Result<ErasureReport, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The account first (then the organization, in `remove_in`), as a password reset takes
        // it: a reset that races the erasure commits wholly before it or finds the account
        // changed.
        super::tenancy::lock_user(&txn, u).await?;
        let account = user::Entity::find_by_id(u.to_string())
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("member"))?;
        let (removal, touched) = match disposition {
            Some(d) => remove_in(&txn, org, u, d, now).await?,
            // A former member: nothing to remove; one who joined again meanwhile is erased as a
            // member or not at all.
            None => {
                super::tenancy::lock_org(&txn, org).await?;
                if membership::Entity::find_by_id((org.to_string(), u.to_string()))
                    .one(&txn)
                    .await
                    .map_err(store)?
                    .is_some()
                {
                    return Err(TenancyError::Conflict(
                        "they are a member of the organization again; erase them as a member"
                            .into(),
                    ));
                }
                (tenancy::members::RemovalReport::default(), 0)
            }
        };
        // Under the organization's lock, which `remove_in` took, as a removal checks it.
        super::members::check_acting(&txn, org, by).await?;
        let (o, uid) = (org.to_string(), u.to_string());
        let erased = audit::ERASED;
        let addresses = addresses_in(&txn, &o, &account).await?;
        // They, and their API keys, which acted in their name ("Production key (API key of
        // <name>)"), in one pass.
        let mut subjects: Vec<String> = crate::entity::api_key::Entity::find()
            .select_only()
            .column(crate::entity::api_key::Column::Id)
            .filter(crate::entity::api_key::Column::OrgId.eq(o.clone()))
            .filter(crate::entity::api_key::Column::CreatedBy.eq(uid.clone()))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(store)?;
        subjects.push(uid.clone());
        let erasure = super::audit::begin_erasure(&txn, org, &subjects, &addresses)
            .await
            .map_err(store)?;
        // Their names in the credit ledger: found by actor id; entries from before ids were
        // kept (NULL), by the exact names they carried, their keys' ("<key> (API key of
        // <name>)") and their own, only while nobody else in the organization has that name.
        let mut legacy_names: Vec<String> = crate::entity::api_key::Entity::find()
            .select_only()
            .column(crate::entity::api_key::Column::Name)
            .filter(crate::entity::api_key::Column::OrgId.eq(o.clone()))
            .filter(crate::entity::api_key::Column::CreatedBy.eq(uid.clone()))
            .into_tuple::<String>()
            .all(&txn)
            .await
            .map_err(store)?
            .into_iter()
            .map(|k| format!("{k} (API key of {})", account.name))
            .collect();
        let namesakes = membership::Entity::find()
            .filter(membership::Column::OrgId.eq(o.clone()))
            .filter(membership::Column::UserId.ne(uid.clone()))
            .find_also_related(user::Entity)
            .all(&txn)
            .await
            .map_err(store)?
            .into_iter()
            .filter(|(_, other)| other.as_ref().is_some_and(|x| x.name == account.name))
            .count();
        if namesakes == 0 {
            legacy_names.push(account.name.clone());
        } else {
            // A namesake's key of the same name would carry the same text.
            legacy_names.clear();
        }
        crate::entity::credit_entry::Entity::update_many()
            .col_expr(
                crate::entity::credit_entry::Column::Actor,
                Expr::value(erased),
            )
            .filter(crate::entity::credit_entry::Column::OrgId.eq(o.clone()))
            .filter(
                Condition::any()
                    .add(crate::entity::credit_entry::Column::ActorId.is_in(subjects.clone()))
                    .add(
                        Condition::all()
                            .add(crate::entity::credit_entry::Column::ActorId.is_null())
                            .add(crate::entity::credit_entry::Column::Actor.is_in(legacy_names)),
                    ),
            )
            .exec(&txn)
            .await
            .map_err(store)?;
        // Their keys' names, which they chose and which may name them ("Lisa's script"): the
        // keys stay, revoked by the removal and known by id and prefix.
        crate::entity::api_key::Entity::update_many()
            .col_expr(crate::entity::api_key::Column::Name, Expr::value(erased))
            .filter(crate::entity::api_key::Column::OrgId.eq(o.clone()))
            .filter(crate::entity::api_key::Column::CreatedBy.eq(uid.clone()))
            .exec(&txn)
            .await
            .map_err(store)?;
        // Mail to them in this organization, and mail about them: invitations they sent name
        // them in the subject (by the subject alone only while nobody else in the organization
        // has their name, as for the ledger above) and the body. What is still queued goes
        // (it would reach an erased person, or go out blank); what went keeps no name or
        // address.
        // Bodies that hold one of their addresses whole (`LIKE` finds the candidates; one about
        // `mary-ann@…` is not about `ann@…`).
        let naming_them: Vec<String> = mail::Entity::find()
            .filter(mail::Column::OrgId.eq(o.clone()))
            .filter(naming(mail::Column::Body, &addresses))
            .all(&txn)
            .await
            .map_err(store)?
            .into_iter()
            .filter(|m| {
                addresses
                    .iter()
                    .any(|a| tenancy::privacy::mentions_address(&m.body, a))
            })
            .map(|m| m.id)
            .collect();
        let mut about = Condition::any().add(mail::Column::Id.is_in(naming_them));
        if namesakes == 0 {
            // Compared as the subject's first characters, not with `LIKE`: SQLite's `LIKE` is
            // blind to ASCII case, and would take another member's "ann lee invited you" for
            // Ann Lee's.
            for prefix in tenancy::privacy::subjects_naming(&account.name) {
                let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
                about = about.add(
                    Expr::expr(
                        Func::cust("substr")
                            .arg(Expr::col(mail::Column::Subject))
                            .arg(1)
                            .arg(chars),
                    )
                    .eq(prefix),
                );
            }
        }
        mail::Entity::delete_many()
            .filter(mail::Column::OrgId.eq(o.clone()))
            .filter(mail::Column::SentAt.is_null())
            .filter(
                Condition::any()
                    .add(mail::Column::ToAddr.is_in(addresses.clone()))
                    .add(about.clone()),
            )
            .exec(&txn)
            .await
            .map_err(store)?;
        // The server's last answer goes too: it may quote the address (`550 <ann@…>: …`).
        mail::Entity::update_many()
            .col_expr(mail::Column::ToAddr, Expr::value(erased))
            .col_expr(mail::Column::Body, Expr::value(""))
            .col_expr(mail::Column::LastError, Expr::value(Option::<String>::None))
            .filter(mail::Column::OrgId.eq(o.clone()))
            .filter(mail::Column::ToAddr.is_in(addresses.clone()))
            .exec(&txn)
            .await
            .map_err(store)?;
        mail::Entity::update_many()
            .col_expr(mail::Column::Subject, Expr::value(erased))
            .col_expr(mail::Column::Body, Expr::value(""))
            .col_expr(mail::Column::LastError, Expr::value(Option::<String>::None))
            .filter(mail::Column::OrgId.eq(o.clone()))
            .filter(about)
            .exec(&txn)
            .await
            .map_err(store)?;
        // The identity provider's group entries that name them (with the name it gave them).
        for g in scim_group::Entity::find()
            .filter(scim_group::Column::OrgId.eq(o.clone()))
            .filter(scim_group::Column::Members.contains(uid.as_str()))
            .all(&txn)
            .await
            .map_err(store)?
        {
            let members: Vec<serde_json::Value> = serde_json::from_str(&g.members)
                .map_err(|_| corrupt("SCIM members", &g.members))?;
            if let Some(kept) = tenancy::privacy::group_members_without(&members, u) {
                scim_group::Entity::update_many()
                    .col_expr(
                        scim_group::Column::Members,
                        Expr::value(serde_json::Value::from(kept).to_string()),
                    )
                    .col_expr(scim_group::Column::Version, Expr::value(g.version + 1))
                    .col_expr(scim_group::Column::UpdatedAt, Expr::value(micros(now)))
                    .filter(scim_group::Column::OrgId.eq(g.org_id.clone()))
                    .filter(scim_group::Column::TeamId.eq(g.team_id.clone()))
                    .exec(&txn)
                    .await
                    .map_err(store)?;
            }
        }
        // Event bodies kept for webhooks (queued, retried or sent) and the event outbox.
        let event_bodies_erased =
            scrub_event_bodies(&txn, &o, u, &account.name, &addresses).await?;
        // Invitations to them in this organization keep no address.
        for inv in invitation::Entity::find()
            .filter(invitation::Column::OrgId.eq(o.clone()))
            .filter(
                Condition::any()
                    .add(invitation::Column::Email.is_in(addresses.clone()))
                    .add(invitation::Column::AcceptedBy.eq(uid.clone())),
            )
            .all(&txn)
            .await
            .map_err(store)?
        {
            let id = inv.id.clone();
            invitation::Entity::update_many()
                .col_expr(
                    invitation::Column::Email,
                    Expr::value(format!("erased-{}@erased.invalid", id.replace('_', "-"))),
                )
                .filter(invitation::Column::Id.eq(id))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        // Bulk-invitation previews (an uploaded sheet's rows, kept minutes, a few per
        // organization) with a row of theirs; one that cannot be read goes too.
        let previews: Vec<(String, String)> = bulk_preview::Entity::find()
            .select_only()
            .column(bulk_preview::Column::Id)
            .column(bulk_preview::Column::Data)
            .filter(bulk_preview::Column::OrgId.eq(o.clone()))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(store)?;
        let naming: Vec<String> = previews
            .into_iter()
            .filter(|(_, data)| {
                serde_json::from_str::<tenancy::bulk::BulkPreview>(data)
                    .map_or(true, |p| addresses.iter().any(|a| p.names(a)))
            })
            .map(|(id, _)| id)
            .collect();
        if !naming.is_empty() {
            bulk_preview::Entity::delete_many()
                .filter(bulk_preview::Column::Id.is_in(naming))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        let elsewhere = membership::Entity::find()
            .filter(membership::Column::UserId.eq(uid.clone()))
            .count(&txn)
            .await
            .map_err(store)?;
        // A former member's account is no longer the organization's to anonymize.
        let anonymize = elsewhere == 0 && disposition.is_some();
        if anonymize {
            user::Entity::update_many()
                .col_expr(
                    user::Column::Email,
                    Expr::value(tenancy::privacy::erased_address(u)),
                )
                .col_expr(user::Column::Name, Expr::value(erased))
                .col_expr(
                    user::Column::PasswordHash,
                    Expr::value(Option::<String>::None),
                )
                .filter(user::Column::Id.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            // Mail about the account itself (password resets) and its reset links go.
            mail::Entity::delete_many()
                .filter(mail::Column::OrgId.eq(""))
                .filter(mail::Column::ToAddr.is_in(addresses.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            password_reset::Entity::delete_many()
                .filter(password_reset::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            // Codes texted to their phone, in the SMS outbox the operator reads (which keeps
            // no account: a number someone else also uses is left alone).
            let phones: Vec<String> = user_mfa::Entity::find()
                .filter(user_mfa::Column::UserId.eq(uid.clone()))
                .all(&txn)
                .await
                .map_err(store)?
                .into_iter()
                .filter_map(|m| m.phone)
                .collect();
            let shared: Vec<String> = user_mfa::Entity::find()
                .filter(user_mfa::Column::UserId.ne(uid.clone()))
                .filter(user_mfa::Column::Phone.is_in(phones.clone()))
                .all(&txn)
                .await
                .map_err(store)?
                .into_iter()
                .filter_map(|m| m.phone)
                .collect();
            let phones: Vec<String> = phones.into_iter().filter(|p| !shared.contains(p)).collect();
            if !phones.is_empty() {
                sms_outbox::Entity::delete_many()
                    .filter(sms_outbox::Column::ToNumber.is_in(phones))
                    .exec(&txn)
                    .await
                    .map_err(store)?;
            }
            user_mfa::Entity::delete_many()
                .filter(user_mfa::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            recovery_code::Entity::delete_many()
                .filter(recovery_code::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            login_challenge::Entity::delete_many()
                .filter(login_challenge::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            login_throttle::Entity::delete_many()
                .filter(login_throttle::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            crate::entity::credential_change::Entity::delete_many()
                .filter(crate::entity::credential_change::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
            // Their sessions (ended by the removal) keep network addresses and user agents.
            session::Entity::delete_many()
                .filter(session::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        // Last before the commit, as it takes the chain head.
        let audit_records_erased = erasure
            .complete(&txn, org, &subjects, &addresses, now)
            .await
            .map_err(store)?;
        let mut journal = journal;
        journal.absorb(sessions(touched));
        commit(txn, journal).await?;
        Ok(ErasureReport {
            removal,
            audit_records_erased,
            account_anonymized: anonymize,
            event_bodies_erased,
        })
    }
}

/// Rewrites every stored event body of `org` that names the person: the event outbox and the
/// webhook deliveries of the event document (queued ones then go out without them) with
/// [`tenancy::privacy::scrub_event_json`], found by one of their `addresses` or their
/// `byName` as JSON writes them; then the deliveries of those same events to endpoints with a
/// message template, with [`tenancy::privacy::scrub_message_json`] given what each event
/// carried of them. Returns how many bodies changed.
async fn scrub_event_bodies(
    txn: &sea_orm::DatabaseTransaction,
    org: &str,
    u: UserId,
    name: &str,
    addresses: &[String],
) -> Result<u64, TenancyError> {
    let mut needles: Vec<String> = addresses
        .iter()
        .flat_map(|a| tenancy::privacy::event_search_tokens(a, name))
        .chain(tenancy::privacy::id_search_tokens(u))
        .collect();
    needles.sort();
    needles.dedup();
    let mut changed = 0;
    // Each event that named them, with the addresses it carried and whether it carried their
    // name.
    let mut naming_events = std::collections::HashMap::new();
    // In id order, as they are updated one by one (see `in_key_order`).
    for e in outbox_event::Entity::find()
        .filter(outbox_event::Column::OrgId.eq(org))
        .filter(naming(outbox_event::Column::Data, &needles))
        .order_by_asc(outbox_event::Column::Id)
        .all(txn)
        .await
        .map_err(store)?
    {
        if let Some(scrubbed) = scrub_event(&e.data, u, name, addresses) {
            let carried = (scrubbed.addresses, scrubbed.names);
            outbox_event::Entity::update_many()
                .col_expr(outbox_event::Column::Data, Expr::value(scrubbed.body))
                .filter(outbox_event::Column::Id.eq(e.id.clone()))
                .exec(txn)
                .await
                .map_err(store)?;
            naming_events.insert(e.id, carried);
            changed += 1;
        }
    }
    // The deliveries' new payloads, written after both passes in id order: a batch of attempts
    // on another connection updates its deliveries in id order too, so on PostgreSQL the two
    // never take the same rows in opposite orders.
    let mut scrubbed_deliveries: std::collections::BTreeMap<String, String> =
        std::collections::BTreeMap::new();
    for d in webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::OrgId.eq(org))
        .filter(naming(webhook_delivery::Column::Payload, &needles))
        .all(txn)
        .await
        .map_err(store)?
    {
        if let Some(scrubbed) = scrub_event(&d.payload, u, name, addresses) {
            scrubbed_deliveries.insert(d.id, scrubbed.body);
            changed += 1;
        }
    }
    let events: Vec<&String> = naming_events.keys().collect();
    for chunk in events.chunks(500) {
        for d in webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::OrgId.eq(org))
            .filter(webhook_delivery::Column::EventId.is_in(chunk.iter().map(|e| e.as_str())))
            .filter(webhook_delivery::Column::Payload.starts_with("{\"text\":"))
            .all(txn)
            .await
            .map_err(store)?
        {
            let (carried, names) = &naming_events[&d.event_id];
            // What the first pass made of it, if it changed it.
            let current = scrubbed_deliveries.get(&d.id).unwrap_or(&d.payload);
            // Everything to take out in one call: a message the template cut is recognised by
            // its length as stored, which each replacement changes.
            let carried: Vec<&str> = carried.iter().map(String::as_str).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            if let Some(payload) =
                tenancy::privacy::scrub_message_json(current, u, &carried, &names)
            {
                scrubbed_deliveries.insert(d.id, payload);
                changed += 1;
            }
        }
    }
    let ids: Vec<String> = scrubbed_deliveries.keys().cloned().collect();
    for (id, payload) in scrubbed_deliveries {
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Payload, Expr::value(payload))
            .filter(webhook_delivery::Column::Id.eq(id))
            .exec(txn)
            .await
            .map_err(store)?;
    }
    // What the receivers answered to those deliveries may echo the payload: blanked with them
    // (the deliveries are held, as every writer of attempts holds its delivery first).
    for chunk in ids.chunks(500) {
        webhook_attempt::Entity::update_many()
            .col_expr(webhook_attempt::Column::ResponseBody, Expr::value(""))
            .col_expr(
                webhook_attempt::Column::Error,
                Expr::value(Option::<String>::None),
            )
            .filter(webhook_attempt::Column::DeliveryId.is_in(chunk.iter().cloned()))
            .exec(txn)
            .await
            .map_err(store)?;
    }
    Ok(changed)
}

/// An event body with every one of `addresses`, every address the body gives them by their id
/// ([`tenancy::privacy::addresses_given_by_id`]: one they had then, which may be neither their
/// account's nor an invitation's now), and their name, now or as the body gives it beside their
/// id ([`tenancy::privacy::names_given_by_id`]: they may have renamed themselves since), taken
/// out ([`tenancy::privacy::scrub_event_json`] for each), and which addresses and names it
/// carried.
struct ScrubbedEvent {
    body: String,
    addresses: Vec<String>,
    names: Vec<String>,
}

fn scrub_event(body: &str, u: UserId, name: &str, addresses: &[String]) -> Option<ScrubbedEvent> {
    let mut out = ScrubbedEvent {
        body: body.to_owned(),
        addresses: Vec::new(),
        names: Vec::new(),
    };
    let mut theirs = addresses.to_vec();
    for a in tenancy::privacy::addresses_given_by_id(body, u) {
        if !theirs.contains(&a) {
            theirs.push(a);
        }
    }
    let mut names = vec![name.to_owned()];
    for n in tenancy::privacy::names_given_by_id(body, u) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    for address in &theirs {
        for n in &names {
            if let Some(s) = tenancy::privacy::scrub_event_json(&out.body, u, address, n) {
                out.body = s.body;
                if s.had_name && !out.names.contains(n) {
                    out.names.push(n.clone());
                }
                if s.had_email && !out.addresses.contains(address) {
                    out.addresses.push(address.clone());
                }
            }
        }
    }
    (out.body != body).then_some(out)
}

/// The person's addresses in `org` ([`tenancy::privacy::addresses_to_erase`]), from the
/// invitations to `org` they accepted and the organization's other invitations to those
/// addresses, and the accounts that hold them now.
async fn addresses_in(
    txn: &sea_orm::DatabaseTransaction,
    org: &str,
    account: &user::Model,
) -> Result<Vec<String>, TenancyError> {
    let accepted: Vec<(String, Option<i64>)> = invitation::Entity::find()
        .select_only()
        .column(invitation::Column::Email)
        .column(invitation::Column::AcceptedAt)
        .filter(invitation::Column::OrgId.eq(org))
        .filter(invitation::Column::AcceptedBy.eq(account.id.clone()))
        .filter(invitation::Column::Email.ne(account.email.clone()))
        .into_tuple()
        .all(txn)
        .await
        .map_err(store)?;
    let (mut others, mut held) = (Vec::new(), Vec::new());
    if !accepted.is_empty() {
        let former: Vec<String> = accepted.iter().map(|(a, _)| a.clone()).collect();
        held = user::Entity::find()
            .select_only()
            .column(user::Column::Email)
            .filter(user::Column::Email.is_in(former.clone()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(store)?;
        others = invitation::Entity::find()
            .select_only()
            .column(invitation::Column::Email)
            .column(invitation::Column::CreatedAt)
            .filter(invitation::Column::OrgId.eq(org))
            .filter(invitation::Column::Email.is_in(former))
            .filter(
                Condition::any()
                    .add(invitation::Column::AcceptedBy.is_null())
                    .add(invitation::Column::AcceptedBy.ne(account.id.clone())),
            )
            .into_tuple::<(String, i64)>()
            .all(txn)
            .await
            .map_err(store)?
            .into_iter()
            .map(|(a, sent)| Ok((a, time(sent)?)))
            .collect::<Result<_, _>>()
            .map_err(TenancyError::Store)?;
    }
    let accepted = accepted
        .into_iter()
        .map(|(a, at)| Ok((a, at.map(time).transpose()?)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TenancyError::Store)?;
    Ok(tenancy::privacy::addresses_to_erase(
        &account.email,
        &accepted,
        &others,
        &held,
    ))
}

/// Rows whose `column` contains any of `needles`.
fn naming(column: impl ColumnTrait, needles: &[String]) -> Condition {
    needles.iter().fold(Condition::any(), |c, n| {
        c.add(column.like(LikeExpr::new(format!("%{}%", like_escaped(n))).escape('\\')))
    })
}

/// `s` for a `LIKE` pattern escaped with `\`: its `%`, `_` and `\` match themselves.
fn like_escaped(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A decision read back (its id stored as the bare UUID).
fn consent_record(org: OrgId, m: consent::Model) -> Result<ConsentRecord, TenancyError> {
    Ok(ConsentRecord {
        id: uuid::Uuid::try_parse(&m.id)
            .map(ConsentId::from_uuid)
            .map_err(|_| corrupt("consent id", &m.id))?,
        org,
        user: id("user id", &m.user_id)?,
        purpose: m.purpose,
        granted: m.granted,
        at: time(m.at)?,
    })
}

#[cfg(test)]
mod tests {
    /// The erasure scrub knows a cut templated message by its length (`tenancy` does not depend
    /// on `webhooks`): the two must agree.
    #[test]
    fn the_scrub_knows_the_length_templates_cut_messages_at() {
        assert_eq!(
            tenancy::privacy::CUT_MESSAGE_CHARS,
            webhooks::template::MAX_RENDERED_CHARS
        );
    }
}
