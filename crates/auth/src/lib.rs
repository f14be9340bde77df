//! auth service (being written).
