//! Subscriptions, invoices and the team-credit ledger.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The lifecycle of an organization's plan (the plan itself stays on `organizations`).
        // `version` makes every change compare-and-swap.
        manager
            .create_table(
                Table::create()
                    .table("subscriptions")
                    .col(string("org_id").primary_key())
                    .col(string("status"))
                    .col(string_null("cycle"))
                    .col(big_integer_null("period_end"))
                    .col(big_integer_null("trial_ends_at"))
                    .col(boolean("trial_used"))
                    .col(string_null("plan_before_trial"))
                    .col(big_integer("version"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "subscriptions_period_end",
            "subscriptions",
            &["period_end"],
            false,
        )
        .await?;
        index(
            manager,
            "subscriptions_trial_ends_at",
            "subscriptions",
            &["trial_ends_at"],
            false,
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("invoices")
                    .col(string("org_id"))
                    .col(string("number"))
                    .col(string("provider"))
                    .col(text("description"))
                    .col(big_integer("amount_cents"))
                    .col(string("currency"))
                    .col(string("status"))
                    .col(big_integer("created_at"))
                    .col(big_integer_null("due_at"))
                    .primary_key(Index::create().col("org_id").col("number"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "invoices_org_created",
            "invoices",
            &["org_id", "created_at"],
            false,
        )
        .await?;
        // One row per account (`pool` or a team id): the balance is changed only by conditional
        // updates in the transaction that writes the entries.
        manager
            .create_table(
                Table::create()
                    .table("credit_accounts")
                    .col(string("org_id"))
                    .col(string("account"))
                    .col(big_integer("balance"))
                    .col(big_integer("overdraft"))
                    .col(big_integer_null("low_threshold"))
                    .col(small_integer("allocation_percent"))
                    .primary_key(Index::create().col("org_id").col("account"))
                    .to_owned(),
            )
            .await?;
        // Operations: the idempotency key is unique per organization, and an operation can be
        // reversed once (`reverses` unique; NULLs do not collide).
        manager
            .create_table(
                Table::create()
                    .table("credit_operations")
                    .col(string("id").primary_key())
                    .col(string("org_id"))
                    .col(string("idempotency_key"))
                    .col(text("fingerprint"))
                    .col(string("kind"))
                    .col(string_null("reverses"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "credit_operations_key",
            "credit_operations",
            &["org_id", "idempotency_key"],
            true,
        )
        .await?;
        index(
            manager,
            "credit_operations_reverses",
            "credit_operations",
            &["reverses"],
            true,
        )
        .await?;
        // Entries are never updated or deleted.
        manager
            .create_table(
                Table::create()
                    .table("credit_entries")
                    .col(big_integer("seq").primary_key().auto_increment())
                    .col(string("org_id"))
                    .col(string("operation_id"))
                    .col(string("account"))
                    .col(string("kind"))
                    .col(big_integer("amount"))
                    .col(big_integer("balance_after"))
                    .col(text("description"))
                    .col(string("actor"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "credit_entries_org_account_seq",
            "credit_entries",
            &["org_id", "account", "seq"],
            false,
        )
        .await?;
        index(
            manager,
            "credit_entries_org_seq",
            "credit_entries",
            &["org_id", "seq"],
            false,
        )
        .await?;
        index(
            manager,
            "credit_entries_operation",
            "credit_entries",
            &["operation_id"],
            false,
        )
        .await
    }
}
