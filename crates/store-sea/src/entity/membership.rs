//! Organization memberships; a partial unique index allows one `owner` per organization.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
#[allow(missing_docs, reason = "columns are documented in the migration")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub role: String,
    pub joined_at: i64,
    pub deactivated_at: Option<i64>,
    pub all_teams_role: Option<String>,
}

/// Joins for reads only (resolving a caller reads the membership, account and organization
/// in one query).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id"
    )]
    Organization,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

/// The member's team roles in the same organization (the team membership table's
/// `(org_id, user_id)` against the membership's key).
impl Related<super::team_member::Entity> for Entity {
    fn to() -> RelationDef {
        Entity::belongs_to(super::team_member::Entity)
            .from((Column::OrgId, Column::UserId))
            .to((
                super::team_member::Column::OrgId,
                super::team_member::Column::UserId,
            ))
            .into()
    }
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
