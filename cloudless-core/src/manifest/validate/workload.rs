//! `kind: Workload`: image, resources, replicas, restart, rollout, ports, env, secrets, volumes.
//! Placement, probes and security have their own files.

use super::{absolute_path, dns_label, is_env_name, unique};
use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::workload::{PortRef, ResourceRequirements, WorkloadSpec};

/// Most replicas one workload may ask for.
pub(super) const MAX_REPLICAS: u32 = 10_000;

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, s: &WorkloadSpec) {
    if let Some(problem) = image_problem(&s.image) {
        r.fail(&p.key("image"), problem);
    } else if s.image == PROCESS_SCHEME && s.command.is_empty() {
        r.fail(
            &p.key("image"),
            "a bare \"process://\" image runs the program named by spec.command, which is \
             empty: name the program there or in the image (process:///abs/path)",
        );
    }
    if let Some(platform) = &s.platform {
        let pp = p.key("platform");
        if platform.architecture.is_empty() {
            r.fail(&pp.key("architecture"), "must not be empty");
        }
        if platform.os.is_empty() {
            r.fail(&pp.key("os"), "must not be empty");
        }
    }
    if s.command.first().is_some_and(String::is_empty) {
        r.fail(
            &p.key("command").index(0),
            "the program name must not be empty",
        );
    }
    env(r, p, s);
    if let Some(dir) = &s.working_dir {
        absolute_path(r, &p.key("workingDir"), dir);
    }
    resources(r, &p.key("resources"), &s.resources);
    counts(r, p, s);
    ports(r, p, s);
    super::placement::check(r, &p.key("placement"), &s.placement);
    super::probe::check(r, &p.key("probes"), &s.probes);
    super::security::check(r, &p.key("security"), &s.security);
    secrets(r, p, s);
    volumes(r, p, s);
}

/// The image scheme of host programs run by the process runtime (`process:///abs/path`).
pub(super) const PROCESS_SCHEME: &str = "process://";

/// Longest program path a `process://` image may name (Linux `PATH_MAX`).
const MAX_PROCESS_PATH: usize = 4096;

/// Accepts `[host[:port]/]path[:tag][@algo:hex]` with lowercase path components, as OCI does,
/// and `process://[/abs/path]` for host programs (the process runtime).
pub(super) fn image_problem(image: &str) -> Option<String> {
    let bad = |why: &str| Some(format!("invalid image reference {image:?}: {why}"));
    if image.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if let Some(path) = image.strip_prefix(PROCESS_SCHEME) {
        return process_path_problem(path).and_then(|why| bad(&why));
    }
    if image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("no whitespace, at most 512 characters");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && algo
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return bad("the digest must look like sha256:<hex>");
        }
    }
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return bad("the tag may hold letters, digits, '_', '.' and '-' (at most 128)");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !ok {
            return bad("the registry host is not a valid host[:port]");
        }
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
    };
    if parts.is_empty() || !parts.iter().all(|c| component_ok(c)) {
        return bad("repository path components are lowercase letters, digits and '.', '_', '-'");
    }
    None
}

fn env(r: &mut Report<'_>, p: &FieldPath, s: &WorkloadSpec) {
    let ep = p.key("env");
    for (i, e) in s.env.iter().enumerate() {
        if !is_env_name(&e.name) {
            r.fail(
                &ep.index(i).key("name"),
                format!(
                    "invalid environment variable name {:?}: expected [A-Za-z_][A-Za-z0-9_]*",
                    e.name
                ),
            );
        }
    }
    let names = s
        .env
        .iter()
        .enumerate()
        .map(|(i, e)| (ep.index(i).key("name"), e.name.as_str()));
    let secret_envs = s
        .secrets
        .iter()
        .enumerate()
        .filter_map(|(i, sr)| Some((p.key("secrets").index(i).key("env"), sr.env.as_deref()?)));
    unique(r, names.chain(secret_envs), "environment variable");
}

fn resources(r: &mut Report<'_>, p: &FieldPath, res: &ResourceRequirements) {
    let (req, lim) = (&res.requests, &res.limits);
    let lp = p.key("limits");
    if let Some(cpu) = lim.cpu {
        if cpu < req.cpu {
            r.fail(
                &lp.key("cpu"),
                format!("limit {cpu} is below the request {}", req.cpu),
            );
        }
        if cpu.millis() == 0 {
            r.fail(&lp.key("cpu"), "must be greater than zero");
        }
    }
    if let Some(mem) = lim.memory {
        if mem < req.memory {
            r.fail(
                &lp.key("memory"),
                format!("limit {mem} is below the request {}", req.memory),
            );
        }
        if mem.mib() == 0 {
            r.fail(&lp.key("memory"), "must be greater than zero");
        }
    }
    if lim.pids == Some(0) {
        r.fail(&lp.key("pids"), "must be greater than zero");
    }
}

fn counts(r: &mut Report<'_>, p: &FieldPath, s: &WorkloadSpec) {
    if s.replicas > MAX_REPLICAS {
        r.fail(
            &p.key("replicas"),
            format!("{} replicas exceed the limit of {MAX_REPLICAS}", s.replicas),
        );
    }
    if let Some(min) = s.min_available
        && min > s.replicas
    {
        r.fail(
            &p.key("minAvailable"),
            format!("{min} is more than replicas ({})", s.replicas),
        );
    }
    if s.rollout.max_surge > s.replicas.max(1) {
        r.fail(
            &p.key("rollout").key("maxSurge"),
            format!(
                "{} is more than replicas ({})",
                s.rollout.max_surge,
                s.replicas.max(1)
            ),
        );
    }
    // A rollout that may neither surge nor drop below minAvailable can never make progress.
    if s.rollout.max_surge == 0 && s.replicas > 0 && s.effective_min_available() >= s.replicas {
        r.fail(
            &p.key("rollout").key("maxSurge"),
            "must be at least 1 when minAvailable equals replicas, or rollouts cannot progress",
        );
    }
    let b = &s.restart.backoff;
    let bp = p.key("restart").key("backoff");
    if b.initial.millis() == 0 {
        r.fail(&bp.key("initial"), "must be greater than zero");
    }
    if b.initial > b.max {
        r.fail(
            &bp.key("initial"),
            format!("{} is longer than max ({})", b.initial, b.max),
        );
    }
    if b.multiplier_percent < 100 {
        r.fail(
            &bp.key("multiplierPercent"),
            format!(
                "{} would shrink the delay: must be at least 100",
                b.multiplier_percent
            ),
        );
    }
}

fn ports(r: &mut Report<'_>, p: &FieldPath, s: &WorkloadSpec) {
    let pp = p.key("ports");
    for (i, port) in s.ports.iter().enumerate() {
        dns_label(r, &pp.index(i).key("name"), &port.name);
        if port.container_port == 0 {
            r.fail(
                &pp.index(i).key("containerPort"),
                "must be between 1 and 65535",
            );
        }
        if port.host_port == Some(0) {
            r.fail(&pp.index(i).key("hostPort"), "must be between 1 and 65535");
        }
    }
    let host_ports: Vec<(FieldPath, String)> = s
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let host = c.host_port?;
            Some((
                pp.index(i).key("hostPort"),
                format!("{host}/{:?}", c.protocol).to_lowercase(),
            ))
        })
        .collect();
    unique(
        r,
        host_ports.iter().map(|(p, n)| (p.clone(), n.as_str())),
        "host port",
    );
    unique(
        r,
        s.ports
            .iter()
            .enumerate()
            .map(|(i, c)| (pp.index(i).key("name"), c.name.as_str())),
        "port name",
    );
    let numbers: Vec<(FieldPath, String)> = s
        .ports
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                pp.index(i).key("containerPort"),
                format!("{}/{:?}", c.container_port, c.protocol).to_lowercase(),
            )
        })
        .collect();
    unique(
        r,
        numbers.iter().map(|(p, n)| (p.clone(), n.as_str())),
        "container port",
    );
    if let Some(svc) = &s.service {
        let sp = p.key("service");
        if let Some(name) = &svc.name {
            dns_label(r, &sp.key("name"), name);
        }
        super::service::ports(r, &sp.key("ports"), &svc.ports, Some(&s.ports));
    }
}

fn secrets(r: &mut Report<'_>, p: &FieldPath, s: &WorkloadSpec) {
    let sp = p.key("secrets");
    for (i, sr) in s.secrets.iter().enumerate() {
        let at = sp.index(i);
        dns_label(r, &at.key("name"), &sr.name);
        if let Some(key) = &sr.key
            && !super::secret::is_key(key)
        {
            r.fail(
                &at.key("key"),
                format!("invalid key {key:?}: expected [-._a-zA-Z0-9]+"),
            );
        }
        match (&sr.env, &sr.mount_path) {
            (Some(_), Some(_)) => r.fail(&at, "set exactly one of env or mountPath, not both"),
            (None, None) => r.fail(&at, "set exactly one of env or mountPath"),
            (Some(env), None) => {
                if !is_env_name(env) {
                    r.fail(
                        &at.key("env"),
                        format!("invalid environment variable name {env:?}"),
                    );
                }
                if sr.key.is_none() {
                    r.fail(
                        &at.key("key"),
                        "required when delivering as an environment variable",
                    );
                }
            }
            (None, Some(mp)) => absolute_path(r, &at.key("mountPath"), mp),
        }
    }
}

fn volumes(r: &mut Report<'_>, p: &FieldPath, s: &WorkloadSpec) {
    let vp = p.key("volumes");
    for (i, v) in s.volumes.iter().enumerate() {
        dns_label(r, &vp.index(i).key("name"), &v.name);
        absolute_path(r, &vp.index(i).key("mountPath"), &v.mount_path);
        if v.size_limit.is_some_and(|m| m.mib() == 0) {
            r.fail(&vp.index(i).key("sizeLimit"), "must be greater than zero");
        }
    }
    unique(
        r,
        s.volumes
            .iter()
            .enumerate()
            .map(|(i, v)| (vp.index(i).key("name"), v.name.as_str())),
        "volume name",
    );
    let mounts = s
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| (vp.index(i).key("mountPath"), v.mount_path.as_str()));
    let secret_mounts = s.secrets.iter().enumerate().filter_map(|(i, sr)| {
        Some((
            p.key("secrets").index(i).key("mountPath"),
            sr.mount_path.as_deref()?,
        ))
    });
    unique(r, mounts.chain(secret_mounts), "mount path");
}
/// What is wrong with the program path after `process://`: nothing (`""`: the spec's command
/// names the program) or an absolute path without `..` segments or control characters.
fn process_path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    if !path.starts_with('/') {
        return Some(format!(
            "after {PROCESS_SCHEME} comes an absolute program path (process:///usr/bin/app), \
             got {path:?}"
        ));
    }
    if path.len() > MAX_PROCESS_PATH {
        return Some(format!(
            "the program path is longer than {MAX_PROCESS_PATH} bytes"
        ));
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return Some("the program path must not contain NUL or control characters".to_owned());
    }
    if path.split('/').any(|seg| seg == "..") {
        return Some("the program path must not contain '..' segments".to_owned());
    }
    None
}

/// True if `target` can be resolved against `ports`: a name must be declared, a number need not
/// be (like Kubernetes, a container may listen on ports it does not declare).
pub(super) fn port_known(target: &PortRef, ports: &[crate::workload::ContainerPort]) -> bool {
    match target {
        PortRef::Number(_) => true,
        PortRef::Name(name) => ports.iter().any(|c| &c.name == name),
    }
}

#[cfg(test)]
mod tests {
    use super::image_problem;

    #[test]
    fn image_references() {
        for ok in [
            "busybox",
            "library/nginx:1.27",
            "docker.io/library/nginx:1.27",
            "localhost/cloudless/busybox:latest",
            "registry.example.org:5000/team/app:v1.2-rc_3",
            "ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/app",
            "process://",
            "process:///bin/sh",
            "process:///opt/my app/bin/server-1.2",
        ] {
            assert_eq!(image_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "Busybox",
            "nginx:",
            "nginx:-x",
            "a b",
            "app@sha256:xyz",
            "a//b",
            "/app",
            "app:1:2",
        ] {
            assert!(image_problem(bad).is_some(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn process_images_name_an_absolute_clean_path() {
        for (bad, why) in [
            ("process://bin/sh", "absolute program path"),
            ("process://./sh", "absolute program path"),
            ("process:///usr/../bin/sh", "'..'"),
            ("process:///bin/..", "'..'"),
            ("process:///bin/s\0h", "NUL"),
            ("process:///bin/s\nh", "control"),
        ] {
            let problem = image_problem(bad).unwrap_or_else(|| panic!("{bad:?} must be rejected"));
            assert!(problem.contains(why), "{bad:?}: {problem}");
            assert!(problem.contains("invalid image reference"), "{problem}");
        }
        let long = format!("process:///{}", "a".repeat(super::MAX_PROCESS_PATH));
        assert!(image_problem(&long).is_some_and(|p| p.contains("longer than")));
        let longest = format!("process:///{}", "a".repeat(super::MAX_PROCESS_PATH - 1));
        assert_eq!(image_problem(&longest), None);
    }
}
