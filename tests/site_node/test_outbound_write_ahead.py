"""The outbound ledger writes ahead (issue 12): ``pending`` before the bytes leave, then the outcome.

A process killed between sending and recording must leave a ``pending`` row — never an egress the
ledger does not know about. The kill is real: a subprocess sends to a real HTTP server on loopback
and is stopped with SIGKILL at that exact point (reached through the test hook of ``outbound``).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from site_node.db import outbound_ledger
from site_node.home import open_site
from site_node.outbound import PAUSE_AFTER_SEND_ENV, list_ledger, send_outbound
from tests.conftest import run_site_cli as _run

REPO = Path(__file__).resolve().parents[2]


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Accepts a POST and notes the ledger rows that existed when the bytes arrived."""

    home: Path | None = None
    seen: list[tuple[bytes, list[tuple[str, str]]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        rows: list[tuple[str, str]] = []
        if _Recorder.home is not None:
            engine = open_site(_Recorder.home, upgrade=False, verify_key=False).engine
            with engine.connect() as conn:
                rows = [
                    tuple(r) for r in conn.execute(select(outbound_ledger.c.sha256, outbound_ledger.c.status))
                ]
        _Recorder.seen.append((body, rows))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def receiver(site_home: Path) -> Iterator[str]:
    _Recorder.home, _Recorder.seen = site_home, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/summaries"
    httpd.shutdown()
    _Recorder.home = None


def test_pending_row_is_committed_before_the_bytes_leave(site_home: Path, receiver: str) -> None:
    engine = open_site(site_home).engine
    payload = b'{"counts": {"persons": "<10"}}'
    receipt = send_outbound(engine, url=receiver, kind="cohort_summary", payload=payload)
    body, rows_at_arrival = _Recorder.seen[-1]
    digest = hashlib.sha256(payload).hexdigest()
    assert body == payload and rows_at_arrival == [(digest, "pending")]
    row = list_ledger(engine)[-1]
    assert receipt.status == "sent" and row["status"] == "sent" and row["note"] == "HTTP 200"
    assert row["completed_at"] is not None


def test_kill_between_sending_and_recording_leaves_a_pending_row(
    site_home: Path, receiver: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "sent.marker"
    payload = json.dumps({"counts": {"persons": 42}, "note": "kill test"}).encode()
    script = (
        "import sys\n"
        "from site_node.home import open_site\n"
        "from site_node.outbound import send_outbound\n"
        "site = open_site(sys.argv[1])\n"
        "send_outbound(site.engine, url=sys.argv[2], kind='cohort_summary', payload=sys.argv[3].encode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITE_NODE_")}
    env.update({"PYTHONPATH": str(REPO), PAUSE_AFTER_SEND_ENV: str(marker)})
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(site_home), receiver, payload.decode()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "timed out"  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)  # the bytes left; the outcome was never recorded
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _Recorder.seen[-1][0] == payload  # the hub got the bytes
    rows = list_ledger(open_site(site_home).engine)
    assert [(r["sha256"], r["status"]) for r in rows] == [(hashlib.sha256(payload).hexdigest(), "pending")]

    code, out, _ = _run(["status", "--home", str(site_home), "--json"], capsys)
    assert code == 0 and json.loads(out)["ledger"]["pending"] == 1
    code, out, _ = _run(["status", "--home", str(site_home)], capsys)
    assert "1 outbound payload(s) pending" in out
    code, out, _ = _run(["ledger", "--status", "pending", "--home", str(site_home), "--json"], capsys)
    assert code == 0 and [r["sha256"] for r in json.loads(out)] == [hashlib.sha256(payload).hexdigest()]
