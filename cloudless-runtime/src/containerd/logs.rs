//! Reading a container's log file from an offset, optionally following it until the exit.

use std::sync::Arc;

use cloudless_core::runtime::{ContainerId, ContainerState, LogChunk, RuntimeError};
use futures::stream::BoxStream;

use super::{Inner, container, task};

/// The log of `id` from `from`; with `follow`, until the container exits.
pub(crate) async fn logs(
    inner: &Arc<Inner>,
    id: &ContainerId,
    from: u64,
    follow: bool,
) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
    let st = container::status(inner, id).await?;
    let exit = inner.local.exit_watch(id.as_str());
    if follow && st.state == ContainerState::Running {
        // An adopted container needs a waiter for the follower to learn of its exit.
        task::ensure_waiter(inner, id.as_str());
    }
    Ok(crate::log_stream::stream(
        inner.log_path(id.as_str()),
        from,
        follow && !matches!(st.state, ContainerState::Exited { .. }),
        exit,
    ))
}
