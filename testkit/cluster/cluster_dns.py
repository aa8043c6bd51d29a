"""Cluster DNS for the single-node test cluster (no CoreDNS image can be pulled here).

Watches Services through the apiserver (client certificate, plain HTTPS from the standard
library) and answers, on the docker0 address kubelet hands pods as their nameserver:

* ``<svc>.<ns>.svc.cluster.local`` A: the ClusterIP; for a headless Service the ready endpoint
  addresses; for an ExternalName Service a CNAME.
* ``<hostname>.<svc>.<ns>.svc.cluster.local`` A: the endpoint with that hostname (StatefulSets).
* other names under ``cluster.local``: NXDOMAIN (so the search path pods get moves on);
* every other name: forwarded to the host's resolvers (``/etc/resolv.conf``).

Run with an interpreter that has ``dnslib`` (up.sh makes a venv under $CLUSTER_STATE). Also
``--query NAME`` asks a running server and prints the A records (exit 1 when none).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dnslib import CNAME, QTYPE, RCODE, RR, SOA, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

LOG = logging.getLogger("cluster-dns")
TTL = 5


@dataclass(frozen=True)
class Service:
    """What DNS needs of one Service."""

    cluster_ip: str  # "" when headless ("None")
    external_name: str  # "" unless type ExternalName


class ApiClient:
    """A minimal HTTPS client of the apiserver, authenticated by a client certificate."""

    def __init__(self, server: str, ca: str, cert: str, key: str) -> None:
        """Remember the apiserver's address and build the TLS context."""
        url = urlsplit(server)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)

    def open(self, path: str, timeout: float) -> http.client.HTTPResponse:
        """GET ``path``; the caller reads (and closes) the response."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        conn.request("GET", path, headers={"Accept": "application/json"})
        return conn.getresponse()

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """GET ``path`` and return (status, decoded JSON body or None)."""
        resp = self.open(path, timeout)
        try:
            body = resp.read()
            return resp.status, (json.loads(body) if body else None)
        finally:
            resp.close()


class ServiceStore:
    """Services by (namespace, name), kept current by a list-then-watch loop."""

    def __init__(self, api: ApiClient) -> None:
        """Start empty; call :meth:`run` in a thread to fill and follow."""
        self.api = api
        self.services: dict[tuple[str, str], Service] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.last_list = 0.0

    @staticmethod
    def _service(obj: dict[str, Any]) -> Service:
        """The DNS facts of one Service object."""
        spec = obj.get("spec") or {}
        ip = spec.get("clusterIP") or ""
        return Service("" if ip == "None" else ip, spec.get("externalName") or "")

    def relist(self) -> str:
        """Replace the store from a full list; return its resourceVersion."""
        status, body = self.api.get("/api/v1/services", timeout=10)
        if status != 200:
            raise RuntimeError(f"list services: HTTP {status}")
        fresh = {(o["metadata"]["namespace"], o["metadata"]["name"]): self._service(o) for o in body["items"]}
        with self.lock:
            self.services = fresh
            self.last_list = time.monotonic()
        self.synced.set()
        return str(body["metadata"]["resourceVersion"])

    def refresh_if_stale(self, min_age: float = 1.0) -> None:
        """Relist now unless the last list is younger than ``min_age`` seconds (a cache miss)."""
        if time.monotonic() - self.last_list >= min_age:
            try:
                self.relist()
            except Exception as exc:  # noqa: BLE001 - a failed refresh only means a stale answer
                LOG.warning("relist failed: %s", exc)

    def _watch(self, rv: str) -> None:
        """Follow watch events from ``rv`` until the stream ends or the version expires."""
        path = f"/api/v1/services?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}"
        resp = self.api.open(path, timeout=330)
        try:
            if resp.status != 200:
                raise RuntimeError(f"watch services: HTTP {resp.status}")
            while line := resp.readline():
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return  # e.g. 410 Gone: relist
                meta = obj.get("metadata") or {}
                key = (meta.get("namespace", ""), meta.get("name", ""))
                with self.lock:
                    if kind in ("ADDED", "MODIFIED"):
                        self.services[key] = self._service(obj)
                    elif kind == "DELETED":
                        self.services.pop(key, None)
        finally:
            resp.close()

    def run(self) -> None:
        """List and watch forever, retrying after apiserver outages."""
        while True:
            try:
                self._watch(self.relist())
            except Exception as exc:  # noqa: BLE001 - keep serving stale data, retry
                LOG.warning("service watch: %s; retrying", exc)
                time.sleep(1)

    def lookup(self, ns: str, name: str) -> Service | None:
        """The Service ``ns/name``, or None."""
        with self.lock:
            return self.services.get((ns, name))

    def endpoint_ips(self, ns: str, name: str, hostname: str | None = None) -> list[str]:
        """Ready addresses of the Service's Endpoints (only those with ``hostname`` when given)."""
        try:
            status, body = self.api.get(f"/api/v1/namespaces/{ns}/endpoints/{name}")
        except Exception as exc:  # noqa: BLE001
            LOG.warning("endpoints %s/%s: %s", ns, name, exc)
            return []
        if status != 200 or not body:
            return []
        return [
            a["ip"]
            for subset in body.get("subsets") or []
            for a in subset.get("addresses") or []
            if hostname is None or a.get("hostname") == hostname
        ]


class ClusterResolver(BaseResolver):  # type: ignore[misc]  # dnslib has no type hints
    """Answers cluster names from the store and forwards everything else."""

    def __init__(self, store: ServiceStore, zone: str, upstreams: list[str]) -> None:
        """``zone`` is the cluster domain (cluster.local); ``upstreams`` the host's resolvers."""
        self.store = store
        self.zone = zone.strip(".").lower()
        self.upstreams = upstreams
        self.soa = SOA(f"ns.dns.{self.zone}", f"hostmaster.{self.zone}", (1, 7200, 1800, 86400, TTL))

    def _cluster_answer(self, labels: list[str]) -> tuple[list[str], str] | None:
        """(A addresses, CNAME target) for a name below the zone, or None for NXDOMAIN."""
        if len(labels) not in (3, 4) or labels[-1] != "svc":
            return None
        host, (name, ns) = (labels[0] if len(labels) == 4 else None), labels[-3:-1]
        svc = self.store.lookup(ns, name)
        if svc is None and host is None:
            self.store.refresh_if_stale()
            svc = self.store.lookup(ns, name)
        if svc is None:
            return None
        if host is not None:
            ips = self.store.endpoint_ips(ns, name, host)
            return (ips, "") if ips else None
        if svc.external_name:
            return [], svc.external_name
        if svc.cluster_ip:
            return [svc.cluster_ip], ""
        return self.store.endpoint_ips(ns, name), ""

    def _forward(self, request: DNSRecord, tcp: bool) -> DNSRecord:
        """Ask the host's resolvers; SERVFAIL when none answers."""
        for upstream in self.upstreams:
            try:
                raw = request.send(upstream, 53, tcp=tcp, timeout=4)
                return DNSRecord.parse(raw)
            except Exception as exc:  # noqa: BLE001 - try the next one
                LOG.debug("upstream %s: %s", upstream, exc)
        reply = request.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return reply

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        """dnslib's entry point: one reply per request."""
        qname = str(request.q.qname).rstrip(".").lower()
        if not (qname == self.zone or qname.endswith("." + self.zone)):
            return self._forward(request, handler.protocol == "tcp")
        reply = request.reply()
        reply.header.aa = 1
        labels = qname[: -len(self.zone)].rstrip(".").split(".") if qname != self.zone else []
        found = self._cluster_answer(labels)
        if found is None:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(RR(self.zone, QTYPE.SOA, ttl=TTL, rdata=self.soa))
            return reply
        ips, cname = found
        if cname:
            reply.add_answer(RR(request.q.qname, QTYPE.CNAME, ttl=TTL, rdata=CNAME(cname)))
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in ips:
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=TTL, rdata=A(ip)))
        if not reply.rr:
            reply.add_auth(RR(self.zone, QTYPE.SOA, ttl=TTL, rdata=self.soa))  # NODATA
        return reply


def host_resolvers(path: str, exclude: set[str]) -> list[str]:
    """The nameservers of the host's resolv.conf, less loopback ones and ``exclude``."""
    servers = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                ip = parts[1]
                if not ip.startswith("127.") and ip != "::1" and ip not in exclude:
                    servers.append(ip)
    return servers


def query(server: str, name: str, timeout: float = 2.0) -> list[str]:
    """A records of ``name`` from the DNS server at ``server`` (UDP)."""
    raw = DNSRecord.question(name, "A").send(server, 53, timeout=timeout)
    return [str(rr.rdata) for rr in DNSRecord.parse(raw).rr if rr.rtype == QTYPE.A]


def main(argv: list[str] | None = None) -> int:
    """Serve (default) or, with --query, resolve one name and print its addresses."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="172.17.0.1")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--zone", default="cluster.local")
    p.add_argument("--server", default="https://172.17.0.1:6443", help="apiserver URL")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf")
    p.add_argument("--query", metavar="NAME", help="resolve NAME at --listen and exit")
    args = p.parse_args(argv)
    if args.query:
        try:
            ips = query(args.listen, args.query)
        except (TimeoutError, OSError) as exc:
            print(f"no answer: {exc}", file=sys.stderr)
            return 2
        print("\n".join(ips))
        return 0 if ips else 1
    if not (args.ca and args.cert and args.key):
        p.error("--ca, --cert and --key are needed to serve")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = ServiceStore(ApiClient(args.server, args.ca, args.cert, args.key))
    threading.Thread(target=store.run, name="watch", daemon=True).start()
    upstreams = host_resolvers(args.resolv_conf, {args.listen})
    resolver = ClusterResolver(store, args.zone, upstreams)
    logger = DNSLogger("error", prefix=False, logf=LOG.warning)
    servers = [DNSServer(resolver, address=args.listen, port=args.port, tcp=t, logger=logger) for t in (False, True)]
    for server in servers:
        server.start_thread()
    LOG.info("serving %s on %s:%d (udp+tcp), upstreams %s", args.zone, args.listen, args.port, upstreams)
    if not store.synced.wait(30):
        LOG.warning("no service list from the apiserver yet; serving anyway")
    while all(s.isAlive() for s in servers):
        time.sleep(1)
    LOG.error("a listener died")
    return 1


if __name__ == "__main__":
    sys.exit(main())
