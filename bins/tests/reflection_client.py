#!/usr/bin/env python3
"""A generic gRPC client of the Cloudless public API, driven only by server reflection.

Used by bins/tests/reflection_python.rs:

    reflection_client.py HOST:PORT CREDENTIALS.pem SERVER_NAME [--no-cert]

CREDENTIALS.pem is the admin credentials file `cloudless-coordinator init` writes (private
key, admin certificate, CA certificate). SERVER_NAME is the DNS name every coordinator
certificate carries, `api.<cluster>.cloudless.internal`; grpcio checks the server's
certificate against it (and the cluster CA) and sends it as the TLS server name. The script
lists the services through reflection (grpcio-reflection, v1alpha), finds
`cloudless.v1.Cluster/Info` in the reflected descriptors, builds its request and response
classes from them and calls it. It prints one JSON object. With --no-cert it presents no client
certificate and reports how the server refused it (exit 0 when refused, 3 when the server
answered).
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def pem_blocks(text, kind):
    begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
    out, rest = [], text
    while begin in rest:
        start = rest.index(begin)
        stop = rest.index(end, start) + len(end)
        out.append(rest[start:stop] + "\n")
        rest = rest[stop:]
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    with_cert = "--no-cert" not in sys.argv
    if len(args) != 3:
        raise SystemExit(__doc__)
    target, credentials, server_name = args
    text = open(credentials).read()
    keys = pem_blocks(text, "PRIVATE KEY")
    certs = pem_blocks(text, "CERTIFICATE")
    if len(keys) != 1 or len(certs) < 2:
        raise SystemExit(f"{credentials}: expected a key, the admin and the CA certificates")
    tls = grpc.ssl_channel_credentials(
        root_certificates=certs[-1].encode(),
        private_key=keys[0].encode() if with_cert else None,
        certificate_chain="".join(certs[:-1]).encode() if with_cert else None,
    )
    channel = grpc.secure_channel(
        target, tls, options=[("grpc.ssl_target_name_override", server_name)]
    )
    out = {}
    try:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        pool = descriptor_pool.DescriptorPool(db)
        methods = {}
        for name in services:
            svc = pool.FindServiceByName(name)
            methods[name] = sorted(m.name for m in svc.methods)
        svc = pool.FindServiceByName("cloudless.v1.Cluster")
        info = svc.methods_by_name["Info"]
        request_class = message_factory.GetMessageClass(info.input_type)
        response_class = message_factory.GetMessageClass(info.output_type)
        call = channel.unary_unary(
            f"/{svc.full_name}/{info.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(request_class(), timeout=10)
        out = {
            "services": services,
            "methods": methods,
            "info": json_format.MessageToDict(
                response, preserving_proto_field_name=True
            ),
        }
        code = 0 if with_cert else 3
    except grpc.RpcError as e:
        out = {
            "refused": e.code().name,
            "details": e.details(),
        }
        code = 3 if with_cert else 0
    print(json.dumps(out))
    channel.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
