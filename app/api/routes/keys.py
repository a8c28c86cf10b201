"""API keys: create (the secret is shown once), list, revoke. Admin keys only, within their own collection scope."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from app.api.auth import Admin
from app.api.deps import State
from app.api.schemas import AUTH_ERRORS, ErrorResponse, KeyCreate, KeyCreated, KeyOut
from app.errors import PermissionDeniedError
from app.services.access import EVERYONE, validate_principals
from app.services.api_keys import ALL_COLLECTIONS, ApiKey, Role, parse_scope

router = APIRouter(prefix="/keys", tags=["keys"], responses=AUTH_ERRORS)


def _out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        role=key.role.value,
        collections=[ALL_COLLECTIONS] if key.collections is None else sorted(key.collections),
        principals=sorted(key.principals),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses={400: {"model": ErrorResponse}},
    summary="Create an API key",
    description="The new key's collections must lie within the calling key's own scope, and its principals among the "
    "calling key's own (any, for a caller holding `*`).",
)
async def create_key(body: KeyCreate, state: State, caller: Admin) -> KeyCreated:
    scope = parse_scope(body.collections)
    if not caller.covers(scope):
        raise PermissionDeniedError("a key can only be granted collections within the calling key's scope")
    principals = validate_principals(body.principals, allow_everyone=True)
    if EVERYONE not in caller.principals and not set(principals) <= caller.principals:
        raise PermissionDeniedError("a key can only be granted principals the calling key holds itself")
    created = await asyncio.to_thread(
        state.keys.create, name=body.name, role=Role(body.role), collections=scope, principals=principals
    )
    assert created is not None  # only the bootstrap passes only_if_empty
    key, secret = created
    return KeyCreated(**_out(key).model_dump(), key=secret)


@router.get("", response_model=list[KeyOut], summary="List active API keys (within the caller's scope)")
async def list_keys(state: State, caller: Admin) -> list[KeyOut]:
    keys = await asyncio.to_thread(state.keys.list)
    return [_out(k) for k in keys if caller.covers(k)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorResponse}},
    summary="Revoke an API key (effective on the next request, in every worker)",
)
async def revoke_key(key_id: str, state: State, caller: Admin) -> Response:
    key = await asyncio.to_thread(state.keys.get, key_id)
    if not caller.covers(key):
        raise PermissionDeniedError("this key's collections lie outside the calling key's scope")
    await asyncio.to_thread(state.keys.revoke, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
