"""The CI quality gate on the Debian Reference test split (eval/debian-reference/gate.json) catches a broken context
selector and a broken refusal decision: the same gate file, the default pipelines with one part broken, the real
local model, an evenly spaced sample of the test split (answerable and unanswerable questions alike). The shipped
pipelines pass the same gate on the whole test split in scripts/test.sh.

A decision that never refuses makes the model answer every question, about 9 s each on 2 AVX2 cores, so its sample is
8 questions (3 unanswerable: refusal_accuracy can only reach the gate's 0.7 if all three are refused)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.settings import PROJECT_ROOT
from app.testing.profiles import copy_profile

SET = PROJECT_ROOT / "eval/debian-reference/questions.jsonl"
GATE = PROJECT_ROOT / "eval/debian-reference/gate.json"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not (SET.parent / "corpus").is_dir(), reason="bash scripts/build_eval_corpus.sh builds it"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One store for the module: the broken variants change only query.yml, so the corpus is ingested once."""
    return tmp_path_factory.mktemp("gate-data")


def _gate(profile: Path, data_dir: Path, out: Path, sample: int) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(SET),
            "-p",
            str(profile),
            "--gate",
            str(GATE),
            "--sample",
            str(sample),
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_the_gate_file_asks_the_test_split_with_the_llm():
    spec = json.loads(GATE.read_text())
    assert spec["split"] == "test" and not spec.get("search_only")
    assert {"answer_contains", "refusal_accuracy", "page_hit@5"} <= set(spec["thresholds"])
    assert spec["thresholds"]["false_refusal_rate_max"] <= 0.2


def _worst_sentences(query: dict) -> None:
    query["components"]["selector"]["type"] = "app.testing.broken_components.WorstSentencesSelector"


def _never_refuse(query: dict) -> None:
    query["components"]["answerability"]["init_parameters"]["threshold"] = -100.0
    query["components"]["gate"]["init_parameters"]["min_score"] = -1.0


def _always_refuse(query: dict) -> None:
    query["components"]["answerability"]["init_parameters"]["threshold"] = 100.0


@pytest.mark.parametrize(
    ("break_it", "sample", "metric"),
    [
        (_worst_sentences, 24, "answer_contains"),  # a selector that keeps the sentences least related to the question
        (_never_refuse, 8, "refusal_accuracy"),  # a refusal decision that lets every question through
        (_always_refuse, 24, "false_refusal_rate"),  # one that refuses everything
    ],
    ids=["broken-selector", "never-refuses", "always-refuses"],
)
def test_the_gate_fails_on_a_broken_part(tmp_path, data_dir, break_it, sample, metric):
    broken = copy_profile(tmp_path / "broken", query=break_it)
    code, output = _gate(broken, data_dir, tmp_path / "out", sample)
    assert code == 1, output
    assert f"questions: {sample} (split: test)" in output, output
    failures = output.partition("quality gate failed:")[2]
    assert re.search(rf"\b{metric}\s+\d\.\d+\s+[<>]", failures), output  # the broken part's own metric failed
