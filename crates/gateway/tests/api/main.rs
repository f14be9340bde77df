//! Integration tests of the gateway against real RabbitMQ, the Mongo stand-in and the real auth.
//! Run `eval "$(bash scripts/test-deps.sh)"` first.

mod auth_proxy;
mod bounds;
mod download;
mod eta;
mod events;
mod health;
mod helpers;
mod jobs;
mod leftovers;
mod media_cookie;
mod memory;
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
