//! store-sea
