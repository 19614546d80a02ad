"""The one egress function: sends, records hash/size/bytes, records failures too."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import RemoteError
from site_node.home import open_site
from site_node.outbound import ledger_payloads, list_ledger, send_outbound


class _Handler(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Handler.received.append(body)
        status = 401 if self.headers.get("Authorization") != "Bearer good-token" else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"message": "no" if status != 200 else "ok"}).encode())

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/summary"
    httpd.shutdown()


def test_send_records_exact_bytes(site_home: Path, server: str) -> None:
    engine = open_site(site_home).engine
    payload = b'{"counts": {"persons": "<10"}}'
    receipt = send_outbound(engine, url=server, kind="cohort_summary", payload=payload, token="good-token")
    assert receipt.status == "sent" and receipt.response == {"message": "ok"}
    assert _Handler.received[-1] == payload
    row = list_ledger(engine)[-1]
    assert row["sha256"] == hashlib.sha256(payload).hexdigest() and row["size_bytes"] == len(payload)
    assert ledger_payloads(engine)[-1][2] == payload


def test_refused_send_is_recorded_and_raises(site_home: Path, server: str) -> None:
    engine = open_site(site_home).engine
    with pytest.raises(RemoteError, match="HTTP 401"):
        send_outbound(engine, url=server, kind="cohort_summary", payload=b"{}", token="bad")
    assert list_ledger(engine)[-1]["status"] == "failed"


def test_unreachable_destination(site_home: Path) -> None:
    engine = open_site(site_home).engine
    with pytest.raises(RemoteError, match="could not reach"):
        send_outbound(engine, url="http://127.0.0.1:9/x", kind="cohort_summary", payload=b"{}", timeout=2)
    assert list_ledger(engine)[-1]["status"] == "failed"


def test_dry_run_sends_nothing(site_home: Path, server: str) -> None:
    engine = open_site(site_home).engine
    before = len(_Handler.received)
    receipt = send_outbound(engine, url=server, kind="cohort_summary", payload=b"{}", dry_run=True)
    assert receipt.status == "dry_run" and len(_Handler.received) == before


def test_ledger_export_writes_exact_bytes(
    site_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from site_node.cli import main
    from site_node.outbound import record_outbound

    engine = open_site(site_home).engine
    payload = b'{"persons": "<10", "series": 12}'
    record_outbound(engine, destination="http://hub/summaries", kind="cohort_summary", payload=payload)
    main(["ledger", "--home", str(site_home), "--export", str(tmp_path / "out"), "--json"])
    rows = json.loads(capsys.readouterr().out)
    files = sorted((tmp_path / "out").iterdir())
    assert len(rows) == 1 and [f.name for f in files] == ["000001-cohort_summary.bin"]
    assert files[0].read_bytes() == payload
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == rows[0]["sha256"]
