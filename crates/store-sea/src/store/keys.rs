//! Re-encrypting the secrets stored encrypted (webhook signing secrets and URLs, TOTP secrets,
//! the tokens sealed in queued mail) under a new key, for key rotation. An operator utility of
//! this adapter, not a domain port.

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use security_policy::Cipher;
use tenancy::StoreError;

use crate::SeaStore;
use crate::convert::id;
use crate::entity::{mail, store_marker, user_mfa, webhook_endpoint};
use crate::error::db_err;

/// What a re-encryption did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Values rewritten under the new key.
    pub rewritten: u64,
    /// Values already under the new key (an interrupted rotation being finished).
    pub already_new: u64,
}

/// What [`SeaStore::bind_secrets`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindReport {
    /// Unbound values rewritten bound to their rows.
    pub rewritten: u64,
    /// Unbound values that did not open with the key, left as they are (they stay unreadable):
    /// which row each is in.
    pub unreadable: Vec<String>,
    /// Whether the pass had been made before (then nothing was looked at).
    pub done_before: bool,
}

/// The marker of the one-time pass of [`SeaStore::bind_secrets`].
const SECRETS_BOUND: &str = "secrets_bound";

/// The marker of the one-time pass of [`SeaStore::seal_webhook_urls`].
const URLS_SEALED: &str = "webhook_urls_sealed";

/// Claims the one-time pass `name` in `txn`: true for the one transaction that records it.
async fn claim_pass(txn: &sea_orm::DatabaseTransaction, name: &str) -> Result<bool, StoreError> {
    let claimed = store_marker::Entity::insert(store_marker::ActiveModel {
        name: Set(name.to_owned()),
        done_at: Set(chrono::Utc::now().timestamp_micros()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await
    .map_err(db_err)?;
    Ok(matches!(claimed, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}

/// One bound value of the row `what`, bound to `context`: under the old key it is rewritten
/// under the new key; under the new key it is left (an interrupted rotation being finished);
/// otherwise the rotation stops, naming the row, since neither key opens it. Unbound values are
/// bound once ([`SeaStore::bind_secrets`]), never here: one pasted onto a row since would
/// otherwise become that row's.
fn rotate(
    old: &Cipher,
    new: &Cipher,
    text: &str,
    context: &[u8],
    what: &str,
    report: &mut ReencryptReport,
) -> Result<Option<String>, StoreError> {
    if let Ok(plain) = old.decrypt_bound(text, context) {
        report.rewritten += 1;
        return new
            .encrypt_bound(&plain, context)
            .map(Some)
            .map_err(StoreError::new);
    }
    if new.decrypt_bound(text, context).is_ok() {
        report.already_new += 1;
        return Ok(None);
    }
    Err(StoreError::msg(format!(
        "the {what} opens with neither the current nor the new key; remove it (delete the endpoint, or turn the person's 2FA off) and run the rotation again"
    )))
}

impl SeaStore {
    /// Re-encrypts every stored secret from `old` to `new` in one transaction: all of them
    /// move, or none. Safe to run again after an interruption. Values an earlier version
    /// stored unbound, or in clear (webhook URLs), are first bound or encrypted under `old`, if
    /// no server of this release has started on the database yet ([`SeaStore::bind_secrets`],
    /// [`SeaStore::seal_webhook_urls`]).
    ///
    /// # Errors
    /// [`StoreError`] when a value opens with neither key (naming its row), or on storage
    /// failure.
    pub async fn reencrypt_secrets(
        &self,
        old: &Cipher,
        new: &Cipher,
    ) -> Result<ReencryptReport, StoreError> {
        self.bind_secrets(old).await?;
        self.seal_webhook_urls(old).await?;
        let mut report = ReencryptReport::default();
        let txn = self.db().begin().await.map_err(db_err)?;
        // Each row is locked as it is read, in key order (PostgreSQL; SQLite's writes take
        // turns). The documented procedure stops the servers first; should one still be
        // running, a secret it rotates meanwhile is not overwritten with the re-encrypted old
        // one (its compare-and-set fails instead), and its batches of attempts, which update
        // endpoints in id order, cannot deadlock with this pass.
        for ep in webhook_endpoint::Entity::find()
            .order_by_asc(webhook_endpoint::Column::Id)
            .lock(LockType::NoKeyUpdate)
            .all(&txn)
            .await
            .map_err(db_err)?
        {
            let context = webhooks::secret_context(id("endpoint id", &ep.id)?);
            let what = format!("signing secret of webhook endpoint {}", ep.id);
            let secret = rotate(old, new, &ep.secret, &context, &what, &mut report)?;
            let previous = match &ep.previous_secret {
                Some(p) => rotate(old, new, p, &context, &what, &mut report)?,
                None => None,
            };
            let url = rotate(
                old,
                new,
                &ep.url,
                &webhooks::url_context(id("endpoint id", &ep.id)?),
                &format!("URL of webhook endpoint {}", ep.id),
                &mut report,
            )?;
            let mut update = webhook_endpoint::Entity::update_many()
                .filter(webhook_endpoint::Column::Id.eq(ep.id.clone()));
            if let Some(u) = url {
                update = update.col_expr(webhook_endpoint::Column::Url, Expr::value(u));
            }
            if let Some(s) = secret {
                update = update.col_expr(webhook_endpoint::Column::Secret, Expr::value(s));
            }
            if let Some(p) = previous {
                update = update.col_expr(webhook_endpoint::Column::PreviousSecret, Expr::value(p));
            }
            update.exec(&txn).await.map_err(db_err)?;
        }
        for m in user_mfa::Entity::find()
            .order_by_asc(user_mfa::Column::UserId)
            .lock(LockType::NoKeyUpdate)
            .all(&txn)
            .await
            .map_err(db_err)?
        {
            let context = tenancy::mfa::totp_secret_context(id("user id", &m.user_id)?);
            let what = format!("TOTP secret of {}", m.user_id);
            if let Some(s) = rotate(old, new, &m.secret_enc, &context, &what, &mut report)? {
                user_mfa::Entity::update_many()
                    .col_expr(user_mfa::Column::SecretEnc, Expr::value(s))
                    .filter(user_mfa::Column::UserId.eq(m.user_id.clone()))
                    .exec(&txn)
                    .await
                    .map_err(db_err)?;
            }
        }
        // The tokens sealed in mail still waiting to be sent (`tenancy::mail_secrets`).
        for m in mail::Entity::find()
            .filter(mail::Column::SentAt.is_null())
            .filter(mail::Column::Body.like(format!("%{}%", tenancy::mail_secrets::MARKER_START)))
            .order_by_asc(mail::Column::Id)
            .lock(LockType::NoKeyUpdate)
            .all(&txn)
            .await
            .map_err(db_err)?
        {
            use tenancy::mail_secrets::{open_body, reseal_body};
            match reseal_body(old, new, &m.to_addr, &m.body) {
                Ok(Some(body)) => {
                    report.rewritten += 1;
                    mail::Entity::update_many()
                        .col_expr(mail::Column::Body, Expr::value(body))
                        .filter(mail::Column::Id.eq(m.id.clone()))
                        .exec(&txn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(None) => {}
                Err(_) if open_body(new, &m.to_addr, &m.body).is_ok() => report.already_new += 1,
                // Opens with neither key: its token is of use to no one, and the mail worker
                // gives the mail up when it comes to it. It does not hold the rotation up.
                Err(_) => {
                    tracing::warn!(mail = %m.id, "a queued mail's sealed token opens with neither key; left as it is")
                }
            }
        }
        txn.commit().await.map_err(db_err)?;
        Ok(report)
    }

    /// Once per database: encrypts the webhook URLs earlier versions stored in clear, under
    /// `cipher` bound to their endpoints, in one transaction that also records that the pass
    /// was made (`store_markers`); the server runs it at start, before anything reads them.
    /// Later runs do nothing: a URL in clear written onto a row afterwards (by someone who can
    /// write the database, to redirect an organization's deliveries) is never encrypted, and
    /// the endpoint stays unreadable, sent nothing. Returns how many URLs were encrypted.
    ///
    /// # Errors
    /// [`StoreError`] on storage failure.
    pub async fn seal_webhook_urls(&self, cipher: &Cipher) -> Result<u64, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        if !claim_pass(&txn, URLS_SEALED).await? {
            txn.commit().await.map_err(db_err)?;
            return Ok(0);
        }
        let mut sealed = 0;
        for ep in webhook_endpoint::Entity::find()
            .filter(
                Condition::any()
                    .add(webhook_endpoint::Column::Url.starts_with("http://"))
                    .add(webhook_endpoint::Column::Url.starts_with("https://")),
            )
            .order_by_asc(webhook_endpoint::Column::Id)
            .lock(LockType::NoKeyUpdate)
            .all(&txn)
            .await
            .map_err(db_err)?
        {
            let context = webhooks::url_context(id("endpoint id", &ep.id)?);
            let url = cipher
                .encrypt_bound(ep.url.as_bytes(), &context)
                .map_err(StoreError::new)?;
            webhook_endpoint::Entity::update_many()
                .col_expr(webhook_endpoint::Column::Url, Expr::value(url))
                .filter(webhook_endpoint::Column::Id.eq(ep.id))
                .exec(&txn)
                .await
                .map_err(db_err)?;
            sealed += 1;
        }
        txn.commit().await.map_err(db_err)?;
        Ok(sealed)
    }

    /// Once per database: rewrites the secrets earlier versions stored unbound (`v1:`) bound
    /// to their rows ([`Cipher::rebind`]), in one transaction that also records that the pass
    /// was made (`store_markers`); the server runs it at start. Later runs do nothing: an
    /// unbound value that appears afterwards (pasted onto a row by someone who can write the
    /// database) is never bound, and stays unreadable. A value that does not open with
    /// `cipher` is left as it is and named in the report. Concurrent runs (two instances
    /// starting) take turns on the marker's row; one makes the pass.
    ///
    /// # Errors
    /// [`StoreError`] on storage failure.
    pub async fn bind_secrets(&self, cipher: &Cipher) -> Result<BindReport, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let mut report = BindReport::default();
        if !claim_pass(&txn, SECRETS_BOUND).await? {
            report.done_before = true;
            txn.commit().await.map_err(db_err)?;
            return Ok(report);
        }
        let mut rebind = |text: &str, context: &[u8], what: String| -> Option<String> {
            match cipher.rebind(text, context) {
                Ok(Some(bound)) => {
                    report.rewritten += 1;
                    Some(bound)
                }
                Ok(None) => None,
                Err(_) => {
                    report.unreadable.push(what);
                    None
                }
            }
        };
        let mut endpoints = Vec::new();
        for ep in webhook_endpoint::Entity::find()
            .filter(
                Condition::any()
                    .add(webhook_endpoint::Column::Secret.starts_with("v1:"))
                    .add(webhook_endpoint::Column::PreviousSecret.starts_with("v1:")),
            )
            .order_by_asc(webhook_endpoint::Column::Id)
            .lock(LockType::NoKeyUpdate)
            .all(&txn)
            .await
            .map_err(db_err)?
        {
            let context = webhooks::secret_context(id("endpoint id", &ep.id)?);
            let what = || format!("signing secret of webhook endpoint {}", ep.id);
            let secret = rebind(&ep.secret, &context, what());
            let previous = ep
                .previous_secret
                .as_deref()
                .and_then(|p| rebind(p, &context, what()));
            endpoints.push((ep.id, secret, previous));
        }
        let mut people = Vec::new();
        for m in user_mfa::Entity::find()
            .filter(user_mfa::Column::SecretEnc.starts_with("v1:"))
            .order_by_asc(user_mfa::Column::UserId)
            .lock(LockType::NoKeyUpdate)
            .all(&txn)
            .await
            .map_err(db_err)?
        {
            let context = tenancy::mfa::totp_secret_context(id("user id", &m.user_id)?);
            if let Some(s) = rebind(
                &m.secret_enc,
                &context,
                format!("TOTP secret of {}", m.user_id),
            ) {
                people.push((m.user_id, s));
            }
        }
        for (ep, secret, previous) in endpoints {
            if secret.is_none() && previous.is_none() {
                continue;
            }
            let mut update =
                webhook_endpoint::Entity::update_many().filter(webhook_endpoint::Column::Id.eq(ep));
            if let Some(s) = secret {
                update = update.col_expr(webhook_endpoint::Column::Secret, Expr::value(s));
            }
            if let Some(p) = previous {
                update = update.col_expr(webhook_endpoint::Column::PreviousSecret, Expr::value(p));
            }
            update.exec(&txn).await.map_err(db_err)?;
        }
        for (user, s) in people {
            user_mfa::Entity::update_many()
                .col_expr(user_mfa::Column::SecretEnc, Expr::value(s))
                .filter(user_mfa::Column::UserId.eq(user))
                .exec(&txn)
                .await
                .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)?;
        Ok(report)
    }
}
