//! The Workloads service.

use std::sync::Arc;

use cloudless_core::ids::{Generation, WorkloadId};
use cloudless_core::manifest::{self, Format, Limits, Manifest, ManifestSpec};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{ClusterState, Command, CommandResult};
use cloudless_core::workload::Workload;
use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Request, Response, Status};

use super::auth::{self, Caller};
use super::pb::workloads_client::WorkloadsClient;
use super::pb::{self, workloads_server::Workloads};
use super::server::{Core, Route, forwarded};
use super::{convert, errors, replicas};

/// Forwards the call to the leader when this member does not lead.
macro_rules! on_leader {
    ($self:ident, $caller:ident, $req:ident, $method:ident) => {
        if let Route::Forward(channel) = $self.core.route(&$caller).await? {
            return WorkloadsClient::new(channel)
                .$method(forwarded($req.into_inner(), &$caller))
                .await;
        }
    };
}

pub(crate) struct WorkloadsApi {
    core: Arc<Core>,
}

impl WorkloadsApi {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

fn namespace_of(r: &pb::WorkloadRef) -> &str {
    if r.namespace.is_empty() {
        "default"
    } else {
        &r.namespace
    }
}

/// The workload a request names, or NotFound.
fn find<'s>(state: &'s ClusterState, r: Option<&pb::WorkloadRef>) -> Result<&'s Workload, Status> {
    let r = r.ok_or_else(|| errors::invalid("workload", "required"))?;
    if r.name.is_empty() {
        return Err(errors::invalid("workload.name", "required"));
    }
    let ns = namespace_of(r);
    state
        .workload_by_name(ns, &r.name)
        .ok_or_else(|| Status::not_found(format!("workload {ns}/{} not found", r.name)))
}

fn parse(text: &str) -> Result<Vec<Manifest>, Status> {
    manifest::parse_str_with(text, Format::Auto, &Limits::default())
        .map_err(|e| errors::manifest(&e.with_source_name("manifest")))
}

/// Exactly one Workload document.
fn one_workload(text: &str) -> Result<Manifest, Status> {
    let mut docs = parse(text)?;
    if docs.len() != 1 {
        return Err(errors::invalid(
            "manifest",
            format!("expected exactly one document, found {}", docs.len()),
        ));
    }
    let m = docs.remove(0);
    if !matches!(m.spec, ManifestSpec::Workload(_)) {
        return Err(errors::invalid(
            "kind",
            format!("expected kind Workload, found {}", m.kind()),
        ));
    }
    Ok(m)
}

fn suffix_key(key: &str, i: usize) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}/{i}")
    }
}

impl WorkloadsApi {
    async fn workload_response(
        &self,
        id: WorkloadId,
        revision: u64,
    ) -> Result<Response<pb::WorkloadResponse>, Status> {
        let state = self.core.state().await?;
        let w = state
            .workloads
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("workload {id} not found")))?;
        Ok(Response::new(pb::WorkloadResponse {
            workload: Some(convert::workload(w)),
            revision: revision.max(state.revision.0),
        }))
    }

    async fn rollout(
        &self,
        r: Option<&pb::WorkloadRef>,
    ) -> Result<pb::RolloutStatusResponse, Status> {
        let state = self.core.state().await?;
        let w = find(&state, r)?;
        let live: Vec<_> = state
            .replicas_of(w.id)
            .filter(|r| !r.phase.is_terminal())
            .collect();
        let updated = live
            .iter()
            .filter(|r| r.generation == w.generation && r.phase != ReplicaPhase::Stopping)
            .count();
        let updated = u32::try_from(updated).unwrap_or(u32::MAX);
        let old = live.iter().any(|r| r.generation != w.generation);
        let complete = w.status.observed_generation == w.generation
            && updated == w.spec.replicas
            && w.status.available >= w.spec.replicas
            && !old;
        Ok(pb::RolloutStatusResponse {
            workload: Some(pb::WorkloadRef {
                namespace: w.namespace.clone(),
                name: w.name.clone(),
            }),
            generation: w.generation.get(),
            observed_generation: w.status.observed_generation.get(),
            desired: w.spec.replicas,
            updated,
            ready: w.status.ready,
            available: w.status.available,
            paused: w.paused,
            complete,
            replicas: live.iter().map(|r| convert::replica(r)).collect(),
            conditions: w.status.conditions.iter().map(convert::condition).collect(),
            revision: state.revision.0,
        })
    }

    async fn set_paused(
        &self,
        caller: &Caller,
        req: pb::RolloutControlRequest,
        paused: bool,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        let _ = caller;
        let state = self.core.state().await?;
        let id = find(&state, req.workload.as_ref())?.id;
        self.core
            .propose(
                Command::PauseRollout {
                    workload: id,
                    paused,
                },
                &req.idempotency_key,
            )
            .await?;
        Ok(Response::new(self.rollout(req.workload.as_ref()).await?))
    }

    /// Applies one manifest; returns what happened.
    async fn apply_one(&self, m: Manifest, key: &str) -> Result<pb::ApplyResult, Status> {
        let state = self.core.state().await?;
        let ns = m.metadata.namespace.clone();
        let name = m.metadata.name.clone();
        let kind = m.kind().as_str().to_owned();
        let result = |action: &str, generation: u64| pb::ApplyResult {
            kind: kind.clone(),
            namespace: ns.clone(),
            name: name.clone(),
            action: action.to_owned(),
            generation,
        };
        match m.spec {
            ManifestSpec::Workload(spec) => match state.workload_by_name(&ns, &name) {
                Some(w) => {
                    let before = w.generation;
                    let applied = self
                        .core
                        .propose(
                            Command::UpdateWorkload {
                                workload: w.id,
                                expected_generation: None,
                                spec,
                            },
                            key,
                        )
                        .await?;
                    let generation = match applied.result {
                        CommandResult::WorkloadUpdated { generation } => generation,
                        _ => before,
                    };
                    let action = if generation == before {
                        "unchanged"
                    } else {
                        "updated"
                    };
                    Ok(result(action, generation.get()))
                }
                None => {
                    self.core
                        .propose(
                            Command::CreateWorkload {
                                namespace: ns.clone(),
                                name: name.clone(),
                                labels: m.metadata.labels,
                                spec,
                            },
                            key,
                        )
                        .await?;
                    Ok(result("created", Generation(1).get()))
                }
            },
            ManifestSpec::Service(spec) => {
                let exists = state.services.contains_key(&(ns.clone(), name.clone()));
                self.core
                    .propose(
                        Command::PutService {
                            namespace: ns.clone(),
                            name: name.clone(),
                            spec,
                        },
                        key,
                    )
                    .await?;
                Ok(result(if exists { "updated" } else { "created" }, 0))
            }
            other => Err(Status::unimplemented(format!(
                "kind {} cannot be applied through this API yet",
                other.kind()
            ))),
        }
    }
}

#[tonic::async_trait]
impl Workloads for WorkloadsApi {
    async fn apply(
        &self,
        req: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, apply);
        let req = req.into_inner();
        let docs = parse(&req.manifest)?;
        // Refuse the whole input before changing anything if a kind is not served.
        if let Some((i, m)) = docs
            .iter()
            .enumerate()
            .find(|(_, m)| !matches!(m.spec, ManifestSpec::Workload(_) | ManifestSpec::Service(_)))
        {
            return Err(errors::invalid(
                &format!("documents[{i}].kind"),
                format!("kind {} cannot be applied through this API yet", m.kind()),
            ));
        }
        let mut results = Vec::with_capacity(docs.len());
        for (i, m) in docs.into_iter().enumerate() {
            results.push(
                self.apply_one(m, &suffix_key(&req.idempotency_key, i))
                    .await?,
            );
        }
        let revision = self.core.state().await?.revision.0;
        Ok(Response::new(pb::ApplyResponse { results, revision }))
    }

    async fn create(
        &self,
        req: Request<pb::CreateWorkloadRequest>,
    ) -> Result<Response<pb::WorkloadResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, create);
        let req = req.into_inner();
        let m = one_workload(&req.manifest)?;
        let ManifestSpec::Workload(spec) = m.spec else {
            return Err(errors::invalid("kind", "expected kind Workload"));
        };
        let applied = self
            .core
            .propose(
                Command::CreateWorkload {
                    namespace: m.metadata.namespace,
                    name: m.metadata.name,
                    labels: m.metadata.labels,
                    spec,
                },
                &req.idempotency_key,
            )
            .await?;
        let CommandResult::WorkloadCreated { workload } = applied.result else {
            return Err(Status::internal("create did not report a workload id"));
        };
        self.workload_response(workload, applied.revision.0).await
    }

    async fn update(
        &self,
        req: Request<pb::UpdateWorkloadRequest>,
    ) -> Result<Response<pb::WorkloadResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, update);
        let req = req.into_inner();
        let m = one_workload(&req.manifest)?;
        let ManifestSpec::Workload(spec) = m.spec else {
            return Err(errors::invalid("kind", "expected kind Workload"));
        };
        let state = self.core.state().await?;
        let id = find(
            &state,
            Some(&pb::WorkloadRef {
                namespace: m.metadata.namespace,
                name: m.metadata.name,
            }),
        )?
        .id;
        let expected_generation =
            (req.expected_generation != 0).then_some(Generation(req.expected_generation));
        let applied = self
            .core
            .propose(
                Command::UpdateWorkload {
                    workload: id,
                    expected_generation,
                    spec,
                },
                &req.idempotency_key,
            )
            .await?;
        self.workload_response(id, applied.revision.0).await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteWorkloadRequest>,
    ) -> Result<Response<pb::DeleteWorkloadResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, delete);
        let req = req.into_inner();
        let state = self.core.state().await?;
        let id = find(&state, req.workload.as_ref())?.id;
        let applied = self
            .core
            .propose(
                Command::DeleteWorkload { workload: id },
                &req.idempotency_key,
            )
            .await?;
        Ok(Response::new(pb::DeleteWorkloadResponse {
            revision: applied.revision.0,
        }))
    }

    async fn get(
        &self,
        req: Request<pb::GetWorkloadRequest>,
    ) -> Result<Response<pb::WorkloadResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_read(&caller)?;
        on_leader!(self, caller, req, get);
        let state = self.core.state().await?;
        let w = find(&state, req.get_ref().workload.as_ref())?;
        Ok(Response::new(pb::WorkloadResponse {
            workload: Some(convert::workload(w)),
            revision: state.revision.0,
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListWorkloadsRequest>,
    ) -> Result<Response<pb::ListWorkloadsResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_read(&caller)?;
        on_leader!(self, caller, req, list);
        let ns = req.get_ref().namespace.as_str();
        let state = self.core.state().await?;
        let mut workloads: Vec<&Workload> = state
            .workloads
            .values()
            .filter(|w| ns.is_empty() || w.namespace == ns)
            .collect();
        workloads.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(Response::new(pb::ListWorkloadsResponse {
            workloads: workloads.into_iter().map(convert::workload).collect(),
            revision: state.revision.0,
        }))
    }

    async fn scale(
        &self,
        req: Request<pb::ScaleWorkloadRequest>,
    ) -> Result<Response<pb::WorkloadResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, scale);
        let req = req.into_inner();
        let state = self.core.state().await?;
        let id = find(&state, req.workload.as_ref())?.id;
        let applied = self
            .core
            .propose(
                Command::ScaleWorkload {
                    workload: id,
                    replicas: req.replicas,
                },
                &req.idempotency_key,
            )
            .await?;
        self.workload_response(id, applied.revision.0).await
    }

    async fn rollout_status(
        &self,
        req: Request<pb::RolloutStatusRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_read(&caller)?;
        on_leader!(self, caller, req, rollout_status);
        Ok(Response::new(
            self.rollout(req.get_ref().workload.as_ref()).await?,
        ))
    }

    async fn pause_rollout(
        &self,
        req: Request<pb::RolloutControlRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, pause_rollout);
        self.set_paused(&caller, req.into_inner(), true).await
    }

    async fn resume_rollout(
        &self,
        req: Request<pb::RolloutControlRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, resume_rollout);
        self.set_paused(&caller, req.into_inner(), false).await
    }

    type LogsStream = BoxStream<'static, Result<pb::LogChunk, Status>>;

    async fn logs(
        &self,
        req: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let caller = auth::caller(&req)?;
        // Any identity that may read the cluster (admins, coordinators); agents may not.
        auth::require_read(&caller)?;
        let req = req.into_inner();
        let state = match self.core.state().await {
            Ok(s) => s,
            // A follower that cannot read the state lets the leader answer.
            Err(e) => return self.forward_logs(&caller, &req).await?.ok_or(e),
        };
        let w = find(&state, req.workload.as_ref())?;
        let all = req.replica == 0;
        let targets = replicas::log_targets(&state, w, req.replica)?;
        drop(state);
        if let Some(agents) = replicas::reachable(self.core.agents.as_ref(), &targets) {
            let stream = replicas::logs(agents, &targets, &req, all).await?;
            return Ok(Response::new(self.core.until_stopped(stream)));
        }
        // Agents keep their connection to the leader: let it answer.
        if let Some(answer) = self.forward_logs(&caller, &req).await? {
            return Ok(answer);
        }
        // The leader itself: with every replica asked for, read those whose agent is here.
        if all && let Some(agents) = self.core.agents.as_ref() {
            let here: Vec<replicas::Target> = targets
                .iter()
                .copied()
                .filter(|t| agents.reaches(t.node))
                .collect();
            if !here.is_empty() {
                let stream = replicas::logs(agents, &here, &req, all).await?;
                return Ok(Response::new(self.core.until_stopped(stream)));
            }
        }
        Err(replicas::unreachable(self.core.agents.as_ref(), &targets))
    }

    async fn exec(
        &self,
        req: Request<pb::ExecRequest>,
    ) -> Result<Response<pb::ExecResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        let req = req.into_inner();
        if req.command.first().is_none_or(String::is_empty) {
            return Err(errors::invalid("command", "a command is required"));
        }
        let timeout = replicas::exec_timeout(req.timeout_seconds)?;
        let state = match self.core.state().await {
            Ok(s) => s,
            // A follower that cannot read the state lets the leader answer.
            Err(e) => return self.forward_exec(&caller, req).await?.ok_or(e),
        };
        let w = find(&state, req.workload.as_ref())?;
        let target = replicas::exec_target(&state, w, req.replica)?;
        drop(state);
        if let Some(agents) = replicas::reachable(self.core.agents.as_ref(), &[target]) {
            let answer = replicas::exec(agents, target, req.command, timeout).await?;
            return Ok(Response::new(answer));
        }
        if let Some(answer) = self.forward_exec(&caller, req).await? {
            return Ok(answer);
        }
        Err(replicas::unreachable(self.core.agents.as_ref(), &[target]))
    }
}

/// Whether `s` is an answer a server sent (a gRPC response carries `content-type`), rather than
/// one tonic made here from a transport failure.
pub(crate) fn answered_by_server(s: &Status) -> bool {
    s.metadata().contains_key("content-type")
}

impl WorkloadsApi {
    /// Forwards a logs call to the leader: its answer, or None when this member is the leader.
    async fn forward_logs(
        &self,
        caller: &Caller,
        req: &pb::LogsRequest,
    ) -> Result<Option<Response<BoxStream<'static, Result<pb::LogChunk, Status>>>>, Status> {
        let Route::Forward(channel) = self.core.route(caller).await? else {
            return Ok(None);
        };
        let answer = WorkloadsClient::new(channel)
            .logs(forwarded(req.clone(), caller))
            .await?;
        Ok(Some(Response::new(
            self.core.until_stopped(answer.into_inner().boxed()),
        )))
    }

    /// Forwards an exec call to the leader: its answer, or None when this member is the leader.
    /// The leader's own Unavailable means the command never reached an agent and passes
    /// through. One made here by tonic cannot say whether the call had reached the leader, so
    /// it is answered Unknown ("the command may have run"), which clients do not retry; a
    /// failed connect to the leader is answered Unknown too, on the safe side.
    async fn forward_exec(
        &self,
        caller: &Caller,
        req: pb::ExecRequest,
    ) -> Result<Option<Response<pb::ExecResponse>>, Status> {
        let Route::Forward(channel) = self.core.route(caller).await? else {
            return Ok(None);
        };
        match WorkloadsClient::new(channel)
            .exec(forwarded(req, caller))
            .await
        {
            Ok(answer) => Ok(Some(answer)),
            Err(s) if s.code() == tonic::Code::Unavailable && !answered_by_server(&s) => {
                Err(Status::unknown(format!(
                    "the call forwarded to the leader failed: {} (the command may have run)",
                    s.message()
                )))
            }
            Err(s) => Err(s),
        }
    }
}
