"""Request and response models of the OpenAI-compatible Files and Vector Stores routes (the shapes of the official
`openai` SDK's types: `FileObject`, `VectorStore`, `VectorStoreFile`, `VectorStoreFileBatch` and their pages)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AttributeValue = str | float | bool


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class FilePage(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    days: int = Field(ge=1, le=365)


class StaticChunking(BaseModel):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)


class ChunkingStrategyIn(BaseModel):
    """`{type: auto}` or `{type: static, static: {max_chunk_size_tokens, chunk_overlap_tokens}}`."""

    type: Literal["auto", "static"]
    static: StaticChunking | None = None


class ChunkingStrategyOut(BaseModel):
    type: Literal["static", "other"] = "static"
    static: StaticChunking | None = None


class FileCounts(BaseModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStoreCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategyIn | None = None
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    description: str | None = None


class VectorStoreUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None


class VectorStoreOut(BaseModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, str] | None = None


class VectorStoreDeleted(BaseModel):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: bool = True


class VectorStorePage(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStoreOut]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VectorStoreFileCreate(BaseModel):
    file_id: str = Field(min_length=1, max_length=100)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: ChunkingStrategyIn | None = None


class VectorStoreFileUpdate(BaseModel):
    attributes: dict[str, AttributeValue] | None


class LastError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFileOut(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    usage_bytes: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    last_error: LastError | None = None
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: ChunkingStrategyOut | None = None


class VectorStoreFileDeleted(BaseModel):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: bool = True


class VectorStoreFilePage(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStoreFileOut]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class BatchFile(BaseModel):
    file_id: str = Field(min_length=1, max_length=100)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: ChunkingStrategyIn | None = None


class FileBatchCreate(BaseModel):
    file_ids: list[str] | None = Field(default=None, max_length=2000)
    files: list[BatchFile] | None = Field(default=None, max_length=2000)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: ChunkingStrategyIn | None = None


class FileBatchOut(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


def dump(model: BaseModel | None) -> Any:
    """A request model as the plain value the services validate (None stays None)."""
    return model.model_dump(exclude_none=True) if model is not None else None
