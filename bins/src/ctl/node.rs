//! `node ...`.

use cloudless::api::pb;
use serde::Serialize;

use super::args::{GlobalArgs, NodeCommand, OutputFormat};
use super::context;
use super::error::{CtlError, CtlResult};
use super::output::{self, EventView, List, NodeView, ResourcesView, Table, age};
use super::workload::events_about;

fn table(g: &GlobalArgs, items: &[pb::Node]) {
    let wide = g.output == OutputFormat::Wide;
    let mut headers = vec!["NAME", "STATUS", "SCHEDULING", "ZONE", "REPLICAS", "AGE"];
    if wide {
        headers.extend(["ID", "REGION", "ARCH", "OS", "CPU", "MEMORY", "LAST-SEEN"]);
    }
    let mut t = Table::new(&headers);
    for n in items {
        let mut row = vec![
            n.name.clone(),
            n.liveness.clone(),
            n.schedulability.clone(),
            dash(&n.zone),
            n.replicas.to_string(),
            age(n.registered_at_ms),
        ];
        if wide {
            let cap = ResourcesView::from(n.allocatable.as_ref());
            row.extend([
                n.id.to_string(),
                dash(&n.region),
                dash(&n.architecture),
                dash(&n.os),
                format!("{}m", cap.cpu_millis),
                format!("{}Mi", cap.memory_mib),
                age(n.last_seen_ms),
            ]);
        }
        t.row(row);
    }
    t.print();
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

fn show(g: &GlobalArgs, items: &[pb::Node], single: bool) -> CtlResult {
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let views: Vec<NodeView> = items.iter().map(NodeView::from).collect();
            match (single, views.first()) {
                (true, Some(v)) => output::print_doc(g.output, v),
                _ => output::print_doc(g.output, &List::new("Node", views)),
            }
        }
        _ => {
            table(g, items);
            Ok(())
        }
    }
}

/// `node describe -o json`.
#[derive(Debug, Serialize)]
struct Description {
    node: NodeView,
    events: Vec<EventView>,
}

fn res(r: &ResourcesView) -> String {
    format!(
        "cpu {}m, memory {}Mi, storage {}Gi, egress {}Mbps, gpus {}",
        r.cpu_millis, r.memory_mib, r.storage_gib, r.egress_mbps, r.gpus
    )
}

/// Runs a `node` command.
pub(crate) async fn run(g: &GlobalArgs, c: NodeCommand) -> CtlResult {
    let ctx = context::resolve(g)?;
    let client = ctx.client()?;
    let (name, verb) = match c {
        NodeCommand::Ls => {
            let nodes = client
                .list_nodes()
                .await
                .map_err(|e| CtlError::api("listing nodes", &e))?;
            return show(g, &nodes, false);
        }
        NodeCommand::Get { name } => {
            let n = client
                .get_node(&name)
                .await
                .map_err(|e| CtlError::api(&format!("getting node {name}"), &e))?;
            return show(g, &[n], true);
        }
        NodeCommand::Describe { name } => {
            let n = client
                .get_node(&name)
                .await
                .map_err(|e| CtlError::api(&format!("describing node {name}"), &e))?;
            let revision = client.info().await.map(|i| i.revision).unwrap_or(0);
            let events = events_about(&client, &format!("node/{name}"), revision)
                .await
                .unwrap_or_default();
            let view = NodeView::from(&n);
            if let OutputFormat::Json | OutputFormat::Yaml = g.output {
                return output::print_doc(g.output, &Description { node: view, events });
            }
            println!("Name:         {}", view.name);
            println!("ID:           {}", view.id);
            println!("Status:       {}", view.liveness);
            println!("Scheduling:   {}", view.schedulability);
            println!("Region/zone:  {}/{}", dash(&view.region), dash(&view.zone));
            println!(
                "Platform:     {}/{}",
                dash(&view.os),
                dash(&view.architecture)
            );
            println!("Labels:       {}", output::labels(&view.labels));
            println!("Capacity:     {}", res(&view.capacity));
            println!("Allocatable:  {}", res(&view.allocatable));
            println!("Reserved:     {}", res(&view.reserved));
            println!("Replicas:     {}", view.replicas);
            println!("Registered:   {} ago", age(view.registered_at_ms));
            println!("Last seen:    {} ago", age(view.last_seen_ms));
            println!("Events:");
            if events.is_empty() {
                println!("  <none>");
            } else {
                let mut t = Table::new(&["  AGE", "SEVERITY", "REASON", "MESSAGE"]);
                for e in &events {
                    t.row(vec![
                        format!("  {}", age(e.at_ms)),
                        e.severity.clone(),
                        e.reason.clone(),
                        super::error::one_line(&e.message),
                    ]);
                }
                t.print();
            }
            return Ok(());
        }
        NodeCommand::Rm { name, revoke } => {
            client
                .remove_node(&name, revoke)
                .await
                .map_err(|e| CtlError::api(&format!("removing node {name}"), &e))?;
            if let OutputFormat::Json | OutputFormat::Yaml = g.output {
                return output::print_doc(
                    g.output,
                    &serde_json::json!({"kind": "Node", "name": name, "action": "removed", "revoked": revoke}),
                );
            }
            println!(
                "node/{name} removed{}",
                if revoke {
                    " and its identity revoked"
                } else {
                    ""
                }
            );
            return Ok(());
        }
        NodeCommand::Cordon { name } => (name, "cordoned"),
        NodeCommand::Uncordon { name } => (name, "uncordoned"),
        NodeCommand::Drain { name } => (name, "drained"),
    };
    let result = match verb {
        "cordoned" => client.cordon(&name).await,
        "uncordoned" => client.uncordon(&name).await,
        _ => client.drain(&name).await,
    };
    let n = result
        .map_err(|e| CtlError::api(&format!("node {name}: {}", verb.trim_end_matches('d')), &e))?;
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => show(g, &[n], true),
        _ => {
            println!("node/{name} {verb} (now {})", n.schedulability);
            Ok(())
        }
    }
}
