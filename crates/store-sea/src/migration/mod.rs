//! Schema migrations, written with the schema builder so the same code runs on SQLite and PostgreSQL.
//! Migrations are forward-only and run at server start.

#![allow(
    elided_lifetimes_in_paths,
    reason = "MigrationTrait declares `&SchemaManager` without its lifetime"
)]

use sea_orm_migration::prelude::*;

mod m20261125_000001_create_tenancy_tables;
mod m20261125_000002_create_credential_tables;
mod m20261125_000003_create_audit_tables;
mod m20261125_000004_create_outbox_events;
mod m20261125_000005_create_mail_outbox;
mod m20261125_000006_create_invitations;
mod m20261125_000007_create_ownership_transfers;
mod m20261125_000008_create_bulk_previews;
mod m20261125_000009_create_webhook_tables;
mod m20261125_000010_create_login_throttle;
mod m20261128_000011_create_workspace_tables;
mod m20261128_000012_create_mfa_tables;
mod m20261128_000013_create_usage_monthly;
mod m20261128_000014_create_scim_tables;
mod m20261128_000015_create_consents;
mod m20261128_000016_create_audit_anchors;
mod m20261128_000017_add_audit_archived_at;
mod m20261128_000018_index_audit_outcome;
mod m20261128_000019_add_limit_overrides;
mod m20261128_000020_create_billing_tables;
mod m20261128_000021_index_due_deliveries_by_endpoint;
mod m20261129_000022_audit_actor_index_filters;
mod m20261129_000023_audit_actor_action_index;
mod m20261130_000024_add_webhook_message;
mod m20261130_000025_add_invitation_team;
mod m20261130_000026_add_asset_archived_at;
mod m20261130_000027_create_password_resets;
mod m20261130_000028_index_housekeeping;
mod m20261130_000029_add_membership_all_teams_role;
mod m20261201_000030_add_api_key_scope;
mod m20261201_000031_add_credit_entry_actor_id;
mod m20261201_000032_create_audit_erasures;
mod m20261201_000033_add_subscription_anchor_and_retry;
mod m20261201_000034_add_credit_operation_invoice;
mod m20261202_000035_add_session_signed_out_of;
mod m20261202_000036_create_credential_changes;
mod m20261203_000037_add_subscription_cancel_at_period_end;
mod m20261204_000038_create_pending_charges;
mod m20261205_000039_index_consents_by_id;
mod m20261205_000040_create_store_markers;
mod m20261205_000041_add_limit_overrides_plan;
mod m20261206_000042_index_deliveries_by_org;
mod m20261206_000043_create_price_deals;
mod m20261206_000044_add_asset_transfer_notes;
mod m20261206_000045_create_team_pipelines;
mod m20261206_000046_create_service_uptime;
mod m20261206_000047_create_service_outages;

/// Every migration, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_tenancy_tables::Migration),
            Box::new(m20261125_000002_create_credential_tables::Migration),
            Box::new(m20261125_000003_create_audit_tables::Migration),
            Box::new(m20261125_000004_create_outbox_events::Migration),
            Box::new(m20261125_000005_create_mail_outbox::Migration),
            Box::new(m20261125_000006_create_invitations::Migration),
            Box::new(m20261125_000007_create_ownership_transfers::Migration),
            Box::new(m20261125_000008_create_bulk_previews::Migration),
            Box::new(m20261125_000009_create_webhook_tables::Migration),
            Box::new(m20261125_000010_create_login_throttle::Migration),
            Box::new(m20261128_000011_create_workspace_tables::Migration),
            Box::new(m20261128_000012_create_mfa_tables::Migration),
            Box::new(m20261128_000013_create_usage_monthly::Migration),
            Box::new(m20261128_000014_create_scim_tables::Migration),
            Box::new(m20261128_000015_create_consents::Migration),
            Box::new(m20261128_000016_create_audit_anchors::Migration),
            Box::new(m20261128_000017_add_audit_archived_at::Migration),
            Box::new(m20261128_000018_index_audit_outcome::Migration),
            Box::new(m20261128_000019_add_limit_overrides::Migration),
            Box::new(m20261128_000020_create_billing_tables::Migration),
            Box::new(m20261128_000021_index_due_deliveries_by_endpoint::Migration),
            Box::new(m20261129_000022_audit_actor_index_filters::Migration),
            Box::new(m20261129_000023_audit_actor_action_index::Migration),
            Box::new(m20261130_000024_add_webhook_message::Migration),
            Box::new(m20261130_000025_add_invitation_team::Migration),
            Box::new(m20261130_000026_add_asset_archived_at::Migration),
            Box::new(m20261130_000027_create_password_resets::Migration),
            Box::new(m20261130_000028_index_housekeeping::Migration),
            Box::new(m20261130_000029_add_membership_all_teams_role::Migration),
            Box::new(m20261201_000030_add_api_key_scope::Migration),
            Box::new(m20261201_000031_add_credit_entry_actor_id::Migration),
            Box::new(m20261201_000032_create_audit_erasures::Migration),
            Box::new(m20261201_000033_add_subscription_anchor_and_retry::Migration),
            Box::new(m20261201_000034_add_credit_operation_invoice::Migration),
            Box::new(m20261202_000035_add_session_signed_out_of::Migration),
            Box::new(m20261202_000036_create_credential_changes::Migration),
            Box::new(m20261203_000037_add_subscription_cancel_at_period_end::Migration),
            Box::new(m20261204_000038_create_pending_charges::Migration),
            Box::new(m20261205_000039_index_consents_by_id::Migration),
            Box::new(m20261205_000040_create_store_markers::Migration),
            Box::new(m20261205_000041_add_limit_overrides_plan::Migration),
            Box::new(m20261206_000042_index_deliveries_by_org::Migration),
            Box::new(m20261206_000043_create_price_deals::Migration),
            Box::new(m20261206_000044_add_asset_transfer_notes::Migration),
            Box::new(m20261206_000045_create_team_pipelines::Migration),
            Box::new(m20261206_000046_create_service_uptime::Migration),
            Box::new(m20261206_000047_create_service_outages::Migration),
        ]
    }
}

/// Creates a (possibly unique, possibly partial) index.
pub(crate) async fn index(
    manager: &SchemaManager<'_>,
    name: &'static str,
    table: &'static str,
    cols: &[&'static str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut idx = Index::create();
    idx.name(name).table(table);
    for c in cols {
        idx.col(*c);
    }
    if unique {
        idx.unique();
    }
    manager.create_index(idx.to_owned()).await
}
