"""Token administration (hub_admin only)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.auth.deps import require_role
from central_hub.auth.tokens import Principal, create_token, list_tokens, revoke_token
from central_hub.deps import get_session

router = APIRouter(tags=["admin"])


class TokenCreate(BaseModel):
    """A new user token (site tokens come with ``POST /sites``)."""

    role: Literal["hub_admin", "researcher", "searcher"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]*$")


class TokenCreated(BaseModel):
    """The token, shown once."""

    id: int
    role: str
    name: str
    token: str


class TokenPublic(BaseModel):
    """A token as listed (never the token or its hash)."""

    id: int
    role: str
    name: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@router.post("/tokens", response_model=TokenCreated, status_code=201, summary="Create a user token")
def post_token(
    body: TokenCreate,
    principal: Principal = Depends(require_role("hub_admin")),
    session: Session = Depends(get_session),
) -> TokenCreated:
    """Create a token for a role; the clear token is in this answer only."""
    row, clear = create_token(session, role=body.role, name=body.name)
    write_audit(
        session, principal, "token.create", {"token_id": row.id, "role": body.role, "name": body.name}
    )
    session.commit()
    return TokenCreated(id=row.id, role=row.role, name=row.name, token=clear)


@router.get("/tokens", response_model=list[TokenPublic], summary="List tokens")
def get_tokens(
    principal: Principal = Depends(require_role("hub_admin")),
    session: Session = Depends(get_session),
) -> list[TokenPublic]:
    """Every token (id, role, name, prefix, dates)."""
    return [TokenPublic.model_validate(t, from_attributes=True) for t in list_tokens(session)]


@router.delete("/tokens/{token_id}", response_model=TokenPublic, summary="Revoke a token")
def delete_token(
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="Token id (see GET /tokens).")],
    principal: Principal = Depends(require_role("hub_admin")),
    session: Session = Depends(get_session),
) -> TokenPublic:
    """Revoke a token; it is refused (401) from then on."""
    row = revoke_token(session, token_id)
    write_audit(session, principal, "token.revoke", {"token_id": token_id})
    session.commit()
    return TokenPublic.model_validate(row, from_attributes=True)
