//! Shared helpers of the reference daemons and the CLI.

pub mod logging;
pub mod ctl;
