//! Service commands: put (create or replace) and delete.

use super::{ApplyError, ClusterState, CommandResult, Ctx, ObjectKind, Touched, check_label};
use crate::service::{Service, ServiceSpec};

/// Creates or replaces a service. A replaced service keeps its virtual IP: clients resolved
/// it once and must keep reaching the service.
pub(super) fn put(
    state: &mut ClusterState,
    cx: &mut Ctx,
    namespace: &str,
    name: &str,
    spec: &ServiceSpec,
) -> Result<CommandResult, ApplyError> {
    check_label("namespace", namespace)?;
    check_label("name", name)?;
    let key = (namespace.to_owned(), name.to_owned());
    let virtual_ip = state.services.get(&key).and_then(|s| s.virtual_ip.clone());
    let service = Service {
        namespace: key.0.clone(),
        name: key.1.clone(),
        spec: spec.clone(),
        virtual_ip,
    };
    if state.services.get(&key) != Some(&service) {
        state.services.insert(key.clone(), service);
        cx.touch(Touched::Service(key.0, key.1));
    }
    Ok(CommandResult::Done)
}

/// Deletes a service.
pub(super) fn delete(
    state: &mut ClusterState,
    cx: &mut Ctx,
    namespace: &str,
    name: &str,
) -> Result<CommandResult, ApplyError> {
    let key = (namespace.to_owned(), name.to_owned());
    if state.services.remove(&key).is_none() {
        return Err(ApplyError::NotFound {
            kind: ObjectKind::Service,
            key: format!("{namespace}/{name}"),
        });
    }
    cx.touch(Touched::Service(key.0, key.1));
    Ok(CommandResult::Done)
}
