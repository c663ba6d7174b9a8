//! People with an account; `email` is stored lower-cased and unique.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
#[allow(missing_docs, reason = "columns are documented in the migration")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

/// The person's memberships (the reverse of the membership's account), for joins that read a
/// session with everything about its person at once.
impl Related<super::membership::Entity> for Entity {
    fn to() -> RelationDef {
        super::membership::Relation::User.def().rev()
    }
}

impl ActiveModelBehavior for ActiveModel {}
