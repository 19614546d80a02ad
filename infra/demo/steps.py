"""The demo's steps, in order. Each one calls a public command or API and prints what it did."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from infra.demo.runner import Demo, console

STYLES = "abc"


def _style(index: int) -> str:
    return STYLES[index % len(STYLES)]


def generate_hospitals(demo: Demo) -> None:
    """Step 1: one synthetic hospital export per site (styles a, b, c cycle)."""
    table = Table("site", "style", "patients", "studies", "series", "instances", "FHIR resources")
    for i, name in enumerate(demo.sites):
        out = demo.workdir / "exports" / name
        summary = demo.cli("site-node", "synth", str(out), "--patients", str(demo.patients),
                           "--seed", str(demo.seed + i), "--site-style", _style(i), "--json", json_out=True)
        demo.state.setdefault("synth", {})[name] = summary
        table.add_row(name, _style(i), *(str(summary.get(k, "")) for k in
                                         ("patients", "studies", "series", "instances", "fhir_resources")))
    console.print(table)


def plan(demo: Demo) -> list[tuple[str, Callable[[], None]]]:
    """The ordered steps of this build of the demo."""
    return [
        ("Generate synthetic hospitals", lambda: generate_hospitals(demo)),
    ]


def print_timings(demo: Demo, total: float) -> None:
    """Final table: every step and its wall time."""
    table = Table("step", "seconds", title="Demo finished")
    for title, seconds in demo.timings:
        table.add_row(title, f"{seconds:.1f}")
    table.add_row("[bold]total", f"[bold]{total:.1f}")
    console.print(table)
    console.print(f"Everything the demo wrote is under {demo.workdir}")


__all__ = ["plan", "print_timings", "Any"]
