"""Calibrate the answerability gate of a pipeline profile on the dev split of the shipped eval sets.

Usage:
    .venv/bin/python scripts/calibrate_answerability.py [--pipelines pipelines] [--split dev] [--data-dir DIR]
        [--sets eval/sqlite/questions.jsonl eval/debian-reference/questions.jsonl eval/gnuplot/questions.jsonl]
        [--max-false-refusals 0.05]

For every question of the split it runs the profile's query pipeline up to the prompt (retrieval, gate, the
`selector`, no LLM), computes the `answerability` component's signals, then searches weights and a threshold:
the highest refusal accuracy on unanswerable questions whose false-refusal rate on answerable ones stays within
`--max-false-refusals`, ties broken by the larger margin. Prints the signals per question and the best settings to
paste into query.yml (objective: refusal accuracy minus false refusals, false refusals within the limit, ties
broken by the distance from the threshold to the nearest question's score). Run it on dev; run it once with
`--split test --weights ... --threshold ...` to report
the chosen settings on the test split
(it then only evaluates them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


def collect(pipelines: Path, eval_set: Path, split: str, data_dir: Path) -> list[dict]:
    from haystack.core.serialization import component_from_dict, component_to_dict

    from app.composition import eval_services
    from app.services.evaluation import Evaluator, load_eval_set, select_split
    from app.services.query_filters import scoped_filters
    from app.settings import Settings
    from components.routers.answerability_gate import AnswerabilityGate

    services = eval_services(Settings(), pipelines, data_dir)
    evaluator = Evaluator(services)
    collection = evaluator.ensure_corpus(eval_set.parent / "corpus")
    spec = services.pipelines.query
    pipeline = spec.pipeline
    pipeline.warm_up()
    selector = pipeline.get_component("selector")
    shipped = pipeline.get_component("answerability")
    # the shipped gate's settings with `known_terms` weighed, so that signal is computed even when the profile's gate
    # does not weigh it (its tokenizer and word list are loaded only then)
    config = component_to_dict(shipped, "answerability")
    config["init_parameters"]["weights"] = {"known_terms": 1.0}
    gate = component_from_dict(AnswerabilityGate, config, "answerability")
    rows = []
    for question in select_split(load_eval_set(eval_set), split):
        data = spec.run_data(
            question=question.question,
            filters=scoped_filters(collection, None),
            top_k=5,
            candidates=10,
            generate=False,
        )
        result = pipeline.run(
            data, include_outputs_from={"text_embedder", "embedding_retriever", "keyword_retriever", "gate"}
        )
        passages = result["gate"]["passages"]
        selected = selector.run(
            documents=passages,
            question=question.question,
            query_embedding=result["text_embedder"]["embedding"],
        )["documents"]
        signals = gate.signals(
            question.question,
            selected,
            result["embedding_retriever"]["documents"],
            result["keyword_retriever"]["documents"],
        )
        rows.append({"set": eval_set.parent.name, "id": question.id, "answerable": question.answerable, **signals})
    return rows


def rates(rows: list[dict], weights: dict[str, float], threshold: float) -> tuple[float, float]:
    def score(row: dict) -> float:
        return sum(w * row[name] for name, w in weights.items())

    unanswerable = [r for r in rows if not r["answerable"]]
    answerable = [r for r in rows if r["answerable"]]
    refusal = sum(score(r) < threshold for r in unanswerable) / max(len(unanswerable), 1)
    false_refusal = sum(score(r) < threshold for r in answerable) / max(len(answerable), 1)
    return refusal, false_refusal


def search(rows: list[dict], max_false: float) -> tuple[dict[str, float], float, float, float]:
    best: tuple[float, float, dict[str, float], float, float, float] | None = None
    grid = [0.0, 0.25, 0.5, 1.0]
    for dense, coverage, selection, known in itertools.product(grid, grid, grid, grid):
        if not dense + coverage + selection + known:
            continue
        weights = {"dense": dense, "coverage": coverage, "selection": selection, "known_terms": known}
        scores = sorted({sum(w * r[n] for n, w in weights.items()) for r in rows})
        candidates = [(a + b) / 2 for a, b in itertools.pairwise(scores)]
        for threshold in candidates:
            refusal, false_refusal = rates(rows, weights, threshold)
            if false_refusal > max_false:
                continue
            # distance to the nearest question's score, in units of the largest weight: a threshold in the middle of
            # a wide gap, not on a dev question's score
            margin = min(abs(sum(w * r[n] for n, w in weights.items()) - threshold) for r in rows) / max(
                weights.values()
            )
            key = (round(refusal - false_refusal, 6), margin)
            if best is None or key > best[:2]:
                best = (key[0], margin, weights, threshold, refusal, false_refusal)
    if best is None:
        raise ValueError("no setting keeps false refusals within the limit")
    _, _, weights, threshold, refusal, false_refusal = best
    return weights, threshold, refusal, false_refusal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=Path, default=ROOT / "pipelines")
    parser.add_argument(
        "--sets",
        type=Path,
        nargs="+",
        default=[ROOT / f"eval/{name}/questions.jsonl" for name in ("sqlite", "debian-reference", "gnuplot")],
    )
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data/eval")
    parser.add_argument("--max-false-refusals", type=float, default=0.05)
    parser.add_argument("--weights", type=json.loads, help='evaluate these, e.g. \'{"dense": 1, "coverage": 0.5}\'')
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--dump", type=Path, help="write the signals of every question to this JSON file")
    parser.add_argument("--signals", type=Path, help="read the signals from a --dump file instead of running")
    args = parser.parse_args()
    if args.signals:
        rows = [
            r for r in json.loads(args.signals.read_text()) if Path(r["set"]).name in {s.parent.name for s in args.sets}
        ]
    else:
        rows = [r for eval_set in args.sets for r in collect(args.pipelines, eval_set, args.split, args.data_dir)]
    if args.dump:
        args.dump.write_text(json.dumps(rows, indent=1))
    print("| set | id | answerable | dense | coverage | selection | known_terms |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["answerable"], r["dense"])):
        print(
            f"| {r['set']} | {r['id']} | {r['answerable']} | {r['dense']:.3f} | {r['coverage']:.3f} "
            f"| {r['selection']:.3f} | {r['known_terms']:.1f} |"
        )
    if args.weights is not None and args.threshold is not None:
        refusal, false_refusal = rates(rows, args.weights, args.threshold)
        print(
            f"\n{args.split}: weights {args.weights} threshold {args.threshold}: "
            f"refusal {refusal:.3f}, false refusals {false_refusal:.3f}"
        )
        return
    weights, threshold, refusal, false_refusal = search(rows, args.max_false_refusals)
    top = max(weights.values())
    kept = {k: v / top for k, v in weights.items() if v}
    threshold /= top
    print(
        f"\nbest on {args.split}: weights {kept} threshold {threshold:.4f}: refusal {refusal:.3f}, "
        f"false refusals {false_refusal:.3f}"
    )
    for name in ("dense", "coverage", "selection", "known_terms"):
        single = {name: 1.0}
        best = max(
            ((rates(rows, single, t), t) for t in sorted({r[name] for r in rows})),
            key=lambda x: (x[0][1] <= args.max_false_refusals, x[0][0]),
        )
        print(f"  {name} alone: threshold {best[1]:.4f}: refusal {best[0][0]:.3f}, false refusals {best[0][1]:.3f}")


if __name__ == "__main__":
    main()
