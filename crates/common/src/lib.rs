//! Code the auth, gateway and converter services share, and nothing else.

pub mod accounts;
#[cfg(feature = "amqp")]
pub mod amqp;
pub mod config;
pub mod forwarded;
#[cfg(feature = "mongo")]
pub mod gridfs;
pub mod http;
#[cfg(feature = "job-events")]
pub mod job_events;
#[cfg(feature = "mongo")]
pub mod jobs;
pub mod jwt;
pub mod message;
#[cfg(feature = "mongo")]
pub mod mongo;
pub mod names;
#[cfg(feature = "old-mongo-stand-in")]
pub mod old_mongo;
pub mod retry;
#[cfg(feature = "mongo")]
pub mod shared_mp3;
pub mod shutdown;
pub mod states;
pub mod telemetry;
pub mod trace_context;
