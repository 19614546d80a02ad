"""Server-side NVFlare filter of the fedquery job: keeps each site's released answer or refusal.

Writes ``fedquery_results.json`` (site -> ``{"result": ...}`` or ``{"refused": ...}``) in the job's
run folder on the server, which the hub reads to pool the sites' answers.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from nvflare.apis.dxo import from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable

RESULTS_FILE = "fedquery_results.json"
RESULT_KEY = "fedquery"
REFUSED_KEY = "fedimaging_refused"
_LOCK = threading.Lock()


class QueryResultRecorder(Filter):
    """Record, never change, each site's fedquery answer."""

    def __init__(self) -> None:
        super().__init__()

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        """Append this site's answer to the run folder's results file."""
        peer = fl_ctx.get_peer_context()
        site = peer.get_identity_name() if peer else "unknown"
        try:
            dxo = from_shareable(shareable)
        except ValueError:
            entry: dict[str, object] = {"error": str(shareable.get_return_code())}
        else:
            meta = dxo.meta or {}
            if meta.get(REFUSED_KEY):
                entry = {"refused": str(meta[REFUSED_KEY])}
            elif isinstance(dxo.data, dict) and RESULT_KEY in dxo.data:
                entry = {"result": dxo.data[RESULT_KEY]}
            else:
                entry = {"error": "no fedquery result in the answer"}
        path = Path(fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())) / RESULTS_FILE
        with _LOCK:
            results = json.loads(path.read_text()) if path.exists() else {}
            results[site] = entry
            path.write_text(json.dumps(results, indent=1, default=str))
        return shareable
