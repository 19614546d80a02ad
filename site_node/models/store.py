"""The site's model store: add a version, list versions, resolve and verify one before use."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select

from common.digest import file_sha256
from common.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from site_node.db import utcnow
from site_node.models.tables import site_model

log = logging.getLogger(__name__)

#: Templates whose network this site can rebuild (``site_node.training.model``).
KNOWN_TEMPLATES = ("seg3d",)
SOURCES = ("hub", "file", "local")
MODEL_FILE = "model.pt"
CARD_FILE = "card.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass
class StoredModel:
    """One model version held by the site."""

    name: str
    version: int
    source: str
    sha256: str
    template: str
    path: Path
    template_digest: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def model_args(self) -> dict[str, Any]:
        """Network arguments from the card (channels, patch)."""
        return dict(self.card.get("model_args") or {})

    def public(self) -> dict[str, Any]:
        """JSON view for ``model list``."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "sha256": self.sha256,
            "template": self.template,
            "template_digest": self.template_digest,
            "metrics": self.metrics,
            "dataset_versions": self.card.get("dataset_versions", {}),
        }


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME[:VERSION]`` -> (name, version or None for the newest).

    Raises:
        InputError: not a model name, or a version that is not a positive number.
    """
    name, _, version = ref.partition(":")
    if not _NAME.match(name) or (version and not (version.isdigit() and int(version) > 0)):
        raise InputError("a model is NAME or NAME:VERSION (lower-case name, VERSION a number)", field="model")
    return name, int(version) if version else None


def models_dir(home: Path) -> Path:
    """``<home>/models``."""
    return home / "models"


def next_version(engine: Engine, name: str) -> int:
    """One more than the highest version of ``name`` held here."""
    with engine.connect() as conn:
        current = conn.execute(
            select(func.max(site_model.c.version)).where(site_model.c.name == name)
        ).scalar()
    return int(current or 0) + 1


def _row_to_model(home: Path, row: Any) -> StoredModel:
    return StoredModel(
        name=row.name,
        version=int(row.version),
        source=row.source,
        sha256=row.sha256,
        template=row.template,
        path=home / row.path,
        template_digest=row.template_digest,
        metrics=dict(row.metrics or {}),
        card=dict(row.card or {}),
    )


def register(
    engine: Engine,
    home: Path,
    *,
    name: str,
    version: int,
    source: str,
    weights: Path,
    template: str,
    card: dict[str, Any],
    expected_sha256: str | None = None,
) -> StoredModel:
    """Copy ``weights`` into the store and record the version.

    Args:
        engine: the site database.
        home: the site home.
        name: model name.
        version: version number (the hub's for a pull, the next local one otherwise).
        source: ``hub``, ``file`` or ``local``.
        weights: the weights file to copy.
        template: the job template whose network the weights fit.
        card: what is known about the model (the hub's card for a pull).
        expected_sha256: refuse the file unless it has this digest (a pull checks the card's).

    Raises:
        InputError: unknown template or source, bad name.
        PermissionDeniedError: the file does not match ``expected_sha256``.
        ConflictError: this name and version already hold different weights.
    """
    parse_ref(name)
    if template not in KNOWN_TEMPLATES:
        raise InputError(f"unknown template; this site runs {', '.join(KNOWN_TEMPLATES)}", field="template")
    if source not in SOURCES:
        raise InputError("unknown model source", field="source")
    digest = file_sha256(weights)
    if expected_sha256 is not None and digest != expected_sha256:
        raise PermissionDeniedError(
            "the model file does not match the SHA-256 of its card; nothing was stored", field="sha256"
        )
    existing = find(engine, home, name, version, missing_ok=True)
    if existing is not None:
        if existing.sha256 == digest:
            return existing
        raise ConflictError(f"model {name}:{version} already exists with other weights", field="model")
    folder = models_dir(home) / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, folder / MODEL_FILE)
    card = {
        **card,
        "name": name,
        "version": version,
        "sha256": digest,
        "template": template,
        "source": source,
    }
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))
    with engine.begin() as conn:
        conn.execute(
            insert(site_model).values(
                name=name,
                version=version,
                source=source,
                sha256=digest,
                template=template,
                template_digest=card.get("template_digest"),
                metrics=card.get("metrics") or card.get("site_metrics") or {},
                card=json.loads(json.dumps(card, default=str)),
                path=(folder / MODEL_FILE).relative_to(home).as_posix(),
                added_at=utcnow(),
            )
        )
    log.info("model %s:%d stored (source %s, sha256 %s)", name, version, source, digest[:16])
    return find(engine, home, name, version)  # type: ignore[return-value]


def find(
    engine: Engine, home: Path, name: str, version: int | None = None, *, missing_ok: bool = False
) -> StoredModel | None:
    """A stored version (the newest when ``version`` is None).

    Raises:
        NotFoundError: no such model here (unless ``missing_ok``).
    """
    query = select(site_model).where(site_model.c.name == name)
    query = (
        query.order_by(site_model.c.version.desc()).limit(1)
        if version is None
        else query.where(site_model.c.version == version)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        if missing_ok:
            return None
        raise NotFoundError(
            "unknown model; see 'site-node model list' or pull it with 'site-node model pull'", field="model"
        )
    return _row_to_model(home, row)


def resolve_verified(engine: Engine, home: Path, ref: str) -> StoredModel:
    """Resolve ``NAME[:VERSION]`` and check its file still has the recorded SHA-256.

    Raises:
        NotFoundError: unknown model, or its file is gone.
        PermissionDeniedError: the file changed since it was stored (digest mismatch).
    """
    name, version = parse_ref(ref)
    model = find(engine, home, name, version)
    assert model is not None
    if not model.path.is_file():
        raise NotFoundError("the model's weights file is missing from the store", field="model")
    if file_sha256(model.path) != model.sha256:
        raise PermissionDeniedError(
            f"model {model.ref} no longer matches its recorded SHA-256; refusing to run it", field="sha256"
        )
    return model


def list_models(engine: Engine, home: Path) -> list[StoredModel]:
    """Every stored version, by name then newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(site_model).order_by(site_model.c.name, site_model.c.version.desc())).all()
    return [_row_to_model(home, r) for r in rows]
