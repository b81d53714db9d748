#!/usr/bin/env python3
"""A generic gRPC client of the Cloudless public API, driven only by server reflection.

Used by bins/tests/reflection_python.rs:

    reflection_client.py HOST:PORT CREDENTIALS.pem [--no-cert]

CREDENTIALS.pem is the admin credentials file `cloudless-coordinator init` writes (private
key, admin certificate, CA certificate). The script lists the services through reflection
(grpcio-reflection, v1alpha), finds `cloudless.v1.Cluster/Info` in the reflected descriptors,
builds its request and response classes from them and calls it. It prints one JSON object.
With --no-cert it presents no client certificate and reports how the server refused it
(exit 0 when refused, 3 when the server answered).

TLS is done by Python's ssl module, not by grpcio: grpcio checks the server name against DNS
SANs / the CN and sends the name as SNI, while Cloudless certificates carry a SPIFFE URI
only (verified by CA and identity). So the script runs a loopback relay: grpcio speaks
HTTP/2 to it, and it carries the bytes over TLS 1.3 (cluster CA verified, the server's SPIFFE
identity checked, the client certificate presented) to the coordinator.
"""

import asyncio
import json
import ssl
import sys
import threading

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


class Relay:
    """Loopback plain TCP -> TLS 1.3 with (or without) the client certificate."""

    def __init__(self, target, credentials, with_cert):
        host, port = target.rsplit(":", 1)
        self.host, self.port = host, int(port)
        text = open(credentials).read()
        certs = pem_blocks(text, "CERTIFICATE")
        if len(certs) < 2:
            raise SystemExit(f"{credentials}: expected the admin and CA certificates")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False  # identity is checked below, by SPIFFE URI
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=certs[-1])
        ctx.set_alpn_protocols(["h2"])
        if with_cert:
            ctx.load_cert_chain(credentials)
        self.ctx = ctx
        self.errors = []
        self.server_identities = set()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.local_port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _pump(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError, ConnectionError) as e:
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            try:
                writer.close()
            except (OSError, RuntimeError):
                pass

    async def _handle(self, local_reader, local_writer):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.ctx, server_hostname=""
                ),
                timeout=5,
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
            self.errors.append(f"handshake: {type(e).__name__}: {e}")
            local_writer.close()
            return
        cert = writer.get_extra_info("peercert") or {}
        uris = [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]
        if len(uris) != 1 or "/coordinator/" not in uris[0]:
            self.errors.append(f"server is not a coordinator: {uris}")
            writer.close()
            local_writer.close()
            return
        self.server_identities.add(uris[0])
        await asyncio.gather(
            self._pump(local_reader, writer), self._pump(reader, local_writer)
        )


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    with_cert = "--no-cert" not in sys.argv
    if len(args) != 2:
        raise SystemExit(__doc__)
    relay = Relay(args[0], args[1], with_cert)
    channel = grpc.insecure_channel(f"127.0.0.1:{relay.local_port}")
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
            "server": sorted(relay.server_identities),
        }
        code = 0 if with_cert else 3
    except grpc.RpcError as e:
        out = {
            "refused": e.code().name,
            "details": e.details(),
            "tls_errors": relay.errors,
        }
        code = 3 if with_cert else 0
    print(json.dumps(out))
    channel.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
