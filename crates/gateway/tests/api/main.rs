//! Integration tests of the gateway against real RabbitMQ, the Mongo stand-in and the real auth.
//! Run `eval "$(bash scripts/test-deps.sh)"` first.

// Test code, helpers included (clippy.toml's allow-*-in-tests covers #[test] functions only):
// a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_proxy;
mod bounds;
mod config_keys;
mod download;
mod eta;
mod events;
mod health;
mod helpers;
mod jobs;
mod leftovers;
mod media_cookie;
mod memory;
mod print_openapi;
mod pushed_events;
mod refusals;
mod refused_bodies;
mod repeats;
mod retention;
mod seed_flow;
mod shutdown;
mod status;
mod takeover;
mod upload;
mod webhooks;
