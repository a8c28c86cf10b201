"""
Assign the `split` field ("dev" or "test") of an eval set by a fixed, seeded rule, or check that it follows it.

The rule (stratified): the questions are grouped by `answerable` (true / false). Within each group they are ranked by
SHA-256 of "<seed>:<id>"; the first third of the ranking (rounded to the nearest integer) is "dev", the rest "test".
The rule depends only on the ids and on `answerable`, not on the order of the lines, the question text or any result
of the system, so nobody can pick which questions land in test. Tune on dev, report test (docs/evaluation.md).

    .venv/bin/python scripts/assign_eval_split.py eval/debian-reference/questions.jsonl          # rewrite in place
    .venv/bin/python scripts/assign_eval_split.py --check eval/sqlite/questions.jsonl            # exit 1 on mismatch

Rewriting keeps every other field and the line order; the `split` key is placed last. Adding questions changes the
ranking, so a few existing questions can change split: the rewrite lists them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

SEED = "ragstack-eval-split-v1"
DEV_FRACTION = 1 / 3
SPLITS = ("dev", "test")


def _rank_key(seed: str, qid: str) -> str:
    return hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest()


def assign_splits(items: list[dict[str, Any]], seed: str = SEED, dev_fraction: float = DEV_FRACTION) -> dict[str, str]:
    """The split of every question id: per `answerable` stratum, the first `dev_fraction` of the hash ranking is dev."""
    splits: dict[str, str] = {}
    for answerable in (True, False):
        ids = sorted(
            (str(item["id"]) for item in items if bool(item.get("answerable", True)) is answerable),
            key=lambda qid: _rank_key(seed, qid),
        )
        n_dev = round(len(ids) * dev_fraction)
        for rank, qid in enumerate(ids):
            splits[qid] = "dev" if rank < n_dev else "test"
    return splits


def read_items(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mismatches(items: list[dict[str, Any]], seed: str = SEED) -> list[str]:
    """Ids whose stored `split` differs from the rule (missing counts as a mismatch)."""
    expected = assign_splits(items, seed)
    return [
        f"{item['id']}: {item.get('split')!r} != {expected[str(item['id'])]!r}"
        for item in items
        if item.get("split") != expected[str(item["id"])]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", type=Path, nargs="+")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when a split differs from the rule")
    parser.add_argument("--seed", default=SEED)
    args = parser.parse_args()
    status = 0
    for path in args.questions:
        items = read_items(path)
        if args.check:
            wrong = mismatches(items, args.seed)
            for line in wrong:
                print(f"{path}: {line}")
            status = status or (1 if wrong else 0)
            continue
        splits = assign_splits(items, args.seed)
        moved = [
            f"{item['id']} {item['split']}->{splits[str(item['id'])]}"
            for item in items
            if item.get("split") in SPLITS and item["split"] != splits[str(item["id"])]
        ]
        if moved:
            print(f"{path}: questions that change split (a dev question moved to test was seen while tuning):")
            print("  " + ", ".join(moved))
        lines = []
        for item in items:
            item.pop("split", None)
            item["split"] = splits[str(item["id"])]
            lines.append(json.dumps(item, ensure_ascii=False))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts = {(a, s): 0 for a in (True, False) for s in SPLITS}
        for item in items:
            counts[(bool(item.get("answerable", True)), item["split"])] += 1
        print(
            f"{path}: dev {counts[(True, 'dev')]} answerable + {counts[(False, 'dev')]} unanswerable, "
            f"test {counts[(True, 'test')]} answerable + {counts[(False, 'test')]} unanswerable"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
