"""The OpenAI Files API: `/v1/files` (upload, list, retrieve, content, delete) for files meant for vector stores."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from app.api.auth import Reader, Writer
from app.api.deps import State
from app.api.openai_schemas import FileDeleted, FileObject, FilePage
from app.api.routes.documents import _read_limited
from app.api.schemas import AUTH_ERRORS, ErrorResponse
from app.errors import PayloadTooLargeError
from app.services.files import MAX_LIST, StoredFile

router = APIRouter(prefix="/v1/files", tags=["openai"], responses=AUTH_ERRORS)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}


def file_out(stored: StoredFile) -> FileObject:
    return FileObject(
        id=stored.id,
        bytes=stored.bytes,
        created_at=int(stored.created_at),
        filename=stored.filename,
        purpose=stored.purpose,
    )


@router.post(
    "",
    response_model=FileObject,
    responses={400: {"model": ErrorResponse}, 413: {"model": ErrorResponse}},
    summary="Upload a file (purpose `assistants` or `user_data`), stored once by content",
)
async def create_file(
    state: State,
    key: Writer,
    file: Annotated[UploadFile, File(description="The file (PDF, DOCX, TXT, MD, CSV, HTML, images)")],
    purpose: Annotated[str, Form(description="`assistants` or `user_data`: files for vector stores")],
) -> FileObject:
    limit = state.settings.max_upload_mb * 1024 * 1024
    data = await asyncio.to_thread(_read_limited, file.file, limit)
    if data is None:
        raise PayloadTooLargeError(f"file is larger than {state.settings.max_upload_mb} MiB")
    stored = await asyncio.to_thread(state.files.create, data, file.filename, purpose, key)
    return file_out(stored)


@router.get("", response_model=FilePage, summary="The files this key may see (cursor page)")
async def list_files(
    state: State,
    key: Reader,
    purpose: Annotated[str | None, Query(description="Only files of this purpose")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query(max_length=100, description="The last id of the previous page")] = None,
) -> FilePage:
    found, has_more = await asyncio.to_thread(
        state.files.list, key, purpose=purpose, limit=limit, order=order, after=after
    )
    data = [file_out(f) for f in found]
    return FilePage(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/{file_id}", response_model=FileObject, responses=_NOT_FOUND, summary="A file")
async def retrieve_file(file_id: str, state: State, key: Reader) -> FileObject:
    return file_out(await asyncio.to_thread(state.files.get, file_id, key))


@router.delete("/{file_id}", response_model=FileDeleted, responses=_NOT_FOUND, summary="Delete a file")
async def delete_file(file_id: str, state: State, key: Writer) -> FileDeleted:
    await asyncio.to_thread(state.files.delete, file_id, key)
    return FileDeleted(id=file_id)


@router.get(
    "/{file_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **_NOT_FOUND},
    summary="A file's bytes",
)
async def file_content(file_id: str, state: State, key: Reader) -> Response:
    stored, data = await asyncio.to_thread(state.files.content, file_id, key)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(stored.filename, safe='')}"},
    )
