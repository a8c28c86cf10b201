"""Decide, before the LLM runs, whether the selected context can answer the question."""

from __future__ import annotations

from typing import Any

from haystack import Document, component, logging
from haystack.dataclasses import ChatMessage

from components.routers.relevance_gate import DEFAULT_REFUSAL
from components.text.terms import content_terms, idf_weights, split_units

logger = logging.getLogger(__name__)

SIGNALS = ("dense", "coverage", "selection")


@component
class AnswerabilityGate:
    """
    Refuses a question its context cannot answer, from several signals, so a small model that answers anything it
    is given is not asked.

    Signals, each about 0..1:
    - `dense`: the best cosine similarity of the dense retriever's results (`scored_documents`);
    - `coverage`: the share of the question's content words found in the selected context, each weighted by its
      rarity among the retrieved passages' sentences (a question about `nftables` over passages that never say
      `nftables` scores low, however close the topic);
    - `selection`: the best sentence score of the `ContextSelector` (`meta["selection_score"]`, cosine + rare-word
      share), 0 when absent.
    The question is answerable when `sum(weights[s] * signal[s]) >= threshold`. The weights and threshold are
    calibrated on the dev split of the shipped eval sets (`scripts/calibrate_answerability.py`, docs/evaluation.md);
    calibrate again when changing the embedder, the selector or the corpus language.

    Outputs: `documents` (the context, when answerable) or `replies` (a one-message refusal, meta `refused: True`
    and the signals), and always `answerability`: the signals, the score and the decision.
    """

    def __init__(
        self,
        *,
        weights: dict[str, float] | None = None,
        threshold: float = 0.5,
        refusal: str = DEFAULT_REFUSAL,
    ) -> None:
        """
        :param weights: Weight per signal (`dense`, `coverage`, `selection`); missing ones are 0. Default: dense 1.
        :param threshold: The weighted sum an answerable question reaches.
        :param refusal: The answer given to a question judged unanswerable.
        :raises ValueError: on an invalid argument.
        """
        weights = {"dense": 1.0} if weights is None else dict(weights)
        unknown = set(weights) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals in weights: {sorted(unknown)}; known: {list(SIGNALS)}")
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"weights.{name} must be a number, got {value!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"threshold must be a number, got {threshold!r}")
        if not isinstance(refusal, str) or not refusal.strip():
            raise ValueError("refusal must be a non-empty text")
        self.weights = {name: float(value) for name, value in weights.items()}
        self.threshold = float(threshold)
        self.refusal = refusal

    @staticmethod
    def signals(
        question: str, documents: list[Document], scored_documents: list[Document] | None = None
    ) -> dict[str, float]:
        """The decision's inputs for `question` and its selected context `documents`."""
        scored = documents if scored_documents is None else scored_documents
        dense = max((float(d.score) for d in scored if d.score is not None), default=0.0)
        selection = max((float(d.meta.get("selection_score", 0.0)) for d in documents), default=0.0)
        terms = set(content_terms(question))
        context = " ".join(d.content or "" for d in documents)
        if not terms or not context.strip():
            return {"dense": dense, "coverage": 0.0 if terms else 1.0, "selection": selection}
        units = [set(content_terms(u.text)) for d in documents for u in split_units(d.content or "")]
        idf = idf_weights(terms, units)
        present = set(content_terms(context))
        coverage = sum(idf[t] for t in terms & present) / sum(idf.values())
        return {"dense": dense, "coverage": coverage, "selection": selection}

    def score(self, signals: dict[str, float]) -> float:
        """The weighted sum the threshold applies to."""
        return sum(self.weights.get(name, 0.0) * value for name, value in signals.items())

    @component.output_types(documents=list[Document], replies=list[ChatMessage], answerability=dict)
    def run(
        self, question: str, documents: list[Document], scored_documents: list[Document] | None = None
    ) -> dict[str, Any]:
        """
        :param question: The user's question.
        :param documents: The context the prompt will show (the selector's output).
        :param scored_documents: Results carrying cosine scores (the embedding retriever's output).
        :returns: `documents` or `replies`, and `answerability`.
        """
        signals = self.signals(question, documents, scored_documents)
        score = self.score(signals)
        answerable = bool(documents) and score >= self.threshold
        verdict = {**{k: round(v, 4) for k, v in signals.items()}, "score": round(score, 4), "answerable": answerable}
        logger.debug("Answerability {verdict}", verdict=verdict)
        if answerable:
            return {"documents": documents, "answerability": verdict}
        reply = ChatMessage.from_assistant(self.refusal, meta={"refused": True, "answerability": verdict})
        return {"replies": [reply], "answerability": verdict}
