//! One-shot exec in a running container, and resource usage from the container's cgroup.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::runtime::{
    ContainerId, ContainerState, ContainerStats, ExecOutput, RuntimeError,
};
use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, KillRequest, StartRequest, WaitRequest,
};
use oci_spec::runtime::Spec;
use tokio::io::AsyncReadExt;

use super::client::{Client, container_error, status_error};
use super::{Inner, container};

/// The type URL containerd expects for an OCI process spec.
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// Most output bytes kept per stream of an exec.
const MAX_OUTPUT: u64 = 16 << 20;
/// Exec ids are unique within this process.
static EXEC_SEQ: AtomicU64 = AtomicU64::new(0);

async fn read_capped(path: &Path) -> Bytes {
    let mut buf = Vec::new();
    if let Ok(file) = tokio::fs::File::open(path).await {
        let _ = file.take(MAX_OUTPUT).read_to_end(&mut buf).await;
    }
    Bytes::from(buf)
}

async fn cleanup(client: &Client, id: &str, exec_id: &str, files: &[PathBuf]) {
    let _ = client
        .tasks()
        .delete_process(client.req(DeleteProcessRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        }))
        .await;
    for f in files {
        let _ = tokio::fs::remove_file(f).await;
    }
}

/// Runs `command` in the running container `id` with the container's process settings (user,
/// env, capabilities, no-new-privileges); output goes to files the shim writes, read after the
/// process is deleted (which flushes them).
pub(crate) async fn exec(
    inner: &Arc<Inner>,
    id: &ContainerId,
    command: &[String],
    timeout_ms: u64,
) -> Result<ExecOutput, RuntimeError> {
    let c = container::get(inner, id).await?;
    let task = container::task_of(inner, id.as_str()).await?;
    if container::status_of(inner, &c, task.as_ref()).state != ContainerState::Running {
        return Err(RuntimeError::InvalidState(format!(
            "exec in {id}: not running"
        )));
    }
    if command.is_empty() || command[0].is_empty() || command.iter().any(|a| a.contains('\0')) {
        return Err(RuntimeError::InvalidSpec("exec needs a command".to_owned()));
    }
    let spec: Spec = c
        .spec
        .as_ref()
        .and_then(|any| serde_json::from_slice(&any.value).ok())
        .ok_or_else(|| RuntimeError::Other(format!("{id} has no readable OCI spec").into()))?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(command.to_vec()));
    process.set_terminal(Some(false));
    let process_json =
        serde_json::to_vec(&process).map_err(|e| RuntimeError::Other(Box::new(e)))?;

    let n = EXEC_SEQ.fetch_add(1, Ordering::Relaxed);
    let exec_id = format!("exec-{}-{n}", std::process::id());
    let dir = inner.cfg.data_dir.join("exec").join(&inner.cfg.namespace);
    super::private_dir(&dir).await?;
    let out = dir.join(format!("{id}.{exec_id}.out"));
    let err = dir.join(format!("{id}.{exec_id}.err"));
    let files = [out.clone(), err.clone()];
    let client = &inner.client;
    client
        .tasks()
        .exec(client.req(ExecProcessRequest {
            container_id: id.as_str().to_owned(),
            stdin: String::new(),
            stdout: format!("file://{}", out.display()),
            stderr: format!("file://{}", err.display()),
            terminal: false,
            spec: Some(prost_types::Any {
                type_url: PROCESS_TYPE_URL.to_owned(),
                value: process_json,
            }),
            exec_id: exec_id.clone(),
        }))
        .await
        .map_err(|s| container_error(s, "exec", id))?;
    let started = client
        .tasks()
        .start(client.req(StartRequest {
            container_id: id.as_str().to_owned(),
            exec_id: exec_id.clone(),
        }))
        .await;
    if let Err(s) = started {
        cleanup(client, id.as_str(), &exec_id, &files).await;
        return Err(RuntimeError::InvalidSpec(format!(
            "exec in {id} failed to start: {}",
            s.message()
        )));
    }
    let mut tasks = client.tasks();
    let wait = tasks.wait(client.req(WaitRequest {
        container_id: id.as_str().to_owned(),
        exec_id: exec_id.clone(),
    }));
    let waited = tokio::time::timeout(Duration::from_millis(timeout_ms), wait).await;
    let code = match waited {
        Ok(Ok(resp)) => resp.into_inner().exit_status as i32,
        Ok(Err(s)) => {
            cleanup(client, id.as_str(), &exec_id, &files).await;
            return Err(status_error(s, "exec wait"));
        }
        Err(_) => {
            let _ = client
                .tasks()
                .kill(client.req(KillRequest {
                    container_id: id.as_str().to_owned(),
                    exec_id: exec_id.clone(),
                    signal: 9,
                    all: false,
                }))
                .await;
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                client.tasks().wait(client.req(WaitRequest {
                    container_id: id.as_str().to_owned(),
                    exec_id: exec_id.clone(),
                })),
            )
            .await;
            cleanup(client, id.as_str(), &exec_id, &files).await;
            return Err(RuntimeError::Timeout);
        }
    };
    // Deleting the process closes its IO, so the files are complete afterwards.
    let _ = client
        .tasks()
        .delete_process(client.req(DeleteProcessRequest {
            container_id: id.as_str().to_owned(),
            exec_id: exec_id.clone(),
        }))
        .await;
    let output = ExecOutput {
        exit_code: code,
        stdout: read_capped(&out).await,
        stderr: read_capped(&err).await,
    };
    for f in &files {
        let _ = tokio::fs::remove_file(f).await;
    }
    Ok(output)
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Usage of the cgroup at `path` (relative, e.g. `cloudless/ns/id`) under the cgroup
/// filesystem mounted at `root`; v1 when a `memory` controller directory exists, else v2.
/// Counters that cannot be read are 0.
pub(crate) fn cgroup_stats(root: &Path, path: &str) -> ContainerStats {
    let rel = path.trim_start_matches('/');
    if root.join("memory").is_dir() {
        ContainerStats {
            cpu_usage_ns: read_u64(&root.join("cpuacct").join(rel).join("cpuacct.usage"))
                .unwrap_or(0),
            memory_bytes: read_u64(&root.join("memory").join(rel).join("memory.usage_in_bytes"))
                .unwrap_or(0),
            pids: read_u64(&root.join("pids").join(rel).join("pids.current")).unwrap_or(0),
        }
    } else {
        let dir = root.join(rel);
        let usage_usec = std::fs::read_to_string(dir.join("cpu.stat"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("usage_usec ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
            })
            .unwrap_or(0);
        ContainerStats {
            cpu_usage_ns: usage_usec.saturating_mul(1000),
            memory_bytes: read_u64(&dir.join("memory.current")).unwrap_or(0),
            pids: read_u64(&dir.join("pids.current")).unwrap_or(0),
        }
    }
}

/// Where the host's cgroup filesystem is mounted.
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How many processes of the cgroup at `path` the OOM killer ended (v1 `memory.oom_control`,
/// v2 `memory.events`); 0 when unknown.
pub(crate) fn oom_kills(root: &Path, path: &str) -> u64 {
    let rel = path.trim_start_matches('/');
    let file = if root.join("memory").is_dir() {
        root.join("memory").join(rel).join("memory.oom_control")
    } else {
        root.join(rel).join("memory.events")
    };
    std::fs::read_to_string(file)
        .map(|s| crate::process::oom_kill_count(&s))
        .unwrap_or(0)
}

/// The container's cgroup path.
pub(crate) fn cgroup_path(inner: &Inner, id: &str) -> String {
    format!("{}/{}/{id}", inner.cfg.cgroup_parent, inner.cfg.namespace)
}

/// Resource usage of `id` from its cgroup (zero once it is not running).
pub(crate) async fn stats(
    inner: &Arc<Inner>,
    id: &ContainerId,
) -> Result<ContainerStats, RuntimeError> {
    let st = container::status(inner, id).await?;
    if st.state != ContainerState::Running {
        return Ok(ContainerStats::default());
    }
    let path = cgroup_path(inner, id.as_str());
    tokio::task::spawn_blocking(move || cgroup_stats(Path::new(CGROUP_ROOT), &path))
        .await
        .map_err(|e| RuntimeError::Other(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    #[test]
    fn reads_cgroup_v1_layout() {
        let root = std::env::temp_dir().join(format!("cld-cg1-{}", std::process::id()));
        write(
            &root,
            "memory/cloudless/ns/c/memory.usage_in_bytes",
            "4096\n",
        );
        write(&root, "cpuacct/cloudless/ns/c/cpuacct.usage", "123456\n");
        write(&root, "pids/cloudless/ns/c/pids.current", "3\n");
        let s = cgroup_stats(&root, "/cloudless/ns/c");
        write(
            &root,
            "memory/cloudless/ns/c/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        assert_eq!(oom_kills(&root, "/cloudless/ns/c"), 2);
        assert_eq!(
            s,
            ContainerStats {
                cpu_usage_ns: 123_456,
                memory_bytes: 4096,
                pids: 3
            }
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn reads_cgroup_v2_layout() {
        let root = std::env::temp_dir().join(format!("cld-cg2-{}", std::process::id()));
        write(
            &root,
            "cloudless/ns/c/cpu.stat",
            "usage_usec 250\nuser_usec 200\n",
        );
        write(&root, "cloudless/ns/c/memory.current", "8192\n");
        write(&root, "cloudless/ns/c/pids.current", "2\n");
        let s = cgroup_stats(&root, "/cloudless/ns/c");
        assert_eq!(
            s,
            ContainerStats {
                cpu_usage_ns: 250_000,
                memory_bytes: 8192,
                pids: 2
            }
        );
        assert_eq!(cgroup_stats(&root, "/missing"), ContainerStats::default());
        write(
            &root,
            "cloudless/ns/c/memory.events",
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        );
        assert_eq!(oom_kills(&root, "/cloudless/ns/c"), 1);
        assert_eq!(oom_kills(&root, "/missing"), 0);
        let _ = std::fs::remove_dir_all(&root);
    }
}
