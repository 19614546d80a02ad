"""A small step runner for the demo: timed steps, subprocess CLIs, clean shutdown.

Each step calls the platform's public interface (the ``site-node`` / ``central-hub`` commands, the
hub's HTTP API) exactly as a user would, so the demo proves the commands the README documents.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
BIN = Path(sys.executable).parent


class DemoError(RuntimeError):
    """A demo step failed; the message says which and why."""


@dataclass
class Demo:
    """Shared state of one demo run."""

    workdir: Path
    sites: list[str]
    patients: int
    rounds: int
    seed: int
    timings: list[tuple[str, float]] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def step(self, title: str, func: Callable[[], None]) -> None:
        """Run one numbered step, timing it; any exception fails the demo."""
        number = len(self.timings) + 1
        console.rule(f"[bold]{number}. {title}")
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        self.timings.append((title, elapsed))
        console.print(f"[green]✓[/green] {title} [dim]({elapsed:.1f} s)[/dim]")

    def cli(
        self,
        program: str,
        *args: str,
        env: dict[str, str] | None = None,
        json_out: bool = False,
        timeout: float = 900,
    ) -> Any:
        """Run ``site-node`` / ``central-hub`` with ``args``; return parsed JSON when asked."""
        cmd = [str(BIN / program), *args]
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
            raise DemoError(f"{program} {args[0]} exited {result.returncode}:\n" + "\n".join(tail))
        if json_out:
            lines = [ln for ln in result.stdout.strip().splitlines() if ln.startswith(("{", "["))]
            if not lines:
                raise DemoError(f"{program} {args[0]} printed no JSON")
            return json.loads(lines[-1])
        return result.stdout

    def start(
        self, program: str, *args: str, log_name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process (the hub); its output goes to a log file in the workdir."""
        log = open(self.workdir / f"{log_name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [str(BIN / program), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop every process the demo started (SIGTERM, then SIGKILL after 10 s)."""
        for proc in self.processes:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.time() + 10
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
