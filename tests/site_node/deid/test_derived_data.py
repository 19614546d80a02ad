"""The shipped attribute lists are what their generators derive (no hand edits drift in)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

DATA = Path(__file__).parents[3] / "site_node" / "deid" / "data"


@pytest.mark.skipif(
    importlib.util.find_spec("highdicom") is None, reason="highdicom (the PS3.3 map) not installed"
)
def test_functional_group_list_is_derived_from_the_standard() -> None:
    from infra.deid_data.functional_groups import derive

    shipped = json.loads((DATA / "functional_group_attributes.json").read_text())
    assert derive()["keywords"] == shipped["keywords"]
    for keyword in (
        "MRTimingAndRelatedParametersSequence",
        "RepetitionTime",
        "FlipAngle",
        "PixelMeasuresSequence",
        "PlanePositionSequence",
        "PlaneOrientationSequence",
        "FrameContentSequence",
        "MREchoSequence",
        "MRDiffusionSequence",
        "DimensionIndexValues",
        "CardiacSynchronizationSequence",
    ):
        assert keyword in shipped["keywords"], keyword


def test_safe_private_list_is_what_its_builder_writes() -> None:
    from infra.deid_data.safe_private import build

    shipped = json.loads((DATA / "safe_private_attributes.json").read_text())
    assert build() == shipped
