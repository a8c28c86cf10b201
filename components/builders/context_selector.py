"""Keep the sentences of the retrieved passages that bear on the question: a short, focused prompt."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from haystack import Document, component, logging

from components.builders.context_budget import estimate_tokens
from components.embedders.onnx_backend import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MODEL,
    OnnxSentenceEncoder,
    get_encoder,
    validate_encoder_args,
)
from components.text.terms import Unit, content_terms, idf_weights, split_units
from components.validation import check_int, check_positive_number

logger = logging.getLogger(__name__)


@component
class ContextSelector:
    """
    Shrinks each passage to the sentences that bear on the question, with their neighbours, within a token budget.

    Five 1,000-character passages are ~1,400 prompt tokens, most of them about something else; a small model reads
    them slowly and answers worse. The selector splits every passage into sentences (table rows, listing lines and
    headings count as sentences), scores each by the cosine of its embedding with the question's (the packaged
    ONNX encoder the query embedder already loaded) plus the share of the question's rare content words it holds
    (IDF over the passages' sentences, weight `keyword_weight`), and keeps the best ones, each with `neighbours`
    sentences on both sides, until `max_tokens` are used. Sentences scoring below `min_relative_score` times the best
    score are never kept.

    The output has the same passages in the same order as the input, so the prompt's `[n]` still names the same
    passage as the API's sources: a passage keeps its kept sentences in document order, with " … " where sentences
    were left out, and `meta["selected"]` is True; a passage with none left has empty content and `selected` False
    (the prompt template skips it, keeping the numbers of the others). Each kept passage's `meta["selection_score"]`
    is its best sentence's score. The passages' other fields are unchanged.
    """

    def __init__(
        self,
        *,
        max_tokens: int = 400,
        neighbours: int = 1,
        keyword_weight: float = 0.5,
        min_relative_score: float = 0.5,
        chars_per_token: float = 3.5,
        passage_overhead_tokens: int = 16,
        model: str = DEFAULT_MODEL,
        tokenizer: str = DEFAULT_MODEL,
        max_length: int = 256,
        threads: int = 2,
        cache_dir: str = DEFAULT_CACHE_DIR,
    ) -> None:
        """
        :param max_tokens: Estimated prompt tokens the kept sentences may take (passage headers included).
        :param neighbours: Sentences kept on each side of a chosen sentence (0: none).
        :param keyword_weight: Weight of the rare-word share (0..1) added to the cosine (about 0..1).
        :param min_relative_score: Sentences below this share of the best sentence's score are never kept.
        :param chars_per_token: Bytes of text per token of the estimate (as `ContextBudget`'s).
        :param passage_overhead_tokens: Tokens counted per kept passage for its `[n] (from file, page)` line.
        :param model: The ONNX sentence encoder (as the query embedder's, so one session is shared).
        :param tokenizer: Its tokenizer.
        :param max_length: Tokens kept per sentence (as the query embedder's, so one session is shared).
        :param threads: ONNX Runtime intra-op threads (as the query embedder's).
        :param cache_dir: Where a derived model is cached (environment variables expanded at warm-up).
        :raises ValueError: on an invalid argument.
        """
        self.max_tokens = check_int(max_tokens, "max_tokens", minimum=32)
        self.neighbours = check_int(neighbours, "neighbours", minimum=0, maximum=5)
        if isinstance(keyword_weight, bool) or not isinstance(keyword_weight, int | float) or keyword_weight < 0:
            raise ValueError(f"keyword_weight must be a number >= 0, got {keyword_weight!r}")
        self.keyword_weight = float(keyword_weight)
        if isinstance(min_relative_score, bool) or not isinstance(min_relative_score, int | float):
            raise ValueError(f"min_relative_score must be a number in [0, 1], got {min_relative_score!r}")
        if not 0.0 <= min_relative_score <= 1.0:
            raise ValueError(f"min_relative_score must be a number in [0, 1], got {min_relative_score!r}")
        self.min_relative_score = float(min_relative_score)
        self.chars_per_token = check_positive_number(chars_per_token, "chars_per_token")
        self.passage_overhead_tokens = check_int(passage_overhead_tokens, "passage_overhead_tokens", minimum=0)
        validate_encoder_args(max_length=max_length, batch_size=1, threads=threads)
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.threads = threads
        self.cache_dir = cache_dir
        self._encoder: OnnxSentenceEncoder | None = None

    def warm_up(self) -> None:
        """Load (or share) the ONNX encoder."""
        if self._encoder is None:
            self._encoder = get_encoder(
                model=self.model,
                tokenizer=self.tokenizer,
                max_length=self.max_length,
                threads=self.threads,
                cache_dir=self.cache_dir,
            )

    @component.output_types(documents=list[Document])
    def run(
        self, documents: list[Document], question: str, query_embedding: list[float] | None = None
    ) -> dict[str, list[Document]]:
        """
        :param documents: The numbered passages, in prompt order.
        :param question: The user's question.
        :param query_embedding: The question's embedding from the query embedder (computed here when omitted).
        :returns: `documents`: the same passages, each reduced to its kept sentences (or emptied).
        """
        self.warm_up()
        assert self._encoder is not None
        units: list[tuple[int, int, Unit]] = []  # (passage, position in passage, unit)
        per_passage: list[list[Unit]] = []
        for p, doc in enumerate(documents):
            found = split_units(doc.content or "")
            per_passage.append(found)
            units.extend((p, i, u) for i, u in enumerate(found))
        if not units:
            return {"documents": documents}
        scores = self.score_units(question, [u.text for _, _, u in units], query_embedding)
        chosen = self._choose(units, scores, per_passage)
        out: list[Document] = []
        for p, doc in enumerate(documents):
            keep = sorted(i for q, i in chosen if q == p)
            if not keep:
                out.append(replace(doc, content="", meta={**doc.meta, "selected": False}))
                continue
            best = max(float(scores[k]) for k, (q, i, _) in enumerate(units) if q == p and i in keep)
            content = self._excerpt(doc.content or "", per_passage[p], keep)
            out.append(replace(doc, content=content, meta={**doc.meta, "selected": True, "selection_score": best}))
        return {"documents": out}

    def score_units(self, question: str, texts: list[str], query_embedding: list[float] | None = None) -> np.ndarray:
        """Cosine with the question plus `keyword_weight` times the IDF-weighted share of the question's words."""
        assert self._encoder is not None
        if query_embedding is None:
            query = self._encoder.encode([question], batch_size=1)[0]
        else:
            query = np.asarray(query_embedding, dtype=np.float32)
        vectors = self._encoder.encode(texts, batch_size=16)
        cosine = vectors @ query
        question_terms = set(content_terms(question))
        unit_terms = [set(content_terms(t)) for t in texts]
        if not question_terms or self.keyword_weight == 0.0:
            return cosine
        idf = idf_weights(question_terms, unit_terms)
        total = sum(idf.values())
        share = np.array([sum(idf[t] for t in question_terms & terms) / total for terms in unit_terms])
        return cosine + self.keyword_weight * share

    def _choose(
        self, units: list[tuple[int, int, Unit]], scores: np.ndarray, per_passage: list[list[Unit]]
    ) -> set[tuple[int, int]]:
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        floor = best * self.min_relative_score if best > 0 else best
        chosen: set[tuple[int, int]] = set()
        passages: set[int] = set()
        left = self.max_tokens
        for k in order:
            if float(scores[k]) < floor and chosen:
                break
            p, i, _ = units[k]
            group = [
                (p, j)
                for j in range(i - self.neighbours, i + self.neighbours + 1)
                if 0 <= j < len(per_passage[p]) and (p, j) not in chosen
            ]
            cost = sum(estimate_tokens(per_passage[p][j].text, self.chars_per_token) for _, j in group)
            cost += 0 if p in passages else self.passage_overhead_tokens
            if cost > left:
                if not chosen:  # never an empty prompt: the best sentence alone
                    chosen.add((p, i))
                    passages.add(p)
                continue
            chosen.update(group)
            passages.add(p)
            left -= cost
        return chosen

    @staticmethod
    def _excerpt(content: str, found: list[Unit], keep: list[int]) -> str:
        """The kept units in order; runs of adjacent units as in the passage, gaps as " … "."""
        runs: list[list[int]] = []
        for i in keep:
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        parts = [content[found[run[0]].start : found[run[-1]].end].strip() for run in runs]
        prefix = "… " if keep[0] > 0 else ""
        suffix = " …" if keep[-1] < len(found) - 1 else ""
        return prefix + " … ".join(parts) + suffix
