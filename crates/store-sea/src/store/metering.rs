//! [`MeteringStore`] on SeaORM: a conditional `UPDATE … SET count = count + k WHERE count <= limit - k`
//! is the check and the reservation in one statement, so concurrent calls cannot overshoot.

use async_trait::async_trait;
use rbac_core::OrgId;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use tenancy::TenancyError;
use tenancy::metering::MeteringStore;

use super::tenancy::store;
use crate::SeaStore;
use crate::entity::{usage_alert, usage_monthly};

#[async_trait]
impl MeteringStore for SeaStore {
    async fn reserve_within(
        &self,
        org: OrgId,
        metric: &str,
        month: &str,
        want: u64,
        limit: Option<u64>,
    ) -> Result<(u64, u64), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        usage_monthly::Entity::insert(usage_monthly::ActiveModel {
            org_id: Set(org.to_string()),
            month: Set(month.to_owned()),
            metric: Set(metric.to_owned()),
            count: Set(0),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        let mut granted = 0;
        for k in [Ord::max(want, 1), 1] {
            let add = i64::try_from(k).unwrap_or(i64::MAX);
            let mut update = usage_monthly::Entity::update_many()
                .col_expr(
                    usage_monthly::Column::Count,
                    Expr::col(usage_monthly::Column::Count).add(add),
                )
                .filter(usage_monthly::Column::OrgId.eq(org.to_string()))
                .filter(usage_monthly::Column::Month.eq(month))
                .filter(usage_monthly::Column::Metric.eq(metric));
            if let Some(l) = limit {
                let room = i64::try_from(l).unwrap_or(i64::MAX).saturating_sub(add);
                update = update.filter(usage_monthly::Column::Count.lte(room));
            }
            if update.exec(&txn).await.map_err(store)?.rows_affected == 1 {
                granted = k;
                break;
            }
            if k == 1 {
                break;
            }
        }
        let used = usage_monthly::Entity::find_by_id((
            org.to_string(),
            month.to_owned(),
            metric.to_owned(),
        ))
        .one(&txn)
        .await
        .map_err(store)?
        .map_or(0, |m| u64::try_from(m.count).unwrap_or(0));
        txn.commit().await.map_err(store)?;
        Ok((granted, used))
    }

    async fn record_alert(
        &self,
        org: OrgId,
        limit: &str,
        period: &str,
        threshold: u64,
        journal: audit::Journal,
    ) -> Result<bool, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        if !insert_alert(&txn, org, limit, period, threshold).await? {
            return Ok(false);
        }
        super::tenancy::commit(txn, journal).await?;
        metrics::counter!("axie_usage_alerts_sent_total", "limit" => limit.to_owned()).increment(1);
        Ok(true)
    }

    async fn alert_periods(
        &self,
        org: OrgId,
        limit: &str,
        threshold: u64,
    ) -> Result<Vec<String>, TenancyError> {
        Ok(usage_alert::Entity::find()
            .filter(usage_alert::Column::OrgId.eq(org.to_string()))
            .filter(usage_alert::Column::Metric.eq(limit))
            .filter(usage_alert::Column::Threshold.eq(i64::try_from(threshold).unwrap_or(i64::MAX)))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(|a| a.period)
            .collect())
    }

    async fn monthly(&self, org: OrgId, metric: &str, month: &str) -> Result<u64, TenancyError> {
        Ok(usage_monthly::Entity::find_by_id((
            org.to_string(),
            month.to_owned(),
            metric.to_owned(),
        ))
        .one(self.db())
        .await
        .map_err(store)?
        .map_or(0, |m| u64::try_from(m.count).unwrap_or(0)))
    }
}

/// Records in `txn` that the alert for `threshold` of `limit` in `period` went out; `false` when
/// it was recorded before (then nothing is written).
pub(super) async fn insert_alert(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    limit: &str,
    period: &str,
    threshold: u64,
) -> Result<bool, TenancyError> {
    let inserted = usage_alert::Entity::insert(usage_alert::ActiveModel {
        org_id: Set(org.to_string()),
        metric: Set(limit.to_owned()),
        period: Set(period.to_owned()),
        threshold: Set(i64::try_from(threshold).unwrap_or(i64::MAX)),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await
    .map_err(store)?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}
