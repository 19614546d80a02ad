"""Clinical inference against the PACS: retrieve one study by accession into memory, store results back.

Retrieval reuses the PACS connector (:mod:`site_node.pacs`): C-GET, C-MOVE to the node's own SCP
when the PACS refuses C-GET, or WADO-RS (``via="dicomweb"``). The identified instances stay in
memory, never on disk. Results go back by C-STORE, or STOW-RS for a DICOMweb node.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from common.errors import InputError, NotFoundError
from site_node.home import SiteContext
from site_node.inference.runner import InferenceResult, Sink, infer_study
from site_node.inference.study import study_from_datasets
from site_node.models.store import resolve_verified
from site_node.pacs.dimse import DimseClient, PacsError, instance_query, retrieve_query, study_query
from site_node.pacs.nodes import PacsNode, get_node
from site_node.pacs.scp import StoreSCP

log = logging.getLogger(__name__)


def _retrieve_dimse(ctx: SiteContext, node: PacsNode, study_uid: str) -> list[Dataset]:
    pacs = ctx.settings.pacs
    client = DimseClient(node, pacs.aet, pacs.timeout_s)
    listing = client.find(instance_query(study_uid))
    by_series: dict[str, list[Dataset]] = {}
    for ds in listing:
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    queries = [retrieve_query(study_uid, series) for series in sorted(by_series)]
    received: list[Dataset] = []
    lock = threading.Lock()

    def on_store(raw: bytes, _sop: str, *_: object) -> int:
        ds = pydicom.dcmread(io.BytesIO(raw))
        with lock:
            received.append(ds)
        return 0x0000

    classes = [str(ds.SOPClassUID) for ds in listing if ds.get("SOPClassUID")]
    try:
        client.get(queries, classes, on_store)
    except PacsError as exc:
        if exc.kind != "refused":
            raise
        log.info("the PACS refused C-GET; retrieving by C-MOVE to this node's SCP")
        with StoreSCP(pacs.aet, pacs.bind, pacs.port, [node.aet], on_store, pacs.timeout_s):
            client.move(queries, pacs.aet)
    return received


def fetch_study(ctx: SiteContext, node: PacsNode, accession: str, via: str = "dimse") -> list[Dataset]:
    """Find the study of ``accession`` and retrieve its instances into memory.

    Raises:
        NotFoundError: no study has this accession number.
        InputError: several studies share it.
        PacsError: the PACS is down, refuses or times out.
    """
    if via == "dicomweb":
        from site_node.pacs.web import WebClient

        web = WebClient(node, ctx.settings.pacs.timeout_s)
        uids = sorted({str(d.StudyInstanceUID) for d in web.find_studies({"AccessionNumber": accession})})
    else:
        client = DimseClient(node, ctx.settings.pacs.aet, ctx.settings.pacs.timeout_s)
        uids = sorted(
            {
                str(d.StudyInstanceUID)
                for d in client.find(study_query(accession))
                if d.get("StudyInstanceUID")
            }
        )
    if not uids:
        raise NotFoundError("the PACS has no study with this accession number", field="accession")
    if len(uids) > 1:
        raise InputError(
            f"{len(uids)} studies share this accession number; infer each from a folder", field="accession"
        )
    if via != "dicomweb":
        return _retrieve_dimse(ctx, node, uids[0])
    return [pydicom.dcmread(io.BytesIO(raw)) for raw in web.iter_instances(uids[0])]


def pacs_sink(ctx: SiteContext, node: PacsNode, via: str = "dimse") -> Sink:
    """A sink storing the results into the PACS (C-STORE, or STOW-RS for ``via="dicomweb"``)."""

    def sink(results: list[tuple[str, Dataset]]) -> None:
        datasets = [ds for _, ds in results]
        if via == "dicomweb":
            from site_node.pacs.web import WebClient

            WebClient(node, ctx.settings.pacs.timeout_s).store(datasets)
        else:
            DimseClient(node, ctx.settings.pacs.aet, ctx.settings.pacs.timeout_s).store(datasets)

    return sink


def infer_pacs(
    ctx: SiteContext,
    ref: str,
    node_name: str,
    accession: str,
    *,
    via: str = "dimse",
    overlay: bool = False,
    device: str | None = None,
) -> InferenceResult:
    """``site-node infer NAME --pacs PACS --accession A``: retrieve, infer, store back into the study.

    The latency runs from the last instance received to the results stored.

    Raises:
        NotFoundError: unknown model, node or accession. PermissionDeniedError: model digest mismatch.
        PacsError: the PACS failed.
    """
    stored = resolve_verified(ctx.engine, ctx.settings.home, ref)
    node = get_node(ctx.engine, node_name)
    datasets = fetch_study(ctx, node, accession, via)
    received_at = time.time()
    study = study_from_datasets(datasets)
    return infer_study(
        ctx,
        stored,
        study,
        pacs_sink(ctx, node, via),
        trigger="pacs",
        overlay=overlay,
        received_at=received_at,
        device=device,
    )


def arrival_time(files: list[Path]) -> float:
    """When a routed study's last instance arrived (its spooled files' times)."""
    return max(p.stat().st_mtime for p in files)


def read_spooled(files: list[Path]) -> tuple[list[Dataset], float]:
    """Datasets of a routed study's spooled files, and when its last instance arrived (file times)."""
    return [pydicom.dcmread(p) for p in files], arrival_time(files)
