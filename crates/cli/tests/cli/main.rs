//! The `vidconv` binary, run as people run it: against the real services, and against a
//! stand-in for the original gateway (no `/events`).

mod end_to_end;
mod helpers;
mod original_gateway;
