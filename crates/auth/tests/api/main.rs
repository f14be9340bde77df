//! The auth service driven over HTTP against a real Postgres: one test binary, one module per
//! area, each test on its own database.

mod bodies;
mod helpers;
mod legacy;
mod login;
mod operations;
mod rate_limit;
mod register;
mod shared_limits;
mod validate;
