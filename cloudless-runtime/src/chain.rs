//! [`ChainRuntime`]: several runtimes behind one [`Runtime`]. A spec goes to the first runtime
//! whose `supports` says `Yes` (and whose `create` does not answer `Unsupported`); every later
//! call on that container goes to the runtime that holds it.
//!
//! ```text
//!  create(spec) ─▶ process: No("not a process:// image") ─▶ containerd: Yes ─▶ create there
//!  start/stop/remove/status/logs/exec/stats(id) ─▶ the owner (remembered; asked for by
//!                                                  `status` on each runtime after a restart)
//!  list ─▶ all, by id        events ─▶ all streams merged
//!  pull_image(image) ─▶ the first runtime that supports a spec with that image and does not
//!                       answer Unsupported
//! ```
//!
//! Order matters: put narrow runtimes first. The process runtime takes only `process://`
//! images, so `[process, containerd]` sends everything else on to containerd.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cloudless_core::ids::{ReplicaId, WorkloadId};
use cloudless_core::node::Platform;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerStats, ContainerStatus, ExecOutput, ImageInfo, LogChunk,
    Runtime, RuntimeError, RuntimeEvent, Support,
};
use futures::stream::BoxStream;

/// Runtimes tried in order. Cheap to clone; clones share the owner table.
#[derive(Clone)]
pub struct ChainRuntime {
    runtimes: Arc<[Arc<dyn Runtime>]>,
    name: Arc<str>,
    /// Which runtime (index) holds each container this chain created or found.
    owners: Arc<Mutex<BTreeMap<ContainerId, usize>>>,
}

impl std::fmt::Debug for ChainRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRuntime")
            .field("name", &self.name)
            .finish()
    }
}

/// A spec that differs from an empty one only in its image: asks a runtime about an image.
fn image_probe(image: &str, platform: Option<&Platform>) -> ContainerSpec {
    ContainerSpec {
        id: ContainerId(String::new()),
        workload: WorkloadId(0),
        replica: ReplicaId(0),
        attempt: 0,
        image: image.to_owned(),
        platform: platform.cloned(),
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

impl ChainRuntime {
    /// A chain over `runtimes`, asked in this order. Its name is `chain(<names>)`.
    pub fn new(runtimes: Vec<Arc<dyn Runtime>>) -> Self {
        let names: Vec<&str> = runtimes.iter().map(|r| r.name()).collect();
        let name = format!("chain({})", names.join(","));
        Self {
            runtimes: runtimes.into(),
            name: name.into(),
            owners: Arc::default(),
        }
    }

    /// The runtimes, in order.
    pub fn runtimes(&self) -> &[Arc<dyn Runtime>] {
        &self.runtimes
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, BTreeMap<ContainerId, usize>> {
        // A poisoned lock only means a panic between map updates; the map stays usable.
        match self.owners.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn reasons(reasons: &[(usize, String)], runtimes: &[Arc<dyn Runtime>]) -> String {
        if runtimes.is_empty() {
            return "the runtime chain is empty".to_owned();
        }
        reasons
            .iter()
            .map(|(i, r)| format!("{}: {r}", runtimes[*i].name()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The runtime holding `id`: remembered, or found by asking each runtime's `status`.
    /// `NotFound` when none has it; another runtime's error when one could not answer.
    async fn locate(&self, id: &ContainerId) -> Result<usize, RuntimeError> {
        if let Some(i) = self.owners().get(id).copied() {
            return Ok(i);
        }
        let mut failure = None;
        for (i, rt) in self.runtimes.iter().enumerate() {
            match rt.status(id).await {
                Ok(_) => {
                    self.owners().insert(id.clone(), i);
                    return Ok(i);
                }
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        Err(failure.unwrap_or_else(|| RuntimeError::NotFound(id.clone())))
    }

    /// The name of the runtime holding `id`.
    pub async fn owner(&self, id: &ContainerId) -> Result<&str, RuntimeError> {
        let i = self.locate(id).await?;
        Ok(self.runtimes[i].name())
    }

    /// Runs `op` on the owner of `id`; forgets the owner when it no longer knows `id`.
    async fn routed<'a, T, F>(&'a self, id: &ContainerId, op: F) -> Result<T, RuntimeError>
    where
        F: FnOnce(&'a Arc<dyn Runtime>) -> futures::future::BoxFuture<'a, Result<T, RuntimeError>>,
    {
        let i = self.locate(id).await?;
        let result = op(&self.runtimes[i]).await;
        if matches!(result, Err(RuntimeError::NotFound(_))) {
            self.owners().remove(id);
        }
        result
    }
}

#[async_trait]
impl Runtime for ChainRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, spec: &ContainerSpec) -> Support {
        let mut reasons = Vec::new();
        for (i, rt) in self.runtimes.iter().enumerate() {
            match rt.supports(spec) {
                Support::Yes => return Support::Yes,
                Support::No(r) => reasons.push((i, r)),
            }
        }
        Support::No(Self::reasons(&reasons, &self.runtimes))
    }

    async fn pull_image(
        &self,
        image: &str,
        platform: Option<&Platform>,
    ) -> Result<ImageInfo, RuntimeError> {
        let probe = image_probe(image, platform);
        let mut reasons = Vec::new();
        for (i, rt) in self.runtimes.iter().enumerate() {
            if let Support::No(r) = rt.supports(&probe) {
                reasons.push((i, r));
                continue;
            }
            match rt.pull_image(image, platform).await {
                Err(RuntimeError::Unsupported(r)) => reasons.push((i, r)),
                other => return other,
            }
        }
        Err(RuntimeError::Unsupported(Self::reasons(
            &reasons,
            &self.runtimes,
        )))
    }

    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
        let mut reasons = Vec::new();
        for (i, rt) in self.runtimes.iter().enumerate() {
            match rt.import_image(archive).await {
                Err(RuntimeError::Unsupported(r)) => reasons.push((i, r)),
                other => return other,
            }
        }
        Err(RuntimeError::Unsupported(Self::reasons(
            &reasons,
            &self.runtimes,
        )))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        // One name across the chain: a container another runtime holds is a conflict.
        match self.locate(&spec.id).await {
            Ok(_) => return Err(RuntimeError::AlreadyExists(spec.id.clone())),
            Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let mut reasons = Vec::new();
        for (i, rt) in self.runtimes.iter().enumerate() {
            if let Support::No(r) = rt.supports(spec) {
                reasons.push((i, r));
                continue;
            }
            match rt.create(spec).await {
                Ok(()) => {
                    self.owners().insert(spec.id.clone(), i);
                    return Ok(());
                }
                Err(RuntimeError::Unsupported(r)) => reasons.push((i, r)),
                Err(e) => return Err(e),
            }
        }
        Err(RuntimeError::Unsupported(Self::reasons(
            &reasons,
            &self.runtimes,
        )))
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.routed(id, |rt| rt.start(id)).await
    }

    async fn stop(&self, id: &ContainerId, grace_ms: u64) -> Result<(), RuntimeError> {
        self.routed(id, |rt| rt.stop(id, grace_ms)).await
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let result = self.routed(id, |rt| rt.remove(id)).await;
        if result.is_ok() {
            self.owners().remove(id);
        }
        result
    }

    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.routed(id, |rt| rt.status(id)).await
    }

    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let mut all = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, rt) in self.runtimes.iter().enumerate() {
            for st in rt.list().await? {
                if seen.insert(st.id.clone()) {
                    self.owners().entry(st.id.clone()).or_insert(i);
                    all.push(st);
                }
            }
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError> {
        let mut streams = Vec::with_capacity(self.runtimes.len());
        for rt in self.runtimes.iter() {
            streams.push(rt.events().await?);
        }
        Ok(Box::pin(futures::stream::select_all(streams)))
    }

    async fn logs(
        &self,
        id: &ContainerId,
        from: u64,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
        self.routed(id, |rt| rt.logs(id, from, follow)).await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout_ms: u64,
    ) -> Result<ExecOutput, RuntimeError> {
        self.routed(id, |rt| rt.exec(id, command, timeout_ms)).await
    }

    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        self.routed(id, |rt| rt.stats(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeRuntime;
    use crate::fake::{Attempt, Call, Script};
    use futures::StreamExt;

    fn spec(id: &str, image: &str, class: Option<&str>) -> ContainerSpec {
        let mut s = image_probe(image, None);
        s.id = ContainerId(id.into());
        s.security.runtime_class = class.map(str::to_owned);
        s
    }

    /// `a` refuses runtime class `b`; `b` takes everything.
    fn pair() -> (FakeRuntime, FakeRuntime, ChainRuntime) {
        let a = FakeRuntime::new().with_name("a");
        a.refuse_runtime_class("b");
        let b = FakeRuntime::new().with_name("b");
        let chain = ChainRuntime::new(vec![Arc::new(a.clone()), Arc::new(b.clone())]);
        (a, b, chain)
    }

    fn cid(s: &str) -> ContainerId {
        ContainerId(s.into())
    }

    #[tokio::test(start_paused = true)]
    async fn unsupported_falls_through_and_calls_are_routed() {
        let (a, b, chain) = pair();
        assert_eq!(chain.name(), "chain(a,b)");
        b.script_container(cid("x"), Script::new([Attempt::runs_until_stopped()]));
        let s = spec("x", "img", Some("b"));
        assert_eq!(chain.supports(&s), Support::Yes);
        // The image alone does not tell which runtime a spec goes to: `a` takes the pull.
        chain.pull_image("img", None).await.expect("pull");
        assert!(a.has_image("img") && !b.has_image("img"));
        b.preload_image("img");
        chain.create(&s).await.expect("create");
        chain.start(&s.id).await.expect("start");
        assert_eq!(chain.owner(&s.id).await.expect("owner"), "b");
        chain.stop(&s.id, 10).await.expect("stop");
        chain.remove(&s.id).await.expect("remove");
        let a_calls = a.calls();
        assert!(
            !a_calls
                .iter()
                .any(|c| matches!(c, Call::Create(_) | Call::Start(_))),
            "{a_calls:?}"
        );
        assert!(b.calls().contains(&Call::Start(cid("x"))));
        assert!(b.calls().contains(&Call::Remove(cid("x"))));
        assert!(matches!(
            chain.status(&s.id).await,
            Err(RuntimeError::NotFound(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn nobody_supports_names_every_reason() {
        let a = FakeRuntime::new().with_name("a");
        a.refuse_runtime_class("gpu");
        let b = FakeRuntime::new().with_name("b");
        b.refuse_runtime_class("gpu");
        let chain = ChainRuntime::new(vec![Arc::new(a), Arc::new(b)]);
        let s = spec("x", "img", Some("gpu"));
        let Support::No(reason) = chain.supports(&s) else {
            panic!("supported");
        };
        assert!(
            reason.starts_with("a: ") && reason.contains("; b: "),
            "{reason}"
        );
        let err = chain.create(&s).await.expect_err("unsupported");
        assert!(
            matches!(&err, RuntimeError::Unsupported(r) if r.contains("gpu")),
            "{err}"
        );
        let empty = ChainRuntime::new(Vec::new());
        assert!(matches!(
            empty.create(&s).await,
            Err(RuntimeError::Unsupported(r)) if r.contains("empty")
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn one_name_across_the_chain_and_owners_found_after_a_restart() {
        let (a, b, chain) = pair();
        chain.pull_image("img", None).await.expect("pull");
        b.preload_image("img");
        chain
            .create(&spec("x", "img", Some("b")))
            .await
            .expect("create in b");
        // The same name for a spec `a` would take is still a conflict.
        assert!(matches!(
            chain.create(&spec("x", "img", None)).await,
            Err(RuntimeError::AlreadyExists(_))
        ));
        // A new chain over the same runtimes (an agent restart) finds the owner by asking.
        let again = ChainRuntime::new(vec![Arc::new(a.clone()), Arc::new(b.clone())]);
        assert_eq!(again.owner(&cid("x")).await.expect("owner"), "b");
        again
            .start(&cid("x"))
            .await
            .expect("start through the new chain");
        assert!(matches!(
            again.start(&cid("ghost")).await,
            Err(RuntimeError::NotFound(_))
        ));
        let listed = again.list().await.expect("list");
        assert_eq!(listed.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pull_goes_to_the_runtime_that_takes_the_image() {
        let a = FakeRuntime::new().with_name("a").with_support_rule(|s| {
            if s.image.starts_with("local/") {
                Support::Yes
            } else {
                Support::No("only local/ images".into())
            }
        });
        let b = FakeRuntime::new().with_name("b");
        let chain = ChainRuntime::new(vec![Arc::new(a.clone()), Arc::new(b.clone())]);
        chain.pull_image("docker.io/x", None).await.expect("pull");
        chain.pull_image("local/y", None).await.expect("pull");
        assert!(a.has_image("local/y") && !a.has_image("docker.io/x"));
        assert!(b.has_image("docker.io/x") && !b.has_image("local/y"));
    }

    #[tokio::test(start_paused = true)]
    async fn events_of_every_runtime_arrive_on_one_stream() {
        let (a, b, chain) = pair();
        a.script_container(cid("in-a"), Script::new([Attempt::exits(3).after_ms(10)]));
        b.script_container(cid("in-b"), Script::new([Attempt::exits(4).after_ms(20)]));
        a.preload_image("img");
        b.preload_image("img");
        let mut events = chain.events().await.expect("events");
        chain.create(&spec("in-a", "img", None)).await.expect("a");
        chain
            .create(&spec("in-b", "img", Some("b")))
            .await
            .expect("b");
        chain.start(&cid("in-a")).await.expect("start");
        chain.start(&cid("in-b")).await.expect("start");
        let first = events.next().await.expect("event");
        let second = events.next().await.expect("event");
        assert_eq!(
            (first, second),
            (
                RuntimeEvent::Exited {
                    id: cid("in-a"),
                    code: 3
                },
                RuntimeEvent::Exited {
                    id: cid("in-b"),
                    code: 4
                }
            )
        );
    }
}
