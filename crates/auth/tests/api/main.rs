//! The auth service driven over HTTP against a real Postgres: one test binary, one module per
//! area, each test on its own database.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bodies;
mod helpers;
mod legacy;
mod login;
mod operations;
mod rate_limit;
mod register;
mod shared_limits;
mod validate;
