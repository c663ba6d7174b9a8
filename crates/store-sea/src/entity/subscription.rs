//! Subscriptions (plan lifecycle).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
#[allow(missing_docs, reason = "columns are documented in the migration")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: String,
    pub status: String,
    pub cycle: Option<String>,
    pub period_end: Option<i64>,
    pub trial_ends_at: Option<i64>,
    pub trial_used: bool,
    pub plan_before_trial: Option<String>,
    pub version: i64,
    pub billing_anchor: Option<i64>,
    pub renewal_retry_at: Option<i64>,
    pub cancel_at_period_end: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
