//! Re-encrypting the secrets stored encrypted (webhook signing secrets, TOTP secrets) under a
//! new key, for key rotation. An operator utility of this adapter, not a domain port.

use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};
use security_policy::Cipher;
use tenancy::StoreError;

use crate::SeaStore;
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

/// One value: under the old key it is rewritten; under the new key it is left; otherwise the
/// rotation stops, since neither key opens it.
fn rotate(
    old: &Cipher,
    new: &Cipher,
    text: &str,
    report: &mut ReencryptReport,
) -> Result<Option<String>, StoreError> {
    if let Ok(plain) = old.decrypt(text) {
        report.rewritten += 1;
        return new.encrypt(&plain).map(Some).map_err(StoreError::new);
    }
    if new.decrypt(text).is_ok() {
        report.already_new += 1;
        return Ok(None);
    }
    Err(StoreError::msg(
        "a stored secret opens with neither the current nor the new key",
    ))
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
            let secret = rotate(old, new, &ep.secret, &mut report)?;
            let previous = match &ep.previous_secret {
                Some(p) => rotate(old, new, p, &mut report)?,
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
            if let Some(s) = rotate(old, new, &m.secret_enc, &mut report)? {
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
}
