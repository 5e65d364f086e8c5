"""Real redis-server processes on free loopback ports, started and stopped by the tests.

:class:`RedisServer` is one server. :class:`RedisClusterNodes` is a Redis Cluster of
three masters, built without ``redis-cli`` (``CLUSTER ADDSLOTSRANGE`` and ``CLUSTER
MEET`` sent with redis-py). :class:`SentinelGroup` is a master, a replica and one
Sentinel (``redis-server --sentinel``, quorum 1) that promotes the replica once the
master is killed. Each takes the server binary, so that Valkey can stand in for Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REDIS_SERVER = shutil.which("redis-server")
MISSING = (
    "redis-server is not installed: apt-get install redis-server (.ci/run installs it when missing)"
)
VALKEY_SERVER = shutil.which("valkey-server")
VALKEY_MISSING = (
    "valkey-server is not installed: Debian packages it from Debian 13 on "
    "(apt-get install valkey-server; .ci/run installs it where apt knows it)"
)
#: The server binaries a fleet test runs against, by name: (path or None, why missing).
SERVERS: dict[str, tuple[str | None, str]] = {
    "redis": (REDIS_SERVER, MISSING),
    "valkey": (VALKEY_SERVER, VALKEY_MISSING),
}
SETTLE = 20.0  # seconds a cluster or a failover may take to settle (a guard, not a measure)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, ready: Callable[[], bool], limit: float = SETTLE) -> None:
    """Poll ``ready()`` until it holds; fail the test after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {limit:g}s")
        time.sleep(0.05)


def server_binary(name: str = "redis") -> str:
    """The binary of ``name`` ("redis" or "valkey"), or skip the test saying why."""
    binary, missing = SERVERS[name]
    if binary is None:
        pytest.skip(missing)
    return binary


class RedisServer:
    """``start()``/``stop()`` can be called again: the port stays the same.

    Args:
        folder: the server's working folder (its own for each server).
        binary: the server binary (redis-server unless given).
        args: more command-line settings, such as ``["--replicaof", ...]``.
    """

    def __init__(
        self, folder: Path, *, binary: str | None = None, args: Sequence[str] = ()
    ) -> None:
        if binary is None and REDIS_SERVER is None:
            pytest.skip(MISSING)
        self.binary = binary or REDIS_SERVER
        self.port = free_port()
        self.folder = folder
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        import redis

        assert self.binary is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    client.close()
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{Path(self.binary).name} did not answer PING")

    def client(self) -> Any:
        """A plain ``redis.Redis`` on this server (close it after use)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def kill(self) -> None:
        """SIGKILL, as when a host dies: no shutdown, no goodbye to replicas."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class RedisClusterNodes:
    """Three masters on loopback sharing the 16384 slots; ``port`` is the first one's."""

    def __init__(self, folder: Path, *, binary: str) -> None:
        self.nodes = [
            RedisServer(
                folder / f"node{index}",
                binary=binary,
                args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",  # the bus port, chosen free too (not port + 10000)
                    str(free_port()),
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
            for index in range(3)
        ]
        self.port = self.nodes[0].port

    def start(self) -> RedisClusterNodes:
        """Start the nodes and join them; all are stopped again if that fails."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RedisClusterNodes:
        for node in self.nodes:
            node.start()
        clients = [node.client() for node in self.nodes]
        try:
            bounds = [0, 5461, 10923, 16384]
            for index, client in enumerate(clients):
                # distinct epochs spare the nodes their collision resolution
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
                client.execute_command(
                    "CLUSTER", "ADDSLOTSRANGE", bounds[index], bounds[index + 1] - 1
                )
            for node in self.nodes[1:]:
                bus = node.args[node.args.index("--cluster-port") + 1]
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)

            def settled() -> bool:
                return all(
                    "cluster_state:ok" in (info := client.execute_command("CLUSTER", "INFO"))
                    and "cluster_known_nodes:3" in info
                    for client in clients
                )

            wait_for("the cluster did not reach cluster_state:ok", settled)
        finally:
            for client in clients:
                client.close()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelGroup:
    """A master, its replica, and one Sentinel watching them as ``service``.

    The Sentinel marks the master down after ``down_after`` milliseconds without an
    answer and, being the quorum (1) on its own, promotes the replica.
    """

    service = "authplug-test"

    def __init__(self, folder: Path, *, binary: str, down_after: int = 200) -> None:
        self.folder = folder
        self.binary = binary
        self.down_after = down_after
        # the replica's first sync would wait 5 s for more replicas to join it
        self.master = RedisServer(
            folder / "master", binary=binary, args=["--repl-diskless-sync-delay", "0"]
        )
        self.replica = RedisServer(
            folder / "replica",
            binary=binary,
            args=["--replicaof", "127.0.0.1", str(self.master.port)],
        )
        self.sentinel_port = free_port()
        self.sentinel: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelGroup:
        """Start the three processes; all are stopped again if that fails."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> SentinelGroup:
        import redis

        self.master.start()
        self.replica.start()
        sentinel_dir = self.folder / "sentinel"
        sentinel_dir.mkdir(parents=True, exist_ok=True)
        config = sentinel_dir / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        config.write_text(
            f"port {self.sentinel_port}\n"
            "bind 127.0.0.1\n"
            "protected-mode no\n"
            f"dir {sentinel_dir}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} {self.down_after}\n"
            f"sentinel failover-timeout {self.service} 5000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        self.sentinel = subprocess.Popen(
            [self.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        watcher = redis.Redis(host="127.0.0.1", port=self.sentinel_port, decode_responses=True)
        replica = self.replica.client()

        def replica_known() -> bool:
            """The replica is in sync and the Sentinel lists it as a healthy replica."""
            try:
                if replica.info("replication").get("master_link_status") != "up":
                    return False
                replicas = watcher.sentinel_slaves(self.service)
            except redis.ConnectionError:
                return False
            return any(
                r["port"] == self.replica.port and not r["is_disconnected"] and not r["is_sdown"]
                for r in replicas
            )

        try:
            wait_for("the Sentinel did not see the replica in sync", replica_known)
        finally:
            watcher.close()
            replica.close()
        return self

    def master_port(self) -> int | None:
        """The master's port as the Sentinel tells it now; None while it has none up."""
        import redis.sentinel

        sentinel = redis.sentinel.Sentinel([("127.0.0.1", self.sentinel_port)])
        try:
            return int(sentinel.discover_master(self.service)[1])
        except redis.sentinel.MasterNotFoundError:
            return None
        finally:
            for watcher in sentinel.sentinels:
                watcher.close()

    def stop(self) -> None:
        if self.sentinel is not None:
            self.sentinel.terminate()
            self.sentinel.wait(timeout=10)
            self.sentinel = None
        self.replica.stop()
        self.master.stop()
