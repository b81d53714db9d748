//! Signals to processes and process groups, guarded against pid reuse.

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use super::record::{Started, same_live_process};

fn pid(raw: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(raw).ok()?)
}

/// Sends `sig` to process `raw` (no-op for pid 0 or a vanished process).
pub(crate) fn kill_pid(raw: u32, sig: Signal) {
    if let Some(p) = pid(raw) {
        let _ = kill_process(p, sig);
    }
}

/// Sends `sig` to the process group of the recorded process, but only while its pid still names
/// the process that started at the recorded time (a reused pid is left alone). Returns whether
/// it was sent.
pub(crate) fn signal_group(started: &Started, sig: Signal) -> bool {
    if !same_live_process(started.pid, started.start_ticks) {
        return false;
    }
    match pid(started.pid) {
        Some(p) => kill_process_group(p, sig).is_ok(),
        None => false,
    }
}

/// Sends `sig` to process group `pgid` unconditionally (the shim, which owns the group).
pub(crate) fn kill_group(pgid: u32, sig: Signal) {
    if let Some(p) = pid(pgid) {
        let _ = kill_process_group(p, sig);
    }
}
