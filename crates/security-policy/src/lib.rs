//! security-policy
