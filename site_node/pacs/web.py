"""DICOMweb against a PACS through dicomweb-client: QIDO-RS search and WADO-RS retrieval.

Authentication as hospitals deploy it: HTTP basic, a bearer token, or a client certificate (mutual
TLS). Secrets are read from the environment variable or private file named when the node was added.
Failures become :class:`~site_node.pacs.dimse.PacsError` in plain words.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from common.errors import ConfigError
from site_node.pacs.dimse import PacsError
from site_node.pacs.nodes import PacsNode, read_secret

log = logging.getLogger(__name__)
#: QIDO-RS attributes asked for in study searches (keywords).
STUDY_FIELDS = (
    "StudyInstanceUID",
    "AccessionNumber",
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedInstances",
)


class _Timeout(requests.adapters.HTTPAdapter):
    """An adapter that applies a default timeout to every request (dicomweb-client sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def session_for(node: PacsNode, timeout: float) -> requests.Session:
    """A requests session carrying the node's DICOMweb authentication.

    Raises:
        ConfigError: a secret cannot be read.
    """
    session = requests.Session()
    adapter = _Timeout(timeout)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    auth = node.auth or {"kind": "none"}
    kind = auth.get("kind", "none")
    if kind == "basic":
        session.auth = (auth["username"], read_secret(auth, "password_env", "password_file", "password"))
    elif kind == "bearer":
        token = read_secret(auth, "token_env", "token_file", "token")
        session.headers["Authorization"] = f"Bearer {token}"
    elif kind == "cert":
        session.cert = (auth["cert_file"], auth["key_file"])
    if auth.get("ca_file"):
        session.verify = auth["ca_file"]
    return session


class WebClient:
    """QIDO-RS and WADO-RS against one node.

    Args:
        node: the PACS (its ``dicomweb_url`` must be set).
        timeout: seconds per HTTP request.
    """

    def __init__(self, node: PacsNode, timeout: float = 30.0) -> None:
        if not node.dicomweb_url:
            raise ConfigError("this PACS node has no DICOMweb URL; add it with --dicomweb", field="dicomweb")
        self.node = node
        self.client = DICOMwebClient(node.dicomweb_url, session=session_for(node, timeout))

    def _call(self, what: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except requests.exceptions.Timeout:
            raise PacsError("timeout", f"the DICOMweb server did not answer the {what} in time") from None
        except requests.exceptions.SSLError:
            raise PacsError("refused", f"TLS failed during the {what} (certificate or CA)") from None
        except requests.exceptions.ConnectionError:
            raise PacsError(
                "unreachable", f"the DICOMweb server could not be reached for the {what}"
            ) from None
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                raise PacsError(
                    "refused", f"the DICOMweb server refused the credentials ({status})"
                ) from None
            kind = "unreachable" if status >= 500 else "refused"
            raise PacsError(kind, f"the DICOMweb server answered the {what} with HTTP {status}") from None

    def probe(self) -> None:
        """A QIDO-RS request that matches at most one study (the DICOMweb 'echo').

        Raises:
            PacsError: unreachable, refused or timed out.
        """
        self._call("QIDO-RS probe", lambda: self.client.search_for_studies(limit=1))

    def find_studies(self, filters: dict[str, str]) -> list[Dataset]:
        """QIDO-RS study search; each match as a pydicom dataset."""
        found = self._call(
            "QIDO-RS search",
            lambda: self.client.search_for_studies(search_filters=filters, fields=list(STUDY_FIELDS)),
        )
        return [Dataset.from_json(item) for item in found or []]

    def list_instances(self, study_uid: str) -> list[Dataset]:
        """QIDO-RS instance search of a study (series, SOP class and instance UIDs)."""
        found = self._call(
            "QIDO-RS instance search",
            lambda: self.client.search_for_instances(
                study_instance_uid=study_uid, fields=["SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"]
            ),
        )
        return [Dataset.from_json(item) for item in found or []]

    def iter_instances(self, study_uid: str, series_uid: str | None = None) -> Iterator[bytes]:
        """WADO-RS retrieval of a series (or a whole study), streamed: each instance as a file in memory.

        Raises:
            PacsError: the server failed before or during the transfer.
        """
        media = (("application/dicom", "*"),)
        datasets = self._call(
            "WADO-RS retrieval",
            lambda: (
                self.client.iter_series(study_uid, series_uid, media_types=media)
                if series_uid
                else self.client.iter_study(study_uid, media_types=media)
            ),
        )
        while True:
            ds = self._call("WADO-RS retrieval", lambda: next(datasets, None))
            if ds is None:
                return
            yield _encode(ds)

    def store(self, datasets: list[Dataset]) -> int:
        """STOW-RS ``datasets`` into their study; returns how many were stored.

        Raises:
            PacsError: unreachable, refused, timed out, or the server reports failed instances.
        """
        response = self._call("STOW-RS", lambda: self.client.store_instances(datasets))
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            raise PacsError("refused", f"the DICOMweb server refused {len(failed.value)} instance(s)")
        return len(datasets)


def _encode(ds: Dataset) -> bytes:
    """The file bytes of a dataset received as a part (elements are copied, not decoded)."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()
