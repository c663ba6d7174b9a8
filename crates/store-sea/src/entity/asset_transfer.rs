//! History of asset moves between teams.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "asset_transfers")]
#[allow(missing_docs, reason = "columns are documented in the migration")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub org_id: String,
    pub asset_id: String,
    pub from_team: String,
    pub to_team: String,
    pub from_name: String,
    pub to_name: String,
    pub by_user: String,
    pub at: i64,
    pub note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
