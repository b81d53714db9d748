//! Shared helpers of the reference daemons and the CLI.

pub mod agent;
pub mod cli;
pub mod common;
pub mod config;
pub mod coordinator;
pub mod ctl;
pub mod logging;
