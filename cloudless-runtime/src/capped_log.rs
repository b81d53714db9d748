//! Rotating, size-capped log files shared by the containerd logger (`binary://` stdio) and the
//! process runtime's shim (design record: `docs/design/log-rotation.md`).
//!
//! A log is a *logical* byte stream: offset 0 is the first byte the workload wrote since it
//! started. On disk it is at most [`SEGMENTS`] files of at most `max_bytes / SEGMENTS` bytes
//! each:
//!
//! ```text
//!   <name>.<start>   rotated, read-only, <start> = logical offset of its first byte (decimal)
//!   <name>.<start>   ...
//!   <name>           current, appended to; starts where the newest rotated file ends (0 if none)
//! ```
//!
//! When the current file is full it is renamed to `<name>.<start>`, a new current file is
//! created, and the oldest rotated files beyond `SEGMENTS - 1` are deleted: the newest output is
//! kept, the oldest dropped, and the writer never stops reading (a workload never blocks on a
//! full pipe). Because every rotated file carries its own start offset in its name, readers need
//! no index: [`read_from`] maps a logical offset to a file, and an offset that was rotated away
//! reads from the oldest byte still kept (the returned offset says where that is).

use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Files one log spans at most: the current one and `SEGMENTS - 1` rotated ones.
pub(crate) const SEGMENTS: u64 = 4;

/// How often [`read_from`] re-lists the files when a rotation raced it.
const READ_RETRIES: usize = 16;

/// Largest size of one file for a log capped at `max_bytes` (at least 1 byte).
pub(crate) fn segment_size(max_bytes: u64) -> u64 {
    (max_bytes / SEGMENTS).max(1)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// A rotated file of the log at `current`.
#[derive(Debug)]
struct Rotated {
    start: u64,
    path: PathBuf,
    meta: Metadata,
}

/// The name of the rotated file starting at `start`.
fn rotated_path(current: &Path, start: u64) -> PathBuf {
    let mut name = current.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{start}"));
    current.with_file_name(name)
}

/// The start offset a directory entry named `entry` encodes as a rotated file of `current`
/// (`<current>.<decimal digits>`); other names (including `<current>.lock`) are not ones.
fn rotated_start(current: &str, entry: &str) -> Option<u64> {
    let digits = entry.strip_prefix(current)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The rotated files of the log at `current`, oldest first. Files deleted while listing are
/// skipped.
fn list_rotated(current: &Path) -> std::io::Result<Vec<Rotated>> {
    let Some(name) = current.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match current.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(start) = file_name.to_str().and_then(|n| rotated_start(name, n)) else {
            continue;
        };
        match entry.metadata() {
            Ok(meta) if meta.is_file() => out.push(Rotated {
                start,
                path: entry.path(),
                meta,
            }),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|r| r.start);
    Ok(out)
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Deletes the log at `current` with its rotated files and its lock file; missing files are
/// fine.
pub(crate) fn remove_all(current: &Path) -> std::io::Result<()> {
    let mut paths: Vec<PathBuf> = list_rotated(current)?.into_iter().map(|r| r.path).collect();
    paths.push(current.to_owned());
    paths.push(lock_path(current));
    for p in paths {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The lock file a writer holds while it runs (rotation renames the log file itself, so the
/// lock lives in a file of its own).
pub(crate) fn lock_path(current: &Path) -> PathBuf {
    let mut name = current.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    current.with_file_name(name)
}

/// The writer of one rotating log. Only one may write a log at a time.
pub(crate) struct RotatingLog {
    path: PathBuf,
    file: File,
    /// Logical offset of the current file's first byte.
    start: u64,
    /// Bytes in the current file.
    len: u64,
    /// Largest size of one file.
    segment: u64,
}

impl RotatingLog {
    /// Opens (creating it 0600) the log at `path`, capped at `max_bytes` in all its files. A
    /// restarted writer continues the logical stream where the files end.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let file = open_append(path)?;
        let len = file.metadata()?.len();
        let start = list_rotated(path)?
            .last()
            .map_or(0, |r| r.start.saturating_add(r.meta.len()));
        Ok(Self {
            path: path.to_owned(),
            file,
            start,
            len,
            segment: segment_size(max_bytes),
        })
    }

    /// The logical offset the next byte gets.
    pub(crate) fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    /// Appends `data`, rotating whenever the current file is full.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            if self.len >= self.segment {
                self.rotate()?;
            }
            let room = usize::try_from(self.segment - self.len).unwrap_or(usize::MAX);
            let (now, later) = data.split_at(room.min(data.len()));
            self.file.write_all(now)?;
            self.len += now.len() as u64;
            data = later;
        }
        Ok(())
    }

    /// Renames the current file to its rotated name, starts a new one, drops the oldest.
    fn rotate(&mut self) -> std::io::Result<()> {
        std::fs::rename(&self.path, rotated_path(&self.path, self.start))?;
        self.start = self.end();
        self.len = 0;
        self.file = open_append(&self.path)?;
        let rotated = list_rotated(&self.path)?;
        let keep = usize::try_from(SEGMENTS - 1).unwrap_or(usize::MAX);
        let excess = rotated.len().saturating_sub(keep);
        for old in &rotated[..excess] {
            match std::fs::remove_file(&old.path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Where a segment's bytes come from.
enum Source {
    /// A rotated file, opened by name (its content no longer changes).
    Rotated(PathBuf),
    /// The current file, already open (it may still grow).
    Current,
}

/// Reads up to `max` bytes of the log at `path` from logical offset `from`: returns the offset
/// of the first byte returned and the bytes. When `from` was rotated away the read starts at the
/// oldest byte kept, so the returned offset is larger than `from`; at or past the end the result
/// is empty. A missing log is empty.
pub(crate) fn read_from(path: &Path, from: u64, max: usize) -> std::io::Result<(u64, Vec<u8>)> {
    'retry: for _ in 0..READ_RETRIES {
        // The current file first: if it is rotated after this open, the listing below shows it
        // under its rotated name (same inode), which gives its start.
        let current = match File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let current_meta = current.as_ref().map(File::metadata).transpose()?;
        let mut segments: Vec<(u64, u64, Source)> = Vec::new();
        let mut current_start = None;
        for r in list_rotated(path)? {
            if current_meta.as_ref().is_some_and(|m| same_file(m, &r.meta)) {
                current_start = Some(r.start);
            } else {
                segments.push((r.start, r.meta.len(), Source::Rotated(r.path)));
            }
        }
        if let Some(meta) = &current_meta {
            let start = match current_start {
                Some(start) => start,
                None => {
                    // Not rotated by the time of the listing, unless it was rotated and already
                    // deleted: only a file still at `path` is known to be the current one.
                    match std::fs::metadata(path) {
                        Ok(now) if same_file(&now, meta) => {}
                        Ok(_) => continue 'retry,
                        Err(e) if e.kind() == ErrorKind::NotFound => continue 'retry,
                        Err(e) => return Err(e),
                    }
                    segments
                        .iter()
                        .map(|(s, l, _)| s.saturating_add(*l))
                        .max()
                        .unwrap_or(0)
                }
            };
            // Still growing unless a rotation renamed it since it was opened.
            let len = if current_start.is_some() {
                meta.len()
            } else {
                u64::MAX
            };
            segments.push((start, len, Source::Current));
            segments.sort_by_key(|(s, ..)| *s);
        }
        // The first segment holding bytes at or after `from` (the current file may have grown
        // since its length was read: its length counts as unbounded).
        let Some((start, len, source)) = segments
            .into_iter()
            .find(|(s, l, _)| s.saturating_add(*l) > from)
        else {
            return Ok((from, Vec::new()));
        };
        let at = from.max(start);
        let pos = at - start;
        let want = usize::try_from(len - pos).unwrap_or(max).min(max);
        let mut buf = vec![0; want];
        let n = match source {
            Source::Current => match &current {
                Some(f) => read_full_at(f, &mut buf, pos)?,
                None => 0,
            },
            Source::Rotated(p) => match File::open(&p) {
                Ok(f) => read_full_at(&f, &mut buf, pos)?,
                // Deleted by a rotation since the listing: look again.
                Err(e) if e.kind() == ErrorKind::NotFound => continue 'retry,
                Err(e) => return Err(e),
            },
        };
        buf.truncate(n);
        return Ok((at, buf));
    }
    Err(std::io::Error::other(format!(
        "log {} rotated {READ_RETRIES} times while being read",
        path.display()
    )))
}

/// Reads at `pos` until `buf` is full or the end of the file.
fn read_full_at(f: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], pos + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte at logical offset `i` of the test streams: identifies its own position.
    fn pattern(range: std::ops::Range<u64>) -> Vec<u8> {
        range.map(|i| (i % 251) as u8).collect()
    }

    fn read_all(path: &Path, from: u64) -> (u64, Vec<u8>) {
        let (first, mut data) = read_from(path, from, 7).expect("read");
        let mut at = first + data.len() as u64;
        loop {
            let (got, more) = read_from(path, at, 7).expect("read");
            if more.is_empty() {
                return (first, data);
            }
            assert_eq!(got, at, "contiguous");
            at += more.len() as u64;
            data.extend_from_slice(&more);
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_past_the_cap_keep_the_newest_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.log");
        let mut log = RotatingLog::open(&path, 40).expect("open");
        // Odd-sized writes across many rotations (segments of 10 bytes).
        let all = pattern(0..1000);
        for piece in all.chunks(13) {
            log.write(piece).expect("write");
        }
        assert_eq!(log.end(), 1000);
        assert_eq!(
            files(dir.path()),
            ["c.log", "c.log.960", "c.log.970", "c.log.980"]
        );
        let (first, data) = read_all(&path, 0);
        assert_eq!(
            first, 960,
            "offset 0 was rotated away: the oldest kept byte"
        );
        assert_eq!(data, all[960..]);
        let (first, data) = read_all(&path, 985);
        assert_eq!((first, data), (985, all[985..].to_vec()));
        assert_eq!(
            read_from(&path, 1000, 64).expect("read"),
            (1000, Vec::new())
        );
        assert_eq!(
            read_from(&path, 5000, 64).expect("read"),
            (5000, Vec::new())
        );
        let total: u64 = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").metadata().expect("meta").len())
            .sum();
        assert!(total <= 40, "{total} bytes on disk");
    }

    #[test]
    fn a_single_large_write_rotates_inside() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("big");
        let mut log = RotatingLog::open(&path, 400).expect("open");
        let all = pattern(0..1000);
        log.write(&all).expect("write");
        let (first, data) = read_all(&path, 0);
        assert_eq!(first, 600);
        assert_eq!(data, all[600..]);
    }

    #[test]
    fn a_restarted_writer_continues_the_offsets() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.log");
        let all = pattern(0..100);
        let mut log = RotatingLog::open(&path, 80).expect("open");
        log.write(&all[..55]).expect("write");
        drop(log);
        let mut log = RotatingLog::open(&path, 80).expect("reopen");
        assert_eq!(log.end(), 55);
        log.write(&all[55..]).expect("write");
        let (first, data) = read_all(&path, 0);
        assert_eq!(first, 20);
        assert_eq!(data, all[20..]);
    }

    #[test]
    fn missing_logs_and_foreign_files_are_harmless() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.log");
        assert_eq!(read_from(&path, 3, 10).expect("read"), (3, Vec::new()));
        for junk in [
            "m.log.lock",
            "m.log.x1",
            "m.log.",
            "m.log.-1",
            "m.logs.5",
            "other.log.9",
        ] {
            std::fs::write(dir.path().join(junk), b"junk").expect("write");
        }
        std::fs::create_dir(dir.path().join("m.log.77")).expect("dir");
        let mut log = RotatingLog::open(&path, 1000).expect("open");
        assert_eq!(log.end(), 0);
        log.write(b"hello").expect("write");
        assert_eq!(read_all(&path, 0), (0, b"hello".to_vec()));
        assert_eq!(rotated_start("m.log", "m.log.12"), Some(12));
        assert_eq!(
            rotated_start("m.log", "m.log.99999999999999999999999"),
            None
        );
        remove_all(&path).expect("remove");
        assert!(!path.exists() && !lock_path(&path).exists());
        assert!(dir.path().join("m.log.x1").exists(), "foreign files stay");
    }

    #[test]
    fn new_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("p.log");
        let mut log = RotatingLog::open(&path, 8).expect("open");
        log.write(b"0123456789").expect("write");
        for name in files(dir.path()) {
            let mode = std::fs::metadata(dir.path().join(&name))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn a_follower_racing_the_writer_sees_a_consistent_stream() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f.log");
        let mut log = RotatingLog::open(&path, 4096).expect("open");
        const TOTAL: u64 = 2_000_000;
        let writer = std::thread::spawn(move || {
            let all = pattern(0..TOTAL);
            for piece in all.chunks(1000) {
                log.write(piece).expect("write");
            }
        });
        // Every byte read must sit at its own logical offset; offsets only move forward.
        let mut at = 0;
        let mut seen = 0u64;
        loop {
            let (got, data) = read_from(&path, at, 512).expect("read");
            if data.is_empty() {
                if writer.is_finished() && at >= TOTAL {
                    break;
                }
                std::thread::yield_now();
                continue;
            }
            assert!(got >= at, "{got} < {at}");
            assert_eq!(data, pattern(got..got + data.len() as u64), "at {got}");
            at = got + data.len() as u64;
            seen += data.len() as u64;
        }
        writer.join().expect("writer");
        assert_eq!(at, TOTAL);
        assert!(seen > 0);
    }
}
