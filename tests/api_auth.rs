//! Public API authentication and authorization over real TLS: no certificate, or one from
//! another CA, is refused on every service (reflection and health included); agents can
//! neither mutate nor read; coordinators read but do not mutate; reflection lists every
//! service for a valid certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::sync::Arc;

use api_common::{TestApi, ca, creds, workload_manifest};
use cloudless::Client;
use cloudless::api::{self, pb};
use cloudless_core::transport::Role;
use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// The service names reflection lists, or the status of the attempt.
async fn reflect(channel: Channel) -> Result<Vec<String>, tonic::Status> {
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([req]))
        .await?
        .into_inner();
    let first = stream
        .next()
        .await
        .ok_or_else(|| tonic::Status::unknown("empty reflection stream"))??;
    match first.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            Ok(l.service.into_iter().map(|s| s.name).collect())
        }
        other => Err(tonic::Status::unknown(format!("unexpected {other:?}"))),
    }
}

/// Calls one method of every service through `client`; returns the failures' codes.
async fn every_service(client: &Client) -> Vec<(&'static str, Result<(), Code>)> {
    let ch = client.channel().expect("channel");
    let mut out = Vec::new();
    out.push((
        "Workloads.Create",
        client
            .create_workload(&workload_manifest("intruder", 1))
            .await
            .map(|_| ())
            .map_err(|e| e.code()),
    ));
    out.push((
        "Workloads.List",
        client
            .list_workloads("")
            .await
            .map(|_| ())
            .map_err(|e| e.code()),
    ));
    out.push((
        "Nodes.List",
        client.list_nodes().await.map(|_| ()).map_err(|e| e.code()),
    ));
    let watch = match client.watch(0, &[]).await {
        Ok(mut s) => match s.next().await {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.code()),
            None => Err(Code::Unknown),
        },
        Err(e) => Err(e.code()),
    };
    out.push(("Events.Watch", watch));
    out.push((
        "Cluster.Info",
        client.info().await.map(|_| ()).map_err(|e| e.code()),
    ));
    out.push((
        "Cluster.CreateJoinToken",
        client
            .create_join_token("agent", std::time::Duration::from_secs(60), None)
            .await
            .map(|_| ())
            .map_err(|e| e.code()),
    ));
    out.push((
        "Health.Check",
        HealthClient::new(ch.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|_| ())
            .map_err(|e| e.code()),
    ));
    out.push((
        "Reflection.ListServices",
        reflect(ch).await.map(|_| ()).map_err(|e| e.code()),
    ));
    out
}

#[tokio::test]
async fn clients_without_a_cluster_certificate_are_refused_everywhere() {
    let api = TestApi::start().await;
    let rogue_ca = ca(api_common::CLUSTER);
    let rogue_admin = creds(&rogue_ca, Role::Admin, 0);
    let rogue_tls =
        cloudless_net::identity::tls::client_config(api.ca.cert(), Some(&rogue_admin), api::ALPN)
            .expect("tls");
    let no_cert = api.client_with(None);
    let other_ca = Client::with_rustls([api.addr()], Arc::new(rogue_tls)).expect("client");

    for (who, client) in [("no certificate", &no_cert), ("another CA", &other_ca)] {
        for (call, result) in every_service(client).await {
            // Refused at the handshake: a transport failure, never an answer of a handler.
            assert!(
                matches!(result, Err(Code::Unknown | Code::Unavailable)),
                "{who}: {call}: {result:?}"
            );
        }
    }
    // Nothing changed, and the server still serves a valid admin.
    let admin = api.admin_client();
    assert!(admin.list_workloads("").await.expect("list").is_empty());
    assert!(admin.list_join_tokens().await.expect("tokens").is_empty());
    for (call, result) in every_service(&admin).await {
        assert!(result.is_ok(), "admin: {call} failed: {result:?}");
    }
}

#[tokio::test]
async fn reflection_lists_every_service_for_a_valid_certificate() {
    let api = TestApi::start().await;
    let admin = api.admin_client();
    let mut names = reflect(admin.channel().expect("channel"))
        .await
        .expect("reflection");
    names.sort();
    for s in [
        "cloudless.v1.Cluster",
        "cloudless.v1.Events",
        "cloudless.v1.Nodes",
        "cloudless.v1.Workloads",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == s), "{s} missing from {names:?}");
    }
}

#[tokio::test]
async fn agents_cannot_mutate_or_read_and_coordinators_only_read() {
    let api = TestApi::start().await;
    let agent = api.client_as(Role::Agent, 11);
    for e in [
        agent
            .create_workload(&workload_manifest("web", 1))
            .await
            .expect_err("agent create"),
        agent
            .scale("demo", "web", 2)
            .await
            .expect_err("agent scale"),
        agent.cordon("edge-1").await.expect_err("agent cordon"),
        agent
            .create_join_token("agent", std::time::Duration::from_secs(60), None)
            .await
            .expect_err("agent token"),
        agent.list_workloads("").await.expect_err("agent list"),
    ] {
        assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    }

    let admin = api.admin_client();
    admin
        .create_workload(&workload_manifest("web", 1))
        .await
        .expect("admin create");

    let coordinator = api.client_as(Role::Coordinator, 2);
    assert_eq!(coordinator.list_workloads("").await.expect("read").len(), 1);
    let e = coordinator
        .delete_workload("demo", "web")
        .await
        .expect_err("coordinator delete");
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");

    // A forwarded-for header from a non-coordinator is ignored: the agent stays an agent.
    let mut raw = pb::workloads_client::WorkloadsClient::new(agent.channel().expect("channel"));
    let mut req = tonic::Request::new(pb::DeleteWorkloadRequest {
        workload: Some(pb::WorkloadRef {
            namespace: "demo".into(),
            name: "web".into(),
        }),
        idempotency_key: String::new(),
    });
    req.metadata_mut().insert(
        api::FORWARDED_FOR_KEY,
        format!("spiffe://{}/admin/0", api_common::CLUSTER)
            .parse()
            .expect("metadata"),
    );
    let e = raw.delete(req).await.expect_err("spoofed");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(admin.list_workloads("").await.expect("list").len(), 1);

    let info = admin.info().await.expect("info");
    assert_eq!(
        info.caller,
        format!("spiffe://{}/admin/0", api_common::CLUSTER)
    );
}
