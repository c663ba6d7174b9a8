//! A person's second factor.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_mfa")]
#[allow(missing_docs, reason = "columns are documented in the migration")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub secret_enc: String,
    pub enabled_at: Option<i64>,
    pub last_step: Option<i64>,
    pub phone: Option<String>,
    pub sms_code_hash: Option<String>,
    pub sms_expires_at: Option<i64>,
    pub failures: i32,
    pub window_start: Option<i64>,
    pub locked_until: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
