"""The eval sets' dev/test split follows a fixed seeded rule, stratified by answerable (assign_eval_split.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_SETS = [
    "eval/sqlite/questions.jsonl",
    "eval/debian-reference/questions.jsonl",
    "eval/gnuplot/questions.jsonl",
    "eval/r-manuals/questions.jsonl",
]


def _items(answerable: int, unanswerable: int) -> list[dict]:
    rows = [{"id": f"q{i:03d}", "answerable": True} for i in range(answerable)]
    return rows + [{"id": f"q{answerable + i:03d}", "answerable": False} for i in range(unanswerable)]


def test_a_third_of_each_stratum_is_dev():
    rule = load_script("assign_eval_split")
    items = _items(78, 34)
    splits = rule.assign_splits(items)
    answerable_dev = sum(splits[i["id"]] == "dev" for i in items if i["answerable"])
    unanswerable_dev = sum(splits[i["id"]] == "dev" for i in items if not i["answerable"])
    assert (answerable_dev, unanswerable_dev) == (26, 11)
    assert set(splits.values()) == {"dev", "test"}


def test_the_rule_depends_on_ids_and_seed_only():
    rule = load_script("assign_eval_split")
    items = _items(30, 12)
    splits = rule.assign_splits(items)
    assert rule.assign_splits(list(reversed(items))) == splits
    assert rule.assign_splits([{**i, "question": "other text"} for i in items]) == splits
    assert rule.assign_splits(items, seed="another seed") != splits


def test_mismatches_names_wrong_and_missing_splits():
    rule = load_script("assign_eval_split")
    items = _items(6, 3)
    splits = rule.assign_splits(items)
    good = [{**i, "split": splits[i["id"]]} for i in items]
    assert rule.mismatches(good) == []
    flipped = {**good[0], "split": "test" if good[0]["split"] == "dev" else "dev"}
    missing = {k: v for k, v in good[1].items() if k != "split"}
    wrong = rule.mismatches([flipped, missing, *good[2:]])
    assert [line.split(":")[0] for line in wrong] == [good[0]["id"], good[1]["id"]]


def test_rewrite_adds_split_last_and_keeps_everything_else(tmp_path, monkeypatch, capsys):
    rule = load_script("assign_eval_split")
    path = tmp_path / "questions.jsonl"
    rows = [{"id": "q001", "question": "a?", "answerable": True, "style": "paraphrase"}, *_items(0, 2)]
    rows[1]["id"], rows[2]["id"] = "q002", "q003"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(sys, "argv", ["assign_eval_split.py", str(path)])
    assert rule.main() == 0
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [list(w)[-1] for w in written] == ["split"] * 3
    assert [{k: v for k, v in w.items() if k != "split"} for w in written] == rows
    monkeypatch.setattr(sys, "argv", ["assign_eval_split.py", "--check", str(path)])
    assert rule.main() == 0
    swapped = path.read_text().replace('"split": "dev"', '"split": "x"').replace('"split": "test"', '"split": "dev"')
    path.write_text(swapped)
    assert rule.main() == 1
    assert "q00" in capsys.readouterr().out


@pytest.mark.parametrize("shipped", SHIPPED_SETS)
def test_shipped_sets_follow_the_rule(shipped):
    rule = load_script("assign_eval_split")
    items = rule.read_items(ROOT / shipped)
    assert rule.mismatches(items) == []
