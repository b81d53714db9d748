//! A custom `Runtime` chained before another one with `ChainRuntime`.
//!
//! `EchoRuntime` handles only `echo://<message>` images: "running" one writes the message to
//! the container's log and nothing else happens on the host. Every other image gets
//! `Support::No`, so the chain hands it to the next runtime (a `FakeRuntime` standing in for
//! containerd). The example routes one spec of each kind through the chain, prints who ran
//! what, and fails if either spec went to the wrong runtime.
//!
//! `cargo run --example custom_runtime`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use async_trait::async_trait;
use cloudless::core::ids::{ReplicaId, WorkloadId};
use cloudless::core::node::Platform;
use cloudless::core::runtime::{
    ContainerId, ContainerSpec, ContainerState, ContainerStats, ContainerStatus, ExecOutput,
    ImageInfo, LogChunk, Runtime, RuntimeError, RuntimeEvent, Support,
};
use cloudless::runtime::{ChainRuntime, FakeRuntime};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

const SCHEME: &str = "echo://";

/// One echo container: its status and its log.
struct EchoContainer {
    status: ContainerStatus,
    message: String,
    log: Vec<u8>,
}

/// Runs `echo://<message>` images by logging the message; refuses everything else.
#[derive(Clone)]
struct EchoRuntime {
    containers: Arc<Mutex<BTreeMap<ContainerId, EchoContainer>>>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl EchoRuntime {
    fn new() -> Self {
        Self {
            containers: Arc::default(),
            events: broadcast::channel(64).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ContainerId, EchoContainer>> {
        // A poisoned lock only means another task panicked mid-update; the map is still usable.
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with<T>(
        &self,
        id: &ContainerId,
        f: impl FnOnce(&mut EchoContainer) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        let mut map = self.lock();
        let c = map
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        f(c)
    }

    /// Marks a running container exited and tells every open event stream.
    fn exit(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let exited = self.with(id, |c| {
            if c.status.state != ContainerState::Running {
                return Ok(false);
            }
            c.status.state = ContainerState::Exited { code: 0 };
            c.status.finished_at_ms = Some(now_ms());
            Ok(true)
        })?;
        if exited {
            // No receiver is not an error: nobody is listening yet.
            let _ = self.events.send(RuntimeEvent::Exited {
                id: id.clone(),
                code: 0,
            });
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn message_of(image: &str) -> Option<&str> {
    image.strip_prefix(SCHEME)
}

#[async_trait]
impl Runtime for EchoRuntime {
    fn name(&self) -> &str {
        "echo"
    }

    fn supports(&self, spec: &ContainerSpec) -> Support {
        match message_of(&spec.image) {
            Some(_) => Support::Yes,
            None => Support::No(format!("not an {SCHEME} image")),
        }
    }

    async fn pull_image(
        &self,
        image: &str,
        _platform: Option<&Platform>,
    ) -> Result<ImageInfo, RuntimeError> {
        let message =
            message_of(image).ok_or_else(|| RuntimeError::Unsupported(image.to_owned()))?;
        Ok(ImageInfo {
            reference: image.to_owned(),
            digest: "sha256:".to_owned() + &"0".repeat(64),
            size: message.len() as u64,
        })
    }

    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
        Err(RuntimeError::Unsupported(format!(
            "echo images need no archive ({})",
            archive.display()
        )))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let message = message_of(&spec.image)
            .ok_or_else(|| RuntimeError::Unsupported(spec.image.clone()))?
            .to_owned();
        let mut map = self.lock();
        if map.contains_key(&spec.id) {
            return Err(RuntimeError::AlreadyExists(spec.id.clone()));
        }
        map.insert(
            spec.id.clone(),
            EchoContainer {
                status: ContainerStatus {
                    id: spec.id.clone(),
                    state: ContainerState::Created,
                    address: None,
                    started_at_ms: None,
                    finished_at_ms: None,
                    oom_killed: false,
                },
                message,
                log: Vec::new(),
            },
        );
        Ok(())
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.with(id, |c| {
            if c.status.state != ContainerState::Created {
                return Err(RuntimeError::InvalidState(format!(
                    "{id} is {:?}, not Created",
                    c.status.state
                )));
            }
            c.status.state = ContainerState::Running;
            c.status.started_at_ms = Some(now_ms());
            c.log.extend_from_slice(c.message.as_bytes());
            c.log.push(b'\n');
            Ok(())
        })
    }

    async fn stop(&self, id: &ContainerId, _grace_ms: u64) -> Result<(), RuntimeError> {
        self.exit(id)
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.exit(id)?;
        self.lock().remove(id);
        Ok(())
    }

    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.with(id, |c| Ok(c.status.clone()))
    }

    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        Ok(self.lock().values().map(|c| c.status.clone()).collect())
    }

    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError> {
        let rx = self.events.subscribe();
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed())
    }

    async fn logs(
        &self,
        id: &ContainerId,
        from: u64,
        _follow: bool,
    ) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
        // An echo container has written everything it ever will once started.
        let log = self.with(id, |c| Ok(c.log.clone()))?;
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(log.len());
        let rest = log[start..].to_vec();
        let chunks = if rest.is_empty() {
            Vec::new()
        } else {
            vec![Ok(LogChunk {
                offset: from,
                data: rest.into(),
            })]
        };
        Ok(futures::stream::iter(chunks).boxed())
    }

    async fn exec(
        &self,
        id: &ContainerId,
        _command: &[String],
        _timeout_ms: u64,
    ) -> Result<ExecOutput, RuntimeError> {
        self.with(id, |c| {
            if c.status.state != ContainerState::Running {
                return Err(RuntimeError::InvalidState(format!("{id} is not running")));
            }
            Ok(ExecOutput {
                exit_code: 0,
                stdout: c.log.clone().into(),
                stderr: Vec::new().into(),
            })
        })
    }

    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        self.with(id, |_| Ok(ContainerStats::default()))
    }
}

fn spec(replica: u64, image: &str) -> ContainerSpec {
    ContainerSpec {
        id: ContainerId::for_replica(ReplicaId(replica), 0),
        workload: WorkloadId(replica),
        replica: ReplicaId(replica),
        attempt: 0,
        image: image.to_owned(),
        platform: None,
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        working_dir: None,
        requests: Default::default(),
        limits: Default::default(),
        security: Default::default(),
        ports: Vec::new(),
        volumes: Vec::new(),
        labels: Default::default(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let echo = EchoRuntime::new();
    let fake = FakeRuntime::new();
    // Narrow runtimes first: echo takes its own images, the rest fall through to `fake`.
    let chain = ChainRuntime::new(vec![Arc::new(echo.clone()), Arc::new(fake.clone())]);
    println!("runtime: {}", chain.name());

    let specs = [
        spec(1, "echo://hello from a custom runtime"),
        spec(2, "docker.io/library/nginx:1.27"),
    ];
    for s in &specs {
        println!(
            "{} image {:?}: echo says {:?}",
            s.id,
            s.image,
            echo.supports(s)
        );
        chain
            .pull_image(&s.image, None)
            .await
            .with_context(|| format!("pulling {}", s.image))?;
        chain
            .create(s)
            .await
            .with_context(|| format!("creating {}", s.id))?;
        chain
            .start(&s.id)
            .await
            .with_context(|| format!("starting {}", s.id))?;
        let status = chain.status(&s.id).await?;
        println!("  -> {:?} through {}", status.state, chain.name());
        ensure!(
            status.state == ContainerState::Running,
            "{} is {:?}, not Running",
            s.id,
            status.state
        );
    }

    let in_echo: Vec<ContainerId> = echo.list().await?.into_iter().map(|c| c.id).collect();
    let in_fake: Vec<ContainerId> = fake.list().await?.into_iter().map(|c| c.id).collect();
    println!("echo holds {in_echo:?}; fake holds {in_fake:?}");
    ensure!(
        in_echo == vec![specs[0].id.clone()],
        "the echo:// spec was not routed to the echo runtime"
    );
    ensure!(
        in_fake == vec![specs[1].id.clone()],
        "the OCI spec was not routed past echo to the fake runtime"
    );

    // Later calls on a container go to the runtime that holds it.
    let mut logs = chain.logs(&specs[0].id, 0, false).await?;
    let mut text = Vec::new();
    while let Some(chunk) = logs.next().await {
        text.extend_from_slice(&chunk?.data);
    }
    let text = String::from_utf8_lossy(&text);
    println!("{} log via the chain: {:?}", specs[0].id, text.trim_end());
    ensure!(
        text.trim_end() == "hello from a custom runtime",
        "unexpected echo log {text:?}"
    );

    for s in &specs {
        chain.remove(&s.id).await?;
    }
    ensure!(
        chain.list().await?.is_empty(),
        "containers left after remove"
    );
    println!("removed both; chain lists no containers");
    Ok(())
}
