//! The checks of the runtime conformance suite, one contract area per function.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::check;
use super::runtime::{RuntimeFixture, SUITE, next_item, within};
use crate::runtime::{
    ContainerId, ContainerSpec, ContainerState, LogChunk, Runtime, RuntimeError, RuntimeEvent,
    Support,
};

fn cid(name: &str) -> ContainerId {
    ContainerId(format!("conformance-{name}"))
}

fn is_not_found(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::NotFound(_))
}

fn is_invalid_state(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::InvalidState(_))
}

/// Pulls the spec's image and creates the container.
async fn create<F: RuntimeFixture>(fx: &F, rt: &F::Runtime, spec: &ContainerSpec) {
    let what = format!("pull {}", spec.image);
    check::ok(
        SUITE,
        &what,
        within(
            fx,
            &what,
            rt.pull_image(&spec.image, spec.platform.as_ref()),
        )
        .await,
    );
    let what = format!("create {}", spec.id);
    check::ok(SUITE, &what, within(fx, &what, rt.create(spec)).await);
}

async fn start<F: RuntimeFixture>(fx: &F, rt: &F::Runtime, id: &ContainerId) {
    let what = format!("start {id}");
    check::ok(SUITE, &what, within(fx, &what, rt.start(id)).await);
}

async fn events<F: RuntimeFixture>(fx: &F, rt: &F::Runtime) -> BoxStream<'static, RuntimeEvent> {
    check::ok(SUITE, "events", within(fx, "events", rt.events()).await)
}

async fn state_of<F: RuntimeFixture>(fx: &F, rt: &F::Runtime, id: &ContainerId) -> ContainerState {
    let what = format!("status {id}");
    check::ok(SUITE, &what, within(fx, &what, rt.status(id)).await).state
}

/// Expects the next event on `events` to be the exit of `id` with `code` (any code if `None`);
/// returns the code.
async fn expect_exit<F: RuntimeFixture>(
    fx: &F,
    events: &mut BoxStream<'static, RuntimeEvent>,
    id: &ContainerId,
    code: Option<i32>,
) -> i32 {
    let what = format!("exit event of {id}");
    let RuntimeEvent::Exited {
        id: got,
        code: got_code,
    } = next_item(fx, &what, events).await;
    let msg = format!(
        "the next event is exactly one exit of {id} (code {code:?}), got {got} ({got_code})"
    );
    check::that(
        SUITE,
        &msg,
        &got == id && code.is_none_or(|c| c == got_code),
    );
    got_code
}

/// Reads a log stream to its end, checking that offsets are contiguous from `from`.
async fn read_log<F: RuntimeFixture>(
    fx: &F,
    what: &str,
    mut stream: BoxStream<'static, Result<LogChunk, RuntimeError>>,
    from: u64,
) -> Bytes {
    let mut buf = BytesMut::new();
    let mut offset = from;
    while let Some(chunk) = within(fx, what, stream.next()).await {
        let chunk = check::ok(SUITE, what, chunk);
        check::that(
            SUITE,
            &format!("{what}: chunk at {} follows {offset}", chunk.offset),
            chunk.offset == offset,
        );
        offset = offset.saturating_add(chunk.data.len() as u64);
        buf.extend_from_slice(&chunk.data);
    }
    buf.freeze()
}

pub(crate) async fn lifecycle_errors<F: RuntimeFixture>(fx: &F) {
    let rt = fx.runtime().await;
    check::that(SUITE, "name is not empty", !rt.name().is_empty());
    let id = cid("lifecycle");
    let spec = fx.runs_until_stopped(&rt, id.clone());
    check::that(
        SUITE,
        "supports the fixture's specs",
        rt.supports(&spec) == Support::Yes,
    );
    let ghost = cid("ghost");
    check::err(
        SUITE,
        "status of an unknown id",
        "NotFound",
        rt.status(&ghost).await,
        is_not_found,
    );
    check::err(
        SUITE,
        "start of an unknown id",
        "NotFound",
        rt.start(&ghost).await,
        is_not_found,
    );
    check::err(
        SUITE,
        "stop of an unknown id",
        "NotFound",
        rt.stop(&ghost, 0).await,
        is_not_found,
    );
    check::err(
        SUITE,
        "remove of an unknown id",
        "NotFound",
        rt.remove(&ghost).await,
        is_not_found,
    );
    check::err(
        SUITE,
        "stats of an unknown id",
        "NotFound",
        rt.stats(&ghost).await,
        is_not_found,
    );
    check::err(
        SUITE,
        "logs of an unknown id",
        "NotFound",
        rt.logs(&ghost, 0, false).await.map(|_| ()),
        is_not_found,
    );
    let cmd = fx.exec_exits_with(&rt, 0);
    check::err(
        SUITE,
        "exec in an unknown id",
        "NotFound",
        rt.exec(&ghost, &cmd, 1_000).await,
        is_not_found,
    );

    create(fx, &rt, &spec).await;
    check::err(
        SUITE,
        "create of an existing id",
        "AlreadyExists",
        rt.create(&spec).await,
        |e| matches!(e, RuntimeError::AlreadyExists(_)),
    );
    check::that(
        SUITE,
        "a new container is Created",
        state_of(fx, &rt, &id).await == ContainerState::Created,
    );
    let listed = check::ok(SUITE, "list", rt.list().await);
    check::that(
        SUITE,
        "list shows the container",
        listed.iter().any(|s| s.id == id),
    );
    let log = check::ok(
        SUITE,
        "logs of a created container",
        rt.logs(&id, 0, false).await,
    );
    check::that(
        SUITE,
        "a created container has an empty log",
        read_log(fx, "logs", log, 0).await.is_empty(),
    );
    check::err(
        SUITE,
        "exec in a created container",
        "InvalidState",
        rt.exec(&id, &cmd, 1_000).await,
        is_invalid_state,
    );
    check::ok(
        SUITE,
        "stop of a created container",
        within(fx, "stop", rt.stop(&id, 0)).await,
    );
    check::that(
        SUITE,
        "stop of a created container changes nothing",
        state_of(fx, &rt, &id).await == ContainerState::Created,
    );

    start(fx, &rt, &id).await;
    let status = check::ok(SUITE, "status", rt.status(&id).await);
    check::that(
        SUITE,
        "a started container is Running",
        status.state == ContainerState::Running,
    );
    check::that(
        SUITE,
        "a running container has an address",
        status.address.is_some(),
    );
    check::that(
        SUITE,
        "a running container has a start time",
        status.started_at_ms.is_some(),
    );
    check::err(
        SUITE,
        "start of a running container",
        "InvalidState",
        rt.start(&id).await,
        is_invalid_state,
    );
    check::ok(SUITE, "stats of a running container", rt.stats(&id).await);
    check::ok(
        SUITE,
        "remove of a running container",
        within(fx, "remove", rt.remove(&id)).await,
    );
    check::err(
        SUITE,
        "status after remove",
        "NotFound",
        rt.status(&id).await,
        is_not_found,
    );
    check::err(
        SUITE,
        "a second remove",
        "NotFound",
        rt.remove(&id).await,
        is_not_found,
    );
    let listed = check::ok(SUITE, "list", rt.list().await);
    check::that(
        SUITE,
        "list forgets a removed container",
        listed.iter().all(|s| s.id != id),
    );
}

pub(crate) async fn exit_events<F: RuntimeFixture>(fx: &F) {
    let rt = fx.runtime().await;
    let mut ev1 = events(fx, &rt).await;
    let mut ev2 = events(fx, &rt).await;
    let a = cid("exit-3");
    create(fx, &rt, &fx.exits_with(&rt, a.clone(), 3)).await;
    start(fx, &rt, &a).await;
    expect_exit(fx, &mut ev1, &a, Some(3)).await;
    expect_exit(fx, &mut ev2, &a, Some(3)).await;
    let status = check::ok(SUITE, "status", rt.status(&a).await);
    check::that(
        SUITE,
        "status reports Exited { code } once the event is out",
        status.state == ContainerState::Exited { code: 3 },
    );
    check::that(
        SUITE,
        "an exited container has a finish time",
        status.finished_at_ms.is_some(),
    );
    check::err(
        SUITE,
        "start of an exited container",
        "InvalidState",
        rt.start(&a).await,
        is_invalid_state,
    );
    check::ok(
        SUITE,
        "stop of an exited container",
        within(fx, "stop", rt.stop(&a, 0)).await,
    );
    check::that(
        SUITE,
        "stop of an exited container changes nothing",
        state_of(fx, &rt, &a).await == ContainerState::Exited { code: 3 },
    );

    let mut late = events(fx, &rt).await;
    let b = cid("exit-0");
    create(fx, &rt, &fx.exits_with(&rt, b.clone(), 0)).await;
    start(fx, &rt, &b).await;
    // The next event is b's: a's exit was delivered exactly once, and a stop did not repeat it.
    expect_exit(fx, &mut ev1, &b, Some(0)).await;
    expect_exit(fx, &mut ev2, &b, Some(0)).await;
    expect_exit(fx, &mut late, &b, Some(0)).await;
    check::ok(SUITE, "remove an exited container", rt.remove(&a).await);
    let c = cid("exit-42");
    create(fx, &rt, &fx.exits_with(&rt, c.clone(), 42)).await;
    start(fx, &rt, &c).await;
    expect_exit(fx, &mut ev1, &c, Some(42)).await;
}

pub(crate) async fn stop_and_remove<F: RuntimeFixture>(fx: &F) {
    let rt = fx.runtime().await;
    let mut ev = events(fx, &rt).await;
    let r = cid("stopped");
    create(fx, &rt, &fx.runs_until_stopped(&rt, r.clone())).await;
    start(fx, &rt, &r).await;
    check::ok(
        SUITE,
        "stop",
        within(fx, "stop", rt.stop(&r, fx.stop_grace_ms())).await,
    );
    let state = state_of(fx, &rt, &r).await;
    check::that(
        SUITE,
        &format!("after stop returns the container is Exited, got {state:?}"),
        matches!(state, ContainerState::Exited { .. }),
    );
    let code = expect_exit(fx, &mut ev, &r, None).await;
    check::that(
        SUITE,
        "the exit event and status agree on the code",
        state == ContainerState::Exited { code },
    );
    check::ok(
        SUITE,
        "a second stop",
        within(fx, "stop", rt.stop(&r, 0)).await,
    );

    let r2 = cid("removed");
    create(fx, &rt, &fx.runs_until_stopped(&rt, r2.clone())).await;
    start(fx, &rt, &r2).await;
    check::ok(
        SUITE,
        "remove of a running container",
        within(fx, "remove", rt.remove(&r2)).await,
    );
    expect_exit(fx, &mut ev, &r2, None).await;
    check::err(
        SUITE,
        "status after remove",
        "NotFound",
        rt.status(&r2).await,
        is_not_found,
    );

    let x = cid("after-stops");
    create(fx, &rt, &fx.exits_with(&rt, x.clone(), 1)).await;
    start(fx, &rt, &x).await;
    expect_exit(fx, &mut ev, &x, Some(1)).await;
}

pub(crate) async fn logs<F: RuntimeFixture>(fx: &F) {
    let rt = fx.runtime().await;
    let text = "hello\nworld, with some more bytes\n";
    let len = text.len() as u64;
    let p = cid("printer");
    let mut ev = events(fx, &rt).await;
    create(fx, &rt, &fx.prints(&rt, p.clone(), text)).await;
    let follow = check::ok(
        SUITE,
        "logs(0, follow) before start",
        rt.logs(&p, 0, true).await,
    );
    start(fx, &rt, &p).await;
    let followed = read_log(fx, "following the log until exit", follow, 0).await;
    check::that(
        SUITE,
        &format!("a followed log holds the output, got {followed:?}"),
        followed == text.as_bytes(),
    );
    expect_exit(fx, &mut ev, &p, Some(0)).await;

    let whole = read_log(
        fx,
        "logs(0)",
        check::ok(SUITE, "logs(0)", rt.logs(&p, 0, false).await),
        0,
    )
    .await;
    check::that(
        SUITE,
        &format!("logs(0) returns the whole output, got {whole:?}"),
        whole == text.as_bytes(),
    );
    let tail = read_log(
        fx,
        "logs(6)",
        check::ok(SUITE, "logs(6)", rt.logs(&p, 6, false).await),
        6,
    )
    .await;
    check::that(
        SUITE,
        "logs(from) starts at from",
        tail == text.as_bytes()[6..],
    );
    for from in [len, len + 100, u64::MAX] {
        let what = format!("logs({from}) past the end");
        let rest = read_log(
            fx,
            &what,
            check::ok(SUITE, &what, rt.logs(&p, from, false).await),
            from,
        )
        .await;
        check::that(SUITE, &format!("{what} is empty"), rest.is_empty());
    }
    let again = read_log(
        fx,
        "logs(0, follow) after exit",
        check::ok(SUITE, "logs follow", rt.logs(&p, 0, true).await),
        0,
    )
    .await;
    check::that(
        SUITE,
        "following an exited container's log drains it and ends",
        again == text.as_bytes(),
    );
}

pub(crate) async fn exec<F: RuntimeFixture>(fx: &F) {
    let rt = fx.runtime().await;
    let e = cid("exec");
    create(fx, &rt, &fx.runs_until_stopped(&rt, e.clone())).await;
    start(fx, &rt, &e).await;
    let out = check::ok(
        SUITE,
        "exec",
        within(
            fx,
            "exec",
            rt.exec(&e, &fx.exec_prints(&rt, "exec-output"), 10_000),
        )
        .await,
    );
    check::that(
        SUITE,
        "exec returns exit code 0 and stdout",
        out.exit_code == 0 && out.stdout.as_ref() == b"exec-output",
    );
    let out = check::ok(
        SUITE,
        "exec",
        within(fx, "exec", rt.exec(&e, &fx.exec_exits_with(&rt, 7), 10_000)).await,
    );
    check::that(
        SUITE,
        "exec returns the command's exit code",
        out.exit_code == 7,
    );
    check::ok(
        SUITE,
        "stop",
        within(fx, "stop", rt.stop(&e, fx.stop_grace_ms())).await,
    );
    let res = rt.exec(&e, &fx.exec_exits_with(&rt, 0), 1_000).await;
    check::err(
        SUITE,
        "exec in an exited container",
        "InvalidState",
        res,
        is_invalid_state,
    );
}

pub(crate) async fn odd_input<F: RuntimeFixture>(fx: &F) {
    let rt = fx.runtime().await;
    let long = "x".repeat(10_000);
    for name in ["", "../../etc/passwd", "ünïcödé", "a\0b", long.as_str()] {
        let id = ContainerId(name.to_owned());
        let what = format!(
            "status of odd id {:?}",
            name.chars().take(20).collect::<String>()
        );
        check::err(SUITE, &what, "NotFound", rt.status(&id).await, is_not_found);
    }
    let _ = within(fx, "pull of an empty image name", rt.pull_image("", None)).await;
    let e = cid("odd");
    create(fx, &rt, &fx.runs_until_stopped(&rt, e.clone())).await;
    start(fx, &rt, &e).await;
    let _ = within(fx, "exec of an empty command", rt.exec(&e, &[], 1_000)).await;
    let mut weird = fx.runs_until_stopped(&rt, cid("odd-image"));
    weird.image = String::new();
    let _ = within(fx, "create with an empty image", rt.create(&weird)).await;
    check::ok(SUITE, "remove", within(fx, "remove", rt.remove(&e)).await);
}
