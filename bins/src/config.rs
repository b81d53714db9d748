//! Configuration files of the daemons: YAML (a JSON file is valid YAML), strictly typed,
//! unknown keys rejected naming the key, and the precedence flags > env > file > defaults.
//!
//! Flags and `CLOUDLESS_*` environment variables are both handled by clap (a flag wins over its
//! variable); [`pick`] then falls back to the file's value and finally to the default.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Largest config file read (a config is a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a setting could not be used. Every message is one line naming the field and, when it
/// came from a file, the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not valid for its schema (unknown key, wrong type, bad YAML).
    #[error("config file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong, naming the key.
        reason: String,
    },
    /// A field has an unusable value (from a flag, the environment or the file).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field (its config-file key; the flag is `--` plus the key with `-`).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A required field was given nowhere.
    #[error("{field}: required (flag --{flag}, env {env}, or key `{field}` in the config file)")]
    Missing {
        /// The config-file key.
        field: &'static str,
        /// The flag name without dashes.
        flag: &'static str,
        /// The environment variable.
        env: &'static str,
    },
}

impl ConfigError {
    /// An invalid value of `field`.
    pub fn invalid(field: &'static str, reason: impl std::fmt::Display) -> Self {
        ConfigError::Invalid {
            field,
            reason: reason.to_string(),
        }
    }
}

/// Reads and parses a config file into `T` (whose serde derive must deny unknown fields).
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let read_err = |reason: String| ConfigError::Read {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(read_err(format!(
            "{} bytes is larger than the limit of {MAX_CONFIG_BYTES}",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
    parse_str(&text).map_err(|reason| ConfigError::Parse {
        path: path.to_owned(),
        reason,
    })
}

/// Parses a config document; the error is one line naming the offending key.
pub fn parse_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    if text.trim().is_empty() {
        return serde_json::from_str("{}").map_err(|e| e.to_string());
    }
    // Through a generic value so type errors name the key path (`port: invalid type ...`).
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = one_line(&e.into_inner().to_string());
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

/// Collapses a multi-line message (YAML errors may show a source excerpt) to its first line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid config")
        .to_owned()
}

/// Flag/env value if given, else the file's, else `default`.
pub fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

/// Flag/env value if given, else the file's; `None` if neither.
pub fn pick_opt<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: Option<String>,
        port: Option<u16>,
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse_str::<Sample>("name: a\nbogus_key: 1\n").unwrap_err();
        assert!(e.contains("bogus_key"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn values_parse_and_precedence_holds() {
        let s: Sample = parse_str("name: a\nport: 7\n").unwrap();
        assert_eq!(s.port, Some(7));
        let empty: Sample = parse_str("").unwrap();
        assert_eq!(
            empty,
            Sample {
                name: None,
                port: None
            }
        );
        assert_eq!(pick(Some(1), Some(2), 3), 1);
        assert_eq!(pick(None, Some(2), 3), 2);
        assert_eq!(pick(None, None, 3), 3);
        let e = parse_str::<Sample>("port: many\n").unwrap_err();
        assert!(e.starts_with("port:"), "{e}");
    }
}
