"""The body of a fedquery client: NVFlare Client API loop around :func:`site_node.query.result.release`.

The client binds to its own site home, checks that the site approved the job (template digest, and
the project, submitter and end date of an access request), validates the cohort definition itself
(whatever the hub let through), and answers the one query task with the floored result. A refused
job answers with the refusal only. The site's outbound filter records the exact bytes in the ledger.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.config import load_site_settings
from common.errors import PermissionDeniedError
from common.schemas.cohort_query import FedQueryParams
from site_node.training.approval import check_approved, find_custom_dir, identify_job
from site_node.training.privacy_filter import REFUSED_KEY
from site_node.training.site import resolve_site_home

log = logging.getLogger(__name__)
META_KEY = "fedquery"
RESULT_KEY = "fedquery"


def answer(client_name: str, custom_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The result (``{RESULT_KEY: ...}``) or the refusal (``{REFUSED_KEY: message}``) of this site."""
    from site_node.query.result import release

    settings = load_site_settings(resolve_site_home(client_name))
    try:
        check_approved(settings, identify_job(find_custom_dir(custom_dir)))
    except PermissionDeniedError as exc:
        return {REFUSED_KEY: exc.public_message}
    try:
        params = FedQueryParams.model_validate(meta.get(META_KEY) or {})
    except ValidationError as exc:
        field = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "params"
        return {REFUSED_KEY: f"refused by site {settings.site_id}: invalid query parameter {field}"}
    from site_node.home import SiteContext

    pseudonymizer = SiteContext(settings).pseudonymizer()
    return {RESULT_KEY: release(settings, params, pseudonymizer).model_dump(mode="json")}


def run_query_client(custom_dir: Path) -> None:
    """Answer the server's query task(s) until the job ends."""
    import nvflare.client as flare

    flare.init()
    name = flare.get_site_name()
    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        reply = answer(name, custom_dir, incoming.meta or {})
        if REFUSED_KEY in reply:
            log.warning("%s", reply[REFUSED_KEY])
            flare.send(flare.FLModel(params={}, meta={REFUSED_KEY: reply[REFUSED_KEY]}))
        else:
            flare.send(flare.FLModel(metrics=reply))
