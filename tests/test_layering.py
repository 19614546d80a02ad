"""Architecture rules: the deep-learning stack stays out of de-identification and the catalog;
site_node and central_hub never import each other."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "monai", "nvflare")
LIGHT_MODULES = [
    "common",
    "site_node.cli",
    "site_node.deid",
    "site_node.pacs.pull",
    "site_node.pacs.listen",
    "site_node.clinical",
    "site_node.publish",
    "site_node.curation",
    "central_hub.catalog",
    "central_hub.cli",
    "central_hub.models",
    "site_node.models",
    "site_node.inference.runner",
]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_modules_do_not_load_deep_learning_stack(module: str) -> None:
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not present")
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"{module} loaded {result.stdout.strip()}"


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(REPO)), a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(REPO)), node.module))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("site_node", "central_hub"),
        ("central_hub", "site_node"),
        ("common", "site_node"),
        ("common", "central_hub"),
        ("site_node", "infra"),
        ("central_hub", "infra"),
        ("common", "infra"),
    ],
)
def test_packages_do_not_import_each_other(package: str, forbidden: str) -> None:
    bad = sorted(f for f, mod in _imports(package) if mod == forbidden or mod.startswith(forbidden + "."))
    assert not bad, f"{package} imports {forbidden} in {bad}"
