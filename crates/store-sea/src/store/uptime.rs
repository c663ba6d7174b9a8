//! [`UptimeStore`]: the service's beats, one row per unbroken run of an instance's beats.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use tenancy::TenancyError;
use tenancy::uptime::{DeclaredOutage, UptimeSpan, UptimeStore};

use super::tenancy::store;
use crate::SeaStore;
use crate::convert::{micros, time};
use crate::entity::{service_outage, service_uptime};

fn of_row(m: service_uptime::Model) -> Result<UptimeSpan, TenancyError> {
    Ok(UptimeSpan {
        instance: m.instance,
        started_at: time(m.started_at)?,
        last_seen: time(m.last_seen)?,
    })
}

#[async_trait]
impl UptimeStore for SeaStore {
    async fn note_up(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<(), TenancyError> {
        // Only the instance itself writes its rows, one beat after the other: its latest span
        // (the last it started at or before `now`), read and then extended, does not change in
        // between.
        let latest = service_uptime::Entity::find()
            .filter(service_uptime::Column::Instance.eq(instance))
            .filter(service_uptime::Column::StartedAt.lte(micros(now)))
            .order_by_desc(service_uptime::Column::StartedAt)
            .order_by_desc(service_uptime::Column::LastSeen)
            .one(self.db())
            .await
            .map_err(store)?;
        if let Some(row) = latest {
            let last = time(row.last_seen)?;
            if last <= now && now - last <= tolerance {
                service_uptime::Entity::update_many()
                    .col_expr(service_uptime::Column::LastSeen, Expr::value(micros(now)))
                    .filter(service_uptime::Column::Id.eq(row.id))
                    .exec(self.db())
                    .await
                    .map_err(store)?;
                return Ok(());
            }
        }
        service_uptime::Entity::insert(service_uptime::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            instance: Set(instance.to_owned()),
            started_at: Set(micros(now)),
            last_seen: Set(micros(now)),
        })
        .exec_without_returning(self.db())
        .await
        .map_err(store)?;
        Ok(())
    }

    async fn declare_outage(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        ended: bool,
    ) -> Result<(), TenancyError> {
        // The operator's command: read, then write what is missing; both writes are
        // conditional, so runs at once keep the first start and the first end.
        let found = service_outage::Entity::find_by_id(reference.to_owned())
            .one(self.db())
            .await
            .map_err(store)?;
        match (found, ended) {
            (Some(row), false) if row.ended_at.is_some() => {
                Err(tenancy::uptime::over_already(reference))
            }
            (Some(_), false) => Ok(()),
            (None, false) => {
                service_outage::Entity::insert(service_outage::ActiveModel {
                    reference: Set(reference.to_owned()),
                    started_at: Set(micros(at)),
                    ended_at: Set(None),
                })
                .on_conflict(
                    sea_orm::sea_query::OnConflict::column(service_outage::Column::Reference)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(self.db())
                .await
                .map_err(store)?;
                Ok(())
            }
            (None, true) => Err(TenancyError::NotFound("declared outage")),
            (Some(row), true) if row.ended_at.is_none() => {
                if at < time(row.started_at)? {
                    return Err(tenancy::uptime::ends_before_it_began(reference));
                }
                service_outage::Entity::update_many()
                    .col_expr(service_outage::Column::EndedAt, Expr::value(micros(at)))
                    .filter(service_outage::Column::Reference.eq(reference))
                    .filter(service_outage::Column::EndedAt.is_null())
                    .exec(self.db())
                    .await
                    .map_err(store)?;
                Ok(())
            }
            (Some(_), true) => Ok(()),
        }
    }

    async fn declared_outages(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DeclaredOutage>, TenancyError> {
        service_outage::Entity::find()
            .filter(service_outage::Column::StartedAt.lt(micros(to)))
            .filter(
                sea_orm::Condition::any()
                    .add(service_outage::Column::EndedAt.is_null())
                    .add(service_outage::Column::EndedAt.gte(micros(from))),
            )
            .order_by_asc(service_outage::Column::StartedAt)
            .order_by_asc(service_outage::Column::Reference)
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(|m| {
                Ok(DeclaredOutage {
                    started_at: time(m.started_at)?,
                    ended_at: m.ended_at.map(time).transpose()?,
                    reference: m.reference,
                })
            })
            .collect()
    }

    async fn uptime_spans(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UptimeSpan>, TenancyError> {
        let before = service_uptime::Entity::find()
            .filter(service_uptime::Column::LastSeen.lt(micros(from)))
            .order_by_desc(service_uptime::Column::LastSeen)
            .order_by_desc(service_uptime::Column::StartedAt)
            .order_by_desc(service_uptime::Column::Instance)
            .one(self.db())
            .await
            .map_err(store)?;
        let within = service_uptime::Entity::find()
            .filter(service_uptime::Column::LastSeen.gte(micros(from)))
            .filter(service_uptime::Column::StartedAt.lt(micros(to)))
            .all(self.db())
            .await
            .map_err(store)?;
        let after = service_uptime::Entity::find()
            .filter(service_uptime::Column::StartedAt.gte(micros(to)))
            .order_by_asc(service_uptime::Column::StartedAt)
            .order_by_asc(service_uptime::Column::Instance)
            .order_by_asc(service_uptime::Column::LastSeen)
            .one(self.db())
            .await
            .map_err(store)?;
        let mut spans = before
            .into_iter()
            .chain(within)
            .chain(after)
            .map(of_row)
            .collect::<Result<Vec<_>, _>>()?;
        spans.sort_by(|a, b| {
            (a.started_at, &a.instance, a.last_seen).cmp(&(b.started_at, &b.instance, b.last_seen))
        });
        Ok(spans)
    }
}
