//! `RecordEvent`: an event no other command implies (e.g. a failure to schedule).

use super::{ApplyError, CommandResult, Ctx};
use crate::event::{EventCategory, Severity};

/// Longest subject accepted, in bytes.
const MAX_SUBJECT_LEN: usize = 256;
/// Longest reason accepted, in bytes.
const MAX_REASON_LEN: usize = 128;
/// Longest message accepted, in bytes.
const MAX_MESSAGE_LEN: usize = 4096;

/// Records one event. Field lengths are bounded so the event log's memory is too.
pub(super) fn record(
    cx: &mut Ctx,
    category: EventCategory,
    severity: Severity,
    subject: &str,
    reason: &str,
    message: &str,
) -> Result<CommandResult, ApplyError> {
    for (field, value, max) in [
        ("subject", subject, MAX_SUBJECT_LEN),
        ("reason", reason, MAX_REASON_LEN),
    ] {
        if value.is_empty() || value.len() > max {
            return Err(ApplyError::Invalid(format!(
                "event {field} must be 1..={max} bytes"
            )));
        }
    }
    if message.len() > MAX_MESSAGE_LEN {
        return Err(ApplyError::Invalid(format!(
            "event message must be at most {MAX_MESSAGE_LEN} bytes"
        )));
    }
    cx.event(
        category,
        severity,
        subject.to_owned(),
        reason,
        message.to_owned(),
    );
    Ok(CommandResult::Done)
}
