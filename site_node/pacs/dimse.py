"""DIMSE services against a PACS through pynetdicom: C-ECHO, C-FIND, C-GET and C-MOVE.

Failures become :class:`PacsError` with a plain-words message and a ``kind`` that tells the pull
whether trying again may help (``unreachable``, ``rejected``, ``timeout``, ``aborted``) or not
(``refused``: the PACS answered the request with a failure status).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from common.errors import RemoteError
from site_node.pacs.nodes import PacsNode

log = logging.getLogger(__name__)
#: Transfer syntaxes offered for retrieved instances: uncompressed first, then what PACS store as is.
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
MAX_CONTEXTS = 128
#: Storage classes negotiated when a PACS cannot list a study's instances (no IMAGE-level C-FIND).
COMMON_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # mammography
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.3.1",  # US multi-frame
    "1.2.840.10008.5.1.4.1.1.7",  # secondary capture
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.66.4",  # SEG
    "1.2.840.10008.5.1.4.1.1.88.22",  # enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.67",  # X-ray radiation dose SR
    "1.2.840.10008.5.1.4.1.1.481.1",  # RT image
)
#: Largest PDU we accept: big PDUs cut the per-PDU Python work of pynetdicom for 0.5-8 MB instances.
MAX_PDU = 4 * 1024 * 1024
SUCCESS = 0x0000
PENDING = (0xFF00, 0xFF01)
#: Statuses a C-GET SCP answers when it will not do C-GET for us (then C-MOVE is tried).
GET_REFUSED = (0xA701, 0xA702, 0xA801, 0xA900, 0xAA00, 0xC000, 0x0122, 0x0124, 0x0211)
StoreHandler = Callable[[bytes, str], int]


class PacsError(RemoteError):
    """The PACS could not be used; ``kind`` says why (retrying helps unless it is ``refused``)."""

    code = "pacs_error"

    def __init__(self, kind: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.kind = kind

    @property
    def retryable(self) -> bool:
        """True when trying again later may succeed."""
        return self.kind in ("unreachable", "rejected", "timeout", "aborted")


@dataclass
class DimseClient:
    """The node's own AE (title ``own_aet``) talking to one PACS.

    Args:
        node: the PACS.
        own_aet: this node's AE title (``[pacs] aet``).
        timeout: seconds of silence before an association is abandoned.
    """

    node: PacsNode
    own_aet: str
    timeout: float = 30.0

    def _ae(self) -> AE:
        ae = AE(ae_title=self.own_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = min(self.timeout, 10.0)
        ae.maximum_pdu_size = MAX_PDU
        return ae

    @contextmanager
    def associate(self, ae: AE, handlers: list[Any] | None = None, **kwargs: Any) -> Iterator[Association]:
        """An established association, released on exit.

        Raises:
            PacsError: unreachable, rejected or aborted.
        """
        assoc = ae.associate(
            self.node.host, self.node.port, ae_title=self.node.aet, evt_handlers=handlers or [], **kwargs
        )
        if not assoc.is_established:
            if assoc.is_rejected:
                raise PacsError(
                    "rejected", "the PACS rejected the association (check the AE titles it accepts)"
                )
            # pynetdicom reports a refused TCP connection as an aborted association too
            raise PacsError(
                "unreachable",
                "the PACS could not be reached or dropped the association request "
                "(down, wrong host or port, or a firewall)",
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def _check_alive(self, assoc: Association, what: str) -> None:
        if assoc.is_aborted or not assoc.is_established:
            raise PacsError("aborted", f"the PACS dropped the connection during {what}")

    def echo(self) -> None:
        """C-ECHO.

        Raises:
            PacsError: no association or a failure status.
        """
        ae = self._ae()
        ae.add_requested_context(Verification)
        with self.associate(ae) as assoc:
            status = assoc.send_c_echo()
            if not status or status.Status != SUCCESS:
                self._check_alive(assoc, "C-ECHO")
                raise PacsError("refused", "the PACS answered C-ECHO with a failure status")

    def find(self, query: Dataset) -> list[Dataset]:
        """C-FIND (study root); the identifiers of every match.

        Raises:
            PacsError: no association, a failure status or a dropped connection.
        """
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        out: list[Dataset] = []
        with self.associate(ae) as assoc:
            final = None
            for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    break
                final = status.Status
                if final in PENDING and identifier is not None:
                    out.append(identifier)
            if final is None:
                self._check_alive(assoc, "C-FIND")
                raise PacsError("timeout", "the PACS did not answer the C-FIND in time")
            if final != SUCCESS:
                raise PacsError("refused", f"the PACS answered C-FIND with status 0x{final:04X}")
        return out

    def get(self, queries: list[Dataset], sop_classes: list[str], on_store: StoreHandler) -> None:
        """C-GET each query on one association; instances arrive through ``on_store``.

        Args:
            queries: C-GET identifiers (e.g. one per series).
            sop_classes: storage SOP classes to negotiate (those of the instances asked for).
            on_store: called with each instance (a complete DICOM file in memory) and its SOP Instance
                UID; returns a C-STORE status.

        Raises:
            PacsError: no association, C-GET refused (``refused``: try C-MOVE), dropped or timed out.
        """
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        classes = sorted(set(sop_classes))[: MAX_CONTEXTS - 1]
        for uid in classes:
            ae.add_requested_context(uid, TRANSFER_SYNTAXES)
        roles = [build_role(uid, scp_role=True) for uid in classes]
        handlers = [(evt.EVT_C_STORE, _store_handler(on_store))]
        with self.associate(ae, handlers, ext_neg=roles) as assoc:
            if not any(
                cx.abstract_syntax == StudyRootQueryRetrieveInformationModelGet
                for cx in assoc.accepted_contexts
            ):
                raise PacsError("refused", "the PACS does not offer C-GET")
            for query in queries:
                self._retrieve(
                    assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet), assoc, "C-GET"
                )

    def move(self, queries: list[Dataset], destination: str) -> None:
        """C-MOVE each query to ``destination`` (an AE title the PACS knows: this node's SCP).

        Raises:
            PacsError: no association, C-MOVE refused, dropped or timed out.
        """
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        with self.associate(ae) as assoc:
            for query in queries:
                responses = assoc.send_c_move(query, destination, StudyRootQueryRetrieveInformationModelMove)
                self._retrieve(responses, assoc, "C-MOVE")

    def store(self, datasets: list[Dataset]) -> int:
        """C-STORE ``datasets`` on one association (results going back into a study).

        Returns:
            The number of instances stored.

        Raises:
            PacsError: no association, a SOP class the PACS does not accept, or a failure status.
        """
        ae = self._ae()
        for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
            ae.add_requested_context(uid, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        stored = 0
        with self.associate(ae) as assoc:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                if not status:
                    self._check_alive(assoc, "C-STORE")
                    raise PacsError("timeout", "the PACS did not answer a C-STORE in time")
                code = int(status.Status)
                if code != SUCCESS and (code & 0xF000) != 0xB000:  # Bxxx: warning, stored
                    raise PacsError("refused", f"the PACS refused a C-STORE (status 0x{code:04X})")
                stored += 1
        return stored

    def _retrieve(
        self, responses: Iterator[tuple[Dataset, Dataset | None]], assoc: Association, what: str
    ) -> None:
        final = None
        failed = 0
        for status, _identifier in responses:
            if not status:
                break
            final = status.Status
            failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
        if final is None:
            self._check_alive(assoc, what)
            # still associated, yet no status: the PACS answered with a response pynetdicom could not
            # use (Orthanc does this for a C-GET its configuration forbids); a timeout aborts instead
            raise PacsError("refused", f"the PACS gave no usable answer to the {what}")
        if final in GET_REFUSED or (final & 0xF000) in (0xA000, 0xC000):
            raise PacsError("refused", f"the PACS refused the {what} (status 0x{final:04X})")
        if final != SUCCESS and failed:
            raise PacsError("aborted", f"the PACS could not send {failed} instances during the {what}")


def _store_handler(on_store: StoreHandler) -> Callable[[Any], int]:
    def handle(event: Any) -> int:
        return on_store(event.encoded_dataset(), str(event.request.AffectedSOPInstanceUID or ""))

    return handle


def study_query(accession: str | None = None, **filters: str) -> Dataset:
    """A STUDY-level C-FIND identifier returning the keys a pull and ``pacs find`` need."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in (
        "StudyInstanceUID",
        "AccessionNumber",
        "PatientID",
        "PatientName",
        "StudyDate",
        "StudyDescription",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
    ):
        setattr(ds, keyword, "")
    if accession is not None:
        ds.AccessionNumber = accession
    for keyword, value in filters.items():
        setattr(ds, keyword, value)
    return ds


def instance_query(study_uid: str) -> Dataset:
    """An IMAGE-level C-FIND identifier listing a study's instances (series, SOP class, SOP instance)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = ""
    ds.SOPInstanceUID = ""
    ds.SOPClassUID = ""
    return ds


def retrieve_query(study_uid: str, series_uid: str | None = None) -> Dataset:
    """A C-GET / C-MOVE identifier for a whole study or one of its series."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds
