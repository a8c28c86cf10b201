"""Decide whether retrieved passages can ground an answer, before any LLM call."""

from __future__ import annotations

from typing import Any

from haystack import Document, component
from haystack.dataclasses import ChatMessage

DEFAULT_REFUSAL = "I don't know. The indexed documents do not contain the answer to this question."


@component
class RelevanceGate:
    """
    Routes retrieved passages either to the prompt (relevant) or straight to a refusal (not relevant).

    Small local models answer anything they are given, so the "I don't know" guard cannot rely on the prompt
    alone. The gate looks at the best cosine similarity among the dense retriever's results (absolute and
    comparable across queries, unlike fused RRF scores): below `min_score` the LLM is not called and the
    pipeline answers with `refusal` through the `replies` output.

    Outputs (exactly one of `documents` / `replies` is produced when `generate` is true):
    - `passages`: the fused passages, always (the sources of a search-only query).
    - `documents`: the passages to put in the prompt, when they are relevant and `generate` is true.
    - `replies`: a one-message refusal, when they are not relevant and `generate` is true.
    - `relevant`: whether the best dense score reached `min_score`.
    """

    def __init__(self, *, min_score: float = 0.3, refusal: str = DEFAULT_REFUSAL) -> None:
        """
        :param min_score: Minimum best cosine similarity (0..1 for normalized embeddings) for the passages to count
            as relevant. Calibrated for all-MiniLM-L6-v2; change it when changing the embedding model.
        :param refusal: The answer given when no passage is relevant.
        """
        if not -1.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be a cosine similarity in [-1, 1], got {min_score}")
        if not refusal.strip():
            raise ValueError("refusal must be a non-empty text")
        self.min_score = min_score
        self.refusal = refusal

    @component.output_types(passages=list[Document], documents=list[Document], replies=list[ChatMessage], relevant=bool)
    def run(
        self,
        documents: list[Document],
        scored_documents: list[Document] | None = None,
        generate: bool = True,
    ) -> dict[str, Any]:
        """
        :param documents: The passages to answer from (usually the fused hybrid results).
        :param scored_documents: Results carrying cosine scores (the embedding retriever's output); when omitted,
            the scores of `documents` are used.
        :param generate: False for a search-only query: only `passages` and `relevant` are produced.
        """
        scored = documents if scored_documents is None else scored_documents
        best = max((doc.score for doc in scored if doc.score is not None), default=None)
        relevant = bool(documents) and best is not None and best >= self.min_score
        result: dict[str, Any] = {"passages": documents, "relevant": relevant}
        if generate:
            if relevant:
                result["documents"] = documents
            else:
                result["replies"] = [ChatMessage.from_assistant(self.refusal, meta={"refused": True})]
        return result
