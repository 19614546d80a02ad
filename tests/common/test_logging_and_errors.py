"""The PHI safety-net log filter and the error hierarchy."""

from __future__ import annotations

import io
import logging

import pytest

from common import errors
from common.logging import PHI_REGISTRY, PHIFilter, PHIRegistry, configure_logging


def test_filter_drops_records_with_registered_phi() -> None:
    stream = io.StringIO()
    handler = configure_logging("INFO", stream=stream)
    PHI_REGISTRY.register(["Smith^John", "MRN-777001", None, "ab"])
    try:
        log = logging.getLogger("tests.phi")
        log.info("processing %s", "MRN-777001")
        log.info("patient name Smith^John in header")
        log.info("wrote 12 files for P4ABCDEFGHIJKLMN")
        try:
            raise ValueError("bad value MRN-777001")
        except ValueError:
            log.exception("failed")
    finally:
        PHI_REGISTRY.clear()
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert "MRN-777001" not in out and "Smith" not in out
    assert "wrote 12 files" in out
    phi_filter = next(f for f in handler.filters if isinstance(f, PHIFilter))
    assert phi_filter.dropped == 3


def test_short_values_are_not_registered() -> None:
    registry = PHIRegistry()
    registry.register(["", "a", "ab", "  "])
    assert not registry.contains_phi("a b ab")


def test_configure_logging_is_idempotent() -> None:
    configure_logging("INFO")
    configure_logging("WARNING")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_platform_handler", False)]
    assert len(ours) == 1


@pytest.mark.parametrize(
    ("cls", "exit_code", "status"),
    [
        (errors.ConfigError, 78, 500),
        (errors.InputError, 65, 422),
        (errors.NotFoundError, 66, 404),
        (errors.AuthenticationError, 77, 401),
        (errors.PermissionDeniedError, 77, 403),
        (errors.PayloadTooLargeError, 65, 413),
        (errors.PrivacyError, 70, 422),
    ],
)
def test_error_codes(cls: type[errors.PlatformError], exit_code: int, status: int) -> None:
    err = cls("something is wrong", field="PatientID")
    assert isinstance(err, errors.PlatformError)
    assert (err.exit_code, err.http_status) == (exit_code, status)
    assert err.to_dict()["field"] == "PatientID"
