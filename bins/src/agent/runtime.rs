//! The agent's container runtime: containerd (with the process runtime chained behind it for
//! `process://` images) or the process runtime alone; the containerd settings (registries, log
//! cap), the helper binaries next to the agent, and the import of `images:` at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use cloudless_core::runtime::Runtime;
use cloudless_runtime::containerd::{BridgeNetwork, LogLimit, load_agent_registries};
use cloudless_runtime::process::{ProcessConfig, ProcessRuntime};
use cloudless_runtime::{ChainRuntime, ContainerdConfig, ContainerdRuntime};

use super::{AgentSettings, LOGGER_NAME, RuntimeKind, SHIM_NAME};

/// Finds a helper binary: the configured path, else one of `names` next to the agent's
/// executable, else `fallback`.
fn helper_path(given: Option<&Path>, key: &str, names: &[&str], fallback: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return std::path::absolute(p).map_err(|e| anyhow!("{key}: {e}"));
    }
    let exe = std::env::current_exe().context("locating the agent executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("the agent executable has no directory"))?;
    for name in names {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Ok(PathBuf::from(fallback))
}

/// The log cap of containerd containers: `None` when `log_max_bytes` is 0; an error naming
/// `container_logger` when the logger binary is nowhere.
fn log_limit(s: &AgentSettings) -> Result<Option<LogLimit>> {
    if s.log_max_bytes == 0 {
        return Ok(None);
    }
    let logger = helper_path(
        s.container_logger.as_deref(),
        "container_logger",
        &[LOGGER_NAME, "cloudless-logger"],
        "/usr/libexec/cloudless/cloudless-logger",
    )?;
    if !logger.is_file() {
        bail!(
            "container_logger: {} does not exist (install {LOGGER_NAME} next to the agent, \
             give --container-logger, or set log_max_bytes: 0 for uncapped logs)",
            logger.display()
        );
    }
    Ok(Some(LogLimit {
        logger,
        max_bytes: s.log_max_bytes,
    }))
}

fn shim_path(s: &AgentSettings) -> Result<PathBuf> {
    helper_path(
        s.process_shim.as_deref(),
        "process_shim",
        &[SHIM_NAME, "cloudless-process-shim"],
        "/usr/libexec/cloudless/cloudless-process-shim",
    )
}

async fn process_runtime(s: &AgentSettings) -> Result<ProcessRuntime> {
    let mut cfg = ProcessConfig::new(s.data_dir.join("process"), shim_path(s)?);
    cfg.cgroup_parent = s.cgroup_parent.clone();
    cfg.validate().map_err(|e| anyhow!("{e}"))?;
    ProcessRuntime::open(cfg)
        .await
        .map_err(|e| anyhow!("process runtime: {e}"))
}

/// The agent's runtime, and the containerd one on its own (for the image collector).
pub(super) async fn runtime(
    s: &AgentSettings,
) -> Result<(Arc<dyn Runtime>, Option<ContainerdRuntime>)> {
    match s.runtime {
        RuntimeKind::Process => Ok((Arc::new(process_runtime(s).await?), None)),
        RuntimeKind::Containerd => {
            let cfg = containerd_config(s)?;
            let socket = cfg.socket.clone();
            let c = ContainerdRuntime::connect(cfg).await.with_context(|| {
                format!("containerd_socket: connecting to {}", socket.display())
            })?;
            import_images(&c, &s.images, &s.namespace).await?;
            match process_runtime(s).await {
                Ok(p) => Ok((
                    Arc::new(ChainRuntime::new(vec![Arc::new(c.clone()), Arc::new(p)])),
                    Some(c),
                )),
                Err(e) => {
                    tracing::info!("process runtime fallback unavailable: {e:#}");
                    Ok((Arc::new(c.clone()), Some(c)))
                }
            }
        }
    }
}

/// The containerd runtime's settings: socket, namespace, bridge, cgroup parent, registries
/// (`<data_dir>/registries.yaml`, refused when group/world-accessible) and the log cap.
fn containerd_config(s: &AgentSettings) -> Result<ContainerdConfig> {
    let socket = s
        .containerd_socket
        .clone()
        .ok_or_else(|| anyhow!("containerd_socket: required"))?;
    let mut cfg = ContainerdConfig::new(&socket, &s.namespace, s.data_dir.join("containerd"));
    cfg.cgroup_parent = format!("/{}", s.cgroup_parent);
    if let Some(subnet) = &s.subnet {
        cfg.bridge = Some(BridgeNetwork::new(&s.bridge, subnet));
    }
    cfg.registries = load_agent_registries(&s.data_dir).map_err(|e| anyhow!("registries: {e}"))?;
    if !cfg.registries.is_empty() {
        tracing::info!(
            registries = ?cfg.registries.keys().collect::<Vec<_>>(),
            "registry settings loaded"
        );
    }
    cfg.log_limit = log_limit(s)?;
    Ok(cfg)
}

/// Imports every archive of `images` into the runtime's namespace; errors name the entry.
async fn import_images(rt: &ContainerdRuntime, images: &[PathBuf], namespace: &str) -> Result<()> {
    for (i, archive) in images.iter().enumerate() {
        if !archive.is_file() {
            bail!(
                "images[{i}]: {} is not a file (an OCI image layout tarball)",
                archive.display()
            );
        }
        let started = std::time::Instant::now();
        let imported = rt
            .import_image(archive)
            .await
            .map_err(|e| anyhow!("images[{i}]: importing {}: {e}", archive.display()))?;
        if imported.is_empty() {
            bail!(
                "images[{i}]: {} names no image (its index.json needs an \
                 io.containerd.image.name or org.opencontainers.image.ref.name annotation)",
                archive.display()
            );
        }
        for image in imported {
            tracing::info!(
                archive = %archive.display(),
                image = %image.reference,
                digest = %image.digest,
                namespace,
                ms = started.elapsed().as_millis() as u64,
                "image imported"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::agent::AgentFlags;

    #[test]
    fn containerd_settings_take_private_registries_and_the_log_cap() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(&data).unwrap();
        let logger = dir.path().join("logger");
        std::fs::write(&logger, "").unwrap();
        let flags = AgentFlags {
            data_dir: Some(data.clone()),
            containerd_socket: Some("/run/c.sock".into()),
            container_logger: Some(logger.clone()),
            log_max_bytes: Some(1 << 20),
            ..AgentFlags::default()
        };
        let s = AgentSettings::resolve(flags.clone()).unwrap();
        // No registries file: every registry over HTTPS, anonymously.
        let cfg = containerd_config(&s).unwrap();
        assert!(cfg.registries.is_empty());
        assert_eq!(
            cfg.log_limit,
            Some(LogLimit {
                logger: logger.clone(),
                max_bytes: 1 << 20
            })
        );
        let regs = data.join("registries.yaml");
        std::fs::write(
            &regs,
            "registries:\n  registry.example:\n    username: robot\n    password: pw\n  \
             127.0.0.1:5000:\n    insecure_http: true\n",
        )
        .unwrap();
        std::fs::set_permissions(&regs, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = containerd_config(&s).unwrap_err().to_string();
        assert!(e.starts_with("registries:"), "{e}");
        std::fs::set_permissions(&regs, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = containerd_config(&s).unwrap();
        assert!(cfg.registries["127.0.0.1:5000"].insecure_http);
        assert!(cfg.registries["registry.example"].credentials.is_some());
        // A missing logger is named; log_max_bytes 0 needs none.
        let missing = AgentSettings::resolve(AgentFlags {
            container_logger: Some(dir.path().join("nope")),
            ..flags.clone()
        })
        .unwrap();
        let e = containerd_config(&missing).unwrap_err().to_string();
        assert!(e.starts_with("container_logger:"), "{e}");
        let uncapped = AgentSettings::resolve(AgentFlags {
            container_logger: Some(dir.path().join("nope")),
            log_max_bytes: Some(0),
            ..flags
        })
        .unwrap();
        assert_eq!(containerd_config(&uncapped).unwrap().log_limit, None);
    }
}
