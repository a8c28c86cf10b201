"""Request and response models of the REST API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from app.jobs.models import FileState, FileStatus, JobState
from app.services.naming import public_source_id

# A source id as the caller gave it (an internal copy number, `app.services.naming.source_copy`, is never shown).
SourceId = Annotated[str | None, AfterValidator(public_source_id)]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["collection 'x' does not exist"])
    detail: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or an unknown or revoked one"},
    403: {"model": ErrorResponse, "description": "The key's role or collection scope does not allow this"},
    429: {"model": ErrorResponse, "description": "The key's rate limit is exceeded (see `Retry-After`)"},
}


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the key is for (shown in listings).")
    role: Literal["reader", "writer", "admin"] = Field(
        description="reader: query and list; writer: + upload and delete documents; admin: + collections and keys."
    )
    collections: list[str] = Field(
        default=["*"],
        min_length=1,
        max_length=1000,
        description='Collections the key may use; `["*"]` is every collection (only an unscoped admin may grant it).',
    )
    principals: list[str] = Field(
        default=[],
        max_length=100,
        description="Whose documents the key reads besides public ones: `user:<name>`, `group:<name>`, or `*` (every "
        "document). A caller grants only principals it holds itself, unless it holds `*`. Default: none (public "
        "documents only).",
    )
    tenant: str | None = Field(
        default=None,
        description="The tenant the key belongs to (1-64 of A-Z a-z 0-9 _ -): it uses only the collections of its "
        "tenant. A tenant admin creates keys of its own tenant only (it must name it); only the operator (an admin "
        "key without tenant) creates keys without tenant or of another tenant.",
    )


class KeyOut(BaseModel):
    id: str
    prefix: str = Field(description="The non-secret start of the key, `rag_<id>`.")
    name: str
    role: str
    collections: list[str]
    principals: list[str] = Field(default=[], description="Whose documents the key reads (`*`: every document).")
    created_at: str
    revoked_at: str | None = None
    tenant: str | None = Field(default=None, description="The key's tenant (null: the operator's keys).")


class KeyCreated(KeyOut):
    key: str = Field(description="The secret key. It is shown once and stored only as a hash.")


class FileResult(BaseModel):
    document_id: str
    filename: str
    content_type: str | None
    status: Literal["indexed", "updated", "unchanged", "duplicate", "failed"] = Field(
        description="indexed: a new source; updated: a new version replaced the source's previous one; unchanged: "
        "the source's current content (nothing written); duplicate: another source's current content in the "
        "collection (nothing written); failed."
    )
    pages: int
    chunks: int
    error: str | None = None
    error_code: str | None = Field(
        default=None, description="Why it failed: unsupported_file_type, payload_too_large or extraction_failed."
    )
    duration_ms: float
    source_id: SourceId = Field(
        default=None, description="The source this file is a version of (its file name by default)."
    )
    version: int = Field(default=0, description="The source's version after this file (0: none written).")
    chunks_unchanged: int = Field(default=0, description="Chunks also in the previous version (embeddings reused).")
    chunks_added: int = Field(default=0, description="Chunks new in this version (embedded).")
    chunks_removed: int = Field(default=0, description="Chunks of the previous version that are gone.")


class UploadResponse(BaseModel):
    collection: str
    files: list[FileResult]
    duration_ms: float


class DocumentOut(BaseModel):
    document_id: str
    filename: str | None
    content_type: str | None
    collection: str
    title: str | None
    author: str | None
    created_at: str | None
    pages: int
    chunks: int
    tags: dict[str, Any]
    source_id: SourceId = Field(default=None, description="The source the document is a version of.")
    version: int | None = Field(default=None, description="Its current version (1, 2, ...).")
    updated_at: float | None = Field(default=None, description="When its current version was indexed (epoch s).")
    access: list[str] = Field(
        default=[], description="The principals that may read it; empty: every key that may use the collection."
    )


class DocumentAccess(BaseModel):
    access: list[str] | None = Field(
        max_length=100,
        description='The new access list, e.g. ["group:eng", "user:bob"] (`user:<name>` / `group:<name>`); `[]` or '
        "null: every key that may use the collection reads the document.",
    )


class DocumentAccessChanged(BaseModel):
    document_id: str
    access: list[str]
    updated_chunks: int


class DocumentPage(BaseModel):
    collection: str
    total: int
    offset: int
    limit: int
    documents: list[DocumentOut]


class DeletedDocument(BaseModel):
    document_id: str
    deleted_chunks: int


class HistoryMessage(BaseModel):
    """One earlier turn of a conversation."""

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, description="The message's text.")


class QueryRequest(BaseModel):
    question: str = Field(
        min_length=1,
        examples=["How do you create a vector in R?"],
        description="At most RAG_MAX_QUESTION_CHARS characters (400 beyond).",
    )
    collection: str | None = Field(
        default=None, examples=["default"], description="Collection to search (default: RAG_DEFAULT_COLLECTION)."
    )
    top_k: int | None = Field(
        default=None, ge=1, examples=[5], description="Passages to retrieve: 1 to RAG_MAX_TOP_K (400 beyond)."
    )
    filters: dict[str, Any] | None = Field(
        default=None,
        description="Haystack filter syntax on chunk metadata, ANDed with the collection.",
        examples=[{"field": "meta.file_name", "operator": "==", "value": "R-intro.pdf"}],
    )
    generate: bool = Field(default=True, description="false: return the sources only (no LLM call).")
    history: list[HistoryMessage] | None = Field(
        default=None,
        description="The conversation's earlier turns, oldest first, without `question`: a follow-up question is "
        "rewritten into a standalone one with them before retrieval (also when generate is false). At most 100 "
        "messages and 100,000 characters (400 beyond).",
        examples=[[{"role": "user", "content": "How do I create an index?"}, {"role": "assistant", "content": "..."}]],
    )


class SourceOut(BaseModel):
    n: int = Field(description="The number the answer cites as [n].")
    document_id: str | None
    filename: str | None
    page: int | None
    chunk_id: str
    score: float | None
    text: str
    cited: bool
    file_id: str | None = Field(
        default=None, description="The OpenAI file id when the passage came from a file attached to a vector store."
    )


class ClaimOut(BaseModel):
    text: str = Field(description="A sentence of the answer, as it appears there (with its [n] markers).")
    sources: list[int] = Field(
        description="The passages it was checked against: the [n] it cites, else the one that supports it best."
    )
    supported: bool = Field(description="Whether its score reaches the checker's threshold.")
    score: float = Field(description="Share (0 to 1) of the sentence's content words found in those passages.")


class Timings(BaseModel):
    retrieval: float
    generation: float
    total: float


class QueryResponse(BaseModel):
    answer: str | None
    refused: bool
    sources: list[SourceOut]
    claims: list[ClaimOut] = Field(
        default=[],
        description="The answer's sentences, each checked against the passages it cites (no LLM judge); empty for a "
        "refusal, a search-only query or a pipeline without a claim checker.",
    )
    timings_ms: Timings
    standalone_question: str | None = Field(
        default=None,
        description="The question retrieval and the answer used: with `history`, the condensed follow-up; else the "
        "question as asked.",
    )


class CollectionOut(BaseModel):
    name: str
    documents: int
    chunks: int


class CollectionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", examples=["manuals"])


class CheckResult(BaseModel):
    status: Literal["ok", "error"]
    detail: str | None = None


class ReadyResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult]


class JobProgress(BaseModel):
    files_done: int = Field(description="Files finished (indexed, duplicate, failed or skipped).")
    files_total: int
    pages_done: int = Field(description="Pages of the files past parsing.")
    pages_total: int = Field(description="PDF page counts (1 for other files).")
    chunks_done: int = Field(description="Chunks written.")
    chunks_total: int = Field(description="Chunks of the files split so far (grows as files are parsed).")


class JobFileOut(BaseModel):
    index: int
    filename: str
    document_id: str
    content_type: str | None
    state: FileState
    status: FileStatus | None = Field(
        default=None, description="As in a synchronous upload, once the file is finished."
    )
    pages: int
    chunks: int
    error: str | None = None
    error_code: str | None = Field(
        default=None,
        description="unsupported_file_type, payload_too_large, extraction_failed, an upstream_* error, or "
        "spool_missing (the spooled upload was lost).",
    )
    duration_ms: float
    source_id: SourceId = Field(
        default=None, description="The source this file is a version of (its file name by default)."
    )
    version: int = Field(default=0, description="The source's version after this file (0: none written).")
    chunks_unchanged: int = Field(default=0, description="Chunks also in the previous version (embeddings reused).")
    chunks_added: int = Field(default=0, description="Chunks new in this version (embedded).")
    chunks_removed: int = Field(default=0, description="Chunks of the previous version that are gone.")


class JobOut(BaseModel):
    job_id: str
    status_url: str = Field(examples=["/jobs/0f3c..."])
    collection: str
    state: JobState
    error: str | None = Field(default=None, description="Why the job failed, when it did.")
    cancel_requested: bool
    progress: JobProgress
    files: list[JobFileOut]
    created_at: float = Field(description="Unix time.")
    updated_at: float
    finished_at: float | None


class JobPage(BaseModel):
    total: int
    offset: int
    limit: int
    jobs: list[JobOut]


# OpenAI vector store search (`POST /v1/vector_stores/{id}/search`): the shapes of openai.types.VectorStoreSearchParams
# and VectorStoreSearchResponse, with our extensions per result.

SearchAttributeValue = str | int | float | bool | list[str | int | float | bool]


class SearchRankingOptions(BaseModel):
    ranker: Literal["auto", "none", "default-2024-11-15"] = Field(
        default="auto",
        description="Accepted for compatibility: results are always ranked by the query pipeline (hybrid retrieval, "
        "fused; reranked when the profile has a reranker).",
    )
    score_threshold: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Results scoring below it (scores are 0 to 1) are left out."
    )


class SearchRequest(BaseModel):
    query: str | list[str] = Field(
        examples=["How do you create a vector in R?"],
        description="A query, or a list of 1 to 10 queries searched each and merged (a passage found by several "
        "keeps its best score). Each is at most RAG_MAX_QUESTION_CHARS characters.",
    )
    max_num_results: int = Field(
        default=10, ge=1, le=50, description="At most this many results (and at most RAG_MAX_TOP_K: 400 beyond)."
    )
    filters: dict[str, Any] | None = Field(
        default=None,
        description="OpenAI's attribute filter: a comparison {type: eq|ne|gt|gte|lt|lte|in|nin, key, value} or a "
        "compound {type: and|or, filters: [...]}, nested. Keys are attribute (tag) names or fields the service sets "
        "(file_name, page, document_id, file_id).",
        examples=[{"type": "and", "filters": [{"type": "eq", "key": "team", "value": "qa"}]}],
    )
    ranking_options: SearchRankingOptions | None = None
    rewrite_query: bool = Field(
        default=False,
        description="Search the keyword form of each query (question words, auxiliaries, pronouns, articles and "
        "common prepositions removed; punctuation around words stripped), reported in `search_query`.",
    )


class SearchContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(BaseModel):
    file_id: str = Field(description="The OpenAI file id of the chunk's file, else our document id.")
    filename: str
    score: float = Field(
        ge=0.0,
        le=1.0,
        description="The pipeline's ranking score in [0, 1]: with the default hybrid retrieval, reciprocal rank "
        "fusion normalised so 1.0 is a passage ranked first by both full-text and vector search; with a reranker, "
        "its relevance.",
    )
    attributes: dict[str, SearchAttributeValue] = Field(description="The file's attributes (our upload tags).")
    content: list[SearchContent]
    page: int | None = Field(default=None, description="Extension: the page the passage is on (PDF), if known.")
    document_id: str | None = Field(default=None, description="Extension: our document id.")
    chunk_id: str = Field(description="Extension: the passage's chunk id.")


class SearchResultsPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str] = Field(description="The queries as searched (rewritten when rewrite_query is true).")
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None
