"""Evaluation runs over test questions: retrieval, answer and refusal metrics plus latency, per pipeline profile.

An eval set is a JSONL file of questions (see docs/evaluation.md) with a corpus folder beside it (`corpus/`).
The corpus is ingested once per (corpus content, indexing.yml) into a collection named after their hash, so
repeated runs and A/B runs reuse it. Haystack's document evaluators compute MRR, recall and nDCG.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from haystack import Document
from haystack.components.evaluators import DocumentMRREvaluator, DocumentNDCGEvaluator, DocumentRecallEvaluator
from haystack.dataclasses import ChatMessage

from app.errors import InvalidInputError
from app.services.query import QueryResult

if TYPE_CHECKING:
    from app.composition import Services

Progress = Callable[[str], None]

SPLITS = ("dev", "test")
"""Values of a question's `split`: tune on dev, report test (docs/evaluation.md)."""


@dataclass
class EvalQuestion:
    """One line of an eval set."""

    id: str
    question: str
    answerable: bool = True
    expected_answer: str | None = None
    expected_sources: list[dict[str, Any]] = field(default_factory=list)
    answer_terms: list[str] = field(default_factory=list)
    split: str | None = None
    """"dev" or "test"; None in a set without splits."""
    history: list[dict[str, str]] = field(default_factory=list)
    """A multi-turn question: the dialogue's earlier turns (`{role, content}`, user/assistant, oldest first); the
    question only makes sense with them."""

    def chat_history(self) -> list[ChatMessage] | None:
        """The history as the query service takes it (None for a single-turn question)."""
        if not self.history:
            return None
        return [
            ChatMessage.from_user(t["content"]) if t["role"] == "user" else ChatMessage.from_assistant(t["content"])
            for t in self.history
        ]


@dataclass
class QuestionResult:
    """What a pipeline did with one question."""

    id: str
    question: str
    answerable: bool
    answer: str | None
    refused: bool
    retrieved: list[tuple[str | None, int | None]]
    timings_ms: dict[str, float]
    exact: bool | None = None
    contains: bool | None = None
    sas: float | None = None
    cited: list[tuple[str | None, int | None]] = field(default_factory=list)
    """The (file, page) of the sources the answer cites."""
    cited_page_correct: bool | None = None
    """For an answered question whose expected sources name pages: whether a cited source is one of them."""
    claims: int = 0
    """Sentences of the answer the pipeline's claim checker checked (0 for a refusal or without a checker)."""
    supported_claims: int = 0
    standalone_question: str | None = None
    """A multi-turn question: the condensed question retrieval used."""


@dataclass
class PipelineEval:
    """The metrics of one pipeline profile on one eval set."""

    name: str
    pipelines_dir: str
    collection: str
    metrics: dict[str, float]
    latency_ms: dict[str, dict[str, float]]
    results: list[QuestionResult]
    split: str = "all"
    """The questions asked: "dev", "test" or "all"."""
    metrics_by_split: dict[str, dict[str, float]] = field(default_factory=dict)
    """With questions from both splits, the metrics of each split alone."""
    metrics_multi_turn: dict[str, float] = field(default_factory=dict)
    """The multi-turn slice (questions with `history`), asked with their history (condensed)."""
    metrics_multi_turn_without_history: dict[str, float] = field(default_factory=dict)
    """The same questions asked alone, without their history: the baseline the condenser is compared with."""
    multi_turn_without_history: list[QuestionResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_eval_set(path: Path) -> list[EvalQuestion]:
    """Parse and check a JSONL eval set; errors name the line."""
    questions: list[EvalQuestion] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidInputError(f"cannot read eval set {path}: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            question = EvalQuestion(
                id=str(raw["id"]),
                question=str(raw["question"]),
                answerable=bool(raw.get("answerable", True)),
                expected_answer=raw.get("expected_answer"),
                expected_sources=list(raw.get("expected_sources") or []),
                answer_terms=[str(t) for t in raw.get("answer_terms") or []],
                split=raw.get("split"),
                history=_history(raw.get("history")),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"{path}:{number}: not a valid eval question ({error})") from error
        if question.split is not None and question.split not in SPLITS:
            raise InvalidInputError(f"{path}:{number}: split must be dev or test, not {question.split!r}")
        if question.id in seen:
            raise InvalidInputError(f"{path}:{number}: duplicate id {question.id!r}")
        if question.answerable and not question.expected_sources:
            raise InvalidInputError(f"{path}:{number}: an answerable question needs expected_sources")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise InvalidInputError(f"eval set {path} has no questions")
    return questions


def _history(raw: Any) -> list[dict[str, str]]:
    """A question's `history`: a list of `{role: user|assistant, content}` with text."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("history must be a list of {role, content}")
    turns = []
    for turn in raw:
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise ValueError("history turns need role user or assistant")
        if not isinstance(turn.get("content"), str) or not turn["content"].strip():
            raise ValueError("history turns need a non-empty content")
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def select_split(questions: list[EvalQuestion], split: str) -> list[EvalQuestion]:
    """The questions of `split` ("dev" or "test"), or all of them for "all"."""
    if split == "all":
        return list(questions)
    if split not in SPLITS:
        raise InvalidInputError(f"split must be dev, test or all, not {split!r}")
    missing = [q.id for q in questions if q.split is None]
    if missing:
        raise InvalidInputError(
            f"cannot select the {split} split: {len(missing)} question(s) have no split field (first: {missing[0]})"
        )
    selected = [q for q in questions if q.split == split]
    if not selected:
        raise InvalidInputError(f"the eval set has no {split} questions")
    return selected


def sample_questions(questions: list[EvalQuestion], count: int | None) -> list[EvalQuestion]:
    """`count` questions evenly spaced over `questions` (all of them when `count` is None or not smaller)."""
    if count is None or count >= len(questions):
        return list(questions)
    if count < 1:
        raise InvalidInputError(f"sample must be at least 1, not {count}")
    return [questions[i * len(questions) // count] for i in range(count)]


def corpus_collection(corpus_dir: Path, indexing_yml: Path) -> str:
    """A collection name that changes when the corpus files or the indexing pipeline change."""
    digest = hashlib.sha256(indexing_yml.read_bytes())
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file()):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return "eval_" + digest.hexdigest()[:16]


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    return {"p50": round(float(np.percentile(values, 50)), 1), "p95": round(float(np.percentile(values, 95)), 1)}


def _dedupe(docs: list[Document], key: str) -> list[Document]:
    seen: set[Any] = set()
    unique = []
    for doc in docs:
        if doc.meta.get(key) not in seen:
            seen.add(doc.meta.get(key))
            unique.append(doc)
    return unique


def retrieval_metrics(
    questions: list[EvalQuestion], rankings: list[list[tuple[str | None, int | None]]], *, level: str, k: int
) -> dict[str, float]:
    """hit@1, hit@5, recall@k, MRR and nDCG@10 at `level` "doc" (file) or "page" (file and page)."""
    truth: list[list[Document]] = []
    ranked: list[list[Document]] = []
    for question, ranking in zip(questions, rankings, strict=True):
        if not question.answerable:
            continue
        if level == "page" and not all("page" in s for s in question.expected_sources):
            continue
        keys = [s["file"] if level == "doc" else f"{s['file']}#{s['page']}" for s in question.expected_sources]
        truth.append([Document(content=key, meta={"key": key}) for key in dict.fromkeys(keys)])
        ranked.append([Document(content=str(f), meta={"key": f if level == "doc" else f"{f}#{p}"}) for f, p in ranking])
    if not truth:
        return {}
    mrr = DocumentMRREvaluator(document_comparison_field="meta.key")
    single = DocumentRecallEvaluator(mode="single_hit", document_comparison_field="meta.key")
    multi = DocumentRecallEvaluator(mode="multi_hit", document_comparison_field="meta.key")
    ndcg = DocumentNDCGEvaluator(document_comparison_field="meta.key")
    unique = [_dedupe(r, "key") for r in ranked]
    return {
        f"{level}_hit@1": single.run(ground_truth_documents=truth, retrieved_documents=[r[:1] for r in ranked])[
            "score"
        ],
        f"{level}_hit@5": single.run(ground_truth_documents=truth, retrieved_documents=[r[:5] for r in ranked])[
            "score"
        ],
        f"{level}_recall@{k}": multi.run(ground_truth_documents=truth, retrieved_documents=unique)["score"],
        f"{level}_mrr": mrr.run(ground_truth_documents=truth, retrieved_documents=ranked)["score"],
        f"{level}_ndcg@10": ndcg.run(ground_truth_documents=truth, retrieved_documents=[u[:10] for u in unique])[
            "score"
        ],
    }


class Evaluator:
    """Runs an eval set through one pipeline profile."""

    def __init__(self, services: Services) -> None:
        """`services` from `app.composition.eval_services` (its own pipelines dir and data dir)."""
        self.pipelines_dir = services.settings.pipelines_dir
        self.pipelines = services.pipelines
        self.query = services.query
        self.ingest = services.ingest
        self._text_embedder: Any = None

    def ensure_corpus(self, corpus_dir: Path, progress: Progress | None = None) -> str:
        """Ingest the corpus once into its hash-named collection; return the collection name."""
        collection = corpus_collection(corpus_dir, self.pipelines.indexing.path)
        store = self.pipelines.document_store
        if store.count_documents_by_filter({"field": "meta.collection", "operator": "==", "value": collection}):
            return collection
        ingest = self.ingest
        files = sorted(p for p in corpus_dir.rglob("*") if p.is_file())
        if not files:
            raise InvalidInputError(f"corpus folder {corpus_dir} has no files")
        for path in files:
            result = ingest.ingest_path(path, collection=collection)
            if result.status == "failed":
                raise InvalidInputError(f"corpus file {path.name} could not be indexed: {result.error}")
            if progress:
                progress(f"indexed {path.name}")
        return collection

    def _sas(self, answer: str, expected: str) -> float:
        if self._text_embedder is None:
            from components.embedders.onnx_text_embedder import OnnxTextEmbedder

            self._text_embedder = OnnxTextEmbedder()
        a = np.array(self._text_embedder.run(text=answer)["embedding"])
        b = np.array(self._text_embedder.run(text=expected)["embedding"])
        return float(a @ b)

    def run(
        self,
        questions: list[EvalQuestion],
        corpus_dir: Path,
        *,
        name: str,
        top_k: int = 5,
        retrieval_k: int = 10,
        generate: bool = True,
        judge: bool = False,
        progress: Progress | None = None,
    ) -> PipelineEval:
        """Ask every question; compute the metrics (`judge`: also LLM-judged faithfulness and context relevance)."""
        collection = self.ensure_corpus(corpus_dir, progress)
        self.pipelines.query.pipeline.warm_up()
        results: list[QuestionResult] = []
        rankings: list[list[tuple[str | None, int | None]]] = []
        retrieval_ms: list[float] = []
        generation_ms: list[float] = []
        total_ms: list[float] = []
        judged: list[tuple[str, list[str], str]] = []
        alone_rankings: list[list[tuple[str | None, int | None]]] = []
        alone_results: list[QuestionResult] = []
        for question in questions:
            history = question.chat_history()
            ranking, result, search, answered = self._ask(question, collection, top_k, retrieval_k, generate, history)
            rankings.append(ranking)
            results.append(result)
            retrieval_ms.append(search.timings_ms["retrieval"])
            if answered is not None:
                generation_ms.append(answered.timings_ms["generation"])
                total_ms.append(answered.timings_ms["total"])
            if judge and answered and answered.answer and not answered.refused:
                judged.append((question.question, [src.text for src in answered.sources], answered.answer))
            if history:  # the baseline: the same follow-up asked alone
                alone_ranking, alone_result, _, _ = self._ask(question, collection, top_k, retrieval_k, generate, None)
                alone_rankings.append(alone_ranking)
                alone_results.append(alone_result)
            if progress:
                progress(question.id)
        metrics = _metrics(questions, rankings, results, generate=generate, retrieval_k=retrieval_k)
        multi = [i for i, q in enumerate(questions) if q.history]
        multi_metrics: dict[str, float] = {}
        alone_metrics: dict[str, float] = {}
        if multi:
            multi_questions = [questions[i] for i in multi]
            multi_metrics = _metrics(
                multi_questions,
                [rankings[i] for i in multi],
                [results[i] for i in multi],
                generate=generate,
                retrieval_k=retrieval_k,
            )
            multi_metrics["condensed_rate"] = sum(
                results[i].standalone_question not in (None, questions[i].question) for i in multi
            ) / len(multi)
            alone_metrics = _metrics(
                multi_questions, alone_rankings, alone_results, generate=generate, retrieval_k=retrieval_k
            )
        splits = sorted({q.split for q in questions if q.split is not None})
        by_split: dict[str, dict[str, float]] = {}
        if len(splits) > 1:
            for split in splits:
                chosen = [i for i, q in enumerate(questions) if q.split == split]
                by_split[split] = _metrics(
                    [questions[i] for i in chosen],
                    [rankings[i] for i in chosen],
                    [results[i] for i in chosen],
                    generate=generate,
                    retrieval_k=retrieval_k,
                )
        if judge and judged:
            metrics.update(self._judge(judged))
        latency = {"retrieval": _percentiles(retrieval_ms)}
        if generate:
            latency["generation"] = _percentiles(generation_ms)
            latency["total"] = _percentiles(total_ms)
        return PipelineEval(
            name=name,
            pipelines_dir=str(self.pipelines_dir),
            collection=collection,
            metrics={k: round(v, 4) for k, v in metrics.items()},
            latency_ms=latency,
            results=results,
            split=splits[0] if len(splits) == 1 and all(q.split for q in questions) else "all",
            metrics_by_split={split: {k: round(v, 4) for k, v in values.items()} for split, values in by_split.items()},
            metrics_multi_turn={k: round(v, 4) for k, v in multi_metrics.items()},
            metrics_multi_turn_without_history={k: round(v, 4) for k, v in alone_metrics.items()},
            multi_turn_without_history=alone_results,
        )

    def _ask(
        self,
        question: EvalQuestion,
        collection: str,
        top_k: int,
        retrieval_k: int,
        generate: bool,
        history: list[ChatMessage] | None,
    ) -> tuple[list[tuple[str | None, int | None]], QuestionResult, QueryResult, QueryResult | None]:
        """Search (the ranking) and, with `generate`, answer one question: ranking, scored result, search, answer."""
        extra: dict[str, Any] = {"history": history} if history else {}  # a single-turn question: the call as ever
        search = self.query.ask(question.question, collection=collection, top_k=retrieval_k, generate=False, **extra)
        ranking = [(s.filename, s.page) for s in search.sources]
        answered: QueryResult | None = None
        if generate:
            answered = self.query.ask(question.question, collection=collection, top_k=top_k, **extra)
        result = self._score(question, ranking, answered, search.timings_ms)
        if history:
            result.standalone_question = search.standalone_question
        return ranking, result, search, answered

    def _judge(self, judged: list[tuple[str, list[str], str]]) -> dict[str, float]:
        """Faithfulness and context relevance judged by the query pipeline's own LLM (weak with a tiny model)."""
        from haystack.components.evaluators import ContextRelevanceEvaluator, FaithfulnessEvaluator

        llm: Any = self.pipelines.query.pipeline.get_component("llm")
        questions = [q for q, _, _ in judged]
        contexts = [c for _, c, _ in judged]
        answers = [a for _, _, a in judged]
        faithfulness = FaithfulnessEvaluator(chat_generator=llm, progress_bar=False, raise_on_failure=False).run(
            questions=questions, contexts=contexts, predicted_answers=answers
        )
        relevance = ContextRelevanceEvaluator(chat_generator=llm, progress_bar=False, raise_on_failure=False).run(
            questions=questions, contexts=contexts
        )
        metrics: dict[str, float] = {}
        for name, output in (("faithfulness", faithfulness), ("context_relevance", relevance)):
            scores = [float(x) for x in output["individual_scores"] if x is not None and not np.isnan(float(x))]
            metrics[name] = float(np.mean(scores)) if scores else 0.0
            metrics[f"{name}_judged"] = len(scores) / len(judged)
        return metrics

    def _score(
        self,
        question: EvalQuestion,
        ranking: list[tuple[str | None, int | None]],
        answered: QueryResult | None,
        search_timings: dict[str, float],
    ) -> QuestionResult:
        timings = dict(answered.timings_ms) if answered else {"retrieval": search_timings["retrieval"]}
        result = QuestionResult(
            id=question.id,
            question=question.question,
            answerable=question.answerable,
            answer=answered.answer if answered else None,
            refused=answered.refused if answered else False,
            retrieved=ranking,
            timings_ms=timings,
            cited=[(s.filename, s.page) for s in answered.sources if s.cited] if answered else [],
        )
        pages = {(s["file"], s["page"]) for s in question.expected_sources if "page" in s}
        if answered and answered.answer and not answered.refused and question.answerable and pages:
            result.cited_page_correct = any(cited in pages for cited in result.cited)
        if answered and answered.answer and not answered.refused:
            result.claims = len(answered.claims)
            result.supported_claims = sum(claim.supported for claim in answered.claims)
        if answered and answered.answer and question.answerable and question.expected_answer:
            answer = _normalize(answered.answer)
            result.exact = answer == _normalize(question.expected_answer)
            terms = question.answer_terms or [question.expected_answer]
            result.contains = all(_normalize(t) in answer for t in terms)
            result.sas = round(self._sas(answered.answer, question.expected_answer), 4)
        return result


def _metrics(
    questions: list[EvalQuestion],
    rankings: list[list[tuple[str | None, int | None]]],
    results: list[QuestionResult],
    *,
    generate: bool,
    retrieval_k: int,
) -> dict[str, float]:
    """Retrieval metrics (doc and page level) and, when answers were generated, answer and refusal metrics."""
    metrics: dict[str, float] = {}
    metrics.update(retrieval_metrics(questions, rankings, level="doc", k=retrieval_k))
    metrics.update(retrieval_metrics(questions, rankings, level="page", k=retrieval_k))
    if generate:
        metrics.update(_answer_metrics(results))
    return metrics


def _answer_metrics(results: list[QuestionResult]) -> dict[str, float]:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    scored = [r for r in answerable if r.exact is not None]
    metrics: dict[str, float] = {}
    if scored:
        metrics["answer_exact"] = sum(bool(r.exact) for r in scored) / len(scored)
        metrics["answer_contains"] = sum(bool(r.contains) for r in scored) / len(scored)
        metrics["answer_sas"] = sum(r.sas or 0.0 for r in scored) / len(scored)
    cited = [r for r in answerable if r.cited_page_correct is not None]
    if cited:
        metrics["cited_page_accuracy"] = sum(bool(r.cited_page_correct) for r in cited) / len(cited)
    if unanswerable:
        metrics["refusal_accuracy"] = sum(r.refused for r in unanswerable) / len(unanswerable)
    if answerable:
        metrics["false_refusal_rate"] = sum(r.refused for r in answerable) / len(answerable)
    checked = [r for r in results if r.answer and not r.refused]  # answerable or not: every answer given
    claims = sum(r.claims for r in checked)
    if claims:  # a pipeline with a claim checker
        metrics["supported_claim_rate"] = sum(r.supported_claims for r in checked) / claims
    return metrics
