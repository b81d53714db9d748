//! `FakeRuntime` passes the public `Runtime` conformance suite.

use async_trait::async_trait;
use cloudless_core::runtime::{ContainerId, ContainerSpec};
use cloudless_core::testing::runtime::{RuntimeFixture, basic_spec, conformance};
use cloudless_runtime::FakeRuntime;
use cloudless_runtime::fake::{Attempt, ExecScript, Script};
use futures::future::BoxFuture;

/// Scripts the fake per container id so each spec behaves as the suite asks.
struct FakeFixture;

const IMAGE: &str = "registry.example/app:1";

#[async_trait]
impl RuntimeFixture for FakeFixture {
    type Runtime = FakeRuntime;

    async fn runtime(&self) -> FakeRuntime {
        FakeRuntime::new()
    }

    fn exits_with(&self, rt: &FakeRuntime, id: ContainerId, code: i32) -> ContainerSpec {
        rt.script_container(id.clone(), Script::new([Attempt::exits(code).after_ms(10)]));
        basic_spec(id, IMAGE)
    }

    fn runs_until_stopped(&self, rt: &FakeRuntime, id: ContainerId) -> ContainerSpec {
        rt.script_container(id.clone(), Script::new([Attempt::runs_until_stopped()]));
        basic_spec(id, IMAGE)
    }

    fn prints(&self, rt: &FakeRuntime, id: ContainerId, text: &str) -> ContainerSpec {
        // Split the output in time so that following the log really has to wait.
        let mid = text.len() / 2;
        let (head, tail) = (text[..mid].to_owned(), text[mid..].to_owned());
        let attempt = Attempt::exits(0)
            .after_ms(20)
            .log_at(0, head)
            .log_at(10, tail);
        rt.script_container(id.clone(), Script::new([attempt]));
        basic_spec(id, IMAGE)
    }

    fn exec_prints(&self, rt: &FakeRuntime, text: &str) -> Vec<String> {
        rt.script_exec(&["print", text], ExecScript::prints(text.to_owned()));
        vec!["print".into(), text.into()]
    }

    fn exec_exits_with(&self, rt: &FakeRuntime, code: i32) -> Vec<String> {
        let code_s = code.to_string();
        rt.script_exec(&["exit", &code_s], ExecScript::exits(code));
        vec!["exit".into(), code_s]
    }

    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}

#[tokio::test(start_paused = true)]
async fn fake_runtime_conforms_under_paused_time() {
    conformance(&FakeFixture).await;
}

#[tokio::test]
async fn fake_runtime_conforms_in_real_time() {
    conformance(&FakeFixture).await;
}
