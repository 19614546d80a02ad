"""Settings of the two deployables, loaded from ``<home>/<name>.toml`` plus environment variables.

Precedence (highest first): explicit keyword arguments, environment variables
(``SITE_NODE_*`` / ``HUB_*``), the TOML file in the node's home folder, defaults. Settings are built
lazily by :func:`load_site_settings` / :func:`load_hub_settings`, never at import time.
"""

from __future__ import annotations

import contextvars
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from common.errors import ConfigError
from common.job_params import JobPolicy

SITE_TOML = "site.toml"
HUB_TOML = "hub.toml"
MIN_FLOOR = 5
MIN_TOKEN_CHARS = 24
_PLACEHOLDERS = re.compile(r"^(change.?me|secret|password|token|xxx+|test|example|placeholder|todo)$", re.I)
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("_toml_path", default=None)


def check_secret(value: SecretStr | None, field: str) -> SecretStr | None:
    """Refuse secrets that are too short or obvious placeholders (the value is never echoed)."""
    if value is None:
        return None
    raw = value.get_secret_value()
    if len(raw) < MIN_TOKEN_CHARS or _PLACEHOLDERS.match(raw):
        raise ValueError(f"{field} is too short or a placeholder (need {MIN_TOKEN_CHARS}+ random chars)")
    return value


class _HomeSettings(BaseSettings):
    """Common behaviour: a home folder that exists (created if needed) and TOML loading."""

    home: Path

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None and path.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("home")
    @classmethod
    def _home_exists(cls, value: Path) -> Path:
        value = value.expanduser().resolve()
        value.mkdir(parents=True, exist_ok=True)
        return value


class DeidOptions(BaseModel):
    """PS3.15 Annex E options applied on top of the Basic profile."""

    retain_longitudinal_modified_dates: bool = True
    retain_longitudinal_full_dates: bool = False
    retain_patient_characteristics: bool = True
    retain_device_identity: bool = True
    retain_institution_identity: bool = False
    retain_uids: bool = False
    retain_safe_private: bool = True
    clean_descriptors: bool = True
    clean_structured_content: bool = False
    clean_graphics: bool = False
    #: Modalities / SOP classes the site has reviewed and clears of burned-in-text risk.
    cleared_burned_in: list[str] = Field(default_factory=list)
    #: What to do with instances at risk of burned-in text: OCR and redact them (fail closed), or
    #: quarantine them all for review.
    burned_in_text: Literal["redact", "quarantine"] = "redact"
    #: Extra device banner regions (same JSON shape as ``site_node/deid/data/burned_in_banners.json``).
    burned_in_banners: Path | None = None
    #: Newer PS3.15 table (same JSON shape as the shipped one); None uses the shipped edition.
    profile_table: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DeidOptions:
        if self.retain_longitudinal_full_dates and self.retain_longitudinal_modified_dates:
            raise ValueError("choose either retain_longitudinal_full_dates or _modified_dates, not both")
        return self


class TrainingPrivacy(BaseModel):
    """Privacy filters a site applies to every model update it sends through NVFlare."""

    #: Regular expression of variable names never sent (e.g. ``"net\\.model\\.0\\."``).
    exclude_vars: str | None = None
    #: Percentile privacy (Shokri & Shmatikov): share only changes above this percentile of |change|.
    percentile: float | None = Field(default=None, ge=0, le=100)
    #: Upper bound of a shared change when percentile privacy is on.
    gamma: float = Field(default=0.01, gt=0)

    @field_validator("exclude_vars")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value:
            try:
                re.compile(value)
            except re.error:
                raise ValueError("exclude_vars is not a valid regular expression") from None
        return value


class PacsRoute(BaseModel):
    """One ``[[routes]]`` entry of ``site.toml``: which studies arriving at ``pacs listen`` get which action.

    Every match field is optional; a field that is set must match (case-insensitive; ``*`` and ``?``
    wildcards, as in a C-FIND). The first route whose fields all match decides.
    """

    model_config = {"extra": "forbid"}

    name: str = ""
    modality: str | None = None
    body_part: str | None = None
    series_description: str | None = None
    calling_aet: str | None = None
    #: ``deid`` (de-identify for research) or ``model`` (run the model named by ``model``).
    action: Literal["deid", "model"] = "deid"
    model: str | None = None
    #: How a model route stores its results back: C-STORE (``dimse``) or STOW-RS (``dicomweb``).
    results_via: Literal["dimse", "dicomweb"] = "dimse"

    @model_validator(mode="after")
    def _model_named(self) -> PacsRoute:
        if self.action == "model" and not self.model:
            raise ValueError("a route with action 'model' must name the model (model = \"NAME\")")
        if self.model and self.action == "deid":
            self.action = "model"
        return self


#: What a result notification may carry; only ``accession`` of these identifies anyone by default.
NOTIFY_FIELDS = (
    "accession",
    "model",
    "status",
    "lesions",
    "volumes_ml",
    "latency_s",
    "study_pseudonym",
    "patient_id",
    "patient_name",
    "study_date",
)


class NotifySettings(BaseModel):
    """``[notify]`` in ``site.toml``: a webhook inside the hospital told when a routed study's results
    are stored (DIANA posted to Slack). Empty ``url``: no notification."""

    model_config = {"extra": "forbid"}

    url: str | None = None
    #: ``json`` (one flat object) or ``slack`` (``{"text": ...}``, what Slack, Mattermost and
    #: Rocket.Chat incoming webhooks take).
    format: Literal["json", "slack"] = "json"
    #: The content; by default nothing identifying beyond the accession number.
    fields: list[str] = Field(
        default_factory=lambda: ["accession", "model", "status", "lesions", "latency_s"]
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: The webhook must resolve to a loopback or private address (inside the hospital) unless this is true.
    allow_public_host: bool = False

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(NOTIFY_FIELDS))
        if unknown:
            raise ValueError(f"unknown notification field(s); choose from {', '.join(NOTIFY_FIELDS)}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("notify.url must be an http(s) URL")
        return value or None


class PacsSettings(BaseModel):
    """The node's own DICOM identity (``[pacs]`` in ``site.toml``, env ``SITE_NODE_PACS__*``)."""

    #: AE title of this node (its C-STORE SCP and the SCU of C-FIND/C-GET/C-MOVE).
    aet: str = "SITENODE"
    #: Port of this node's C-STORE SCP (``pacs listen``, and C-MOVE destination during ``pacs pull``).
    port: int = Field(default=11112, ge=1, le=65535)
    #: Address the C-STORE SCP binds to.
    bind: str = "0.0.0.0"  # noqa: S104 - a PACS must reach it; the AE allow-list guards it
    #: Calling AE titles accepted by the SCP besides those of nodes added with ``pacs add``.
    allowed_calling_aets: list[str] = Field(default_factory=list)
    #: Seconds without a new instance after which an arriving study counts as complete.
    quiet_period_s: float = Field(default=20.0, gt=0, le=3600)
    #: A study also counts as complete as soon as the sender releases the association(s) that delivered it.
    complete_on_release: bool = True
    #: After such a release, results are stored only once this many seconds passed without a new instance
    #: of the study (a sender splitting a study over back-to-back associations); the grace runs during
    #: the model's compute, and an instance arriving within it makes the study be routed again.
    release_grace_s: float = Field(default=2.0, ge=0, le=600)
    #: Memory (MiB) for instances of studies routed to a model, parsed and decoded as they arrive so the
    #: model need not re-read the spool once the study is complete; 0 turns it off. Over the budget a
    #: study is simply read back from the spool.
    arrival_cache_mb: int = Field(default=2048, ge=0, le=1_048_576)
    #: A C-STORE to ``pacs listen`` is answered with success only once the instance is on disk (fsync of
    #: the file and its folder), as a sender expects of a storage SCP before it moves on or deletes.
    fsync_spool: bool = True
    #: Seconds an association (or a DICOMweb request) may stay silent before it is abandoned.
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    #: Tries per accession when the PACS is down, refuses or times out (backoff doubles each time).
    retries: int = Field(default=3, ge=0, le=20)
    #: First backoff delay in seconds.
    backoff_s: float = Field(default=2.0, ge=0, le=600)

    @field_validator("aet")
    @classmethod
    def _aet(cls, value: str) -> str:
        if not re.match(r"^[ -~]{1,16}$", value) or "\\" in value or not value.strip():
            raise ValueError("an AE title is 1-16 printable ASCII characters without backslash")
        return value.strip()


class SiteSettings(_HomeSettings):
    """Settings of one site node (``<home>/site.toml``, env prefix ``SITE_NODE_``)."""

    model_config = SettingsConfigDict(env_prefix="SITE_NODE_", env_nested_delimiter="__", extra="forbid")

    site_id: str = "site"
    country: str | None = None
    db_url: str | None = None
    floor_k: int = Field(default=10, ge=MIN_FLOOR)
    #: Base of the cell-key perturbation of published counts (common.disclosure; docs/cohort-summary.md).
    disclosure_base: int = Field(default=5, ge=3, le=100)
    mrn_system: str | None = None
    hub_url: str | None = None
    hub_token: SecretStr | None = None
    admin_token: SecretStr | None = None
    deid: DeidOptions = Field(default_factory=DeidOptions)
    approved_jobs: dict[str, str] = Field(default_factory=dict)
    #: Admit only jobs of approved (project, submitter, template); on for good once a request is decided.
    require_project_approval: bool = False
    training_privacy: TrainingPrivacy = Field(default_factory=TrainingPrivacy)
    #: The site's own limits on job parameters, enforced by its NVFlare client (common.job_params).
    job_policy: JobPolicy = Field(default_factory=JobPolicy)
    max_workers: int = Field(default=0, ge=0)
    pacs: PacsSettings = Field(default_factory=PacsSettings)
    routes: list[PacsRoute] = Field(default_factory=list)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("site_id")
    @classmethod
    def _site_id(cls, value: str) -> str:
        if not _SITE_ID.match(value):
            raise ValueError("site_id must be lower-case letters, digits, '-' or '_' (max 63)")
        return value

    @field_validator("hub_token", "admin_token")
    @classmethod
    def _tokens(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        return check_secret(value, info.field_name)

    @property
    def phi_dir(self) -> Path:
        """Folder holding the key and the re-identification table (mode 0700)."""
        return self.home / "phi"

    @property
    def export_dir(self) -> Path:
        """Folder holding de-identified output only."""
        return self.home / "export"

    @property
    def quarantine_dir(self) -> Path:
        """Folder holding inputs set aside with a reason."""
        return self.home / "quarantine"

    @property
    def database_url(self) -> str:
        """The site database URL (SQLite in the home folder by default)."""
        return self.db_url or f"sqlite:///{self.home / 'site.db'}"


class HubSettings(_HomeSettings):
    """Settings of the central hub (``<home>/hub.toml``, env prefix ``HUB_``)."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_nested_delimiter="__", extra="forbid")

    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_payload_bytes: int = Field(default=2_000_000, ge=1024)
    default_floor_k: int = Field(default=10, ge=MIN_FLOOR)
    #: Close a keep-alive connection after this many requests (0: never), like nginx's
    #: ``keepalive_requests``: clients reconnect and the least busy ``serve --workers`` process takes them.
    keepalive_requests: int = Field(default=50, ge=0)
    nvflare_mode: Literal["simulator", "production"] = "simulator"
    nvflare_admin_kit: Path | None = None
    nvflare_admin_user: str | None = None
    #: Local demo only: site name -> site node home, one simulator client per site (``central_hub.jobs``).
    simulator_sites: dict[str, Path] = Field(default_factory=dict)
    #: Jobs one researcher may have submitted or running at once (more: HTTP 429).
    max_concurrent_jobs_per_researcher: int = Field(default=2, ge=1, le=100)
    #: Failed authentications one client address may make per ``auth_window_s`` (more: HTTP 429).
    max_auth_failures: int = Field(default=20, ge=1)
    auth_window_s: int = Field(default=60, ge=1)
    #: Audit rows of refused requests (401, 403, privacy 422) written per minute at most.
    security_audit_per_minute: int = Field(default=60, ge=1)

    @property
    def database_url(self) -> str:
        """The hub database URL (SQLite in the home folder by default)."""
        return self.db_url or f"sqlite:///{self.home / 'hub.db'}"


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _load(cls: type[_HomeSettings], home: Path, toml_name: str, overrides: dict[str, Any]) -> Any:
    token = _toml_path.set(Path(home).expanduser() / toml_name)
    try:
        return cls(home=Path(home), **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        raise ConfigError(
            f"invalid settings: {_format_validation(exc)}", field=".".join(map(str, first)) or None
        ) from None
    finally:
        _toml_path.reset(token)


def resolve_home(home: Path | str | None, env_var: str) -> Path:
    """The home folder from the argument or the environment variable ``env_var``.

    Raises:
        ConfigError: neither is set.
    """
    value = home or os.environ.get(env_var)
    if not value:
        raise ConfigError(f"no home folder: pass --home or set {env_var}", field="home")
    return Path(value).expanduser().resolve()


def load_site_settings(home: Path | str | None = None, **overrides: Any) -> SiteSettings:
    """Load and validate the site node's settings.

    Args:
        home: the node's home; defaults to ``$SITE_NODE_HOME``.
        **overrides: values that take precedence over the environment and the TOML file.

    Raises:
        ConfigError: invalid or missing settings (the message names the field).
    """
    path = resolve_home(home, "SITE_NODE_HOME")
    return _load(SiteSettings, path, SITE_TOML, overrides)


def load_hub_settings(home: Path | str | None = None, **overrides: Any) -> HubSettings:
    """Load and validate the hub's settings (home defaults to ``$HUB_HOME``)."""
    path = resolve_home(home, "HUB_HOME")
    return _load(HubSettings, path, HUB_TOML, overrides)
