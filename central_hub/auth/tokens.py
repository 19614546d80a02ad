"""Creating, resolving and revoking tokens.

A token is ``fh_`` + 43 URL-safe characters (256 random bits). The hub stores its SHA-256 only: with
that much entropy a plain hash cannot be reversed by guessing, and lookups stay one indexed query.
The clear token is shown once, when created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from central_hub.auth.models import ROLES, Token
from central_hub.db import utcnow
from common.errors import InputError, NotFoundError

TOKEN_PREFIX = "fh_"  # noqa: S105 - a public prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name and role, and for a site token the site."""

    token_id: int
    name: str
    role: str
    site_id: int | None = None
    site_name: str | None = None

    @property
    def label(self) -> str:
        """``role:name`` as written to the audit log."""
        return f"{self.role}:{self.name}"


def hash_token(token: str) -> str:
    """SHA-256 hex of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, role: str, name: str, site_id: int | None = None) -> tuple[Token, str]:
    """Create a token; returns the row and the clear token (shown once, never stored).

    Raises:
        InputError: unknown role, or a site token without a site.
    """
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}", field="role")
    if (role == "site") != (site_id is not None):
        raise InputError("a site token needs a site, and only a site token has one", field="site")
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = Token(name=name, role=role, site_id=site_id, token_hash=hash_token(clear), prefix=clear[:8])
    session.add(row)
    session.flush()
    return row, clear


def resolve_token(session: Session, clear: str) -> Token | None:
    """The live (not revoked) token row for a clear token, or None."""
    row = session.scalar(select(Token).where(Token.token_hash == hash_token(clear)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke_token(session: Session, token_id: int) -> Token:
    """Revoke a token (idempotent).

    Raises:
        NotFoundError: no token with that id.
    """
    row = session.get(Token, token_id)
    if row is None:
        raise NotFoundError("no such token", field="token_id")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def list_tokens(session: Session) -> list[Token]:
    """Every token, oldest first (hashes are never shown)."""
    return list(session.scalars(select(Token).order_by(Token.id)))
