"""Demo's last step: the global model goes back to a hospital and runs on a new study.

The first site pulls the model the training job published in the hub's registry (digest verified),
then a new study arrives: with Debian's Orthanc it is loaded into the hospital's Orthanc and the site
runs ``site-node infer --pacs --accession`` (results stored back into the study by C-STORE); without
Orthanc it runs on the study's folder (``--input/--out``). The latency is printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.demo.runner import Demo, DemoError, console
from infra.orthanc import Orthanc, dicom_files, orthanc_binary


def _new_study(demo: Demo) -> tuple[Path, str]:
    """A new CT study from one more synthetic patient: its folder and accession number."""
    import pydicom

    out = demo.workdir / "exports" / "new-study"
    demo.cli(
        "site-node",
        "synth",
        str(out),
        "--patients",
        "1",
        "--seed",
        str(demo.seed + 99),
        "--json",
        json_out=True,
    )
    ct = sorted(out.glob("dicom/*/*/*_CT"))
    if not ct:
        raise DemoError("the new synthetic patient has no CT study")
    study = ct[0].parent
    accession = str(pydicom.dcmread(next(ct[0].iterdir()), stop_before_pixels=True).AccessionNumber)
    return study, accession


def _infer_in_pacs(demo: Demo, home: str, name: str, study: Path, accession: str) -> dict[str, Any]:
    orthanc = Orthanc(demo.workdir / "orthanc" / f"{name}-clinical", aet="CLINPACS")
    orthanc.start()
    if orthanc.process is not None:
        demo.processes.append(orthanc.process)
    try:
        orthanc.upload(dicom_files(study))
        demo.cli(
            "site-node", "pacs", "add", "clinical", "--aet", orthanc.aet, "--host", "127.0.0.1",
            "--port", str(orthanc.dicom_port), "--home", home,
        )  # fmt: skip
        result = demo.cli(
            "site-node", "infer", "seg3d", "--pacs", "clinical", "--accession", accession,
            "--home", home, "--json", json_out=True,
        )  # fmt: skip
        series = [orthanc.get_json(f"/series/{s}") for s in orthanc.get_json("/series")]  # type: ignore[union-attr]
        modalities = sorted(s["MainDicomTags"].get("Modality", "") for s in series)
        if "SEG" not in modalities or "SR" not in modalities:
            raise DemoError(f"results did not reach the hospital's Orthanc (series: {modalities})")
        console.print(
            f"the hospital's Orthanc ({orthanc.aet}) now holds the study's series: {', '.join(modalities)}"
        )
        return result
    finally:
        orthanc.stop()


def clinical_inference(demo: Demo) -> None:
    """Pull the global model into the first site, run it on a new study, store SEG + SR, print latency."""
    name = demo.sites[0]
    home = str(demo.workdir / "sites" / name)
    pulled = demo.cli(
        "site-node", "model", "pull", "seg3d", "--hub", demo.state["hub_url"],
        "--token", demo.state["site_tokens"][name], "--home", home, "--json", json_out=True,
    )  # fmt: skip
    console.print(
        f"{name} pulled {pulled['name']}:{pulled['version']} (sha256 {pulled['sha256'][:16]}... verified)"
    )
    study, accession = _new_study(demo)
    if orthanc_binary() is not None:
        result = _infer_in_pacs(demo, home, name, study, accession)
    else:
        console.print(
            "[yellow]Orthanc is not installed: the study is read from its folder, results go to files."
        )
        out = demo.workdir / "results" / "clinical"
        result = demo.cli(
            "site-node", "infer", "seg3d", "--input", str(study), "--out", str(out), "--home", home, "--json",
            json_out=True,
        )  # fmt: skip
        console.print("wrote " + ", ".join(Path(p).name for p in result["files"]))
    lesions = ", ".join(f"{x['volume_ml']:.2f} mL" for x in result["lesions"]) or "none"
    console.print(
        f"seg3d:{pulled['version']} on study {result['study']}: lesions {lesions}; "
        f"latency {result['latency_s']:.1f} s "
        f"(model compute {result['compute_s']:.1f} s on {result['device']})"
    )
    demo.state["clinical"] = result
    (demo.workdir / "results").mkdir(exist_ok=True)
    (demo.workdir / "results" / "clinical_inference.json").write_text(json.dumps(result, indent=2))
