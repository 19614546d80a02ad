"""``site-node model pull``: fetch a model version from the hub's registry and verify its digest.

The request carries nothing from the site but the model name and the site's token; the transfer is
inbound and is written to the site's run audit (``model-pull``: hub, model, version, digest).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import httpx

from common.errors import AuthenticationError, NotFoundError, RemoteError
from site_node.audit import audited_run
from site_node.home import SiteContext
from site_node.models.store import StoredModel, models_dir, parse_ref, register

log = logging.getLogger(__name__)


def _get(client: httpx.Client, url: str) -> httpx.Response:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise RemoteError(f"could not reach the hub ({type(exc).__name__})", field="hub_url") from None
    if response.status_code == 404:
        raise NotFoundError("the hub has no such model or version", field="model")
    if response.status_code in (401, 403):
        raise AuthenticationError("the hub refused the site's token", field="hub_token")
    if not response.is_success:
        raise RemoteError(f"the hub answered HTTP {response.status_code}", field="hub_url")
    return response


def _download(client: httpx.Client, url: str, target: Path) -> None:
    try:
        with client.stream("GET", url) as response:
            if not response.is_success:
                raise RemoteError(
                    f"the hub answered HTTP {response.status_code} for the file", field="hub_url"
                )
            with target.open("wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        raise RemoteError(f"the model download failed ({type(exc).__name__})", field="hub_url") from None


def pull_model(ctx: SiteContext, ref: str, hub_url: str, token: str, timeout: float = 60.0) -> StoredModel:
    """Pull ``NAME[:VERSION]`` (newest when no version) from the hub into the site's store.

    Raises:
        NotFoundError: the hub has no such model.
        PermissionDeniedError: the file's SHA-256 differs from the card's (nothing is stored).
        RemoteError / AuthenticationError: the hub is unreachable or refused the token.
    """
    name, version = parse_ref(ref)
    base = hub_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    params: dict[str, Any] = {"model": name, "version": version or "latest", "hub": base}
    with (
        audited_run(ctx.engine, "model-pull", params) as run,
        httpx.Client(headers=headers, timeout=timeout) as client,
    ):
        card = _get(client, f"{base}/models/{name}/{version or 'latest'}").json()
        staging = models_dir(ctx.settings.home) / ".incoming"
        staging.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=staging, suffix=".pt") as tmp:
            _download(client, f"{base}/models/{name}/{card['version']}/file", Path(tmp.name))
            run.counts = {"direction": "inbound", "version": card["version"], "sha256": card["sha256"]}
            stored = register(
                ctx.engine,
                ctx.settings.home,
                name=name,
                version=int(card["version"]),
                source="hub",
                weights=Path(tmp.name),
                template=str(card["template"]),
                card={**card, "hub": base},
                expected_sha256=str(card["sha256"]),
            )
        run.counts["bytes"] = stored.path.stat().st_size
    log.info("pulled model %s from the hub", stored.ref)
    return stored
