"""Inference fixtures: an identified synthetic study (as the PACS would hold it) and model weights."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.site_node.pacs.conftest import make_orthanc, scp_port, studies, synth_export  # noqa: F401


@pytest.fixture(scope="session")
def synth_hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic hospital export (identified DICOM: names, IDs, accession numbers)."""
    from site_node.synthetic.generator import generate_site

    out = tmp_path_factory.mktemp("hospital")
    generate_site(out, patients=2, seed=3, style="a")
    return out


@pytest.fixture
def study_dir(synth_hospital: Path, tmp_path: Path) -> Path:
    """A copy of one CT study of the hospital (CT series + its ground-truth SEG)."""
    ct = sorted(synth_hospital.glob("dicom/*/*/*_CT"))[0]
    target = tmp_path / "study"
    shutil.copytree(ct.parent, target)
    return target


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seg3d checkpoint (freshly initialised network, as torch.save writes a state dict)."""
    import torch

    from site_node.training.model import SegUNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "seg3d.pt"
    torch.save(SegUNet().state_dict(), path)
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for ``path`` (skips when dicom3tools is absent)."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


class WebhookReceiver:
    """A real HTTP server on loopback that records each POSTed JSON body."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: list[dict] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.received = received
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A loopback webhook receiver, stopped after the test."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
