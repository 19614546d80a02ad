"""Fixtures of the PACS tests: a real Orthanc (Debian's package) loaded with ``site-node synth`` output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest

from infra.orthanc import Orthanc, dicom_files, free_port, orthanc_binary

REPO = Path(__file__).resolve().parents[3]
SCP_AET = "SITENODE"

needs_orthanc = pytest.mark.skipif(
    orthanc_binary() is None, reason="Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
)


@pytest.fixture(scope="session")
def synth_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic hospital export (3 patients: CT+SEG, MR, CR studies)."""
    from site_node.synthetic import generate_site

    out = tmp_path_factory.mktemp("synth")
    generate_site(out, patients=3, seed=11, style="a")
    return out / "dicom"


@pytest.fixture(scope="session")
def studies(synth_export: Path) -> dict[str, list[Path]]:
    """Accession number -> the files of its study."""
    out: dict[str, list[Path]] = {}
    for path in dicom_files(synth_export):
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["AccessionNumber"])
        out.setdefault(str(ds.AccessionNumber), []).append(path)
    return out


@pytest.fixture
def make_orthanc(tmp_path: Path, synth_export: Path) -> Iterator[Callable[..., Orthanc]]:
    """Start Orthancs loaded with the synthetic export; all stopped at the end of the test."""
    started: list[Orthanc] = []

    def make(
        scp_port: int | None = None, allow_get: bool = True, load: bool = True, **kwargs: object
    ) -> Orthanc:
        modalities = {"sitenode": (SCP_AET, "127.0.0.1", scp_port, allow_get)} if scp_port else {}
        orthanc = Orthanc(tmp_path / f"orthanc{len(started)}", modalities=modalities, **kwargs)  # type: ignore[arg-type]
        started.append(orthanc.start())
        if load:
            orthanc.upload(dicom_files(synth_export))
        return orthanc

    yield make
    for orthanc in started:
        orthanc.stop()


@pytest.fixture
def scp_port() -> int:
    """A free port for the node's own SCP (C-MOVE destination, listener)."""
    return free_port()


def site_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``site-node`` in a subprocess with ``home`` as its home."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SITE_NODE_")}
    full_env.update({"SITE_NODE_HOME": str(home), "PYTHONPATH": str(REPO)}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", "from site_node.cli import main; main()", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def init_site(
    home: Path,
    orthanc: Orthanc,
    scp_port: int,
    aet: str = "ORTHANC",
    extra_toml: str = "",
    key: bytes | None = None,
) -> None:
    """Initialise a site home whose [pacs] port is ``scp_port`` and add ``orthanc`` as node ``pacs1``.

    ``key``, when given, is written before init (init keeps it and stores its check value).
    """
    from common.crypto import write_key
    from site_node.home import init_home, open_site
    from site_node.pacs.nodes import PacsNode, add_node

    if key is not None:
        write_key(home / "phi", key)
    init_home(home, "site-a")
    toml = home / "site.toml"
    toml.write_text(
        toml.read_text()
        + f'\n[pacs]\naet = "{SCP_AET}"\nport = {scp_port}\nbind = "127.0.0.1"\ntimeout_s = 10\nretries = 1\n'
        + "backoff_s = 0.2\nquiet_period_s = 1\n"
        + extra_toml
    )
    site = open_site(home)
    add_node(site.engine, PacsNode("pacs1", aet, "127.0.0.1", orthanc.dicom_port, orthanc.dicomweb_url))
