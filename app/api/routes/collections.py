"""Collections: list, create, drop."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from app.api.auth import Admin, Reader, read_scope
from app.api.deps import State
from app.api.schemas import AUTH_ERRORS, CollectionCreate, CollectionOut, ErrorResponse
from app.services.api_keys import Role

router = APIRouter(prefix="/collections", tags=["collections"], responses=AUTH_ERRORS)


@router.get(
    "",
    response_model=list[CollectionOut],
    summary="List collections with document and chunk counts",
    description="Only the collections the API key may use (of its tenant); the counts are of the documents it reads.",
)
async def list_collections(state: State, key: Reader) -> list[CollectionOut]:
    visibility = await read_scope(state, key)
    infos = await asyncio.to_thread(state.collections.list, within=key.collections, visibility=visibility)
    return [CollectionOut(name=i.name, documents=i.documents, chunks=i.chunks) for i in infos if key.allows(i.name)]


@router.post(
    "",
    response_model=CollectionOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorResponse}},
    summary="Create an empty collection",
    description="A tenant admin's collection belongs to its tenant. Names are unique across tenants: 409 when the "
    "name is taken, whoever holds it.",
)
async def create_collection(body: CollectionCreate, state: State, key: Admin) -> CollectionOut:
    key.require(Role.ADMIN, body.name, creating=True)
    info = await asyncio.to_thread(state.collections.create, body.name, tenant=key.tenant)
    return CollectionOut(name=info.name, documents=info.documents, chunks=info.chunks)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorResponse}},
    summary="Drop a collection and every chunk in it",
    description="Its queued and running jobs are cancelled, and nothing a job or upload that started before the drop "
    "writes stays or brings the collection back. 404 when the collection was neither created, nor holds chunks, nor "
    "is the target of a queued or running job.",
)
async def drop_collection(name: str, state: State, key: Admin) -> Response:
    key.require(Role.ADMIN, name)
    await asyncio.to_thread(state.collections.drop, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
