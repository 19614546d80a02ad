"""Render the NVFlare ``project.yml`` of a deployment from the shipped template.

The template (``project.template.yml`` beside this module) holds the builders; this module fills in
the participants: the server (the hub), one client per site, one ``lead`` admin per researcher and a
``project_admin`` for the hub operator. Nothing here starts a process or imports nvflare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import InputError

TEMPLATE = Path(__file__).with_name("project.template.yml")

HUB_ORG = "hub"
RESEARCHER_ORG = "consortium"
RESEARCHER_ROLE = "lead"
OPERATOR_ROLE = "project_admin"
DEFAULT_OPERATOR = "hub-admin"
DEFAULT_ADMIN_DOMAIN = "fedimaging.org"

# Same rule as SiteSettings.site_id; NVFlare client names are a superset of it.
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# NVFlare's own patterns for server host names, admin (e-mail) names and project names.
_LABEL = r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = re.compile(rf"^({_LABEL}\.)*{_LABEL}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class ProvisionSpec:
    """What to provision: the hub's address, the sites and the admin users.

    Args:
        sites: site ids; each becomes one NVFlare client (its certificate CN).
        researchers: researcher names or e-mail addresses; each becomes a ``lead`` admin.
        server_host: DNS name the sites and admin consoles use to reach the hub (the server
            certificate's CN; ``localhost`` for a loopback deployment).
        fl_port: port the sites connect to (the only port a site needs outbound).
        admin_port: port the admin consoles (researchers, operator, the hub's job runner) connect to.
        project_name: NVFlare project name (kits land in ``<out>/<project_name>/prod_NN``).
        operator: name or e-mail of the hub operator (``project_admin``).
        admin_domain: domain appended to bare researcher/operator names (NVFlare admins are e-mails).
    """

    sites: tuple[str, ...]
    researchers: tuple[str, ...]
    server_host: str = "localhost"
    fl_port: int = 8002
    admin_port: int = 8003
    project_name: str = "fedimaging"
    operator: str = DEFAULT_OPERATOR
    admin_domain: str = DEFAULT_ADMIN_DOMAIN
    description: str = field(default="fedimaging federated imaging consortium")

    @property
    def researcher_emails(self) -> list[str]:
        """The researchers' admin user names (e-mail form)."""
        return [admin_email(name, self.admin_domain) for name in self.researchers]

    @property
    def operator_email(self) -> str:
        """The hub operator's admin user name (e-mail form)."""
        return admin_email(self.operator, self.admin_domain)


def parse_names(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Split a comma-separated option (``a,b,c``) or a list into stripped, non-empty names."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [p for v in value for p in v.split(",")]
    return tuple(p.strip() for p in items if p.strip())


def admin_email(name: str, domain: str) -> str:
    """The NVFlare admin name for ``name``: itself when it is an e-mail, else ``name@domain``.

    Raises:
        InputError: the result is not an e-mail address NVFlare accepts.
    """
    candidate = name if "@" in name else f"{name}@{domain}"
    if "@" not in name and not _LOCAL_PART.match(name):
        raise InputError("researcher/operator names use letters, digits and ._%+- only", field="researchers")
    if not _EMAIL.match(candidate):
        raise InputError("admin names must be e-mail addresses (check --admin-domain)", field="researchers")
    return candidate


def org_for_site(site_id: str) -> str:
    """NVFlare org of a site (org names allow letters, digits and '_' only)."""
    return site_id.replace("-", "_")


def validate(spec: ProvisionSpec) -> None:
    """Check names, ports and duplicates before anything is written.

    Raises:
        InputError: naming the option that is wrong.
    """
    if not spec.sites:
        raise InputError("at least one site is needed", field="sites")
    if not spec.researchers:
        raise InputError("at least one researcher is needed", field="researchers")
    for site in spec.sites:
        if not _SITE_ID.match(site):
            raise InputError("site ids are lower-case letters, digits, '-' or '_' (max 63)", field="sites")
    _no_duplicates(spec.sites, "sites")
    _no_duplicates(tuple(org_for_site(s) for s in spec.sites), "sites")
    if not _HOST.match(spec.server_host):
        raise InputError("server host must be a DNS name (the certificate CN)", field="server_host")
    if not _PROJECT.match(spec.project_name):
        raise InputError("project name is lower-case letters, digits, '-' or '_'", field="project_name")
    for name, port in (("fl_port", spec.fl_port), ("admin_port", spec.admin_port)):
        if not 1 <= port <= 65535:
            raise InputError("ports are between 1 and 65535", field=name)
    admins = (*spec.researcher_emails, spec.operator_email)
    _no_duplicates(admins, "researchers")
    if spec.server_host in spec.sites:
        raise InputError("a site id may not equal the server host name", field="sites")


def _no_duplicates(names: tuple[str, ...], field_name: str) -> None:
    if len(set(names)) != len(names):
        raise InputError("names must be unique", field=field_name)


def participants(spec: ProvisionSpec) -> list[dict[str, Any]]:
    """The ``participants`` section: server, clients, researcher leads, operator."""
    server = {
        "name": spec.server_host,
        "type": "server",
        "org": HUB_ORG,
        "fed_learn_port": spec.fl_port,
        "admin_port": spec.admin_port,
    }
    clients = [{"name": s, "type": "client", "org": org_for_site(s)} for s in spec.sites]
    leads = [
        {"name": e, "type": "admin", "org": RESEARCHER_ORG, "role": RESEARCHER_ROLE}
        for e in spec.researcher_emails
    ]
    operator = {"name": spec.operator_email, "type": "admin", "org": HUB_ORG, "role": OPERATOR_ROLE}
    return [server, *clients, *leads, operator]


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """Load the project template (a mapping with at least ``api_version`` and ``builders``).

    Raises:
        InputError: the template is not such a mapping.
    """
    import yaml  # PyYAML arrives with nvflare (the train extra); importing it lazily keeps the hub CLI light

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "builders" not in data or "api_version" not in data:
        raise InputError("the project template needs api_version and builders", field="template")
    return data


def render_project(spec: ProvisionSpec, template: Path = TEMPLATE) -> dict[str, Any]:
    """The full project mapping for ``spec`` (validated).

    Args:
        spec: what to provision.
        template: the template file to fill in.

    Returns:
        The mapping ``nvflare provision`` reads.

    Raises:
        InputError: a name, port or the template is invalid.
    """
    validate(spec)
    project = load_template(template)
    project["name"] = spec.project_name
    project["description"] = spec.description
    project["participants"] = participants(spec)
    return project


def write_project_yml(spec: ProvisionSpec, path: Path, template: Path = TEMPLATE) -> Path:
    """Render ``spec`` and write it as YAML to ``path`` (parents created)."""
    import yaml

    project = render_project(spec, template)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by central_hub/provision/project.py from project.template.yml; edit the template.\n"
    path.write_text(header + yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return path
