import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.errors import InvalidInputError
from app.eval_report import console_table, markdown, split_table, write_reports
from app.services.evaluation import EvalQuestion, Evaluator, load_eval_set, retrieval_metrics, select_split
from app.services.query import QueryResult, Source
from app.settings import PROJECT_ROOT
from app.testing.profiles import copy_profile
from components.validators.claim_checker import Claim

FAQ = "/usr/share/doc/python3.11/html/faq"
QUESTIONS = [
    {
        "id": "g1",
        "question": "Why is it called Python?",
        "expected_answer": "Monty Python's Flying Circus",
        "answer_terms": ["Monty Python"],
        "expected_sources": [{"file": "general.html"}],
    },
    {
        "id": "d1",
        "question": "Why does Python use indentation for grouping of statements?",
        "expected_answer": "indentation",
        "expected_sources": [{"file": "design.html"}],
    },
    {
        "id": "p1",
        "question": "How do I share global variables across modules?",
        "expected_answer": "a config module",
        "expected_sources": [{"file": "programming.html"}],
    },
    {"id": "u1", "question": "Who won the 1998 football world cup?", "answerable": False},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def eval_set(tmp_path):
    corpus = tmp_path / "set" / "corpus"
    corpus.mkdir(parents=True)
    for name in ("general.html", "design.html", "programming.html"):
        shutil.copy(f"{FAQ}/{name}", corpus / name)
    return _write(tmp_path / "set" / "questions.jsonl", QUESTIONS)


def test_load_eval_set_validates(tmp_path):
    assert [q.id for q in load_eval_set(_write(tmp_path / "ok.jsonl", QUESTIONS))] == ["g1", "d1", "p1", "u1"]
    with pytest.raises(InvalidInputError, match=r"dup.jsonl:2: duplicate id"):
        load_eval_set(_write(tmp_path / "dup.jsonl", [QUESTIONS[0], QUESTIONS[0]]))
    with pytest.raises(InvalidInputError, match="needs expected_sources"):
        load_eval_set(_write(tmp_path / "nosrc.jsonl", [{"id": "x", "question": "q"}]))
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "question": "q", "expected_sources": [{"file": "f"}]}\n{oops\n')
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2"):
        load_eval_set(tmp_path / "bad.jsonl")


def test_load_eval_set_reads_and_validates_split(tmp_path):
    rows = [{**QUESTIONS[0], "split": "dev"}, {**QUESTIONS[3], "split": "test"}, QUESTIONS[1]]
    assert [q.split for q in load_eval_set(_write(tmp_path / "ok.jsonl", rows))] == ["dev", "test", None]
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:1: split must be dev or test, not 'train'"):
        load_eval_set(_write(tmp_path / "bad.jsonl", [{**QUESTIONS[0], "split": "train"}]))


def test_select_split_filters_and_refuses_sets_without_splits():
    questions = [
        EvalQuestion(id="a", question="q", split="dev"),
        EvalQuestion(id="b", question="q", split="test"),
        EvalQuestion(id="c", question="q", answerable=False, split="test"),
    ]
    assert [q.id for q in select_split(questions, "dev")] == ["a"]
    assert [q.id for q in select_split(questions, "test")] == ["b", "c"]
    assert [q.id for q in select_split(questions, "all")] == ["a", "b", "c"]
    with pytest.raises(InvalidInputError, match=r"no split field \(first: x\)"):
        select_split([*questions, EvalQuestion(id="x", question="q")], "test")
    with pytest.raises(InvalidInputError, match="has no dev questions"):
        select_split(questions[1:], "dev")
    with pytest.raises(InvalidInputError, match="dev, test or all"):
        select_split(questions, "train")
    assert [q.id for q in select_split([EvalQuestion(id="x", question="q")], "all")] == ["x"]


class _FakeQuery:
    """Search-only answers: "hit" questions retrieve their expected page first, the others an unrelated one."""

    def ask(self, question, *, collection, top_k, generate=True):
        page = ("a.pdf", 3) if question.startswith("hit") else ("z.pdf", 1)
        source = Source(n=1, document_id="d", filename=page[0], page=page[1], chunk_id="c", score=1.0, text="t")
        return QueryResult(answer=None, sources=[source], timings_ms={"retrieval": 1.0})


def _fake_evaluator(monkeypatch):
    monkeypatch.setattr(Evaluator, "ensure_corpus", lambda self, corpus_dir, progress=None: "eval_x")
    pipeline = SimpleNamespace(warm_up=lambda: None)
    services = SimpleNamespace(
        settings=SimpleNamespace(pipelines_dir=Path("pipelines")),
        pipelines=SimpleNamespace(query=SimpleNamespace(pipeline=pipeline)),
        query=_FakeQuery(),
        ingest=None,
    )
    return Evaluator(services)  # type: ignore[arg-type]


def test_evaluator_reports_metrics_per_split(monkeypatch, tmp_path):
    source = [{"file": "a.pdf", "page": 3}]
    questions = [
        EvalQuestion(id="1", question="hit one", expected_sources=source, split="dev"),
        EvalQuestion(id="2", question="miss two", expected_sources=source, split="test"),
        EvalQuestion(id="3", question="hit three", expected_sources=source, split="test"),
        EvalQuestion(id="4", question="miss four", expected_sources=source, split="test"),
    ]
    evaluator = _fake_evaluator(monkeypatch)
    both = evaluator.run(questions, tmp_path, name="A", generate=False)
    assert both.split == "all"
    assert both.metrics["page_hit@5"] == 0.5
    assert both.metrics_by_split["dev"]["page_hit@5"] == 1.0
    assert both.metrics_by_split["test"]["page_hit@5"] == pytest.approx(1 / 3, abs=1e-4)
    assert set(both.metrics_by_split) == {"dev", "test"}

    test_only = evaluator.run(select_split(questions, "test"), tmp_path, name="A", generate=False)
    assert test_only.split == "test" and test_only.metrics_by_split == {}
    assert test_only.metrics["page_hit@5"] == pytest.approx(1 / 3, abs=1e-4)

    report = markdown([both], Path("set.jsonl"))
    assert "Questions: 4 (split: all)" in report
    assert "| A dev | A test |" in report and "| page_hit@5 | 1.000 | 0.333 |" in report
    assert [c.header for c in split_table([both]).columns] == ["metric", "A dev", "A test"]
    assert "(split: test)" in markdown([test_only], Path("set.jsonl")) and "Per split" not in markdown(
        [test_only], Path("set.jsonl")
    )


class _CitingQuery(_FakeQuery):
    """Answers citing page 3 of a.pdf for "hit" questions, page 9 for the others; refuses "refuse" questions."""

    def ask(self, question, *, collection, top_k, generate=True):
        if not generate:
            return super().ask(question, collection=collection, top_k=top_k, generate=False)
        if question.startswith("refuse"):
            return QueryResult(answer="I don't know.", sources=[], timings_ms=_TIMINGS, refused=True)
        page = 3 if question.startswith("hit") else 9
        cited = Source(n=1, document_id="d", filename="a.pdf", page=page, chunk_id="c", score=1.0, text="t", cited=True)
        other = Source(n=2, document_id="e", filename="a.pdf", page=3, chunk_id="e", score=0.5, text="t", cited=False)
        return QueryResult(answer="Use apt-mark hold [1].", sources=[cited, other], timings_ms=_TIMINGS)


_TIMINGS = {"retrieval": 1.0, "generation": 2.0, "total": 3.0}


def test_cited_page_accuracy_counts_answers_whose_citation_names_an_expected_page(monkeypatch, tmp_path):
    source = [{"file": "a.pdf", "page": 3}]
    questions = [
        EvalQuestion(id="1", question="hit one", expected_sources=source, expected_answer="apt-mark hold"),
        EvalQuestion(id="2", question="miss two", expected_sources=source, expected_answer="apt-mark hold"),
        EvalQuestion(id="3", question="refuse three", expected_sources=source, expected_answer="apt-mark hold"),
    ]
    evaluator = _fake_evaluator(monkeypatch)
    evaluator.query = _CitingQuery()
    monkeypatch.setattr(Evaluator, "_sas", lambda self, a, b: 1.0)
    result = evaluator.run(questions, tmp_path, name="A", generate=True)
    # the uncited page-3 source of question 2 does not count; the refused question 3 is not in the denominator
    assert result.metrics["cited_page_accuracy"] == 0.5
    assert [r.cited_page_correct for r in result.results] == [True, False, None]
    assert result.results[0].cited == [("a.pdf", 3)]


def test_eval_cli_rejects_a_split_the_set_does_not_have(tmp_path):
    runner = CliRunner()
    no_splits = _write(tmp_path / "plain.jsonl", QUESTIONS)
    missing = runner.invoke(cli, ["eval", str(no_splits), "--split", "dev", "--search-only"])
    assert missing.exit_code == 2 and "no split field" in missing.output
    bogus = runner.invoke(cli, ["eval", str(no_splits), "--split", "train", "--search-only"])
    assert bogus.exit_code == 2 and "dev, test or all" in bogus.output


def test_retrieval_metrics_by_hand():
    questions = [
        EvalQuestion(id="1", question="q", expected_sources=[{"file": "a", "page": 2}]),
        EvalQuestion(id="2", question="q", expected_sources=[{"file": "c"}]),
        EvalQuestion(id="3", question="q", answerable=False),
    ]
    rankings = [[("b", 1), ("a", 1), ("a", 2)], [("c", None)], [("z", None)]]
    doc = retrieval_metrics(questions, rankings, level="doc", k=10)
    assert doc["doc_hit@1"] == 0.5  # question 1 misses at rank 1, question 2 hits
    assert doc["doc_hit@5"] == 1.0
    assert doc["doc_mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert doc["doc_recall@10"] == 1.0
    page = retrieval_metrics(questions, rankings, level="page", k=10)
    assert page == pytest.approx(
        {"page_hit@1": 0.0, "page_hit@5": 1.0, "page_recall@10": 1.0, "page_mrr": 1 / 3, "page_ndcg@10": 0.5}
    )


def _broken_profile(tmp_path):
    """The shipped pipelines with retrievers that can never match (a filter on a file that does not exist)."""

    def never_match(query):
        for name in ("embedding_retriever", "keyword_retriever"):
            params = query["components"][name]["init_parameters"]
            params["filters"] = {"field": "meta.file_name", "operator": "==", "value": "no-such-file.html"}
            params["filter_policy"] = "merge"

    return copy_profile(tmp_path / "broken", query=never_match)


@pytest.mark.integration
def test_eval_cli_ab_reports_and_gate(eval_set, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"search_only": True, "thresholds": {"doc_hit@5": 0.9, "doc_mrr": 0.6}}))
    common = ["--data-dir", str(tmp_path / "data"), "--out", str(out), "--search-only"]

    ab = runner.invoke(
        cli,
        ["eval", str(eval_set), "-p", str(PROJECT_ROOT / "pipelines"), "-p", str(_broken_profile(tmp_path)), *common],
        catch_exceptions=False,
    )
    assert ab.exit_code == 0, ab.output
    assert "delta" in ab.output and "doc_hit@5" in ab.output
    report = json.loads((out / "results.json").read_text())
    good, broken = (run["metrics"] for run in report["runs"])
    assert good["doc_hit@5"] == 1.0 and good["doc_mrr"] > 0.6
    assert broken["doc_hit@5"] == 0.0
    assert "| doc_hit@5 | 1.000 | 0.000 | -1.000 |" in (out / "report.md").read_text()
    for png in ("metrics.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    passed = runner.invoke(cli, ["eval", str(eval_set), "--gate", str(gate), *common], catch_exceptions=False)
    assert passed.exit_code == 0, passed.output
    assert "quality gate passed" in passed.output
    failed = runner.invoke(
        cli,
        ["eval", str(eval_set), "-p", str(_broken_profile(tmp_path / "b")), "--gate", str(gate), *common],
        catch_exceptions=False,
    )
    assert failed.exit_code == 1
    assert "quality gate failed" in failed.output and "doc_hit@5 0.000 < 0.9" in failed.output


@pytest.mark.integration
def test_eval_cli_split_option_and_gate_split(eval_set, tmp_path):
    splits = {"g1": "dev", "d1": "test", "p1": "test", "u1": "test"}
    _write(eval_set, [{**q, "split": splits[q["id"]]} for q in QUESTIONS])
    runner = CliRunner()
    out = tmp_path / "out"
    common = ["--data-dir", str(tmp_path / "data"), "--out", str(out), "--search-only"]

    test = runner.invoke(cli, ["eval", str(eval_set), "--split", "test", *common], catch_exceptions=False)
    assert test.exit_code == 0, test.output
    assert "questions: 3 (split: test)" in test.output and "per split" not in test.output
    report = json.loads((out / "results.json").read_text())
    assert report["split"] == "test" and report["runs"][0]["split"] == "test"
    assert [r["id"] for r in report["runs"][0]["results"]] == ["d1", "p1", "u1"]

    both = runner.invoke(cli, ["eval", str(eval_set), *common], catch_exceptions=False)
    assert both.exit_code == 0, both.output
    assert "questions: 4 (split: all)" in both.output and "per split" in both.output
    by_split = json.loads((out / "results.json").read_text())["runs"][0]["metrics_by_split"]
    assert set(by_split) == {"dev", "test"} and by_split["dev"]["doc_hit@5"] == 1.0

    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"search_only": True, "split": "dev", "thresholds": {"doc_hit@5": 0.9}}))
    gated = runner.invoke(cli, ["eval", str(eval_set), "--gate", str(gate), *common], catch_exceptions=False)
    assert gated.exit_code == 0, gated.output
    assert "questions: 1 (split: dev)" in gated.output and "quality gate passed" in gated.output


@pytest.mark.integration
@pytest.mark.slow
def test_eval_with_generation_scores_answers_and_refusals(eval_set, tmp_path, make_tiny_profile):
    profile = make_tiny_profile(tmp_path / "tiny")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["eval", str(eval_set), "-p", str(profile), "--data-dir", str(tmp_path / "d"), "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "results.json").read_text())["runs"][0]["metrics"]
    assert metrics["refusal_accuracy"] == 1.0  # the off-topic question never reaches the LLM
    for name in ("answer_exact", "answer_contains", "answer_sas", "false_refusal_rate"):
        assert 0.0 <= metrics[name] <= 1.0
    assert "latency total p50" in result.output


@pytest.mark.integration
@pytest.mark.slow
def test_llm_judged_metrics_with_tiny_model(eval_set, tmp_path, make_tiny_profile):
    from app.composition import eval_services
    from app.services.evaluation import Evaluator
    from app.settings import Settings

    profile = make_tiny_profile(tmp_path / "tiny", max_tokens=48)
    questions = load_eval_set(eval_set)[:2]
    evaluator = Evaluator(eval_services(Settings(), profile, tmp_path / "d"))
    run = evaluator.run(questions, eval_set.parent / "corpus", name="t", judge=True)
    for name in ("faithfulness", "context_relevance", "faithfulness_judged", "context_relevance_judged"):
        assert 0.0 <= run.metrics[name] <= 1.0


def test_gate_thresholds_are_minimums_or_maximums_and_a_missing_metric_fails():
    from app.cli import gate_failures

    metrics = {"answer_contains": 0.8, "false_refusal_rate": 0.1}
    assert gate_failures(metrics, {"answer_contains": 0.75, "false_refusal_rate_max": 0.15}) == []
    assert gate_failures(metrics, {"answer_contains": 0.85}) == ["answer_contains 0.800 < 0.85"]
    assert gate_failures(metrics, {"false_refusal_rate_max": 0.05}) == ["false_refusal_rate 0.100 > 0.05"]
    assert gate_failures(metrics, {"refusal_accuracy": 0.9}) == [
        "refusal_accuracy missing (the questions asked do not measure it)"
    ]


def test_sample_questions_spreads_over_the_split():
    from app.services.evaluation import sample_questions

    questions = [EvalQuestion(id=str(i), question="q") for i in range(10)]
    assert [q.id for q in sample_questions(questions, 4)] == ["0", "2", "5", "7"]
    assert sample_questions(questions, None) == questions and sample_questions(questions, 20) == questions
    with pytest.raises(InvalidInputError):
        sample_questions(questions, 0)


class _FakeAnswers(_FakeQuery):
    """Answers with checked claims: `question` names them, e.g. "s u" = one supported and one unsupported claim;
    "refused ..." is a refusal (its claims must not count)."""

    def ask(self, question, *, collection, top_k, generate=True):
        if not generate:
            return super().ask(question, collection=collection, top_k=top_k)
        claims = [
            Claim(text=w, sources=[1], supported=w == "s", score=1.0 if w == "s" else 0.0) for w in question.split()
        ]
        refused = question.startswith("refused")
        return QueryResult(
            answer="I don't know." if refused else "An answer [1].",
            sources=[],
            timings_ms={"retrieval": 1.0, "generation": 2.0, "total": 3.0},
            refused=refused,
            claims=[c for c in claims if c.text in "su"],
        )


def test_evaluator_reports_supported_claim_rate_over_answers_per_split(monkeypatch, tmp_path):
    source = [{"file": "a.pdf", "page": 3}]
    questions = [
        EvalQuestion(id="1", question="s u", expected_sources=source, split="dev"),
        EvalQuestion(id="2", question="s s", expected_sources=source, split="test"),
        EvalQuestion(id="3", question="refused u u", expected_sources=source, split="test"),
        EvalQuestion(id="4", question="u", answerable=False, split="test"),  # answered anyway: counts
    ]
    evaluator = _fake_evaluator(monkeypatch)
    evaluator.query = _FakeAnswers()
    run = evaluator.run(questions, tmp_path, name="A")
    assert run.metrics["supported_claim_rate"] == 0.6  # 3 of 5 (the refusal's claims are left out)
    assert run.metrics_by_split["dev"]["supported_claim_rate"] == 0.5
    assert run.metrics_by_split["test"]["supported_claim_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert [(r.claims, r.supported_claims) for r in run.results] == [(2, 1), (2, 2), (0, 0), (1, 0)]

    assert "| supported_claim_rate | 0.600 |" in markdown([run], Path("set.jsonl"))
    assert "supported_claim_rate" in list(console_table([run]).columns[0].cells)
    assert "supported_claim_rate" in list(split_table([run]).columns[0].cells)
    write_reports([run], Path("set.jsonl"), tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]
    assert saved["metrics"]["supported_claim_rate"] == 0.6
    assert saved["metrics_by_split"]["test"]["supported_claim_rate"] == pytest.approx(2 / 3, abs=1e-4)

    no_checker = evaluator.run([EvalQuestion(id="5", question="x", answerable=False)], tmp_path, name="B")
    assert "supported_claim_rate" not in no_checker.metrics  # answers without claims: no figure, not 0


def test_load_eval_set_reads_a_dialogue_history(tmp_path):
    history = [{"role": "user", "content": "What does VACUUM do?"}, {"role": "assistant", "content": "It rebuilds."}]
    rows = [{**QUESTIONS[0], "history": history}, QUESTIONS[1]]
    first, second = load_eval_set(_write(tmp_path / "ok.jsonl", rows))
    assert first.history == history and second.history == []
    assert [m.text for m in first.chat_history()] == ["What does VACUUM do?", "It rebuilds."]
    assert second.chat_history() is None
    for bad in ([{"role": "system", "content": "x"}], [{"role": "user", "content": " "}], "text"):
        with pytest.raises(InvalidInputError, match=r"bad.jsonl:1"):
            load_eval_set(_write(tmp_path / "bad.jsonl", [{**QUESTIONS[0], "history": bad}]))


class _CondensingQuery(_FakeQuery):
    """A follow-up finds its page only with its history (condensed into "hit ..."); asked alone it misses."""

    def __init__(self):
        self.calls = []

    def ask(self, question, *, collection, top_k, generate=True, **kwargs):
        self.calls.append(("history" in kwargs, question))
        if kwargs.get("history"):
            result = super().ask("hit " + question, collection=collection, top_k=top_k, generate=generate)
            result.standalone_question = "hit " + question
            return result
        return super().ask(question, collection=collection, top_k=top_k, generate=generate)


def test_evaluator_reports_the_multi_turn_slice_and_its_baseline_without_history(monkeypatch, tmp_path):
    source = [{"file": "a.pdf", "page": 3}]
    history = [{"role": "user", "content": "How do I create an index?"}, {"role": "assistant", "content": "Use it."}]
    questions = [
        EvalQuestion(id="1", question="hit single", expected_sources=source),
        EvalQuestion(id="2", question="and how do I drop it?", expected_sources=source, history=history),
        EvalQuestion(id="3", question="and rename it?", expected_sources=source, history=history),
    ]
    evaluator = _fake_evaluator(monkeypatch)
    fake = evaluator.query = _CondensingQuery()
    run = evaluator.run(questions, tmp_path, name="A", generate=False)
    assert fake.calls[0] == (False, "hit single")  # a single-turn question is asked as before: no history argument
    assert run.metrics["page_hit@5"] == 1.0  # follow-ups asked with their history
    assert run.metrics_multi_turn["page_hit@5"] == 1.0
    assert run.metrics_multi_turn["condensed_rate"] == 1.0
    assert run.metrics_multi_turn_without_history["page_hit@5"] == 0.0
    assert [r.id for r in run.multi_turn_without_history] == ["2", "3"]
    assert run.results[1].standalone_question == "hit and how do I drop it?"
    assert run.results[0].standalone_question is None
    from app.cli import multi_turn_table

    table = multi_turn_table([run])
    assert [c.header for c in table.columns] == ["metric", "A with history", "A alone"]
    assert "2 follow-up questions" in str(table.title)


def test_the_shipped_multi_turn_set_loads_with_dialogues_in_both_splits():
    questions = load_eval_set(PROJECT_ROOT / "eval/sqlite/questions-multiturn.jsonl")
    assert len(questions) >= 20 and all(len(q.history) >= 2 for q in questions)
    assert {q.split for q in questions} == {"dev", "test"}
