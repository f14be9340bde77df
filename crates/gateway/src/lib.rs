//! gateway service (being written).
