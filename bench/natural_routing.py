"""Routing accuracy of the README's router on hand-written natural prompts.

The prompts are typed the way people type (accents, capitals, ¿?, cities and devices outside the
zoo's grammar), one JSON object per line: ``{"prompt": ..., "route": "LLM1"|"LLM2", "expected":
optional command}``, in ``tests/data/natural/domotica.jsonl`` and ``tiempo.jsonl`` (or ``--data
DIR``). The router is the README's::

    selector: {kind: label_model, model: zoo:selector, threshold: 0.6}
    fallback: LLM1
    routes: [{label: LLM1, model: zoo:domotica}, {label: LLM2, model: zoo:tiempo}]

Reported per file and overall: routing accuracy (the route taken, fallback included, equals the
prompt's ``route``) with its 95 % Wilson interval, how often the selector was unsure (fallback),
the answer accuracy on the prompts that have an ``expected`` command, and every misrouted prompt
with the selector's scores. Goal: routing accuracy >= 95 %.

    python bench/natural_routing.py                          # tests/data/natural
    python bench/natural_routing.py --data /path/to/natural  # drafts elsewhere
    python bench/natural_routing.py --selector keywords ...  # (default: the README's label_model)

Writes ``bench/results/natural_routing.json`` (with the machine and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT / "tests" / "data" / "natural"
GOAL = 0.95

README_ROUTER = {"name": "readme-router", "ensemble": {"router": {
    "selector": {"kind": "label_model", "model": "zoo:selector", "threshold": 0.6},
    "fallback": "LLM1",
    "routes": [{"label": "LLM1", "model": "zoo:domotica"},
               {"label": "LLM2", "model": "zoo:tiempo"}]}}}


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("route"), str):
            raise SystemExit(f"{path}:{i}: each line needs a 'prompt' and a 'route'")
        rows.append(row)
    return rows


def measure(router, rows: list[dict]) -> dict:
    from llmcombo.datasets import normalize_answer
    from llmcombo.evaluate import wilson_interval

    answers = router.answer_batch([r["prompt"] for r in rows])
    routed = [a.trace["route"] == r["route"] for a, r in zip(answers, rows)]
    with_expected = [(a, r) for a, r in zip(answers, rows) if r.get("expected")]
    correct = [normalize_answer(a.text) == normalize_answer(r["expected"]) for a, r in with_expected]
    n, k = len(rows), sum(routed)
    lo, hi = wilson_interval(k, n) if n else (float("nan"), float("nan"))
    return {
        "n": n, "routed_correctly": k, "routing_accuracy": k / n if n else None,
        "ci95": [lo, hi], "fallbacks": sum(bool(a.trace["fallback"]) for a in answers),
        "n_with_expected": len(with_expected),
        "answer_accuracy": (sum(correct) / len(correct)) if correct else None,
        "misrouted": [{"prompt": r["prompt"], "route": r["route"], "taken": a.trace["route"],
                       "confidence": round(float(a.trace["confidence"]), 3),
                       "scores": a.trace["selector"]["scores"], "reason": a.trace["reason"]}
                      for a, r, ok in zip(answers, rows, routed) if not ok],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with the *.jsonl files")
    ap.add_argument("--selector", default=None,
                    help="a selector block as JSON, replacing the README's (e.g. "
                         "'{\"kind\": \"label_model\", \"model\": \"zoo:selector\", \"threshold\": 0.5}')")
    ap.add_argument("--out", default=str(HERE / "results" / "natural_routing.json"))
    args = ap.parse_args()

    data = Path(args.data)
    files = sorted(data.glob("*.jsonl")) if data.is_dir() else []
    if not files:
        print(f"no natural prompt files (*.jsonl) in {data}; they land as tests/data/natural/"
              "{domotica,tiempo}.jsonl with the new zoo, or pass --data DIR.", file=sys.stderr)
        return 2
    import copy

    from llmcombo.ensemble import load_product

    config = copy.deepcopy(README_ROUTER)
    if args.selector:
        config["ensemble"]["router"]["selector"] = json.loads(args.selector)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    router = load_product(config).load()
    per_file, everything = {}, []
    for f in files:
        rows = read_jsonl(f)
        everything += rows
        per_file[f.name] = measure(router, rows)
    overall = measure(router, everything)
    seconds = time.perf_counter() - t0
    load_after = os.getloadavg()

    import torch
    import transformers

    from llmcombo import zoo

    manifest = zoo.Zoo(zoo.default_dir()).manifest if zoo.is_complete(zoo.default_dir()) else {}
    result = {
        "bench": "natural_routing", "goal": f"routing accuracy >= {GOAL:.0%}",
        "router": config["ensemble"]["router"], "data": str(data),
        "files": {f.name: len(read_jsonl(f)) for f in files},
        "zoo": {"dir": str(zoo.default_dir()), "version": manifest.get("zoo_version"),
                "created": manifest.get("created")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "platform": platform.platform()},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "seconds": round(seconds, 1),
        "overall": overall, "per_file": per_file,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    for name, m in list(per_file.items()) + [("overall", overall)]:
        ans = f", answers {m['answer_accuracy']:.1%} of {m['n_with_expected']}" \
            if m["answer_accuracy"] is not None else ""
        print(f"{name:16s} routed {m['routed_correctly']}/{m['n']} = {m['routing_accuracy']:.1%} "
              f"[{m['ci95'][0]:.1%}, {m['ci95'][1]:.1%}], {m['fallbacks']} fallback(s){ans}")
    print(f"goal {GOAL:.0%}: {'met' if overall['routing_accuracy'] >= GOAL else 'NOT met'}; "
          f"load {result['loadavg_before']} -> {result['loadavg_after']}; {seconds:.1f} s; "
          f"written to {args.out}")
    for m in overall["misrouted"][:20]:
        print(f"  misrouted: {m['prompt']!r} ({m['route']}) -> {m['taken']} "
              f"conf {m['confidence']}: {m['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
