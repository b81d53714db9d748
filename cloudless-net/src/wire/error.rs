//! The typed error of wire-to-core conversions.

use cloudless_core::ids::NameError;

/// A wire value that does not convert to a valid core value. `field` is a dotted path from the
/// outermost message, e.g. `report.capacity.storage_iops`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not a well-formed protobuf message of the expected type.
    #[error("malformed message: {0}")]
    Decode(String),
    /// A required field (sub-message, oneof or enum) is absent or UNSPECIFIED.
    #[error("{field}: required field is missing")]
    Missing {
        /// Path of the field.
        field: String,
    },
    /// An enum field holds a number this version does not know.
    #[error("{field}: unknown enum value {value}")]
    UnknownEnum {
        /// Path of the field.
        field: String,
        /// The number received.
        value: i32,
    },
    /// A number is outside the range the core type allows.
    #[error("{field}: value {value} is out of range ({allowed})")]
    OutOfRange {
        /// Path of the field.
        field: String,
        /// The value received.
        value: u64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// A name field is not a valid name.
    #[error("{field}: invalid name: {reason}")]
    InvalidName {
        /// Path of the field.
        field: String,
        /// Why it was rejected.
        reason: NameError,
    },
}

impl WireError {
    /// A missing-field error for `field`.
    pub fn missing(field: &str) -> Self {
        WireError::Missing {
            field: field.to_owned(),
        }
    }

    /// The path of the offending field, if the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            WireError::Decode(_) => None,
            WireError::Missing { field }
            | WireError::UnknownEnum { field, .. }
            | WireError::OutOfRange { field, .. }
            | WireError::InvalidName { field, .. } => Some(field),
        }
    }

    /// The same error with `parent.` prefixed to its field path.
    pub fn within(self, parent: &str) -> Self {
        let prefix = |f: String| format!("{parent}.{f}");
        match self {
            WireError::Decode(m) => WireError::Decode(m),
            WireError::Missing { field } => WireError::Missing {
                field: prefix(field),
            },
            WireError::UnknownEnum { field, value } => WireError::UnknownEnum {
                field: prefix(field),
                value,
            },
            WireError::OutOfRange {
                field,
                value,
                allowed,
            } => WireError::OutOfRange {
                field: prefix(field),
                value,
                allowed,
            },
            WireError::InvalidName { field, reason } => WireError::InvalidName {
                field: prefix(field),
                reason,
            },
        }
    }
}

/// Converts a required sub-message, naming `field` when it is absent or invalid.
pub(crate) fn required<W, T>(value: Option<W>, field: &str) -> Result<T, WireError>
where
    T: TryFrom<W, Error = WireError>,
{
    let w = value.ok_or_else(|| WireError::missing(field))?;
    T::try_from(w).map_err(|e| e.within(field))
}
