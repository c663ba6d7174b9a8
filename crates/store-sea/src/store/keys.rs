//! Re-encrypting the secrets stored encrypted (webhook signing secrets, TOTP secrets) under a
//! new key, for key rotation. An operator utility of this adapter, not a domain port.

use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use security_policy::Cipher;
use tenancy::StoreError;

use crate::SeaStore;
use crate::convert::id;
use crate::entity::{user_mfa, webhook_endpoint};
use crate::error::db_err;

/// What a re-encryption did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Values rewritten under the new key.
    pub rewritten: u64,
    /// Values already under the new key (an interrupted rotation being finished).
    pub already_new: u64,
}

/// One value, bound to `context`: under the old key (bound, or unbound as earlier versions
/// wrote it) it is rewritten bound under the new key; bound under the new key it is left;
/// unbound under the new key it is rewritten bound; otherwise the rotation stops, since neither
/// key opens it.
fn rotate(
    old: &Cipher,
    new: &Cipher,
    text: &str,
    context: &[u8],
    report: &mut ReencryptReport,
) -> Result<Option<String>, StoreError> {
    if new.decrypt_bound(text, context).is_ok() && old.decrypt_bound(text, context).is_err() {
        report.already_new += 1;
        return Ok(None);
    }
    let plain = old
        .decrypt_bound(text, context)
        .or_else(|_| old.decrypt(text))
        .or_else(|_| new.decrypt(text))
        .map_err(|_| {
            StoreError::msg("a stored secret opens with neither the current nor the new key")
        })?;
    report.rewritten += 1;
    new.encrypt_bound(&plain, context)
        .map(Some)
        .map_err(StoreError::new)
}

impl SeaStore {
    /// Re-encrypts every stored secret from `old` to `new` in one transaction: all of them
    /// move, or none. Safe to run again after an interruption.
    ///
    /// # Errors
    /// [`StoreError`] when a value opens with neither key, or on storage failure.
    pub async fn reencrypt_secrets(
        &self,
        old: &Cipher,
        new: &Cipher,
    ) -> Result<ReencryptReport, StoreError> {
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
            let secret = rotate(old, new, &ep.secret, &context, &mut report)?;
            let previous = match &ep.previous_secret {
                Some(p) => rotate(old, new, p, &context, &mut report)?,
                None => None,
            };
            let mut update = webhook_endpoint::Entity::update_many()
                .filter(webhook_endpoint::Column::Id.eq(ep.id.clone()));
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
            if let Some(s) = rotate(old, new, &m.secret_enc, &context, &mut report)? {
                user_mfa::Entity::update_many()
                    .col_expr(user_mfa::Column::SecretEnc, Expr::value(s))
                    .filter(user_mfa::Column::UserId.eq(m.user_id.clone()))
                    .exec(&txn)
                    .await
                    .map_err(db_err)?;
            }
        }
        txn.commit().await.map_err(db_err)?;
        Ok(report)
    }

    /// Rewrites the secrets earlier versions stored unbound (`v1:`) bound to their rows
    /// ([`Cipher::rebind`]), in one transaction; the server runs it at start. Values already
    /// bound are left, so a second run changes nothing.
    ///
    /// # Errors
    /// [`StoreError`] when an unbound value does not open with `cipher`, or on storage failure.
    pub async fn bind_secrets(&self, cipher: &Cipher) -> Result<u64, StoreError> {
        let rebind = |text: &str, context: &[u8]| {
            cipher.rebind(text, context).map_err(|_| {
                StoreError::msg("a stored secret does not open with the configured key")
            })
        };
        let txn = self.db().begin().await.map_err(db_err)?;
        let mut rewritten = 0;
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
            let mut update = webhook_endpoint::Entity::update_many()
                .filter(webhook_endpoint::Column::Id.eq(ep.id.clone()));
            if let Some(s) = rebind(&ep.secret, &context)? {
                update = update.col_expr(webhook_endpoint::Column::Secret, Expr::value(s));
                rewritten += 1;
            }
            if let Some(p) = ep.previous_secret.as_deref()
                && let Some(p) = rebind(p, &context)?
            {
                update = update.col_expr(webhook_endpoint::Column::PreviousSecret, Expr::value(p));
                rewritten += 1;
            }
            update.exec(&txn).await.map_err(db_err)?;
        }
        for m in user_mfa::Entity::find()
            .filter(user_mfa::Column::SecretEnc.starts_with("v1:"))
            .order_by_asc(user_mfa::Column::UserId)
            .lock(LockType::NoKeyUpdate)
            .all(&txn)
            .await
            .map_err(db_err)?
        {
            let context = tenancy::mfa::totp_secret_context(id("user id", &m.user_id)?);
            if let Some(s) = rebind(&m.secret_enc, &context)? {
                user_mfa::Entity::update_many()
                    .col_expr(user_mfa::Column::SecretEnc, Expr::value(s))
                    .filter(user_mfa::Column::UserId.eq(m.user_id.clone()))
                    .exec(&txn)
                    .await
                    .map_err(db_err)?;
                rewritten += 1;
            }
        }
        txn.commit().await.map_err(db_err)?;
        Ok(rewritten)
    }
}
