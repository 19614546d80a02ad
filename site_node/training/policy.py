"""NVFlare site policy generated from the site's settings (``approved_jobs``, privacy filters).

Written into a provisioned client's ``local/`` folder:

- ``authorization.json``: project leads may submit jobs; custom job code ("bring your own code") is
  allowed only when the site approved at least one template, and then the mandatory filter below
  checks the exact template digest;
- ``privacy.json``: one mandatory scope whose result filter is :class:`SiteOutboundFilter` (approval,
  privacy settings, outbound ledger) for every job, whatever the job itself configures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.config import SiteSettings

FILTER_PATH = "site_node.training.privacy_filter.SiteOutboundFilter"
SCOPE = "fedimaging"


def authorization_policy(settings: SiteSettings) -> dict[str, Any]:
    """The site's ``authorization.json`` content."""
    byoc = "any" if settings.approved_jobs else "none"
    return {
        "format_version": "1.0",
        "permissions": {
            "project_admin": "any",
            "org_admin": {
                "submit_job": "none",
                "clone_job": "none",
                "manage_job": "o:submitter",
                "download_job": "o:submitter",
                "view": "any",
                "operate": "o:site",
                "shell_commands": "o:site",
                "byoc": "none",
            },
            "lead": {
                "submit_job": "any",
                "clone_job": "n:submitter",
                "manage_job": "n:submitter",
                "download_job": "n:submitter",
                "view": "any",
                "operate": "none",
                "shell_commands": "none",
                "byoc": byoc,
            },
            "member": {"view": "any"},
        },
    }


def _approvals(settings: SiteSettings) -> list[dict[str, Any]]:
    """The site's access approvals in force (read again from the database by the filter at run time)."""
    import datetime as dt

    from site_node.access.store import latest_decisions
    from site_node.db import get_engine

    today = dt.date.today()
    return [
        {
            "project": row["project"],
            "submitter": row["submitter"],
            "templates": row["templates"],
            "until": row["until"].isoformat() if row["until"] else None,
        }
        for row in latest_decisions(get_engine(settings.database_url))
        if row["decision"] == "approved" and (row["until"] is None or row["until"] >= today)
    ]


def privacy_policy(settings: SiteSettings) -> dict[str, Any]:
    """The site's ``privacy.json`` content: the site filter is mandatory in the default scope.

    The properties record what the filter enforces: the approved templates and the (project,
    submitter, templates, until) approvals of access requests (``site-node requests approve``).
    """
    return {
        "scopes": [
            {
                "name": SCOPE,
                "properties": {
                    "site_id": settings.site_id,
                    "approved_templates": sorted(settings.approved_jobs),
                    "access_approvals": _approvals(settings),
                },
                "task_result_filters": [{"path": FILTER_PATH, "args": {}}],
            }
        ],
        "default_scope": SCOPE,
    }


def write_site_policy(settings: SiteSettings, local_dir: Path) -> list[Path]:
    """Write both files into ``local_dir`` (a startup kit's ``local/``) and return their paths."""
    local_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in (
        ("authorization.json", authorization_policy(settings)),
        ("privacy.json", privacy_policy(settings)),
    ):
        path = local_dir / name
        path.write_text(json.dumps(content, indent=2))
        written.append(path)
    return written
