//! A coordinator with an open server stream (an event watch) stops promptly on SIGTERM: the
//! API ends open streams and bounds its graceful shutdown, so `run` exits 0 within seconds and
//! the client's stream ends. Harness: `tests/common/`.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::time::{Duration, Instant};

use common::Lab;

#[test]
fn sigterm_with_an_open_event_watch_exits_promptly_and_ends_the_stream() {
    let mut lab = Lab::init("sigterm", 1);
    lab.start_coordinator(0);
    let client = lab.client(&[lab.api(0)]);
    let mut stream = lab.block_on(client.watch(0, &[])).unwrap();
    // The watch is open: the changes `init` committed arrive.
    let first = lab
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), stream.message()).await });
    assert!(
        matches!(first, Ok(Ok(Some(_)))),
        "first change: {first:?}{}",
        lab.logs()
    );

    let started = Instant::now();
    let code = lab.coordinators[0]
        .as_mut()
        .unwrap()
        .sigterm(Duration::from_secs(12));
    let took = started.elapsed();
    assert_eq!(code, 0, "exit code{}", lab.logs());
    // The API's own shutdown grace is 3 s; the rest is headroom for a loaded CI machine. Before
    // streams were ended on shutdown, the process never exited on its own.
    assert!(took < Duration::from_secs(12), "stopped after {took:?}");

    // The stream ends (the shutdown's Unavailable, or the end of the connection).
    let end = lab.block_on(async {
        // The process is gone: its connection closes; generous for a loaded client.
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(status) => return Some(status),
                }
            }
        })
        .await
    });
    match end {
        Err(_) => panic!("the watch stream stayed open after the coordinator exited"),
        Ok(Some(status)) => assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            ),
            "{status:?}"
        ),
        Ok(None) => {}
    }
}
