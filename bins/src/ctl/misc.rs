//! `event watch`, `token ...`, `cluster info`.

use std::io::Write;

use serde::Serialize;

use super::args::{ClusterCommand, EventCommand, GlobalArgs, OutputFormat, TokenCommand};
use super::context;
use super::error::{CtlError, CtlResult};
use super::output::{self, ChangeView, List, Table, TokenView, age};

/// `event watch`: one line (table), one compact JSON object per line (json), or one YAML
/// document per change.
pub(crate) async fn event(g: &GlobalArgs, c: EventCommand) -> CtlResult {
    let EventCommand::Watch { from, kinds, limit } = c;
    let ctx = context::resolve(g)?;
    let client = ctx.client()?;
    let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
    let mut stream = client
        .watch(from, &kinds)
        .await
        .map_err(|e| CtlError::api("watching changes", &e))?;
    let mut seen = 0u64;
    while limit.is_none_or(|l| seen < l) {
        let change = match stream.message().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(s) => return Err(CtlError::api("watching changes", &s.into())),
        };
        seen += 1;
        let view = ChangeView::from(&change);
        let mut out = std::io::stdout().lock();
        let line = match g.output {
            OutputFormat::Json => serde_json::to_string(&view)
                .map_err(|e| CtlError::general(format!("encoding JSON: {e}")))?,
            OutputFormat::Yaml => format!(
                "---\n{}",
                serde_saphyr::to_string(&view)
                    .map_err(|e| CtlError::general(format!("encoding YAML: {e}")))?
                    .trim_end()
            ),
            _ => match &view.event {
                Some(e) => format!(
                    "{:>6}  event     {}  {} {}: {}",
                    view.revision,
                    e.severity,
                    e.reason,
                    e.subject,
                    super::error::one_line(&e.message)
                ),
                None => format!(
                    "{:>6}  {:<9} {}{}",
                    view.revision,
                    view.kind,
                    view.key,
                    if view.deleted { " deleted" } else { "" }
                ),
            },
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

/// `token create -o json`.
#[derive(Debug, Serialize)]
struct CreatedToken {
    token: String,
    record: Option<TokenView>,
}

fn expires(ms: u64) -> String {
    let now = output::now_ms();
    if ms <= now {
        return "expired".into();
    }
    let s = (ms - now) / 1000;
    match s {
        0..=7199 => format!("in {}m", s / 60),
        _ => format!("in {}h", s / 3600),
    }
}

/// `token ...`.
pub(crate) async fn token(g: &GlobalArgs, c: TokenCommand) -> CtlResult {
    let ctx = context::resolve(g)?;
    let client = ctx.client()?;
    match c {
        TokenCommand::Create {
            role,
            ttl,
            max_uses,
        } => {
            let r = client
                .create_join_token(&role, ttl, max_uses)
                .await
                .map_err(|e| CtlError::api("creating a join token", &e))?;
            let record = r.record.as_ref().map(TokenView::from);
            match g.output {
                OutputFormat::Json | OutputFormat::Yaml => output::print_doc(
                    g.output,
                    &CreatedToken {
                        token: r.token,
                        record,
                    },
                ),
                _ => {
                    println!("{}", r.token);
                    if let Some(t) = record {
                        eprintln!(
                            "token {} for role {} expires {}; the secret is shown only now",
                            t.id,
                            t.role,
                            expires(t.expires_at_ms)
                        );
                    }
                    Ok(())
                }
            }
        }
        TokenCommand::Ls => {
            let list = client
                .list_join_tokens()
                .await
                .map_err(|e| CtlError::api("listing join tokens", &e))?;
            let views: Vec<TokenView> = list.iter().map(TokenView::from).collect();
            match g.output {
                OutputFormat::Json | OutputFormat::Yaml => {
                    output::print_doc(g.output, &List::new("JoinToken", views))
                }
                _ => {
                    let mut t = Table::new(&["ID", "ROLE", "USES", "EXPIRES", "REVOKED", "AGE"]);
                    for v in views {
                        t.row(vec![
                            v.id,
                            v.role,
                            if v.max_uses == 0 {
                                format!("{}/unlimited", v.uses)
                            } else {
                                format!("{}/{}", v.uses, v.max_uses)
                            },
                            expires(v.expires_at_ms),
                            v.revoked.to_string(),
                            age(v.created_at_ms),
                        ]);
                    }
                    t.print();
                    Ok(())
                }
            }
        }
        TokenCommand::Revoke { id } => {
            client
                .revoke_join_token(&id)
                .await
                .map_err(|e| CtlError::api(&format!("revoking join token {id}"), &e))?;
            match g.output {
                OutputFormat::Json | OutputFormat::Yaml => output::print_doc(
                    g.output,
                    &serde_json::json!({"kind": "JoinToken", "id": id, "action": "revoked"}),
                ),
                _ => {
                    println!("token/{id} revoked");
                    Ok(())
                }
            }
        }
    }
}

/// `cluster info -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InfoView {
    cluster: String,
    endpoint: String,
    member: u64,
    leader: u64,
    leader_address: String,
    term: u64,
    voters: Vec<u64>,
    revision: u64,
    nodes: u32,
    workloads: u32,
    ca_digest: String,
    caller: String,
}

/// `cluster info`.
pub(crate) async fn cluster(g: &GlobalArgs, c: ClusterCommand) -> CtlResult {
    let ClusterCommand::Info = c;
    let ctx = context::resolve(g)?;
    let client = ctx.client()?;
    let i = client
        .info()
        .await
        .map_err(|e| CtlError::api("reading cluster info", &e))?;
    let v = InfoView {
        cluster: i.cluster,
        endpoint: client.current_endpoint(),
        member: i.member,
        leader: i.leader,
        leader_address: i.leader_address,
        term: i.term,
        voters: i.voters,
        revision: i.revision,
        nodes: i.nodes,
        workloads: i.workloads,
        ca_digest: i.ca_digest,
        caller: i.caller,
    };
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => output::print_doc(g.output, &v),
        _ => {
            let voters: Vec<String> = v.voters.iter().map(u64::to_string).collect();
            println!("Cluster:     {}", v.cluster);
            println!("Endpoint:    {} (member {})", v.endpoint, v.member);
            println!(
                "Leader:      {}{}",
                if v.leader == 0 {
                    "unknown".to_owned()
                } else {
                    v.leader.to_string()
                },
                if v.leader_address.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", v.leader_address)
                }
            );
            println!("Term:        {}", v.term);
            println!("Voters:      {}", voters.join(", "));
            println!("Revision:    {}", v.revision);
            println!("Nodes:       {}", v.nodes);
            println!("Workloads:   {}", v.workloads);
            println!("CA digest:   {}", v.ca_digest);
            println!("You are:     {}", v.caller);
            Ok(())
        }
    }
}
