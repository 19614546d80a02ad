"""The node's own C-STORE SCP (pynetdicom): destination of C-MOVE during a pull, and ``pacs listen``.

Associations from calling AE titles outside the allow-list are rejected by pynetdicom during
association negotiation (``require_calling_aet``), before any data is received.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import pydicom
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from common.errors import ConfigError
from site_node.pacs.dimse import MAX_PDU, TRANSFER_SYNTAXES

log = logging.getLogger(__name__)
#: Called with (file bytes, original SOP Instance UID, calling AE title, association key); returns a
#: C-STORE status. The key tells the instances of one association apart from another's.
Receiver = Callable[[bytes, str, str, int], int]
#: Called with (association key, released) when an association ends: ``released`` is True for an orderly
#: A-RELEASE (the sender says it is done), False for an abort or a dropped connection.
Closed = Callable[[int, bool], None]
OUT_OF_RESOURCES = 0xA700
PROCESSING_FAILURE = 0xC211


def study_uid_of(raw: bytes) -> str:
    """The Study Instance UID of an in-memory instance (read without decoding pixel data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(
            io.BytesIO(raw), stop_before_pixels=True, specific_tags=["StudyInstanceUID"], force=True
        )
    return str(ds.get("StudyInstanceUID", "") or "")


class StoreSCP:
    """A C-STORE (and C-ECHO) SCP on ``(host, port)`` under ``aet``.

    Args:
        aet: this node's AE title.
        host: address to bind.
        port: port to bind.
        allowed_calling: calling AE titles accepted (all others are rejected).
        receive: what to do with each instance.
        timeout: seconds of silence before an association is dropped.
        closed: told when each association ends (released or aborted).
    """

    def __init__(
        self,
        aet: str,
        host: str,
        port: int,
        allowed_calling: list[str],
        receive: Receiver,
        timeout: float = 30.0,
        closed: Closed | None = None,
    ) -> None:
        self.aet, self.host, self.port = aet, host, port
        self.allowed = sorted({a.strip() for a in allowed_calling if a.strip()})
        self.receive = receive
        self.timeout = timeout
        self.closed = closed
        self._server: Any = None
        self.received = 0
        self.rejected = 0

    def _handle_store(self, event: Any) -> int:
        try:
            raw = event.encoded_dataset()
            uid = str(event.request.AffectedSOPInstanceUID or "")
            status = self.receive(raw, uid, event.assoc.requestor.ae_title, id(event.assoc))
        except Exception as exc:  # report the failure to the sender, never the data
            log.error("an arriving instance could not be handled (%s)", type(exc).__name__)
            return PROCESSING_FAILURE
        self.received += 1
        return status

    def _handle_released(self, event: Any) -> None:
        if self.closed is not None:
            self.closed(id(event.assoc), True)

    def _handle_aborted(self, event: Any) -> None:
        if self.closed is not None:
            self.closed(id(event.assoc), False)

    def _handle_rejected(self, event: Any) -> None:
        self.rejected += 1
        log.warning("refused an association from a calling AE title outside the allow-list")

    def start(self) -> StoreSCP:
        """Start serving in background threads (returns at once).

        Raises:
            ConfigError: the allow-list is empty.
            OSError: the port cannot be bound.
        """
        ae = AE(ae_title=self.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        if not self.allowed:  # pynetdicom reads an empty list as "anyone"
            raise ConfigError(
                "no calling AE title is allowed: add the PACS with 'site-node pacs add' "
                "or set [pacs] allowed_calling_aets",
                field="pacs.allowed_calling_aets",
            )
        ae.require_calling_aet = self.allowed
        ae.maximum_associations = 16
        ae.maximum_pdu_size = MAX_PDU
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        handlers = [
            (evt.EVT_C_STORE, self._handle_store),
            (evt.EVT_REJECTED, self._handle_rejected),
            (evt.EVT_RELEASED, self._handle_released),
            (evt.EVT_ABORTED, self._handle_aborted),
        ]
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        """Stop serving (associations in progress are aborted)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> StoreSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
