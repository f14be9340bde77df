//! One module per group of subcommands.

pub mod account;
pub mod convert;
