//! The `vidconv` binary, run as people run it: against the real services, and against a
//! stand-in for the original gateway (no `/events`).

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod end_to_end;
mod helpers;
mod original_gateway;
