//! Removal of the agent's empty cgroups when it stops. Only empty directories go: the kernel
//! refuses `rmdir` of a cgroup with processes or children, so running workloads keep theirs.
//! Only subtrees the agent owns are walked ([`owned_subtrees`]), so a shared parent such as
//! `system.slice` keeps other services' empty cgroups.

use std::path::Path;

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Prefix of the last segment of a cgroup parent the agent owns whole (the default parent
/// is `cloudless-agent-<name>`).
pub const OWNED_PREFIX: &str = "cloudless-agent-";

/// The cgroups (relative) whose empty descendants the agent removes when it stops: the whole
/// `parent` when its last segment starts with [`OWNED_PREFIX`] (a parent made for the
/// agent: containerd's `<parent>/<namespace>/<id>` and the process runtime's `<parent>/<id>`
/// are below it); otherwise (a shared parent such as `system.slice`) only
/// `<parent>/<namespace>`, which holds nothing but the agent's containerd containers. The
/// process runtime removes its `<parent>/<id>` cgroups itself when it removes a container.
pub fn owned_subtrees(parent: &str, namespace: &str) -> Vec<String> {
    let rel = parent.trim_matches('/');
    let owned = rel
        .rsplit('/')
        .next()
        .is_some_and(|last| last.starts_with(OWNED_PREFIX) && last.len() > OWNED_PREFIX.len());
    if owned {
        vec![rel.to_owned()]
    } else if namespace.is_empty() || namespace.contains('/') {
        Vec::new()
    } else {
        vec![format!("{rel}/{namespace}")]
    }
}

/// Removes the empty cgroups of [`owned_subtrees`] of `parent` and `namespace` in every
/// hierarchy under `root`; returns how many directories were removed.
pub fn remove_owned(root: &Path, parent: &str, namespace: &str) -> usize {
    owned_subtrees(parent, namespace)
        .iter()
        .map(|sub| remove_empty(root, sub))
        .sum()
}

/// Deepest nesting walked below the parent (`<parent>/<namespace>/<id>` is two levels).
const MAX_DEPTH: usize = 8;

/// Removes the empty cgroups at and below `parent` (relative) in every hierarchy under
/// `root` (cgroup v2: `root` itself; v1: each controller directory, symlinked aliases
/// skipped). Returns how many directories were removed; errors (busy, missing) are skipped.
pub fn remove_empty(root: &Path, parent: &str) -> usize {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return 0;
    }
    let hierarchies: Vec<std::path::PathBuf> = if root.join("cgroup.controllers").is_file() {
        vec![root.to_owned()]
    } else {
        match std::fs::read_dir(root) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect(),
            Err(_) => return 0,
        }
    };
    hierarchies
        .iter()
        .map(|h| remove_tree(&h.join(rel), 0))
        .sum()
}

fn remove_tree(dir: &Path, depth: usize) -> usize {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    if !meta.is_dir() || depth > MAX_DEPTH {
        return 0;
    }
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                removed += remove_tree(&e.path(), depth + 1);
            }
        }
    }
    if std::fs::remove_dir(dir).is_ok() {
        removed += 1;
    }
    removed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_empty_directories_under_the_parent_go() {
        // A fake v1 layout on an ordinary filesystem: `rmdir` refuses non-empty
        // directories just as cgroupfs refuses busy cgroups.
        let root = tempfile::tempdir().unwrap();
        for h in ["memory", "pids"] {
            std::fs::create_dir_all(root.path().join(h).join("agent-a/ns/c1")).unwrap();
            std::fs::create_dir_all(root.path().join(h).join("other")).unwrap();
        }
        // A "running" container: its directory is not empty.
        std::fs::write(root.path().join("pids/agent-a/ns/c1/tasks"), "1\n").unwrap();
        std::os::unix::fs::symlink(root.path().join("memory"), root.path().join("memory-alias"))
            .unwrap();
        assert_eq!(remove_empty(root.path(), "../x"), 0);
        let removed = remove_empty(root.path(), "/agent-a");
        assert_eq!(removed, 3, "memory: c1, ns, agent-a");
        assert!(!root.path().join("memory/agent-a").exists());
        assert!(root.path().join("pids/agent-a/ns/c1/tasks").exists());
        assert!(root.path().join("memory/other").exists());
        assert!(root.path().join("pids/other").exists());
    }

    #[test]
    fn a_shared_parent_keeps_foreign_empty_cgroups() {
        assert_eq!(
            owned_subtrees("/cloudless-agent-edge-1", "cloudless"),
            ["cloudless-agent-edge-1"]
        );
        assert_eq!(
            owned_subtrees("/system.slice", "cloudless"),
            ["system.slice/cloudless"]
        );
        assert_eq!(
            owned_subtrees("cloudless-agent-", "ns"),
            ["cloudless-agent-/ns"],
            "the bare prefix is not an agent's parent"
        );
        assert!(owned_subtrees("system.slice", "../x").is_empty());

        let root = tempfile::tempdir().unwrap();
        // cgroup v2 layout: one hierarchy at the root.
        std::fs::write(root.path().join("cgroup.controllers"), "memory pids\n").unwrap();
        let mk = |rel: &str| std::fs::create_dir_all(root.path().join(rel)).unwrap();
        mk("system.slice/cloudless/ended");
        mk("system.slice/cloudless/running");
        std::fs::write(
            root.path()
                .join("system.slice/cloudless/running/cgroup.procs"),
            "7",
        )
        .unwrap();
        // Another service's empty cgroup next to the agent's namespace.
        mk("system.slice/foreign.service");
        assert_eq!(remove_owned(root.path(), "system.slice", "cloudless"), 1);
        assert!(!root.path().join("system.slice/cloudless/ended").exists());
        assert!(root.path().join("system.slice/cloudless/running").exists());
        assert!(root.path().join("system.slice/foreign.service").is_dir());
        // Once the last container is gone the namespace goes too, the shared parent stays.
        std::fs::remove_dir_all(root.path().join("system.slice/cloudless/running")).unwrap();
        assert_eq!(remove_owned(root.path(), "system.slice", "cloudless"), 1);
        assert!(!root.path().join("system.slice/cloudless").exists());
        assert!(root.path().join("system.slice/foreign.service").is_dir());

        // An agent-made parent goes whole, the process runtime's children included.
        mk("cloudless-agent-edge-1/proc-1");
        mk("cloudless-agent-edge-1/cloudless/c1");
        assert_eq!(
            remove_owned(root.path(), "cloudless-agent-edge-1", "cloudless"),
            4
        );
        assert!(!root.path().join("cloudless-agent-edge-1").exists());
        assert!(root.path().join("system.slice/foreign.service").is_dir());
    }
}
