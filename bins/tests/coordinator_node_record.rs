//! A coordinator's node record (it reserves the coordinator's name and id) is cordoned: the
//! one `init` registers and the one enrollment creates for a coordinator that `join`s. No
//! agent runs behind them, so they must never read as schedulable nodes. Harness:
//! `tests/common/`.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::time::Duration;

use common::Lab;

#[test]
fn coordinator_node_records_are_cordoned() {
    let mut lab = Lab::init("records", 2);
    lab.start_coordinator(0);
    lab.start_coordinator(1);
    let client = lab.client(&lab.apis());
    let nodes = lab.wait(
        "both coordinator records cordoned",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let nodes = lab
                .block_on(client.list_nodes())
                .map_err(|e| e.to_string())?;
            let cordoned = |name: &str| {
                nodes
                    .iter()
                    .any(|n| n.name == name && n.schedulability == "cordoned")
            };
            if cordoned("coord-0") && cordoned("coord-1") {
                Ok(nodes)
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    for i in 0..2 {
        let p = lab.coordinators[i].as_mut().unwrap();
        assert_eq!(p.sigterm(Duration::from_secs(30)), 0, "{}", p.log_text());
    }
}
