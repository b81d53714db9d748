//! Field paths as users write them: `spec.ports[1].containerPort`.

use std::fmt;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A map key or struct field (manifest spelling, camelCase).
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path from the document root to a field. Cheap to extend: validators build child paths
/// as they descend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document root.
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a field name.
    pub(crate) fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.to_owned()));
        Self(v)
    }

    /// This path extended by a sequence index.
    pub(crate) fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        Self(v)
    }

    /// True if the last segment is the field `k`.
    pub(crate) fn ends_with_key(&self, k: &str) -> bool {
        matches!(self.0.last(), Some(Segment::Key(last)) if last == k)
    }

    /// The segments, root first.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// `base` followed by the path serde_path_to_error recorded while decoding below `base`.
    pub(crate) fn join_serde(base: &FieldPath, p: &serde_path_to_error::Path) -> Self {
        let mut out = base.clone();
        for seg in p.iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => out.0.push(Segment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => out.0.push(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    out.0.push(Segment::Key(variant.clone()));
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        out
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_users_write_it() {
        let p = FieldPath::root()
            .key("spec")
            .key("ports")
            .index(1)
            .key("containerPort");
        assert_eq!(p.to_string(), "spec.ports[1].containerPort");
        assert_eq!(FieldPath::root().to_string(), "");
    }
}
