//! The capped log writer shared by the containerd logger (`binary://` stdio) and the process
//! runtime's shim: keeps the first `limit` bytes of a workload's output, then writes one marker
//! line and drops the rest, while its caller keeps reading so the workload never blocks on a
//! full pipe. The file only grows, so read offsets stay valid.

use std::fs::File;
use std::io::Write;

/// A log file that stops growing at its byte limit.
pub(crate) struct CappedLog {
    file: File,
    written: u64,
    limit: u64,
    marked: bool,
}

impl CappedLog {
    /// Continues `file`, which already holds `written` bytes (a restarted writer appends; a file
    /// already past the limit got its marker before).
    pub(crate) fn new(file: File, written: u64, limit: u64) -> Self {
        Self {
            file,
            written,
            limit,
            marked: written > limit,
        }
    }

    /// Appends what fits under the limit; the first overflow writes the marker line.
    pub(crate) fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        let room = usize::try_from(self.limit.saturating_sub(self.written)).unwrap_or(usize::MAX);
        let keep = &data[..data.len().min(room)];
        if !keep.is_empty() {
            self.file.write_all(keep)?;
            self.written += keep.len() as u64;
        }
        if keep.len() < data.len() && !self.marked {
            self.marked = true;
            let marker = format!(
                "\n[cloudless: log limit of {} bytes reached; further output dropped]\n",
                self.limit
            );
            self.file.write_all(marker.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_marks_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        let mut log = CappedLog::new(File::create(&path).expect("file"), 0, 5);
        log.write(b"abc").expect("w");
        log.write(b"defgh").expect("w");
        log.write(b"ijk").expect("w");
        let got = std::fs::read_to_string(&path).expect("read");
        assert!(
            got.starts_with("abcde\n[cloudless: log limit of 5 bytes"),
            "{got}"
        );
        assert_eq!(got.matches("log limit").count(), 1);
    }

    #[test]
    fn a_file_already_past_the_limit_gets_no_second_marker() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        let mut log = CappedLog::new(File::create(&path).expect("file"), 9, 5);
        log.write(b"more").expect("w");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
    }
}
