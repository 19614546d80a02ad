"""Prospective inference: the ``model`` action of ``pacs listen`` routes (DIANA's watch-run-post loop).

A study that matches a ``[[routes]]`` entry naming a model is inferred as soon as it is complete;
its SEG and SR are stored back into the PACS the study came from (the node whose AE title called),
and the ``[notify]`` webhook is posted. Logs carry the study's pseudonym only.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from common.errors import ConfigError, PlatformError
from site_node.home import SiteContext
from site_node.inference.notify import post_notification
from site_node.pacs import routes as R
from site_node.pacs.nodes import PacsNode, list_nodes

if TYPE_CHECKING:
    from site_node.inference.runner import Sink

log = logging.getLogger(__name__)


def node_for(ctx: SiteContext, calling_aet: str) -> PacsNode:
    """The PACS node results go back to: the one whose AE title sent the study (or the only node).

    Raises:
        ConfigError: no node can be told apart.
    """
    nodes = list_nodes(ctx.engine)
    matching = [n for n in nodes if n.aet == calling_aet]
    if matching:
        return matching[0]
    if len(nodes) == 1:
        return nodes[0]
    raise ConfigError(
        "results cannot be stored: no PACS node has the sending AE title (add it with 'site-node pacs add')",
        field="pacs",
    )


def _facts(study: Any, result: Any, route: Any, status: str) -> dict[str, Any]:
    first = study.datasets[0] if study is not None else None
    return {
        "accession": str(first.get("AccessionNumber", "")) if first is not None else "",
        "model": route.model,
        "status": status,
        "lesions": len(result.lesions) if result else None,
        "volumes_ml": [x["volume_ml"] for x in result.lesions] if result else None,
        "latency_s": round(result.latency_s, 1) if result else None,
        "study_pseudonym": result.study if result else None,
        "patient_id": str(first.get("PatientID", "")) if first is not None else "",
        "patient_name": str(first.get("PatientName", "")) if first is not None else "",
        "study_date": str(first.get("StudyDate", "")) if first is not None else "",
    }


def model_handler(ctx: SiteContext) -> R.ActionHandler:
    """The ``model`` action: infer a routed study, store its results, notify."""
    from site_node.inference.pacs_io import arrival_time, pacs_sink, read_spooled
    from site_node.inference.runner import infer_study, warm_up
    from site_node.inference.study import study_from_datasets
    from site_node.models.store import resolve_verified

    warm_up()

    def guarded(sink: Sink, routed: R.RoutedStudy) -> Sink:
        """Store only if the study did not grow while the model ran (waits out the release grace)."""

        def store(results: list[tuple[str, Any]]) -> None:
            if not routed.settled():
                raise R.StudyChanged
            sink(results)

        return store

    def handle(routed: R.RoutedStudy) -> dict[str, int]:
        study = result = None
        try:
            stored = resolve_verified(ctx.engine, ctx.settings.home, str(routed.route.model))
            node = node_for(ctx, routed.facts.calling_aet)
            started = time.perf_counter()
            if routed.datasets is not None:  # parsed and decoded by the listener as they arrived
                datasets, received_at = routed.datasets, arrival_time(routed.files)
            else:
                datasets, received_at = read_spooled(routed.files)
            read = time.perf_counter()
            study = study_from_datasets(datasets)
            phases = {"read": read - started, "assemble": time.perf_counter() - read}
            result = infer_study(
                ctx,
                stored,
                study,
                guarded(pacs_sink(ctx, node, routed.route.results_via), routed),
                trigger="route",
                received_at=received_at,
                phases=phases,
            )
        except PlatformError as exc:
            if not routed.settled():
                # The study grew while it was processed (a sender that opens one association per
                # instance completes it after every instance): not a failure, it is routed again whole.
                log.info(
                    "route %s: the study grew during the run; it is routed again once complete",
                    routed.route.name or routed.route.model,
                )
                raise R.StudyChanged from exc
            log.error(
                "route %s: inference failed: %s", routed.route.name or routed.route.model, exc.public_message
            )
            _notify(ctx, _facts(study, None, routed.route, "failed"))
            return {"inference_failed": 1}
        _notify(ctx, _facts(study, result, routed.route, "stored"))
        return {"inferred": 1, "results_stored": len(result.outputs)}

    return handle


def _notify(ctx: SiteContext, facts: dict[str, Any]) -> None:
    try:
        post_notification(facts, ctx.settings.notify)
    except ConfigError as exc:
        log.error("notification not sent: %s", exc.public_message)


def register_model_action(ctx: SiteContext) -> None:
    """Give ``pacs listen`` its ``model`` action (loads the deep-learning stack once)."""
    R.register_action("model", model_handler(ctx))
