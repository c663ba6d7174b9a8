//! The plan an organization's negotiated limits were made for (`limit_overrides_plan`): the
//! deal applies while the organization is on that plan, and not on another (an Enterprise
//! deal's seats do not follow it to Free or Pro, nor a Pro deal's lower limits to an
//! Enterprise trial), and again when it comes back. A deal stored before this column existed
//! is taken as made for the plan its organization is on now.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("organizations")
                    .add_column(text_null("limit_overrides_plan"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table("organizations")
                    .value("limit_overrides_plan", Expr::col("plan"))
                    .and_where(Expr::col("limit_overrides").is_not_null())
                    .to_owned(),
            )
            .await
    }
}
