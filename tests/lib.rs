//! Holds no code: the end-to-end suite lives in `api/`.
