"""Decide, before the LLM runs, whether the selected context can answer the question."""

from __future__ import annotations

import re
from typing import Any

from haystack import Document, component, logging
from haystack.dataclasses import ChatMessage

from components.routers.relevance_gate import DEFAULT_REFUSAL
from components.text.lexicon import check_lexicon, load_lexicon
from components.text.terms import STOPWORDS, content_terms, idf_weights, split_units

logger = logging.getLogger(__name__)

SIGNALS = ("dense", "coverage", "selection", "known_terms")
_SPECIFIC = re.compile(r"[a-z0-9][a-z0-9_+.]*[a-z0-9]", re.IGNORECASE)


def _singular(word: str) -> str | None:
    """`timestamps` -> `timestamp`: the form to try when the plural itself is not found."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else None


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
      share), 0 when absent;
    - `known_terms`: 0 when the question names something specific that none of the retrieved candidates mention, else
      0.5 when an everyday word of the question is missing from them too (not even its stem), else 1. A question
      about `nftables` retrieves passages about iptables: close in meaning, but they never say the name. Words the
      embedder's tokenizer keeps whole (`notebook`) are common and not checked. With a `lexicon`, a word of 2 or more
      pieces is a name when the language's word list does not know it (`wireguard`, `zypper`, `webp`) and everyday
      when it does (`configuring`, `annotation`); without one, a word of 3 or more pieces is a name and one of 2 is
      between the two (0.5). A word with digits (`3.45.0`) is always specific.
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
        tokenizer: str = "all-MiniLM-L6-v2-int8",
        lexicon: str | None = None,
    ) -> None:
        """
        :param weights: Weight per signal (`dense`, `coverage`, `selection`); missing ones are 0. Default: dense 1.
        :param threshold: The weighted sum an answerable question reaches.
        :param refusal: The answer given to a question judged unanswerable.
        :param tokenizer: The WordPiece tokenizer that tells everyday words from specific names (`known_terms`): the
            packaged embedder's by name, or a tokenizer.json path.
        :param lexicon: The language of the word list that tells everyday words from names (`known_terms`): one of
            pyspellchecker's bundled lists (`en`, `de`, `fr`, ...), or None to tell them apart by tokenizer pieces only.
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
        if not isinstance(tokenizer, str) or not tokenizer:
            raise ValueError("tokenizer must be a non-empty string")
        self.tokenizer = tokenizer
        self.lexicon = check_lexicon(lexicon)
        self._tokenizer: Any = None
        self._lexicon: frozenset[str] | None = None

    def warm_up(self) -> None:
        """Load the tokenizer and the lexicon (only when `known_terms` has a weight)."""
        if self._lexicon is None and self.lexicon is not None and self.weights.get("known_terms"):
            self._lexicon = load_lexicon(self.lexicon)
        if self._tokenizer is None and self.weights.get("known_terms"):
            from tokenizers import Tokenizer

            from components.embedders.onnx_backend import resolve_tokenizer_path

            tokenizer = Tokenizer.from_file(str(resolve_tokenizer_path(self.tokenizer)))
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._tokenizer = tokenizer

    @staticmethod
    def known_terms(
        question: str, candidates: list[Document], tokenizer: Any, lexicon: frozenset[str] | None = None
    ) -> float:
        """1 when every specific word of the question occurs in a candidate, 0.5 or 0 when one is missing."""
        text = " ".join(d.content or "" for d in candidates).lower()
        worst = 1.0
        for word in _SPECIFIC.findall(question.lower()):
            if word in STOPWORDS or len(word) < 3:
                continue
            pieces = len(tokenizer.encode(word, add_special_tokens=False).ids)
            digits = any(ch.isdigit() for ch in word)
            if pieces < 2 and not digits:
                continue  # a word the tokenizer keeps whole is a common one
            singular = _singular(word)
            if lexicon is None:
                specific = pieces >= 3 or digits
            else:
                specific = digits or (word not in lexicon and (singular is None or singular not in lexicon))
            if word in text or (singular is not None and singular in text):
                continue
            if not specific and word[: max(5, len(word) * 2 // 3)] in text:
                continue  # a name must occur as such (firewalld is not firewall); tunnelling may be tunneling
            worst = min(worst, 0.0 if specific else 0.5)
        return worst

    def signals(
        self,
        question: str,
        documents: list[Document],
        scored_documents: list[Document] | None = None,
        candidates: list[Document] | None = None,
    ) -> dict[str, float]:
        """The decision's inputs for `question`, its selected context `documents` and the retrieved `candidates`."""
        self.warm_up()
        known = 1.0
        if self._tokenizer is not None:
            known = self.known_terms(
                question, [*(candidates or []), *(scored_documents or []), *documents], self._tokenizer, self._lexicon
            )
        scored = documents if scored_documents is None else scored_documents
        dense = max((float(d.score) for d in scored if d.score is not None), default=0.0)
        selection = max((float(d.meta.get("selection_score", 0.0)) for d in documents), default=0.0)
        terms = set(content_terms(question))
        context = " ".join(d.content or "" for d in documents)
        if not terms or not context.strip():
            return {"dense": dense, "coverage": 0.0 if terms else 1.0, "selection": selection, "known_terms": known}
        units = [set(content_terms(u.text)) for d in documents for u in split_units(d.content or "")]
        idf = idf_weights(terms, units)
        present = set(content_terms(context))
        coverage = sum(idf[t] for t in terms & present) / sum(idf.values())
        return {"dense": dense, "coverage": coverage, "selection": selection, "known_terms": known}

    def score(self, signals: dict[str, float]) -> float:
        """The weighted sum the threshold applies to."""
        return sum(self.weights.get(name, 0.0) * value for name, value in signals.items())

    @component.output_types(documents=list[Document], replies=list[ChatMessage], answerability=dict)
    def run(
        self,
        question: str,
        documents: list[Document],
        scored_documents: list[Document] | None = None,
        candidates: list[Document] | None = None,
    ) -> dict[str, Any]:
        """
        :param question: The user's question.
        :param documents: The context the prompt will show (the selector's output).
        :param scored_documents: Results carrying cosine scores (the embedding retriever's output).
        :param candidates: More retrieved passages for `known_terms` (the keyword retriever's output).
        :returns: `documents` or `replies`, and `answerability`.
        """
        signals = self.signals(question, documents, scored_documents, candidates)
        score = self.score(signals)
        answerable = bool(documents) and score >= self.threshold
        verdict = {**{k: round(v, 4) for k, v in signals.items()}, "score": round(score, 4), "answerable": answerable}
        logger.debug("Answerability {verdict}", verdict=verdict)
        if answerable:
            return {"documents": documents, "answerability": verdict}
        reply = ChatMessage.from_assistant(self.refusal, meta={"refused": True, "answerability": verdict})
        return {"replies": [reply], "answerability": verdict}
