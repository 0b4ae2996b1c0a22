"""How much of a routed answer's time the selector takes, per selector kind.

A router over the zoo specialists (LLM1 -> zoo:domotica, LLM2 -> zoo:tiempo) answers held-out
prompts of both tasks; its trace splits each answer's time into ``selector_s`` (choosing the route)
and ``generate_s`` (the routed specialist answering). Share = selector / total.

* one prompt at a time (``answer``: the interactive case): median of the per-answer shares, and
  the share of the summed times;
* a batch (``answer_batch`` of all the prompts at once).

Selector kinds: ``label_model`` (zoo:selector writes LLM1/LLM2, then the labels are scored for the
confidence), ``embedding`` (mean hidden state of zoo:base vs 8 example prompts per route; ``layer
-1`` runs the whole model once, ``layer 1`` stops after the first of its 4 layers, ``layer 0``
reads only the token embeddings), ``keywords``, and
``classifier`` (logistic regression on zoo:base's hidden states, trained here with
``train_selector``). The routing accuracy of each kind on the full held-out selector set (both
tasks) is reported too. A last row puts the embedding selector in front of bigger answering
models (the ~72M random Llama of bench/vote_batching.py as both routes). Goal: share <= 5% for
the embedding selector.

    python bench/router_overhead.py                 # ~1-3 minutes on 2 shared cores
    python bench/router_overhead.py --repeats 5 --prompts 40

Results: a table on stdout and ``bench/results/router_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vote_batching import machine_info  # noqa: E402

GOAL = 0.05
ROUTES = [{"label": "LLM1", "model": "zoo:domotica"}, {"label": "LLM2", "model": "zoo:tiempo"}]
KEYWORDS = {
    "LLM1": ["luz", "luces", "lampara", "ilumin", "led", "calef", "radiador", "aire", "clima",
             "persiana", "estor", "ventilador", "enchufe", "tele", "tv", "salon", "sala", "cocina",
             "dormitorio", "habitacion", "cuarto", "baño", "bano", "aseo", "garaje", "despacho",
             "oficina", "estudio", "pasillo", "comedor", "terraza", "entrada", "recibidor"],
    "LLM2": ["tiempo", "llov", "lluev", "lluvia", "paraguas", "agua", "frio", "calor", "viento",
             "rachas", "nev", "nieve", "prevision", "madrid", "barcelona", "sevilla", "valencia",
             "bilbao", "malaga", "zaragoza", "granada", "cadiz", "cordoba", "salamanca", "toledo",
             "vigo", "oviedo", "murcia", "alicante", "donostia", "palmas", "coruña", "leon",
             "santander", "valladolid", "pamplona", "burgos"],
}


def configs(classifier_dir: str) -> dict[str, dict]:
    from llmcombo.zoo import tasks

    train = tasks.selector_examples("train")
    with_examples = [dict(r, examples=[e.prompt for e in train if e.expected == r["label"]][:8])
                     for r in ROUTES]
    with_keywords = [dict(r, keywords=KEYWORDS[r["label"]]) for r in ROUTES]

    def router(selector, routes=None):
        return {"ensemble": {"router": {"selector": selector, "routes": routes or ROUTES,
                                        "fallback": "LLM1"}}}

    return {
        "label_model": router({"kind": "label_model", "model": "zoo:selector"}),
        "embedding (layer -1)": router({"kind": "embedding", "model": "zoo:base"}, with_examples),
        "embedding (layer 1)": router({"kind": "embedding", "model": "zoo:base", "layer": 1},
                                      with_examples),
        "embedding (layer 0)": router({"kind": "embedding", "model": "zoo:base", "layer": 0},
                                      with_examples),
        "keywords": router({"kind": "keywords"}, with_keywords),
        "classifier": router({"kind": "classifier", "model": classifier_dir}),
    }


def measure(name: str, cfg: dict, prompts: list[str], repeats: int, routing_set) -> dict:
    from llmcombo.ensemble import load_product

    router = load_product(cfg).load()
    router.answer_batch(prompts[:2])  # warm-up: centroids, first-call allocations
    shares, sel, tot = [], [], []
    for _ in range(repeats):
        for p in prompts:
            t = router.answer(p).trace["timings"]
            sel.append(t["selector_s"])
            tot.append(t["total_s"])
            shares.append(t["selector_s"] / t["total_s"])
    batch_sel, batch_tot = 0.0, 0.0
    for _ in range(repeats):
        answers = router.answer_batch(prompts)
        batch_sel += sum(a.trace["timings"]["selector_s"] for a in answers)
        batch_tot += sum(a.trace["timings"]["total_s"] for a in answers)
    t0 = time.perf_counter()
    decisions = router.route([e.prompt for e in routing_set])
    route_s = time.perf_counter() - t0
    hits = [d["route"] == e.expected for d, e in zip(decisions, routing_set)]
    return {"selector": name, "answers": len(shares),
            "median_share": round(statistics.median(shares), 4),
            "summed_share": round(sum(sel) / sum(tot), 4),
            "median_selector_ms": round(1000 * statistics.median(sel), 3),
            "median_total_ms": round(1000 * statistics.median(tot), 3),
            "batch_share": round(batch_sel / batch_tot, 4),
            "routing_accuracy": round(sum(hits) / len(hits), 4),
            "routing_n": len(hits),
            "fallbacks": sum(d["fallback"] for d in decisions),
            "route_all_s": round(route_s, 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=24, help="held-out prompts (half per task)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1, see bench/vote_batching.py; 0: torch's "
                         "default)")
    ap.add_argument("--work", default="/tmp/llmcombo-bench/router")
    ap.add_argument("--large-work", default="/tmp/llmcombo-bench/vote",
                    help="where the ~72M random Llama is (made if missing)")
    ap.add_argument("--no-large", action="store_true", help="skip the 72M-routes row")
    ap.add_argument("--out", default=str(HERE / "results" / "router_overhead.json"))
    args = ap.parse_args(argv)

    import torch

    from llmcombo import zoo
    from llmcombo.zoo import tasks
    from llmcombo.ensemble import train_selector

    if args.threads:
        torch.set_num_threads(args.threads)
    zoo.build()
    half = args.prompts // 2
    prompts = [e.prompt for t in ("domotica", "tiempo")
               for e in list(tasks.get_task(t).split("test"))[:half]]
    routing_set = tasks.selector_examples("test")
    load_before = os.getloadavg()
    started = time.time()
    clf = train_selector(tasks.selector_examples("train")[:600], base="zoo:base",
                         out=Path(args.work) / "classifier", kind="hidden_classifier",
                         test=routing_set)
    rows = []
    for name, cfg in configs(clf.path).items():
        rows.append(measure(name, cfg, prompts, args.repeats, routing_set))
        print(f"  {name}: {rows[-1]['median_share']:.1%}", file=sys.stderr, flush=True)
    if not args.no_large:
        # the same selector in front of bigger answering models: the ~72M random Llama of
        # bench/vote_batching.py as both routes (it writes max_new_tokens=16 tokens)
        from vote_batching import large_model

        big = str(large_model(Path(args.large_work), 768, 10, 2048, 12))
        cfg = configs(clf.path)["embedding (layer -1)"]
        cfg["ensemble"]["router"]["routes"] = [dict(r, model=big, max_new_tokens=16)
                                               for r in cfg["ensemble"]["router"]["routes"]]
        name = "embedding (layer -1), 72M routes"
        rows.append(measure(name, cfg, prompts[:: max(1, len(prompts) // 6)], 1, routing_set))
        print(f"  {name}: {rows[-1]['median_share']:.1%}", file=sys.stderr, flush=True)
    emb = [r for r in rows if r["selector"].startswith("embedding")]
    result = {"bench": "router_overhead", "goal": f"embedding selector share <= {GOAL:.0%}",
              "machine": machine_info(torch.get_num_threads()),
              "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()],
              "seconds": round(time.time() - started, 1),
              "train_selector_classifier": {"accuracy": clf.accuracy, "n_train": clf.n_train,
                                            "n_test": clf.n_test, "seconds": clf.seconds},
              "rows": rows,
              "goal_met": {r["selector"]: r["median_share"] <= GOAL for r in emb}}
    head = (f"{'selector':33s} {'share (median)':>15s} {'share (sum)':>12s} {'batch share':>12s} "
            f"{'selector ms':>12s} {'total ms':>9s} {'routing acc':>12s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['selector']:33s} {r['median_share']:15.1%} {r['summed_share']:12.1%} "
              f"{r['batch_share']:12.1%} {r['median_selector_ms']:12.2f} "
              f"{r['median_total_ms']:9.2f} {r['routing_accuracy']:11.1%}")
    print(f"{rows[0]['answers']} single answers per selector, routing accuracy on "
          f"{rows[0]['routing_n']} held-out prompts; torch threads {torch.get_num_threads()}, "
          f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
