"""Model registry API: list versions, read a card, download the weights, the metrics plot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.auth.deps import require_role
from central_hub.auth.tokens import Principal
from central_hub.deps import get_session, get_settings
from central_hub.models import service
from central_hub.models.plot import metrics_png
from common.config import HubSettings

router = APIRouter(prefix="/models", tags=["models"])
#: Sites pull models; researchers and the operator read the registry.
READ_ROLES = ("hub_admin", "researcher", "site")
_READ = require_role(*READ_ROLES)


@router.get("", summary="Model versions in the registry")
def list_models(
    _: Principal = Depends(_READ), session: Session = Depends(get_session)
) -> dict[str, list[dict[str, Any]]]:
    """Every published version's card, newest version first per name."""
    return {"models": [m.card() for m in service.list_models(session)]}


@router.get("/{name}/{version}", summary="Model card (version number or 'latest')")
def get_card(
    name: str, version: str, _: Principal = Depends(_READ), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """Template and code digest, training sites, rounds, per-site metrics and dataset versions,
    SHA-256 of the weights and the version's federated evaluations."""
    return service.full_card(session, service.get_model(session, name, version))


@router.get("/{name}/{version}/file", summary="Model weights (PyTorch checkpoint)")
def get_file(
    name: str,
    version: str,
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> FileResponse:
    """The weights; the card's ``sha256`` is what the caller must verify."""
    model = service.get_model(session, name, version)
    path = service.weights_path(settings, model)
    write_audit(session, principal, "model.download", {"model": model.name, "version": model.version})
    session.commit()
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{model.name}-{model.version}.pt",
        headers={"X-Model-SHA256": model.sha256, "X-Model-Version": str(model.version)},
    )


@router.get("/{name}/{version}/plot.png", summary="Metrics plot of a model version (PNG)")
def get_plot(
    name: str, version: str, _: Principal = Depends(_READ), session: Session = Depends(get_session)
) -> Response:
    """Validation Dice per round per training site, and each evaluating site's Dice."""
    card = service.full_card(session, service.get_model(session, name, version))
    return Response(metrics_png(card), media_type="image/png")
