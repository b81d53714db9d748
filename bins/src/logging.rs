//! One `tracing` subscriber setup for every Cloudless binary: human-readable lines on a
//! terminal, one JSON object per line for log shippers (CLD-REQ-070).
//!
//! The filter comes from `CLOUDLESS_LOG` (same syntax as `RUST_LOG`, e.g.
//! `info,cloudless_net=debug`), falling back to the level the caller passes.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Environment variable holding the log filter.
pub const LOG_ENV: &str = "CLOUDLESS_LOG";

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human lines, coloured on a terminal.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" | "text" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected \"human\" or \"json\""
            )),
        }
    }
}

/// Builds the filter from `CLOUDLESS_LOG`, or from `default_directive` when unset.
///
/// An invalid `CLOUDLESS_LOG` is an error naming the variable, not a silent fallback.
pub fn filter_from_env(default_directive: &str) -> anyhow::Result<EnvFilter> {
    match std::env::var(LOG_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| anyhow::anyhow!("invalid {LOG_ENV}={v:?}: {e}"))
        }
        _ => Ok(EnvFilter::try_new(default_directive)?),
    }
}

/// Installs the global subscriber writing to stderr. Call once at the start of `main`.
pub fn init(format: LogFormat, default_directive: &str) -> anyhow::Result<()> {
    let filter = filter_from_env(default_directive)?;
    let ansi = std::io::stderr().is_terminal();
    install(format, filter, std::io::stderr, ansi)
}

/// Installs the global subscriber with an explicit writer (used by tests and embedders).
pub fn install<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool) -> anyhow::Result<()>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Human => builder.with_ansi(ansi).with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn json_lines_are_json_objects() {
        let buf = Buf::default();
        install(LogFormat::Json, EnvFilter::new("info"), buf.clone(), false).unwrap();
        tracing::info!(node = "edge-1", "node joined");
        tracing::debug!("filtered out");
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["message"], "node joined");
        assert_eq!(v["node"], "edge-1");
        assert_eq!(v["level"], "INFO");
    }

    #[test]
    fn formats_parse_and_bad_ones_are_named() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("human".parse::<LogFormat>(), Ok(LogFormat::Human));
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("xml"));
    }
}
