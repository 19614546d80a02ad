"""When ``pacs listen`` holds a study complete: on the sender's release, on the quiet period, never on an
abort; and a study that grows while its action runs is routed again, whole. Real senders: dcmtk's storescu
and a pynetdicom SCU."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest

from site_node.home import init_home, open_site
from site_node.pacs import routes as R
from site_node.pacs.listen import Listener
from site_node.pacs.nodes import PacsNode, add_node

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("storescu") is None, reason="dcmtk's storescu is not installed (apt-get install dcmtk)"
    ),
]


ROUTE_TO_MODEL = '[[routes]]\nmodality = "CT"\nmodel = "m"\n'


def _site(tmp_path: Path, toml: str) -> object:
    home = tmp_path / "home"
    init_home(home, "site-a")
    (home / "site.toml").write_text((home / "site.toml").read_text() + toml)
    site = open_site(home)
    add_node(site.engine, PacsNode("pacs1", "HOSPACS", "127.0.0.1", 104))
    return site


def _send(port: int, files: list[Path]) -> None:
    sent = subprocess.run(  # noqa: S603
        ["storescu", "-R", "-aet", "HOSPACS", "-aec", "SITENODE", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr


def _wait(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _ct_files(studies: dict[str, list[Path]]) -> list[Path]:
    for files in studies.values():
        ct = [p for p in files if str(pydicom.dcmread(p, stop_before_pixels=True).Modality) == "CT"]
        if ct:
            return sorted(ct)
    raise AssertionError("the synthetic export has no CT study")


def test_a_released_study_is_complete_at_once_and_an_aborted_one_waits(tmp_path, studies):
    site = _site(tmp_path, "\n[pacs]\nquiet_period_s = 600\nrelease_grace_s = 0\n")
    listener = Listener(site, "SITENODE", 0, 600, "127.0.0.1").start()
    try:
        files = _ct_files(studies)
        _send(listener.port, files)
        assert _wait(lambda: len(listener.complete_studies()) == 1)  # long before the 600 s quiet period
        assert listener.process(listener.complete_studies()[0]) == "deid"

        from pynetdicom import AE

        ae = AE(ae_title="HOSPACS")
        ds = pydicom.dcmread(files[0])
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", listener.port, ae_title="SITENODE")
        assert assoc.is_established
        assert assoc.send_c_store(ds).Status == 0
        assoc.abort()  # the sender failed: it may send again, so only the quiet period completes it
        time.sleep(1.0)
        assert listener.complete_studies() == []
        assert len(listener.complete_studies(now=time.monotonic() + 600)) == 1
    finally:
        listener.stop()


def test_release_completion_can_be_turned_off(tmp_path, studies):
    site = _site(tmp_path, "\n[pacs]\nquiet_period_s = 2\ncomplete_on_release = false\n")
    listener = Listener(site, "SITENODE", 0, 2, "127.0.0.1").start()
    try:
        _send(listener.port, _ct_files(studies))
        time.sleep(0.5)
        assert listener.complete_studies() == []
        assert _wait(lambda: len(listener.complete_studies()) == 1)  # after the quiet period
    finally:
        listener.stop()


def test_a_study_that_grows_during_its_action_is_routed_again_whole(tmp_path, studies, monkeypatch):
    """The first half of a CT series arrives and is released; while its action runs the second half
    arrives on a new association. The first run's results are dropped (the action is told the study is
    no longer settled) and the whole study is routed again; the second run waits out the grace."""
    grace = 1.0
    toml = f"\n[pacs]\nquiet_period_s = 600\nrelease_grace_s = {grace}\n" + ROUTE_TO_MODEL
    site = _site(tmp_path, toml)
    files = _ct_files(studies)
    half = len(files) // 2
    seen: list[int] = []
    waits: list[float] = []

    def action(routed: R.RoutedStudy) -> dict[str, int]:
        seen.append(len(routed.files))
        if len(seen) == 1:
            _send(listener.port, files[half:])  # the rest of the study, on a second association
        started = time.monotonic()
        settled = routed.settled()
        waits.append(time.monotonic() - started)
        if not settled:
            raise R.StudyChanged
        return {"stored": 1}

    monkeypatch.setattr(R, "_HANDLERS", dict(R._HANDLERS))
    R.register_action("model", action)
    listener = Listener(site, "SITENODE", 0, 600, "127.0.0.1").start()
    worker = threading.Thread(target=listener.run_forever, kwargs={"tick": 60}, daemon=True)
    worker.start()  # a 60 s tick: only the releases can wake it in time
    try:
        _send(listener.port, files[:half])
        assert _wait(lambda: listener.counts.get("studies_model") == 1, timeout=30), listener.counts
    finally:
        listener.stop()
        worker.join(timeout=10)
    assert seen == [half, len(files)]
    assert listener.counts["superseded"] == 1
    assert waits[1] >= grace * 0.9  # the release grace was waited out before "storing"
    assert not list(listener.root.iterdir())  # the spool is emptied once the whole study is done


@pytest.mark.parametrize("budget", ["default", "off", "too_small"])
def test_model_routed_instances_are_parsed_on_arrival_within_the_budget(
    tmp_path, studies, monkeypatch, budget
):
    """The listener hands a model route the instances it parsed and decoded as they arrived (the same
    as the spooled files, in their order), unless the memory budget is off or too small for the study."""
    toml = "\n[pacs]\nquiet_period_s = 600\nrelease_grace_s = 0\n" + ROUTE_TO_MODEL
    if budget == "off":
        toml = toml.replace("release_grace_s = 0\n", "release_grace_s = 0\narrival_cache_mb = 0\n")
    site = _site(tmp_path, toml)
    handed: list[R.RoutedStudy] = []

    def action(routed: R.RoutedStudy) -> dict[str, int]:
        handed.append(routed)
        return {}

    monkeypatch.setattr(R, "_HANDLERS", dict(R._HANDLERS))
    R.register_action("model", action)
    listener = Listener(site, "SITENODE", 0, 600, "127.0.0.1").start()
    if budget == "too_small":
        listener.cache_budget = 10_000  # bytes: less than one slice
    try:
        files = _ct_files(studies)
        _send(listener.port, files)
        assert _wait(lambda: len(listener.complete_studies()) == 1)
        assert listener.process(listener.complete_studies()[0]) == "model"
    finally:
        listener.stop()
    routed = handed[0]
    if budget != "default":
        assert routed.datasets is None  # read back from the spool by the action
        assert (listener.counts.get("arrival_cache_full", 0) >= 1) == (budget == "too_small")
        return
    assert routed.datasets is not None and len(routed.datasets) == len(files) == len(routed.files)
    for ds in routed.datasets:
        assert getattr(ds, "_pixel_array", None) is not None  # decoded already
    spooled_order = [str(ds.SOPInstanceUID) for ds in routed.datasets]
    assert sorted(spooled_order) == sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in files)
    assert listener._cached_bytes == 0  # released with the study


@pytest.mark.parametrize("fsync", [True, False])
def test_instances_are_on_disk_before_success_is_answered(tmp_path, studies, monkeypatch, fsync):
    """With ``fsync_spool`` (the default) each instance and its folder are flushed before the C-STORE is
    answered; the study's facts are rewritten only when they change, not once per instance."""
    import os as real_os

    import site_node.ingest.quarantine as Q

    calls: list[int] = []
    real_fsync = real_os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    toml = f"\n[pacs]\nquiet_period_s = 600\nfsync_spool = {str(fsync).lower()}\n"
    site = _site(tmp_path, toml)  # (writing the site key fsyncs too: counted only from here)
    listener = Listener(site, "SITENODE", 0, 600, "127.0.0.1").start()
    monkeypatch.setattr(Q.os, "fsync", counting_fsync)
    writes: list[str] = []
    real_write = Q.write_private

    def counting_write(path, data, *, durable=False):  # type: ignore[no-untyped-def]
        writes.append(path.name)
        real_write(path, data, durable=durable)

    monkeypatch.setattr("site_node.pacs.listen.write_private", counting_write)
    try:
        files = _ct_files(studies)
        _send(listener.port, files)
    finally:
        listener.stop()
    facts_writes = writes.count("facts.json")
    assert 1 <= facts_writes <= 3  # the first instance, and whenever a new value appeared
    assert len(writes) == len(files) + facts_writes
    assert len(calls) == (2 * len(writes) if fsync else 0)  # file and folder, per write
