//! Port implementations, one file per port family.

mod audit;
mod tenancy;
