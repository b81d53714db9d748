//! `kind: Service` and the service ports shared with `spec.service` of a workload.

use super::{dns_label, label_map, unique};
use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::service::ServiceSpec;
use crate::workload::{ContainerPort, PortRef, ServicePort};

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, s: &ServiceSpec) {
    let sel = p.key("selector");
    if s.selector.workload.is_none() && s.selector.labels.is_empty() {
        r.fail(
            &sel,
            "set workload or labels (a service without a selector has no endpoints)",
        );
    }
    if let Some(w) = &s.selector.workload {
        dns_label(r, &sel.key("workload"), w);
    }
    label_map(r, &sel.key("labels"), &s.selector.labels, true);
    // A standalone service cannot see the workload's ports, so named targets are only checked
    // for shape here.
    ports(r, &p.key("ports"), &s.ports, None);
}

/// Checks service ports; with `container` given, named target ports must exist there.
pub(super) fn ports(
    r: &mut Report<'_>,
    p: &FieldPath,
    ports: &[ServicePort],
    container: Option<&[ContainerPort]>,
) {
    if ports.is_empty() {
        r.fail(p, "at least one port is required");
    }
    for (i, sp) in ports.iter().enumerate() {
        let at = p.index(i);
        if sp.port == 0 {
            r.fail(&at.key("port"), "must be between 1 and 65535");
        }
        if let Some(name) = &sp.name {
            dns_label(r, &at.key("name"), name);
        }
        match &sp.target_port {
            PortRef::Number(0) => r.fail(&at.key("targetPort"), "must be between 1 and 65535"),
            PortRef::Name(n) => {
                if let Err(e) = crate::ids::validate_dns_label(n) {
                    r.fail(&at.key("targetPort"), format!("invalid port name: {e}"));
                } else if container
                    .is_some_and(|c| !super::workload::port_known(&sp.target_port, c))
                {
                    r.fail(
                        &at.key("targetPort"),
                        format!("no container port is named {n:?}"),
                    );
                }
            }
            PortRef::Number(_) => {}
        }
    }
    if ports.len() > 1 && ports.iter().any(|sp| sp.name.is_none()) {
        let i = ports.iter().position(|sp| sp.name.is_none()).unwrap_or(0);
        r.fail(
            &p.index(i).key("name"),
            "required when a service has more than one port",
        );
    }
    let numbers: Vec<(FieldPath, String)> = ports
        .iter()
        .enumerate()
        .map(|(i, sp)| {
            (
                p.index(i).key("port"),
                format!("{}/{:?}", sp.port, sp.protocol).to_lowercase(),
            )
        })
        .collect();
    unique(
        r,
        numbers.iter().map(|(p, n)| (p.clone(), n.as_str())),
        "service port",
    );
    let names = ports
        .iter()
        .enumerate()
        .filter_map(|(i, sp)| Some((p.index(i).key("name"), sp.name.as_deref()?)));
    unique(r, names, "service port name");
}
