"""API keys: create (the secret is shown once), list, revoke. Admin keys only, within their own collection scope and
tenant: a tenant admin sees and manages only its tenant's keys; the operator (an admin key without tenant) every key."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from app.api.auth import Admin
from app.api.deps import State
from app.api.schemas import AUTH_ERRORS, ErrorResponse, KeyCreate, KeyCreated, KeyOut
from app.errors import NotFoundError, PermissionDeniedError
from app.services.access import EVERYONE, validate_principals
from app.services.api_keys import ALL_COLLECTIONS, ApiKey, Role, parse_scope, validate_tenant

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
        tenant=key.tenant,
    )


def _manages(caller: ApiKey, key: ApiKey) -> bool:
    """True when `key` is within `caller`'s tenant (every key for the operator) and collection scope."""
    return (caller.is_operator or key.tenant == caller.tenant) and caller.covers(key)


@router.post(
    "",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses={400: {"model": ErrorResponse}},
    summary="Create an API key",
    description="The new key's collections must lie within the calling key's own scope, its principals among the "
    "calling key's own (any, for a caller holding `*`), and its tenant be the calling key's (any tenant, or none, for "
    "the operator: an admin key without tenant).",
)
async def create_key(body: KeyCreate, state: State, caller: Admin) -> KeyCreated:
    scope = parse_scope(body.collections)
    tenant = validate_tenant(body.tenant) if body.tenant is not None else None
    if not caller.covers(scope):
        raise PermissionDeniedError("a key can only be granted collections within the calling key's scope")
    principals = validate_principals(body.principals, allow_everyone=True)
    if EVERYONE not in caller.principals and not set(principals) <= caller.principals:
        raise PermissionDeniedError("a key can only be granted principals the calling key holds itself")
    if not caller.is_operator and tenant != caller.tenant:
        raise PermissionDeniedError("a tenant admin can only create keys of its own tenant")
    created = await asyncio.to_thread(
        state.keys.create,
        name=body.name,
        role=Role(body.role),
        collections=scope,
        principals=principals,
        tenant=tenant,
    )
    assert created is not None  # only the bootstrap passes only_if_empty
    key, secret = created
    return KeyCreated(**_out(key).model_dump(), key=secret)


@router.get("", response_model=list[KeyOut], summary="List active API keys (within the caller's scope and tenant)")
async def list_keys(state: State, caller: Admin) -> list[KeyOut]:
    keys = await asyncio.to_thread(state.keys.list)
    return [_out(k) for k in keys if _manages(caller, k)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorResponse}},
    summary="Revoke an API key (effective on the next request, in every worker)",
    description="404 for a key of another tenant, as for an unknown one.",
)
async def revoke_key(key_id: str, state: State, caller: Admin) -> Response:
    key = await asyncio.to_thread(state.keys.get, key_id)
    if not caller.is_operator and key.tenant != caller.tenant:
        raise NotFoundError(f"API key {key_id!r} does not exist")
    if not caller.covers(key):
        raise PermissionDeniedError("this key's collections lie outside the calling key's scope")
    await asyncio.to_thread(state.keys.revoke, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
