"""Typed, bounded parameters of the federated job templates, and the sites' own limits on them.

The hub validates a submission against the template's model (:func:`validate_params`, HTTP 422
naming the parameter, never echoing the value) and publishes the models' JSON schema. A site checks
at run time, in its NVFlare client, that what the job actually runs with lies inside its own
:class:`JobPolicy` (``[job_policy.*]`` in ``site.toml``), whatever the hub let through
(:func:`policy_violations`). Light module: pydantic only, no torch, MONAI or NVFlare.

A new template adds its parameter model to :data:`TEMPLATE_PARAMS` (the hub refuses submissions of a
template without one) and, where sites should limit it, a policy section and its checks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from common.errors import InputError
from common.schemas.cohort_query import FedQueryParams

PLATFORM_FLOOR = 5
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

Number = float  # strict: JSON 3 and 3.0 alike, booleans and strings refused
Side = Annotated[int, Field(ge=8, le=256)]
Channel = Annotated[int, Field(ge=1, le=256)]


class FedstatsParams(BaseModel):
    """Parameters of the ``fedstats`` template (NVFlare FedStats with its privacy cleansers)."""

    model_config = _STRICT

    min_count: int = Field(
        default=10, ge=PLATFORM_FLOOR, le=100_000, description="smallest feature count reported"
    )
    bins: int = Field(default=10, ge=1, le=100, description="histogram bins per feature")
    min_noise_level: Number = Field(default=0.1, ge=0.1, lt=1, description="lower relative noise on min/max")
    max_noise_level: Number = Field(default=0.3, ge=0.1, lt=1, description="upper relative noise on min/max")
    max_bins_percent: Number = Field(
        default=10, gt=0, le=10, description="histograms need count > bins x 100 / max_bins_percent"
    )

    @model_validator(mode="after")
    def _noise_order(self) -> FedstatsParams:
        if self.min_noise_level > self.max_noise_level:
            raise ValueError("min_noise_level must not exceed max_noise_level")
        return self


class Seg3dParams(BaseModel):
    """Parameters of the ``seg3d`` template (MONAI 3D UNet trained with FedAvg/FedProx/FedOpt)."""

    model_config = _STRICT

    rounds: int = Field(default=4, ge=1, le=100, description="federated rounds")
    local_epochs: int = Field(default=3, ge=1, le=100, description="epochs each site trains per round")
    lr: Number = Field(default=3e-3, gt=0, le=1, description="Adam learning rate")
    lr_schedule: Literal["constant", "cosine"] = "constant"
    patch: Annotated[list[Side], Field(min_length=3, max_length=3)] = Field(
        default_factory=lambda: [32, 32, 16], description="training patch, voxels per axis"
    )
    channels: Annotated[list[Channel], Field(min_length=2, max_length=6)] = Field(
        default_factory=lambda: [8, 16, 32], description="UNet feature channels per level"
    )
    batch_size: int = Field(default=2, ge=1, le=64)
    aggregation: Literal["fedavg", "fedprox", "fedopt"] = "fedavg"
    fedprox_mu: Number = Field(default=0.01, gt=0, lt=10)
    cross_site_eval: StrictBool = True
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    device: Literal["cpu", "cuda"] | None = None
    params_transfer: Literal["full", "diff"] = "full"
    model_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="registry name the finished model is published under (default: the template name)",
    )

    @model_validator(mode="after")
    def _transfer(self) -> Seg3dParams:
        if self.params_transfer == "diff" and self.aggregation == "fedopt":
            raise ValueError("params_transfer diff is for fedavg and fedprox")
        return self


class EvaluateParams(BaseModel):
    """Parameters of the ``evaluate`` template (federated evaluation of a registry model).

    The researcher names ``model``; the hub replaces it with the registry's checkpoint, digest and
    network arguments before validation (a submitter cannot name a file on the hub).
    """

    model_config = _STRICT

    model_name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    model_version: int = Field(ge=1)
    checkpoint: str = Field(min_length=2, max_length=4096, description="set by the hub from the registry")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    channels: Annotated[list[Channel], Field(min_length=2, max_length=6)] = Field(
        default_factory=lambda: [8, 16, 32]
    )
    patch: Annotated[list[Side], Field(min_length=3, max_length=3)] = Field(
        default_factory=lambda: [32, 32, 16]
    )
    device: Literal["cpu", "cuda"] | None = None


#: Template name -> its parameter model.
TEMPLATE_PARAMS: dict[str, type[BaseModel]] = {
    "fedstats": FedstatsParams,
    "seg3d": Seg3dParams,
    "fedquery": FedQueryParams,  # a cohort definition (common.schemas.cohort_query)
    "evaluate": EvaluateParams,
}


def _field_of(error: Any) -> str:
    loc = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
    name = loc[0] if loc else ""
    return name if name.isidentifier() and len(name) <= 64 else ""


def validate_params(template: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The template's full parameter set (defaults overlaid with ``params``), validated.

    Args:
        template: a name in :data:`TEMPLATE_PARAMS`.
        params: the submitted parameters (JSON values).

    Returns:
        Every parameter of the template, as plain JSON values.

    Raises:
        InputError: an unknown template or parameter, or a value of the wrong type or out of bounds;
            the message and ``field`` name the parameter, never the value.
    """
    model = TEMPLATE_PARAMS.get(template)
    if model is None:
        raise InputError("this template declares no parameter model", field="template")
    if not isinstance(params, dict):
        raise InputError("parameters must be an object", field="params")
    try:
        return model.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _field_of(first)
        if first.get("type") == "extra_forbidden":
            raise InputError(
                f"unknown {template} parameter", field=f"params.{name}" if name else "params"
            ) from None
        reason = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if name:
            raise InputError(f"{name}: {reason}"[:200], field=f"params.{name}") from None
        raise InputError(reason[:200], field="params") from None


def params_schema() -> dict[str, dict[str, Any]]:
    """JSON schema of every template's parameters (published by the hub)."""
    return {name: model.model_json_schema() for name, model in sorted(TEMPLATE_PARAMS.items())}


class FedstatsPolicy(BaseModel):
    """What a site accepts from a ``fedstats`` job."""

    model_config = ConfigDict(extra="forbid")

    min_noise_level: float = Field(
        default=0.1, ge=0, lt=1, description="the job's min_noise_level must be at least this"
    )
    max_bins: int = Field(default=20, ge=1, le=1000, description="histogram bins at most")
    max_bins_percent: float = Field(default=10, gt=0, le=10, description="the job's max_bins_percent at most")


class Seg3dPolicy(BaseModel):
    """What a site accepts from a ``seg3d`` job."""

    model_config = ConfigDict(extra="forbid")

    max_rounds: int = Field(default=20, ge=1, le=100)
    max_local_epochs: int = Field(default=10, ge=1, le=100)
    max_patch: int = Field(default=128, ge=8, le=256, description="voxels per patch axis at most")
    max_batch_size: int = Field(default=8, ge=1, le=64)


class JobPolicy(BaseModel):
    """A site's limits on job parameters (``[job_policy.fedstats]``, ``[job_policy.seg3d]`` in site.toml)."""

    model_config = ConfigDict(extra="forbid")

    fedstats: FedstatsPolicy = Field(default_factory=FedstatsPolicy)
    seg3d: Seg3dPolicy = Field(default_factory=Seg3dPolicy)


def _over(value: Any, limit: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > limit


def _under(value: Any, limit: float) -> bool:
    return not isinstance(value, int | float) or isinstance(value, bool) or value < limit


def policy_violations(template: str, params: dict[str, Any], policy: JobPolicy, floor_k: int) -> list[str]:
    """Names of the parameters a site's policy refuses (empty: the site accepts them).

    Only the parameters present in ``params`` are checked (a site sees some of them only at run
    time: the number of rounds with each task, the histogram bins with the statistics request).
    A privacy parameter that is present but not a number is refused.

    Args:
        template: the job template.
        params: what the job runs with, as the site observed it.
        policy: the site's limits.
        floor_k: the site's small-cell floor (the statistics generator applies it to every feature
            itself; a ``min_count`` below the platform floor is refused).
    """
    bad: list[str] = []
    if template == "fedstats":
        fs = policy.fedstats
        checks = {
            "min_count": lambda v: _under(v, PLATFORM_FLOOR),
            "min_noise_level": lambda v: _under(v, fs.min_noise_level),
            "max_noise_level": lambda v: _under(v, fs.min_noise_level),
            "max_bins_percent": lambda v: _under(v, 0) or _over(v, fs.max_bins_percent) or v == 0,
            "bins": lambda v: _under(v, 1) or _over(v, fs.max_bins),
        }
    elif template == "seg3d":
        sp = policy.seg3d
        checks = {
            "rounds": lambda v: _over(v, sp.max_rounds),
            "local_epochs": lambda v: _over(v, sp.max_local_epochs),
            "batch_size": lambda v: _over(v, sp.max_batch_size),
            "patch": lambda v: not isinstance(v, list | tuple) or any(_over(s, sp.max_patch) for s in v),
        }
    else:
        return []
    for name, refuses in checks.items():
        if name in params and refuses(params[name]):
            bad.append(name)
    return bad
