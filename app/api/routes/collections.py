"""Collections: list, create, drop."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from app.api.deps import State
from app.api.schemas import CollectionCreate, CollectionOut, ErrorResponse

router = APIRouter(prefix="/collections", tags=["collections"])


@router.get("", response_model=list[CollectionOut], summary="List collections with document and chunk counts")
async def list_collections(state: State) -> list[CollectionOut]:
    infos = await asyncio.to_thread(state.collections.list)
    return [CollectionOut(name=i.name, documents=i.documents, chunks=i.chunks) for i in infos]


@router.post(
    "",
    response_model=CollectionOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorResponse}},
    summary="Create an empty collection",
)
async def create_collection(body: CollectionCreate, state: State) -> CollectionOut:
    info = await asyncio.to_thread(state.collections.create, body.name)
    return CollectionOut(name=info.name, documents=info.documents, chunks=info.chunks)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorResponse}},
    summary="Drop a collection and every chunk in it",
)
async def drop_collection(name: str, state: State) -> Response:
    await asyncio.to_thread(state.collections.drop, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
