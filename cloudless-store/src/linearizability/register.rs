//! The register model: one value per key, read / write / compare-and-set.

use super::Model;

/// What a register client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Set the value.
    Write(u64),
    /// Set the value to `new` if it is `expected`.
    Cas {
        /// The value the client expects.
        expected: u64,
        /// The value to set.
        new: u64,
    },
}

/// What a register client was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutput {
    /// A read's value.
    Value(u64),
    /// A write was acknowledged.
    Written,
    /// A compare-and-set succeeded (`true`) or found another value (`false`).
    Swapped(bool),
}

/// Registers holding a `u64`, starting at `initial`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Register {
    /// The value every key holds before any write.
    pub initial: u64,
}

impl Model for Register {
    type State = u64;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> u64 {
        self.initial
    }

    fn step(
        &self,
        state: &u64,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<u64> {
        match (input, output) {
            (RegisterInput::Read, None) => Some(*state),
            (RegisterInput::Read, Some(RegisterOutput::Value(v))) => (v == state).then_some(*state),
            (RegisterInput::Write(v), None | Some(RegisterOutput::Written)) => Some(*v),
            // An unanswered CAS that took effect did whatever the state dictates.
            (RegisterInput::Cas { expected, new }, None) => {
                Some(if expected == state { *new } else { *state })
            }
            (RegisterInput::Cas { expected, new }, Some(RegisterOutput::Swapped(true))) => {
                (expected == state).then_some(*new)
            }
            (RegisterInput::Cas { expected, .. }, Some(RegisterOutput::Swapped(false))) => {
                (expected != state).then_some(*state)
            }
            // An answer of the wrong kind is never legal.
            _ => None,
        }
    }
}
