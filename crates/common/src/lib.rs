//! Code the auth, gateway and converter services share, and nothing else.

pub mod config;
pub mod forwarded;
pub mod http;
#[cfg(feature = "job-events")]
pub mod job_events;
#[cfg(feature = "mongo")]
pub mod jobs;
pub mod jwt;
pub mod message;
#[cfg(feature = "mongo")]
pub mod mongo;
#[cfg(feature = "old-mongo-stand-in")]
pub mod old_mongo;
#[cfg(feature = "mongo")]
pub mod shared_mp3;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;
