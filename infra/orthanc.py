"""A real, throw-away Orthanc on loopback: for the PACS tests, ``make demo`` and ``benchmarks/pacs_bench.py``.

Debian's ``orthanc`` binary runs unprivileged from a generated JSON configuration: free ports, its own
storage folder, the DICOMweb plugin when installed, and the site node's SCP registered as a modality so
that C-MOVE can send to it. Instances are loaded through Orthanc's REST API (``POST /instances``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGINS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)


def orthanc_binary() -> str | None:
    """Path of the Orthanc server binary, or None when it is not installed."""
    for path in ORTHANC_BINARIES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("Orthanc")


def dicomweb_plugin() -> str | None:
    """Path of the DICOMweb plugin (``orthanc-dicomweb``), or None."""
    for path in DICOMWEB_PLUGINS:
        if os.path.exists(path):
            return path
    found = (
        sorted(Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*"))
        if Path("/usr/lib/orthanc").exists()
        else []
    )
    return str(found[0]) if found else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    """One Orthanc process and what a client needs to reach it.

    Args:
        workdir: folder for the configuration, the storage and the log.
        aet: Orthanc's own AE title.
        modalities: name -> (AET, host, port, allow_get) of peers (C-MOVE destinations, C-GET callers).
        allow_unknown: accept associations and C-GET/C-MOVE/C-FIND from any AE title.
        check_called_aet: reject associations that call another AE title than ``aet``.
    """

    workdir: Path
    aet: str = "ORTHANC"
    modalities: dict[str, tuple[str, str, int, bool]] = field(default_factory=dict)
    allow_unknown: bool = True
    check_called_aet: bool = False
    http_port: int = 0
    dicom_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Root of the REST API."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """Root of the DICOMweb services."""
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, object]:
        """The JSON configuration Orthanc is started with."""
        plugin = dicomweb_plugin()
        modalities = {
            name: {"AET": aet, "Host": host, "Port": port, "AllowGet": get, "AllowMove": True}
            for name, (aet, host, port, get) in self.modalities.items()
        }
        return {
            "Name": f"test-{self.aet}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "DicomCheckCalledAet": self.check_called_aet,
            "UnknownSopClassAccepted": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": self.allow_unknown,
            "DicomAlwaysAllowGet": self.allow_unknown,
            "DicomAlwaysAllowMove": self.allow_unknown,
            "DicomCheckModalityHost": False,
            "DicomModalities": modalities,
            "DicomScpTimeout": 30,
            "StableAge": 2,
            "HttpThreadsCount": 8,
            "ConcurrentJobs": 2,
            "StorageCompression": False,
            "Plugins": [plugin] if plugin else [],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": True,
                "StudiesMetadata": "Full",
            },
        }

    def start(self, timeout: float = 30.0) -> Orthanc:
        """Write the configuration and start Orthanc; wait until its REST API answers.

        Raises:
            RuntimeError: the binary is missing or Orthanc did not come up in time.
        """
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError("Orthanc is not installed (Debian package 'orthanc')")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "storage").mkdir(exist_ok=True)
        for _ in range(5):
            self.http_port, self.dicom_port = free_port(), free_port()
            cfg = self.workdir / "orthanc.json"
            cfg.write_text(json.dumps(self.config(), indent=1))
            log = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115 - owned by the process
            self.process = subprocess.Popen(  # noqa: S603 - fixed binary, generated config
                [binary, str(cfg)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            if self._wait_up(timeout):
                return self
            self.stop()  # most likely a port taken between free_port() and bind: try new ports
        raise RuntimeError("Orthanc did not start; see orthanc.log in its workdir")

    def _wait_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/system", timeout=1) as resp:  # noqa: S310
                    if resp.status == 200 and self._dicom_up():
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def _dicom_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL) if it runs."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """Kill Orthanc at once (a PACS that goes away)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def upload(self, paths: list[Path]) -> int:
        """Store DICOM files through ``POST /instances``; returns how many Orthanc accepted."""
        stored = 0
        for path in paths:
            request = urllib.request.Request(  # noqa: S310 - loopback URL built here
                f"{self.url}/instances", data=path.read_bytes(), method="POST"
            )
            request.add_header("Content-Type", "application/dicom")
            with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
                stored += resp.status == 200
        return stored

    def get_json(self, path: str) -> object:
        """GET a REST resource as JSON."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read())

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dicom_files(folder: Path) -> list[Path]:
    """Every ``.dcm`` file under ``folder`` (sorted)."""
    return sorted(p for p in folder.rglob("*.dcm") if p.is_file())
