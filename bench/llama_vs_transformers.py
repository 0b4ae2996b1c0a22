"""llama.cpp (``backend: llama_cpp``) against transformers on the zoo models: the figures of the
llama.cpp issue.

1. **latency**: ``answer()`` of one held-out prompt at a time (greedy, the same prompts, variants
   interleaved call by call; medians) on transformers and on llama.cpp (f16, q8_0). Goal: llama.cpp
   >= 3x faster.
2. **vote**: N = 3 and 5 sampled answers of zoo:domotica on llama.cpp, batched (one member with
   ``samples: N``: N sequences in one decode loop) against sequential (N members with one sample
   each: N decode loops); transformers' batched vote for reference. Goal: batched >= 2.5x.
3. **router**: the selector's share of a routed answer (``selector_s / total_s`` of the trace),
   every model on llama.cpp, per selector kind (label_model: zoo:selector scores LLM1/LLM2 after
   the prompt in one decode; embedding at layers -1 / 1 / 0 of zoo:base; keywords); the
   transformers label_model for reference. Goal: <= 5 %.
4. **accuracy** of the zoo specialists on their full held-out test splits (and the selector's
   routing accuracy) on transformers and after GGUF f16 / q8_0 conversion. Goal: f16 within 0.5
   points, q8_0 within 2 points.

llama.cpp runs with 1 thread (the backend's default for models this small) and torch with 1
thread (as the other benches: two threads on 2 shared cores are several times slower).

    python bench/llama_vs_transformers.py                       # ~5 minutes on 2 shared cores
    LLMCOMBO_ZOO_DIR=/path/to/zoo python bench/llama_vs_transformers.py --note "zoo v2"

Needs a zoo whose tokenizer llama.cpp reads (zoo v2; zoo v1's is refused). Results: a table on
stdout and ``bench/results/llama_vs_transformers.json`` (with the load average before and after).
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
from router_overhead import KEYWORDS, ROUTES, measure  # noqa: E402
from vote_batching import machine_info  # noqa: E402

TASKS = ("domotica", "tiempo")


def held_out(task: str, n: int | None = None) -> list:
    from llmcombo.zoo import tasks

    examples = list(tasks.get_task(task).split("test"))
    return examples[:n] if n else examples


def _median_ms(xs) -> float:
    return round(1000 * statistics.median(xs), 3)


def latency(prompts: list[str], rounds: int) -> dict:
    from llmcombo.ensemble import SingleModel

    variants = {"transformers": SingleModel("zoo:domotica"),
                "llama.cpp f16": SingleModel("zoo:domotica", backend="llama_cpp"),
                "llama.cpp q8_0": SingleModel("zoo:domotica", backend="llama_cpp", quant="q8_0")}
    times: dict[str, list[float]] = {k: [] for k in variants}
    answers: dict[str, list[str]] = {k: [] for k in variants}
    for v in variants.values():
        v.load().answer(prompts[0])  # warm-up
    for r in range(rounds):
        for p in prompts:
            for name, v in variants.items():  # interleaved: the load hits every variant alike
                t = time.perf_counter()
                a = v.answer(p)
                times[name].append(time.perf_counter() - t)
                if r == 0:
                    answers[name].append(a.text)
    ref = answers["transformers"]
    out = {name: {"median_ms": _median_ms(ts), "p90_ms": round(1000 * sorted(ts)[int(.9 * len(ts))], 3),
                  "same_answers": sum(a == b for a, b in zip(answers[name], ref)) / len(ref)}
           for name, ts in times.items()}
    for name in out:
        out[name]["speedup_vs_transformers"] = round(out["transformers"]["median_ms"]
                                                     / out[name]["median_ms"], 2)
    return out


def vote(prompts: list[str], rounds: int, n: int) -> dict:
    from llmcombo.ensemble import load_product

    def cfg(members, samples, backend):
        return {"ensemble": {"vote": {
            "members": [{"model": "zoo:domotica", "backend": backend}] * members,
            "samples": samples, "tie_break": "first",
            "sampling": {"temperature": 1.0, "seed": 0}}}}

    variants = {"llama.cpp batched": load_product(cfg(1, n, "llama_cpp")).load(),
                "llama.cpp sequential": load_product(cfg(n, 1, "llama_cpp")).load(),
                "transformers batched": load_product(cfg(1, n, "transformers")).load()}
    lm = variants["llama.cpp batched"].voters[0].lm
    times: dict[str, list[float]] = {k: [] for k in variants}
    loops: dict[str, list[int]] = {k: [] for k in variants if k.startswith("llama")}
    for v in variants.values():
        v.answer(prompts[0])
    for _ in range(rounds):
        for p in prompts:
            for name, v in variants.items():
                before = lm.decode_calls
                t = time.perf_counter()
                v.answer(p)
                times[name].append(time.perf_counter() - t)
                if name in loops:
                    loops[name].append(lm.decode_calls - before)
    out = {name: {"median_ms": _median_ms(ts)} for name, ts in times.items()}
    for name, calls in loops.items():
        out[name]["median_llama_decode_calls"] = statistics.median(calls)
    out["batched_speedup"] = round(out["llama.cpp sequential"]["median_ms"]
                                   / out["llama.cpp batched"]["median_ms"], 2)
    return out


def router_configs() -> dict[str, dict]:
    from llmcombo.zoo import tasks

    train = tasks.selector_examples("train")
    llama = [dict(r, backend="llama_cpp") for r in ROUTES]
    examples = [dict(r, examples=[e.prompt for e in train if e.expected == r["label"]][:8])
                for r in llama]
    keywords = [dict(r, keywords=KEYWORDS[r["label"]]) for r in llama]

    def router(selector, routes):
        return {"ensemble": {"router": {"selector": selector, "routes": routes,
                                        "fallback": "LLM1"}}}

    emb = {"kind": "embedding", "model": "zoo:base", "backend": "llama_cpp"}
    return {
        "label_model": router({"kind": "label_model", "model": "zoo:selector",
                               "backend": "llama_cpp"}, llama),
        "embedding (layer -1)": router(emb, examples),
        "embedding (layer 1)": router(dict(emb, layer=1), examples),
        "embedding (layer 0)": router(dict(emb, layer=0), examples),
        "keywords": router({"kind": "keywords"}, keywords),
        "label_model, transformers (reference)": router(
            {"kind": "label_model", "model": "zoo:selector"}, ROUTES),
    }


def accuracy(limit: int | None) -> dict:
    from llmcombo.ensemble import SingleModel, accuracy as acc, load_product
    from llmcombo.zoo import tasks

    out: dict = {}
    for task in TASKS:
        examples = held_out(task, limit)
        row = {"n": len(examples)}
        for name, kw in (("transformers", {}), ("f16", {"backend": "llama_cpp"}),
                         ("q8_0", {"backend": "llama_cpp", "quant": "q8_0"}),
                         ("q4_k_m", {"backend": "llama_cpp", "quant": "q4_k_m"})):
            row[name] = round(acc(SingleModel(f"zoo:{task}", **kw), examples), 4)
        row["f16_delta_points"] = round(100 * (row["f16"] - row["transformers"]), 2)
        row["q8_0_delta_points"] = round(100 * (row["q8_0"] - row["transformers"]), 2)
        out[task] = row
    routing = tasks.selector_examples("test")[:limit] if limit else tasks.selector_examples("test")
    row = {"n": len(routing)}
    for name, backend in (("transformers", "transformers"), ("f16", "llama_cpp")):
        router = load_product(router_configs()["label_model"]) if backend == "llama_cpp" else \
            load_product(router_configs()["label_model, transformers (reference)"])
        decisions = router.route([e.prompt for e in routing])
        row[name] = round(sum(d["route"] == e.expected for d, e in zip(decisions, routing))
                          / len(routing), 4)
    out["routing (label_model)"] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=20, help="held-out prompts for the timings")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--accuracy-limit", type=int, default=None,
                    help="held-out prompts per task for the accuracies (default: all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--note", default="", help="recorded with the results (which zoo, ...)")
    ap.add_argument("--out", default=str(HERE / "results" / "llama_vs_transformers.json"))
    args = ap.parse_args(argv)

    import torch

    from llmcombo import zoo
    from llmcombo.gguf.export import converter_version

    if args.threads:
        torch.set_num_threads(args.threads)
    z = zoo.build()
    half = args.prompts // 2
    prompts = [e.prompt for t in TASKS for e in held_out(t, half)]
    dom = [e.prompt for e in held_out("domotica", args.prompts)]
    load_before = os.getloadavg()
    started = time.time()
    result: dict = {"bench": "llama_vs_transformers", "note": args.note,
                    "zoo": {"dir": str(z.dir), "zoo_version": z.manifest.get("zoo_version")},
                    "llama_cpp_python": converter_version(),
                    "machine": machine_info(torch.get_num_threads()),
                    "loadavg_before": [round(x, 2) for x in load_before]}
    print("latency ...", file=sys.stderr, flush=True)
    result["latency"] = latency(prompts, args.rounds)
    for n in (3, 5):
        print(f"vote N={n} ...", file=sys.stderr, flush=True)
        result[f"vote_n{n}"] = vote(dom[: max(4, half)], args.rounds, n)
    print("router ...", file=sys.stderr, flush=True)
    from llmcombo.zoo import tasks

    routing_set = tasks.selector_examples("test")
    result["router"] = [measure(name, cfg, prompts, max(1, args.rounds // 2), routing_set)
                        for name, cfg in router_configs().items()]
    print("accuracy ...", file=sys.stderr, flush=True)
    result["accuracy"] = accuracy(args.accuracy_limit)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.time() - started, 1)
    lat = result["latency"]
    shares = {r["selector"]: r["median_share"] for r in result["router"]}
    acc = result["accuracy"]
    result["goals"] = {
        "latency >= 3x": lat["llama.cpp f16"]["speedup_vs_transformers"] >= 3,
        "vote N=3 batched >= 2.5x": result["vote_n3"]["batched_speedup"] >= 2.5,
        "vote N=5 batched >= 2.5x": result["vote_n5"]["batched_speedup"] >= 2.5,
        "selector share <= 5% (kinds that meet it)": sorted(k for k, v in shares.items()
                                                            if v <= 0.05),
        "f16 within 0.5 points": all(abs(acc[t]["f16_delta_points"]) <= 0.5 for t in TASKS),
        "q8_0 within 2 points": all(abs(acc[t]["q8_0_delta_points"]) <= 2 for t in TASKS),
    }

    print(f"\nanswer latency, one prompt at a time ({len(prompts)} prompts x {args.rounds}):")
    for name, r in lat.items():
        print(f"  {name:16s} {r['median_ms']:8.2f} ms  ({r['speedup_vs_transformers']:.1f}x, "
              f"same answers {r['same_answers']:.0%})")
    for n in (3, 5):
        v = result[f"vote_n{n}"]
        print(f"vote N={n}: " + ", ".join(f"{k} {r['median_ms']:.2f} ms" for k, r in v.items()
                                         if isinstance(r, dict))
              + f" -> batched {v['batched_speedup']:.2f}x")
    print("router, selector's share of an answer (median):")
    for r in result["router"]:
        print(f"  {r['selector']:40s} {r['median_share']:6.1%}  routing {r['routing_accuracy']:.1%}")
    print("accuracy on the held-out test splits:")
    for t, r in acc.items():
        print(f"  {t:22s} " + ", ".join(f"{k} {v}" for k, v in r.items()))
    print(f"goals: {result['goals']}")
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}; "
          f"{result['seconds']} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
