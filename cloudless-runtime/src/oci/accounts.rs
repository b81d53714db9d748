//! User and group names of an image, from its `/etc/passwd` and `/etc/group`, so an image whose
//! config says `User: app` or `app:staff` runs as the right numeric ids (and `runAsNonRoot` can
//! check them). Parsing is lenient and bounded: malformed lines are skipped, files larger than
//! [`MAX_ACCOUNTS_FILE`] are refused by the reader, nothing here panics.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

/// Largest `/etc/passwd` or `/etc/group` read from an image.
pub const MAX_ACCOUNTS_FILE: u64 = 1 << 20;

/// The names an image defines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// User name → (uid, primary gid).
    users: BTreeMap<String, (u32, u32)>,
    /// Group name → gid.
    groups: BTreeMap<String, u32>,
}

/// `field` as an id: decimal digits only.
fn id(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

impl Accounts {
    /// Parses `passwd` (`name:password:uid:gid:...`) and `group` (`name:password:gid:...`)
    /// content. Comments, blank and malformed lines are skipped; the first entry of a name wins
    /// (as in libc's lookups).
    pub fn parse(passwd: &str, group: &str) -> Self {
        let mut users = BTreeMap::new();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
                continue;
            }
            if let (Some(uid), Some(gid)) = (id(f[2]), id(f[3])) {
                users.entry(f[0].to_owned()).or_insert((uid, gid));
            }
        }
        let mut groups = BTreeMap::new();
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 || f[0].is_empty() || f[0].starts_with('#') {
                continue;
            }
            if let Some(gid) = id(f[2]) {
                groups.entry(f[0].to_owned()).or_insert(gid);
            }
        }
        Self { users, groups }
    }

    /// The uid and primary gid of user `name`.
    pub fn user(&self, name: &str) -> Option<(u32, u32)> {
        self.users.get(name).copied()
    }

    /// The gid of group `name`.
    pub fn group(&self, name: &str) -> Option<u32> {
        self.groups.get(name).copied()
    }
}

/// Reads `etc/<file>` from the first of `layers` (top-most first, as overlayfs stacks them)
/// that has an entry for it: a regular file is read (at most [`MAX_ACCOUNTS_FILE`] bytes), a
/// whiteout (character device), symlink or directory counts as no file, and so does an `etc`
/// that is not a real directory (symlinks are never followed: they would point into the host).
fn read_layered(layers: &[PathBuf], file: &str) -> Result<String, String> {
    for layer in layers {
        let etc = layer.join("etc");
        match std::fs::symlink_metadata(&etc) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(String::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", etc.display())),
        }
        let path = etc.join(file);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("/etc/{file}: {e}")),
        };
        if !meta.is_file() {
            return Ok(String::new());
        }
        if meta.len() > MAX_ACCOUNTS_FILE {
            return Err(format!(
                "/etc/{file} is {} bytes, more than the {MAX_ACCOUNTS_FILE} read",
                meta.len()
            ));
        }
        let mut buf = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_ACCOUNTS_FILE).read_to_end(&mut buf))
            .map_err(|e| format!("/etc/{file}: {e}"))?;
        return Ok(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(String::new())
}

impl Accounts {
    /// Reads `/etc/passwd` and `/etc/group` of a root filesystem made of `layers` (directories,
    /// top-most first); a missing file defines no names. Errors name the file.
    pub fn read_layers(layers: &[PathBuf]) -> Result<Self, String> {
        let passwd = read_layered(layers, "passwd")?;
        let group = read_layered(layers, "group")?;
        Ok(Self::parse(&passwd, &group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_top_most_layer_and_never_follows_links() {
        let tmp = tempfile::tempdir().expect("tmp");
        let layer = |name: &str| {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(d.join("etc")).expect("mkdir");
            d
        };
        let (top, mid, bottom) = (layer("top"), layer("mid"), layer("bottom"));
        std::fs::write(top.join("etc/group"), "staff:x:50:\n").expect("write");
        std::fs::write(mid.join("etc/passwd"), "app:x:10:11::/:\n").expect("write");
        std::fs::write(bottom.join("etc/passwd"), "old:x:1:1::/:\n").expect("write");
        std::fs::write(bottom.join("etc/group"), "oldgroup:x:1:\n").expect("write");
        let a = Accounts::read_layers(&[top.clone(), mid.clone(), bottom.clone()]).expect("read");
        assert_eq!(a.user("app"), Some((10, 11)));
        assert_eq!(a.user("old"), None, "hidden by the layer above");
        assert_eq!(a.group("staff"), Some(50));

        // A symlinked passwd (into the host) is not followed; nor is a symlinked etc.
        std::os::unix::fs::symlink("/etc/passwd", top.join("etc/passwd")).expect("symlink");
        let a = Accounts::read_layers(&[top.clone(), mid.clone()]).expect("read");
        assert_eq!(a.user("root"), None);
        assert_eq!(a.user("app"), None, "the link hides the lower file");
        let linked = tmp.path().join("linked");
        std::fs::create_dir_all(&linked).expect("mkdir");
        std::os::unix::fs::symlink("/etc", linked.join("etc")).expect("symlink");
        assert_eq!(
            Accounts::read_layers(&[linked, mid.clone()]).expect("read"),
            Accounts::default()
        );

        // Too large: refused with the file named.
        let big = layer("big");
        let f = std::fs::File::create(big.join("etc/passwd")).expect("create");
        f.set_len(MAX_ACCOUNTS_FILE + 1).expect("grow");
        let e = Accounts::read_layers(&[big]).expect_err("too large");
        assert!(e.contains("/etc/passwd"), "{e}");
        assert_eq!(
            Accounts::read_layers(&[tmp.path().join("none")]).expect("no layers"),
            Accounts::default()
        );
    }

    #[test]
    fn parses_passwd_and_group() {
        let a = Accounts::parse(
            "root:x:0:0:root:/root:/bin/sh\n\
             # a comment\n\
             \n\
             app:x:1234:2345:App:/home/app:/bin/sh\n\
             short:x:1\n\
             badid:x:12a:1:::\n\
             neg:x:-1:1:::\n\
             huge:x:99999999999:1:::\n\
             :x:5:5:::\n\
             app:x:999:999:dup:/:/bin/false\n\
             min:x:7:8",
            "root:x:0:\nstaff:x:3456:app,other\nbroken\nnogid:x::\nstaff:x:1:\n",
        );
        assert_eq!(a.user("root"), Some((0, 0)));
        assert_eq!(a.user("app"), Some((1234, 2345)), "the first entry wins");
        assert_eq!(a.user("min"), Some((7, 8)), "four fields are enough");
        for missing in ["short", "badid", "neg", "huge", "", "nobody", "# a comment"] {
            assert_eq!(a.user(missing), None, "{missing:?}");
        }
        assert_eq!(a.group("staff"), Some(3456));
        assert_eq!(a.group("root"), Some(0));
        assert_eq!(a.group("broken"), None);
        assert_eq!(a.group("nogid"), None);
    }

    #[test]
    fn binary_and_empty_input_is_harmless() {
        let a = Accounts::parse("\u{0}\u{fffd}::::\n:::\n", "");
        assert_eq!(a, Accounts::default());
        let long = "x".repeat(100_000) + ":x:1:1\n";
        assert_eq!(
            Accounts::parse(&long, "").user(&"x".repeat(100_000)),
            Some((1, 1))
        );
    }
}
