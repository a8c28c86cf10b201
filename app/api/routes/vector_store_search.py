"""OpenAI's vector store search over a collection (a vector store id is a collection name)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.api.auth import Reader, read_scope
from app.api.deps import State
from app.api.schemas import (
    AUTH_ERRORS,
    ErrorResponse,
    SearchContent,
    SearchRankingOptions,
    SearchRequest,
    SearchResult,
    SearchResultsPage,
)
from app.services.api_keys import Role

router = APIRouter(prefix="/v1/vector_stores", tags=["openai"], responses=AUTH_ERRORS)


@router.post(
    "/{vector_store_id}/search",
    response_model=SearchResultsPage,
    responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    summary="Search a vector store (OpenAI-compatible): passages with file, score and attributes",
    description="Search-only retrieval through the query pipeline (no LLM call). `filters` takes OpenAI's attribute "
    "filter grammar; each result's `score` is in [0, 1]; `page`, `document_id` and `chunk_id` are extensions. 404 "
    "when the vector store (collection) does not exist, 400 once it expired.",
)
async def search_vector_store(
    vector_store_id: str, body: SearchRequest, state: State, key: Reader
) -> SearchResultsPage:
    key.require(Role.READER, vector_store_id, noun="vector store")
    await asyncio.to_thread(state.vector_stores.check_active, vector_store_id)  # 404 unknown, 400 expired
    ranking = body.ranking_options or SearchRankingOptions()
    page = await asyncio.to_thread(
        state.vector_store_search.search,
        vector_store_id,
        body.query,
        max_num_results=body.max_num_results,
        filters=body.filters,
        score_threshold=ranking.score_threshold,
        rewrite=body.rewrite_query,
        visibility=await read_scope(state, key),
    )
    return SearchResultsPage(
        search_query=page.search_query,
        data=[
            SearchResult(
                file_id=hit.file_id,
                filename=hit.filename,
                score=hit.score,
                attributes=hit.attributes,
                content=[SearchContent(text=hit.text)],
                page=hit.page,
                document_id=hit.document_id,
                chunk_id=hit.chunk_id,
            )
            for hit in page.hits
        ],
    )
