//! Focused tests of `FakeRuntime`'s scripting, all under tokio's paused clock.

use std::time::Duration;

use cloudless_core::ids::ReplicaId;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerState, Runtime, RuntimeError, RuntimeEvent, Support,
};
use cloudless_core::testing::runtime::basic_spec;
use cloudless_runtime::FakeRuntime;
use cloudless_runtime::fake::{
    Attempt, Call, DEFAULT_ORIGIN_MS, ExecScript, PullFailure, SIGKILL_EXIT, SIGTERM_EXIT, Script,
    ScriptedError, StopBehaviour,
};
use futures::StreamExt;
use tokio::time::Instant;

const IMAGE: &str = "registry.example/app:1";

fn spec(replica: u64, attempt: u32) -> ContainerSpec {
    let mut s = basic_spec(ContainerId::for_replica(ReplicaId(replica), attempt), IMAGE);
    s.attempt = attempt;
    s
}

async fn run(rt: &FakeRuntime, s: &ContainerSpec) {
    rt.create(s).await.expect("create");
    rt.start(&s.id).await.expect("start");
}

#[tokio::test(start_paused = true)]
async fn crash_loop_then_recovery_follows_the_script_by_attempt() {
    let rt = FakeRuntime::new();
    rt.preload_image(IMAGE);
    let crash = Attempt::exits(1).after_ms(100);
    rt.script_image(
        IMAGE,
        Script::new([crash.clone(), crash, Attempt::runs_until_stopped()]),
    );
    let mut events = rt.events().await.unwrap();
    let t0 = Instant::now();
    for attempt in 0..2 {
        let s = spec(7, attempt);
        run(&rt, &s).await;
        assert_eq!(
            events.next().await,
            Some(RuntimeEvent::Exited {
                id: s.id.clone(),
                code: 1
            })
        );
        assert_eq!(
            rt.status(&s.id).await.unwrap().state,
            ContainerState::Exited { code: 1 }
        );
    }
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    let s = spec(7, 2);
    run(&rt, &s).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        rt.status(&s.id).await.unwrap().state,
        ContainerState::Running
    );
    // A later attempt number replays the last scripted attempt.
    assert_eq!(
        Script::new([Attempt::exits(1)]).attempt(99),
        Some(&Attempt::exits(1))
    );
}

#[tokio::test(start_paused = true)]
async fn start_failure_leaves_the_container_created_and_emits_nothing() {
    let rt = FakeRuntime::new();
    rt.preload_image(IMAGE);
    let failure = ScriptedError::InvalidSpec("exec: /app: no such file".into());
    rt.script_image(IMAGE, Script::new([Attempt::fails_to_start(failure)]));
    let mut events = rt.events().await.unwrap();
    let s = spec(1, 0);
    rt.create(&s).await.unwrap();
    let err = rt.start(&s.id).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidSpec(m) if m.contains("no such file")),
        "{err:?}"
    );
    assert_eq!(
        rt.status(&s.id).await.unwrap().state,
        ContainerState::Created
    );
    rt.script_image(
        IMAGE,
        Script::new([Attempt::fails_to_start(ScriptedError::Other("boom".into()))]),
    );
    let s2 = spec(2, 0);
    rt.create(&s2).await.unwrap();
    assert_eq!(
        rt.start(&s2.id).await.unwrap_err().to_string(),
        "scripted failure: boom"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(futures::poll!(events.next()).is_pending());
}

#[tokio::test(start_paused = true)]
async fn pull_failures_and_registry_outage() {
    let rt = FakeRuntime::new();
    rt.set_pull_failure("gone:1", Some(PullFailure::Missing));
    rt.set_pull_failure(
        "private:1",
        Some(PullFailure::Unavailable("401 unauthorized".into())),
    );
    assert!(matches!(
        rt.pull_image("gone:1", None).await,
        Err(RuntimeError::ImageNotFound(_))
    ));
    let err = rt.pull_image("private:1", None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "image private:1 unavailable: 401 unauthorized"
    );
    rt.set_registry_down(Some("connection refused"));
    let err = rt.pull_image(IMAGE, None).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::ImageUnavailable { .. }),
        "{err:?}"
    );
    // Without a pull the image is not local, so create refuses it.
    assert!(matches!(
        rt.create(&spec(1, 0)).await,
        Err(RuntimeError::ImageNotFound(_))
    ));
    rt.set_registry_down(None);
    let info = rt.pull_image(IMAGE, None).await.unwrap();
    assert!(info.digest.starts_with("sha256:") && info.digest.len() == 7 + 64);
    assert!(rt.has_image(IMAGE));
    rt.add_archive("/tmp/bundle.tar", &["offline:1"]);
    assert_eq!(
        rt.import_image("/tmp/bundle.tar".as_ref()).await.unwrap()[0].reference,
        "offline:1"
    );
    assert!(rt.has_image("offline:1"));
    assert!(rt.import_image("/nope.tar".as_ref()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn logs_follow_with_offsets_until_exit() {
    let rt = FakeRuntime::new();
    rt.preload_image(IMAGE);
    let attempt = Attempt::exits(0)
        .after_ms(300)
        .log_at(0, "boot\n")
        .log_at(100, "ready\n")
        .log_at(200, "bye\n")
        .log_at(400, "never: after the exit\n");
    rt.script_image(IMAGE, Script::new([attempt]));
    let s = spec(1, 0);
    run(&rt, &s).await;
    let t0 = Instant::now();
    let mut follow = rt.logs(&s.id, 2, true).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = follow.next().await {
        let chunk = chunk.unwrap();
        got.push((t0.elapsed().as_millis(), chunk.offset, chunk.data));
    }
    assert_eq!(
        got,
        [
            (0, 2, "ot\n".into()),
            (100, 5, "ready\n".into()),
            (200, 11, "bye\n".into()),
        ]
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    let all: Vec<_> = rt.logs(&s.id, 0, false).await.unwrap().collect().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].as_ref().unwrap().data, "boot\nready\nbye\n");
}

#[tokio::test(start_paused = true)]
async fn exec_scripted_default_and_timeout() {
    let rt = FakeRuntime::new();
    rt.preload_image(IMAGE);
    rt.script_exec(&["cat", "/health"], ExecScript::prints("ok"));
    rt.script_exec(&["slow"], ExecScript::exits(0).taking_ms(5_000));
    let s = spec(1, 0);
    run(&rt, &s).await;
    let cmd = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = rt
        .exec(&s.id, &cmd(&["cat", "/health"]), 1_000)
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_ref()), (0, &b"ok"[..]));
    let out = rt.exec(&s.id, &cmd(&["true"]), 1_000).await.unwrap();
    assert_eq!(out.exit_code, 127);
    let t0 = Instant::now();
    assert!(matches!(
        rt.exec(&s.id, &cmd(&["slow"]), 1_000).await,
        Err(RuntimeError::Timeout)
    ));
    assert_eq!(t0.elapsed(), Duration::from_millis(1_000));
    assert!(
        rt.calls()
            .contains(&Call::Exec(s.id.clone(), cmd(&["slow"])))
    );
}

#[tokio::test(start_paused = true)]
async fn stop_honours_or_ignores_sigterm_within_the_grace() {
    let rt = FakeRuntime::new();
    rt.preload_image(IMAGE);
    let polite = Attempt::runs_until_stopped().on_stop(StopBehaviour::ExitOnTerm {
        code: SIGTERM_EXIT,
        after_ms: 300,
    });
    let (a, b) = (spec(1, 0), spec(2, 0));
    rt.script_container(a.id.clone(), Script::new([polite]));
    let stubborn = Attempt::runs_until_stopped().on_stop(StopBehaviour::IgnoreTerm);
    rt.script_container(b.id.clone(), Script::new([stubborn]));
    run(&rt, &a).await;
    run(&rt, &b).await;
    let t0 = Instant::now();
    rt.stop(&a.id, 1_000).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    assert_eq!(
        rt.status(&a.id).await.unwrap().state,
        ContainerState::Exited { code: SIGTERM_EXIT }
    );
    rt.stop(&b.id, 1_000).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(1_300));
    assert_eq!(
        rt.status(&b.id).await.unwrap().state,
        ContainerState::Exited { code: SIGKILL_EXIT }
    );
}

#[tokio::test(start_paused = true)]
async fn refuses_runtime_classes_so_runtimes_chain() {
    let rt = FakeRuntime::new().with_name("fake-runc");
    rt.preload_image(IMAGE);
    rt.refuse_runtime_class("kata");
    let mut s = spec(1, 0);
    s.security.runtime_class = Some("kata".into());
    assert_eq!(rt.name(), "fake-runc");
    assert!(matches!(rt.supports(&s), Support::No(ref why) if why.contains("kata")));
    assert!(matches!(
        rt.create(&s).await,
        Err(RuntimeError::Unsupported(_))
    ));
    let picky = FakeRuntime::new().with_support_rule(|_| Support::No("never".into()));
    assert_eq!(picky.supports(&spec(1, 0)), Support::No("never".into()));
}

#[tokio::test(start_paused = true)]
async fn addresses_timestamps_and_call_record() {
    let rt = FakeRuntime::new();
    rt.pull_image(IMAGE, None).await.unwrap();
    rt.script_image(IMAGE, Script::new([Attempt::exits(0).after_ms(250)]));
    let (a, b) = (spec(1, 0), spec(2, 0));
    run(&rt, &a).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    run(&rt, &b).await;
    let sa = rt.status(&a.id).await.unwrap();
    let sb = rt.status(&b.id).await.unwrap();
    assert_eq!(sa.address.as_deref(), Some("10.88.0.1"));
    assert_eq!(sb.address.as_deref(), Some("10.88.0.2"));
    assert_eq!(sa.started_at_ms, Some(DEFAULT_ORIGIN_MS));
    assert_eq!(sb.started_at_ms, Some(DEFAULT_ORIGIN_MS + 50));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        rt.status(&a.id).await.unwrap().finished_at_ms,
        Some(DEFAULT_ORIGIN_MS + 250)
    );
    assert_eq!(
        rt.calls(),
        [
            Call::PullImage(IMAGE.into()),
            Call::Create(a.id.clone()),
            Call::Start(a.id.clone()),
            Call::Create(b.id.clone()),
            Call::Start(b.id.clone()),
        ]
    );
}
