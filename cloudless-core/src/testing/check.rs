//! Assertions shared by the conformance suites: each panics with the contract it checks.

use std::fmt::Debug;

/// Returns the value of `res`, or panics naming the `suite` and the step `what`.
#[track_caller]
pub(crate) fn ok<T, E: Debug>(suite: &str, what: &str, res: Result<T, E>) -> T {
    match res {
        Ok(v) => v,
        Err(e) => panic!("{suite} contract violated: {what}: expected success, got error {e:?}"),
    }
}

/// Panics unless `res` is an error satisfying `expected` (described by `wanted`).
#[track_caller]
pub(crate) fn err<T: Debug, E: Debug>(
    suite: &str,
    what: &str,
    wanted: &str,
    res: Result<T, E>,
    expected: impl FnOnce(&E) -> bool,
) {
    match res {
        Err(e) if expected(&e) => {}
        Err(e) => panic!("{suite} contract violated: {what}: expected {wanted}, got error {e:?}"),
        Ok(v) => panic!("{suite} contract violated: {what}: expected {wanted}, got Ok({v:?})"),
    }
}

/// Panics with `what` unless `cond` holds.
#[track_caller]
pub(crate) fn that(suite: &str, what: &str, cond: bool) {
    if !cond {
        panic!("{suite} contract violated: {what}");
    }
}
