"""The authentication dependency every hub route uses.

Usage::

    @router.get("/thing")
    def thing(principal: Principal = Depends(require_role("hub_admin", "researcher"))): ...

No or an unknown/revoked token -> 401; a valid token of another role -> 403. The web page passes the
token in the ``hub_token`` cookie instead of the ``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from central_hub.auth.tokens import Principal, resolve_token
from central_hub.deps import get_session
from common.errors import AuthenticationError, PermissionDeniedError

COOKIE_NAME = "hub_token"
bearer = HTTPBearer(auto_error=False, description="A hub token (`central-hub token create`).")


def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    session: Session = Depends(get_session),
) -> Principal:
    """The caller behind the bearer token (or the web page's cookie).

    Raises:
        AuthenticationError: no token, or an unknown or revoked one.
    """
    clear = credentials.credentials if credentials else request.cookies.get(COOKIE_NAME)
    if not clear:
        raise AuthenticationError("a bearer token is required", field="Authorization")
    row = resolve_token(session, clear)
    if row is None:
        raise AuthenticationError("unknown or revoked token", field="Authorization")
    if credentials is None and row.role == "hub_admin":  # the web page never holds an admin token
        raise AuthenticationError(
            "a hub_admin token is accepted in the Authorization header only", field=COOKIE_NAME
        )
    site_name = None
    if row.site_id is not None:
        from central_hub.catalog.models import Site

        site = session.get(Site, row.site_id)
        site_name = site.name if site else None
    return Principal(token_id=row.id, name=row.name, role=row.role, site_id=row.site_id, site_name=site_name)


def require_role(*roles: str) -> Callable[..., Principal]:
    """A dependency that admits only tokens of one of ``roles``.

    Raises:
        PermissionDeniedError: the token's role is not in ``roles`` (HTTP 403).
    """
    allowed = frozenset(roles)

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise PermissionDeniedError(f"role '{principal.role}' may not do this", field="role")
        return principal

    dependency.__name__ = f"require_{'_or_'.join(roles)}"
    return dependency
