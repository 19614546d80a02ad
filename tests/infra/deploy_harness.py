"""Helpers of the real-deployment test: ports, bounded waits, process clean-up, TLS probes, policy.

Every process the test starts is tracked (including NVFlare's job processes, which leave their
parent's process group) and killed by pid at the end, whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "infra" / "deploy"
SITE_POLICY = DEPLOY / "site-policy"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free right now."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a service not up yet: keep polling
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})")


class ProcessTracker:
    """Remembers every process the test started and all their descendants, and kills them."""

    def __init__(self) -> None:
        self.known: dict[int, float] = {}  # pid -> create_time (guards against pid reuse)

    def add(self, pid: int) -> None:
        """Track ``pid`` and its current descendants."""
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                self.known[p.pid] = p.create_time()
        except psutil.Error:
            pass

    def add_pid_files(self, *run_dirs: Path) -> None:
        """Track the processes named by the ``*.pid`` files of the start scripts."""
        for run_dir in run_dirs:
            for pid_file in run_dir.glob("*.pid"):
                text = pid_file.read_text().strip()
                if text.isdigit():
                    self.add(int(text))

    def snapshot(self) -> None:
        """Re-scan the descendants of everything tracked (new job processes appear over time)."""
        for pid in list(self.known):
            self.add(pid)

    def kill_all(self, grace: float = 5.0) -> list[int]:
        """SIGTERM then SIGKILL every tracked process still alive; return the pids that were alive."""
        self.snapshot()
        alive = self._alive()
        for proc in alive:
            _signal(proc, signal.SIGTERM)
        _, still = psutil.wait_procs(alive, timeout=grace)
        for proc in still:
            _signal(proc, signal.SIGKILL)
        psutil.wait_procs(still, timeout=grace)
        return [p.pid for p in alive]

    def alive_pids(self) -> list[int]:
        """Pids of tracked processes still running (after a fresh descendant scan)."""
        self.snapshot()
        return [p.pid for p in self._alive()]

    def _alive(self) -> list[psutil.Process]:
        procs = []
        for pid, created in self.known.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    procs.append(proc)
            except psutil.Error:
                continue
        return procs


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def run_script(name: str, *args: str, env: dict[str, str], timeout: float = 90) -> str:
    """Run one of ``infra/deploy/*.sh``; fail with its output when it exits non-zero."""
    result = subprocess.run(
        ["bash", str(DEPLOY / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(f"{name} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def tls_handshake(port: int, cert: Path, key: Path, ca: Path) -> str:
    """Speak HTTPS to ``localhost:port`` with a client certificate; 'accepted' or 'refused'.

    With TLS 1.3 the server checks the client certificate after the client's handshake is done,
    so a refusal shows as an alert or a closed connection on the first read.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("localhost", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                answer = conn.recv(64)
        except (ssl.SSLError, ConnectionResetError, TimeoutError):
            return "refused"
    return "accepted" if answer.startswith(b"HTTP/") else "refused"


def script_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for the deploy scripts: HOME in the test folder, this venv, short stop timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SITE_NODE_", "HUB_"))}
    env.update(
        {
            "HOME": str(home),
            "FEDIMAGING_VENV": str(Path(sys.executable).parent.parent),
            "FEDIMAGING_STOP_TIMEOUT": "10",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env
