"""Server-side NVFlare filter that records each site's metrics and refusals per round.

It writes ``fedimaging_metrics.json`` in the job's run folder on the server (the hub), which the
hub's job runner reads for status, per-site metrics and the report. Shared by the job templates.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from nvflare.apis.dxo import MetaKey, from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.app_constant import AppConstants

METRICS_FILE = "fedimaging_metrics.json"
REFUSED_KEY = "fedimaging_refused"
_LOCK = threading.Lock()


def _numbers(values: object) -> dict[str, float]:
    if not isinstance(values, dict):
        return {}
    return {str(k): float(v) for k, v in values.items() if isinstance(v, int | float)}


class RoundMetricsRecorder(Filter):
    """Append one record per client result: site, round, task, metrics, refusal."""

    def __init__(self) -> None:
        super().__init__()

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        """Record, never change, the result."""
        peer = fl_ctx.get_peer_context()
        site = peer.get_identity_name() if peer else "unknown"
        record: dict[str, object] = {
            "site": site,
            "round": shareable.get_header(AppConstants.CURRENT_ROUND),
            "task": fl_ctx.get_prop("__task_name__") or shareable.get_header("__task_name__"),
            "time": time.time(),
        }
        try:
            dxo = from_shareable(shareable)
        except ValueError:
            record["error"] = str(shareable.get_return_code())
        else:
            meta = dxo.meta or {}
            metrics = meta.get(MetaKey.INITIAL_METRICS) or (dxo.data if dxo.data_kind == "METRICS" else None)
            record["metrics"] = _numbers(metrics)
            if meta.get(REFUSED_KEY):
                record["refused"] = str(meta[REFUSED_KEY])
            for key in (
                "device",
                "n_train",
                "NUM_STEPS_CURRENT_ROUND",
                "train_s",
                "val_s",
                "dataset_version",
                "n_cases",
            ):
                if key in meta:
                    record[key] = meta[key]
        self._append(fl_ctx, record)
        return shareable

    @staticmethod
    def _append(fl_ctx: FLContext, record: dict[str, object]) -> None:
        job_id = fl_ctx.get_job_id()
        path = Path(fl_ctx.get_engine().get_workspace().get_run_dir(job_id)) / METRICS_FILE
        with _LOCK:
            records = json.loads(path.read_text()) if path.exists() else []
            records.append(record)
            path.write_text(json.dumps(records, indent=1, default=str))
