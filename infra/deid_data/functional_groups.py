"""Derive ``functional_group_attributes.json`` from the DICOM standard's module definitions.

The source is the module/attribute map that highdicom ships (``highdicom/_standard/
module_attribute_map.json``, MIT), generated from the innolitics ``dicom-standard`` JSON (MIT) of
PS3.3: for every module, every attribute with its path of enclosing sequences. Functional group
macros appear there already expanded inside ``SharedFunctionalGroupsSequence`` and
``PerFrameFunctionalGroupsSequence``. This script keeps every attribute of the functional group
modules of the enhanced (multi-frame) IODs and of their acquisition modules (see ``MODULES``) and
writes the keywords with the module names, the highdicom version and the licence.

Run: ``.venv/bin/python -m infra.deid_data.functional_groups`` (needs highdicom installed).
"""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path

from pydicom.datadict import tag_for_keyword

OUT = Path(__file__).resolve().parents[2] / "site_node" / "deid" / "data" / "functional_group_attributes.json"

#: Modules of the enhanced multi-frame IODs whose attributes describe frames and acquisition.
MODULES = (
    "multi-frame-functional-groups",
    "enhanced-mr-image-multi-frame-functional-groups",
    "enhanced-mr-color-image-multi-frame-functional-groups",
    "enhanced-ct-image-multi-frame-functional-groups",
    "enhanced-pet-image-multi-frame-functional-groups",
    "enhanced-xa-image-multi-frame-functional-groups",
    "enhanced-xrf-image-multi-frame-functional-groups",
    "enhanced-us-volume-multi-frame-functional-groups",
    "legacy-converted-enhanced-ct-image-multi-frame-functional-groups",
    "legacy-converted-enhanced-mr-image-multi-frame-functional-groups",
    "legacy-converted-enhanced-pet-image-multi-frame-functional-groups",
    "x-ray-3d-angiographic-image-multi-frame-functional-groups",
    "breast-tomosynthesis-image-multi-frame-functional-groups",
    "segmentation-multi-frame-functional-groups",
    "parametric-map-multi-frame-functional-groups",
    "multi-frame-dimension",
    "enhanced-mr-image",
    "mr-pulse-sequence",
    "enhanced-ct-image",
    "enhanced-pet-image",
    "enhanced-pet-acquisition",
    "enhanced-pet-corrections",
    "enhanced-us-image",
    "enhanced-xa-xrf-image",
)


#: Attributes that the macros bring in but that are not frame description: links out of the object
#: (URLs, file-set IDs) and SR free text. Removed unless Table E.1-1 says otherwise.
EXCLUDE = frozenset({"RetrieveURL", "RetrieveLocationUID", "StorageMediaFileSetID", "TextValue"})


def derive() -> dict[str, object]:
    """The data file's content."""
    ref = resources.files("highdicom") / "_standard" / "module_attribute_map.json"
    table = json.loads(ref.read_text())
    keywords: set[str] = set()
    for module in MODULES:
        for row in table[module]:
            keyword = row["keyword"]
            if tag_for_keyword(keyword) is not None and keyword not in EXCLUDE:
                keywords.add(keyword)
    return {
        "description": (
            "Attributes of the functional group macros and acquisition modules of the enhanced "
            "multi-frame IODs (PS3.3 C.7.6.16 and the IOD-specific functional group modules), at any "
            "depth. Kept unless PS3.15 Table E.1-1 names them (the table always wins); free text goes "
            "through Clean Descriptors, UIDs are remapped, dates shifted (profile.py::safe_action)."
        ),
        "source": (
            f"highdicom {metadata.version('highdicom')} _standard/module_attribute_map.json, generated "
            "from the innolitics dicom-standard JSON of DICOM PS3.3; derived by "
            "infra/deid_data/functional_groups.py"
        ),
        "licence": "MIT (highdicom; innolitics dicom-standard), see LICENSE-innolitics-dicom-standard.txt",
        "modules": list(MODULES),
        "excluded": sorted(EXCLUDE),
        "keywords": sorted(keywords),
    }


def main() -> None:
    """Write the data file."""
    OUT.write_text(json.dumps(derive(), indent=1) + "\n")


if __name__ == "__main__":
    main()
