"""Routing rules of ``pacs listen``: which arriving study gets which action (``[[routes]]`` in site.toml).

A route matches on the study's modality, body part, series description and the calling AE title
(``*`` and ``?`` wildcards, case-insensitive, as in a C-FIND). The first route whose set fields all
match decides; with no ``[[routes]]`` at all every accepted study is de-identified. With routes, a
study no route matches is dropped from the spool unprocessed (counted, never kept).

Actions:

* ``deid`` — de-identify for research (the ingest spine, stage ``dicom``).
* ``model`` — run the model named by ``model`` on the study. **Hook:** the inference work registers a
  handler with :func:`register_action` (``register_action("model", handler)``); until one is
  registered, :func:`dispatch` refuses a model route with a clear :class:`ConfigError` and the study
  stays in the spool for the admin, instead of being silently de-identified or dropped.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset

from common.config import PacsRoute
from common.errors import ConfigError

log = logging.getLogger(__name__)
DEID_ROUTE = PacsRoute(name="default", action="deid")


@dataclass
class StudyFacts:
    """What routes match on, gathered from a study's instances (no patient identifiers).

    Attributes:
        modalities: Modality (0008,0060) values of its series.
        body_parts: BodyPartExamined (0018,0015) values.
        series_descriptions: SeriesDescription (0008,103E) values.
        calling_aet: the AE title that sent it.
    """

    modalities: set[str] = field(default_factory=set)
    body_parts: set[str] = field(default_factory=set)
    series_descriptions: set[str] = field(default_factory=set)
    calling_aet: str = ""


@dataclass
class RoutedStudy:
    """A complete study in the spool, handed to an action.

    Attributes:
        files: the spooled raw instances (PHI: private spool; the action must not copy them elsewhere).
        facts: what the routes matched on.
        route: the route that matched.
        settled: call right before results leave for the PACS; it waits out the grace after an
            association release and says whether the study is still as it was when handed over (False:
            instances arrived meanwhile; drop the results with :class:`StudyChanged`, the study is
            routed again once complete).
    """

    files: list[Path]
    facts: StudyFacts
    route: PacsRoute
    settled: Callable[[], bool] = lambda: True
    datasets: list[Dataset] | None = None  # the files parsed and decoded on arrival (same order), if kept


class StudyChanged(Exception):  # noqa: N818 - a signal to the listener, not an error
    """Raised by an action whose study received new instances while it ran: keep the spool, retry later."""


#: An action handler processes a routed study; it returns counts for the listener's summary.
ActionHandler = Callable[[RoutedStudy], dict[str, int]]
_HANDLERS: dict[str, ActionHandler] = {}


def register_action(action: str, handler: ActionHandler) -> None:
    """Make ``action`` available to routes (``deid`` is registered by the listener; ``model`` by inference).

    Args:
        action: the action name a route gives (``model``...).
        handler: called with each study routed to that action.
    """
    _HANDLERS[action] = handler


def registered_actions() -> list[str]:
    """Names of the actions that have a handler now."""
    return sorted(_HANDLERS)


def _matches(pattern: str | None, values: set[str]) -> bool:
    if pattern is None:
        return True
    wanted = pattern.upper()
    return any(fnmatch.fnmatchcase(v.upper(), wanted) for v in values)


def route_for(routes: list[PacsRoute], facts: StudyFacts) -> PacsRoute | None:
    """The route deciding a study: the first that matches, ``deid`` when none are configured, else None."""
    if not routes:
        return DEID_ROUTE
    for route in routes:
        if (
            _matches(route.modality, facts.modalities)
            and _matches(route.body_part, facts.body_parts)
            and _matches(route.series_description, facts.series_descriptions)
            and _matches(route.calling_aet, {facts.calling_aet})
        ):
            return route
    return None


def check_routes(routes: list[PacsRoute]) -> None:
    """Refuse, before anything is received, routes whose action has no handler.

    Raises:
        ConfigError: a route names an action nothing handles yet (e.g. ``model`` before inference exists).
    """
    for index, route in enumerate(routes):
        if route.action not in _HANDLERS:
            raise ConfigError(
                f"route {route.name or index + 1} asks for action '{route.action}', which this site node "
                f"cannot run yet (available: {', '.join(registered_actions()) or 'none'})",
                field=f"routes.{index}.action",
            )


def dispatch(study: RoutedStudy) -> dict[str, int]:
    """Run the action of ``study.route`` on the study.

    Raises:
        ConfigError: no handler for the action (the study is left in the spool).
    """
    handler = _HANDLERS.get(study.route.action)
    if handler is None:
        raise ConfigError(f"no handler for route action '{study.route.action}'", field="routes.action")
    return handler(study)
