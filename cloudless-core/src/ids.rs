//! Identifiers, generations and revisions.
//!
//! Numeric ids (`NodeId`, `WorkloadId`, `ReplicaId`) are minted by the cluster state machine
//! (DESIGN §8: openraft needs a `Copy + Ord` node id). Human names are validated strings.
//!
//! ```rust
//! use cloudless_core::ids::{Generation, NameError, NodeId, NodeName, QualifiedName};
//!
//! assert_eq!(NodeId(7).to_string(), "n7");
//! assert_eq!(Generation(1).next(), Generation(2));
//!
//! let name = NodeName::new("edge-1")?;
//! assert_eq!(name.as_str(), "edge-1");
//! assert!(matches!(NodeName::new("Edge_1"), Err(NameError::Invalid(_))));
//! assert_eq!(QualifiedName::new("shop", "web").to_string(), "shop/web");
//! # Ok::<(), NameError>(())
//! ```

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            JsonSchema, Default,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

numeric_id!(
    /// A node's cluster-wide id, minted by the coordinators at enrollment. Never reused.
    NodeId,
    "n"
);
numeric_id!(
    /// A workload's id, minted when it is created. A workload deleted and created again under
    /// the same name gets a new id.
    WorkloadId,
    "w"
);
numeric_id!(
    /// One replica of a workload. A replacement replica gets a new id.
    ReplicaId,
    "r"
);
numeric_id!(
    /// A workload's spec generation: bumped by every update of the spec.
    Generation,
    "g"
);
numeric_id!(
    /// A position in the totally ordered stream of applied commands (like an etcd revision).
    Revision,
    "rev"
);

impl Revision {
    /// The next revision.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl Generation {
    /// The next generation.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("must be at most {max} characters (got {len})")]
    TooLong {
        /// The maximum length.
        max: usize,
        /// The actual length.
        len: usize,
    },
    /// The name has a character or shape DNS-1123 does not allow.
    #[error(
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit (got {0:?})"
    )]
    Invalid(String),
}

/// The longest DNS-1123 label.
pub const MAX_LABEL_LEN: usize = 63;

/// Checks that `s` is a DNS-1123 label: 1..=63 chars of `[a-z0-9-]`, alphanumeric at both ends.
///
/// ```rust
/// use cloudless_core::ids::{NameError, validate_dns_label};
///
/// assert!(validate_dns_label("web-1").is_ok());
/// assert_eq!(validate_dns_label(""), Err(NameError::Empty));
/// assert!(matches!(validate_dns_label("-web"), Err(NameError::Invalid(_))));
/// ```
pub fn validate_dns_label(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_LABEL_LEN {
        return Err(NameError::TooLong {
            max: MAX_LABEL_LEN,
            len: s.len(),
        });
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let ok_end = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let first = s.chars().next();
    let last = s.chars().next_back();
    if !s.chars().all(ok_char) || !first.is_some_and(ok_end) || !last.is_some_and(ok_end) {
        return Err(NameError::Invalid(s.to_owned()));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as a DNS-1123 label.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                validate_dns_label(&s)?;
                Ok(Self(s))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A node's human name (DNS-1123 label), unique in the cluster.
    NodeName
);
name_type!(
    /// A service's name (DNS-1123 label), unique within its namespace.
    ServiceName
);
name_type!(
    /// A namespace (DNS-1123 label). The default namespace is `default`.
    Namespace
);

impl Default for Namespace {
    fn default() -> Self {
        Self("default".to_owned())
    }
}

/// A namespaced object name, `namespace/name`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct QualifiedName {
    /// The namespace.
    pub namespace: String,
    /// The name within the namespace.
    pub name: String,
}

impl QualifiedName {
    /// Builds a qualified name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(validate_dns_label("web-1").is_ok());
        assert!(validate_dns_label("a").is_ok());
        assert_eq!(validate_dns_label(""), Err(NameError::Empty));
        assert!(matches!(
            validate_dns_label("-a"),
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(
            validate_dns_label("a-"),
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(
            validate_dns_label("Web"),
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(
            validate_dns_label("a_b"),
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(
            validate_dns_label(&"a".repeat(64)),
            Err(NameError::TooLong { max: 63, len: 64 })
        ));
    }

    #[test]
    fn names_reject_bad_values_when_deserialized() {
        assert!(serde_json::from_str::<NodeName>("\"Bad Name\"").is_err());
        let n: NodeName = serde_json::from_str("\"edge-1\"").unwrap();
        assert_eq!(n.as_str(), "edge-1");
        assert_eq!(NodeId(7).to_string(), "n7");
    }
}
