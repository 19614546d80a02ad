"""Demo step helper: each hospital's DICOM reaches its site node through a PACS when Orthanc is installed.

With Debian's Orthanc, every synthetic hospital gets an Orthanc of its own (free loopback ports), loaded
with its export; the site adds it with ``site-node pacs add`` and pulls the hospital's accession list with
``site-node pacs pull``. Without Orthanc the site reads the export folder (``site-node deid``), and the
demo says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.demo.runner import Demo, console
from infra.orthanc import Orthanc, dicom_files, free_port, orthanc_binary


def _accessions(folder: Path) -> list[str]:
    """The accession numbers of an export (what the hospital would hand over as a list)."""
    import pydicom

    found: set[str] = set()
    for path in dicom_files(folder):
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["AccessionNumber"], force=True)
        if ds.get("AccessionNumber"):
            found.add(str(ds.AccessionNumber))
    return sorted(found)


def dicom_into_site(demo: Demo, name: str, folder: Path, home: str) -> dict[str, Any]:
    """DICOM into the site: pulled by accession list from the hospital's own Orthanc, else from the folder.

    Returns:
        The counts for the site table (``written``, ``quarantined``, ``files_per_s``).
    """
    if orthanc_binary() is None:
        if not demo.state.get("said_no_orthanc"):
            console.print("[yellow]Orthanc is not installed: the sites read DICOM folders (site-node deid).")
            demo.state["said_no_orthanc"] = True
        return demo.cli("site-node", "deid", str(folder), "--home", home, "--json", json_out=True)
    orthanc = Orthanc(demo.workdir / "orthanc" / name, aet=f"PACS{name[-1].upper()}")
    orthanc.start()
    if orthanc.process is not None:
        demo.processes.append(orthanc.process)  # stopped with the demo
    orthanc.upload(dicom_files(folder))
    listing = demo.workdir / "exports" / name / "accessions.txt"
    listing.write_text("\n".join(_accessions(folder)) + "\n")
    port = str(orthanc.dicom_port)
    demo.cli(
        "site-node",
        "pacs",
        "add",
        "pacs",
        "--aet",
        orthanc.aet,
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--dicomweb",
        orthanc.dicomweb_url,
        "--home",
        home,
    )
    env = {"SITE_NODE_PACS__PORT": str(free_port())}
    pulled = demo.cli(
        "site-node",
        "pacs",
        "pull",
        "pacs",
        "--accessions",
        str(listing),
        "--home",
        home,
        "--json",
        env=env,
        json_out=True,
    )
    console.print(
        f"{name}: pulled {pulled['done']} of {pulled['accessions']} accessions from its Orthanc "
        f"({orthanc.aet}, {'/'.join(pulled['retrieval'])}), {pulled['written']} instances de-identified"
    )
    orthanc.stop()
    return {**pulled, "files_per_s": pulled.get("images_per_s", 0)}
