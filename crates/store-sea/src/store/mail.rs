//! [`MailOutbox`] on SeaORM. Claims are conditional updates of `available_at`, which
//! works the same on SQLite and PostgreSQL: a mail is leased by exactly one worker.

use async_trait::async_trait;
use audit::{AuditError, MailOutbox, QueuedMail};
use chrono::{DateTime, Utc};
use rbac_core::OrgId;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::SeaStore;
use crate::convert::{id, micros, time};
use crate::entity::mail;
use crate::error::db_err;

fn store(e: sea_orm::DbErr) -> AuditError {
    AuditError::Store(db_err(e))
}

fn queued(m: mail::Model) -> Result<QueuedMail, AuditError> {
    Ok(QueuedMail {
        org: if m.org_id.is_empty() {
            None
        } else {
            Some(id("organization id", &m.org_id)?)
        },
        created_at: time(m.created_at)?,
        sent_at: m.sent_at.map(time).transpose()?,
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        id: m.id,
        to: m.to_addr,
        subject: m.subject,
        body: m.body,
        kind: m.kind,
        last_error: m.last_error,
    })
}

#[async_trait]
impl MailOutbox for SeaStore {
    async fn claim_mails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, AuditError> {
        let due = mail::Entity::find()
            .filter(mail::Column::SentAt.is_null())
            .filter(mail::Column::AvailableAt.lte(micros(now)))
            .order_by_asc(mail::Column::AvailableAt)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?;
        let mut claimed = Vec::new();
        for m in due {
            // Only the worker whose update still sees the old lease gets the mail, as the
            // update leaves it (an erasure may have blanked its address and body since the
            // read above).
            let leased = mail::Entity::update_many()
                .col_expr(mail::Column::AvailableAt, Expr::value(micros(lease_until)))
                .filter(mail::Column::Id.eq(m.id.as_str()))
                .filter(mail::Column::SentAt.is_null())
                .filter(mail::Column::AvailableAt.eq(m.available_at))
                .exec_with_returning(self.db())
                .await
                .map_err(store)?;
            for row in leased {
                claimed.push(queued(row)?);
            }
        }
        Ok(claimed)
    }

    async fn mark_mail_sent(&self, mail_id: &str, now: DateTime<Utc>) -> Result<(), AuditError> {
        mail::Entity::update_many()
            .col_expr(mail::Column::SentAt, Expr::value(micros(now)))
            .col_expr(mail::Column::Body, Expr::value(""))
            .col_expr(
                mail::Column::Attempts,
                Expr::col(mail::Column::Attempts).add(1),
            )
            .filter(mail::Column::Id.eq(mail_id))
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        mail_id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), AuditError> {
        mail::Entity::update_many()
            .col_expr(
                mail::Column::LastError,
                Expr::value(audit::kept_mail_error(error)),
            )
            .col_expr(
                mail::Column::Attempts,
                Expr::col(mail::Column::Attempts).add(1),
            )
            .col_expr(mail::Column::AvailableAt, Expr::value(micros(retry_at)))
            .filter(mail::Column::Id.eq(mail_id))
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn list_mails(
        &self,
        org: Option<OrgId>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, AuditError> {
        // Account mail is kept under the empty organization id (see `journal::commit_journals`).
        let org = org.map_or_else(String::new, |o| o.to_string());
        let mut q = mail::Entity::find().filter(mail::Column::OrgId.eq(org));
        if let Some(b) = before {
            q = q.filter(mail::Column::Id.lt(b));
        }
        let rows = q
            .order_by_desc(mail::Column::Id)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?;
        rows.into_iter().map(queued).collect()
    }
}
