//! The gRPC connection to containerd: typed service clients, request metadata (namespace and
//! lease on every call), and the mapping of gRPC statuses to [`RuntimeError`].

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use std::path::Path;

use cloudless_core::runtime::{ContainerId, RuntimeError};

/// A connection to one containerd namespace.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    channel: Channel,
    namespace: MetadataValue<containerd_client::tonic::metadata::Ascii>,
}

impl Client {
    /// Connects to the socket at `socket` (the channel reconnects by itself after containerd
    /// restarts) and checks that `Version` answers.
    pub(crate) async fn connect(socket: &Path, namespace: &str) -> Result<Self, RuntimeError> {
        let namespace = namespace
            .parse()
            .map_err(|_| RuntimeError::InvalidSpec(format!("namespace {namespace:?}")))?;
        let channel = containerd_client::connect(socket).await.map_err(|e| {
            RuntimeError::Unavailable(format!("containerd at {}: {e}", socket.display()))
        })?;
        let client = Self { channel, namespace };
        client
            .version()
            .version(client.req(()))
            .await
            .map_err(|s| status_error(s, "version"))?;
        Ok(client)
    }

    /// A request in this client's namespace.
    pub(crate) fn req<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.metadata_mut()
            .insert("containerd-namespace", self.namespace.clone());
        req
    }

    /// A request in this client's namespace under lease `lease`.
    pub(crate) fn leased<T>(&self, msg: T, lease: &str) -> Request<T> {
        let mut req = self.req(msg);
        if let Ok(value) = lease.parse() {
            req.metadata_mut().insert("containerd-lease", value);
        }
        req
    }

    pub(crate) fn version(&self) -> VersionClient<Channel> {
        VersionClient::new(self.channel.clone())
    }
    pub(crate) fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    pub(crate) fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }
    pub(crate) fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }
    pub(crate) fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }
    pub(crate) fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel.clone())
    }
    pub(crate) fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }
    pub(crate) fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }
}

/// Whether `status` means containerd itself could not be reached.
pub(crate) fn is_unavailable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded
    ) || (status.code() == Code::Unknown && status.message().contains("transport"))
}

/// Maps a gRPC status to a runtime error; `what` names the call for the message.
pub(crate) fn status_error(status: Status, what: &str) -> RuntimeError {
    if is_unavailable(&status) {
        return RuntimeError::Unavailable(format!("containerd {what}: {}", status.message()));
    }
    RuntimeError::Other(
        format!(
            "containerd {what}: {:?}: {}",
            status.code(),
            status.message()
        )
        .into(),
    )
}

/// Like [`status_error`], but `NotFound` means the container `id` is unknown.
pub(crate) fn container_error(status: Status, what: &str, id: &ContainerId) -> RuntimeError {
    match status.code() {
        Code::NotFound => RuntimeError::NotFound(id.clone()),
        Code::AlreadyExists => RuntimeError::AlreadyExists(id.clone()),
        _ => status_error(status, what),
    }
}
