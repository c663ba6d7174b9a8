//! billing-limits
