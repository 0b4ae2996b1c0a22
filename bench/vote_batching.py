"""N votes of one model: one batched generation vs N sequential generations.

A vote over N samples of one model (``ensemble.vote`` with one member and ``samples: N``) asks
:func:`llmcombo.ensemble.members.generate` for ``n=N`` answers, which is ONE ``model.generate``
call with ``num_return_sequences=N``. The alternative is N calls with ``n=1``. Both use the same
model, prompt, sampling settings (temperature, seed) and ``max_new_tokens``; the time is the wall
time of the call(s), tokenisation and decoding included (what a vote pays).

Models:

* ``zoo:domotica`` (~0.9M parameters, the noisy specialist of the tests, temperature 1.0);
* ``large``: a randomly initialised Llama with the zoo's tokenizer, scaled to ~72M parameters
  (no download is possible here), written once to ``--work``. Random weights rarely emit the end
  of sequence, so every sample runs to ``max_new_tokens`` (16): the compute-bound case.

For every repeat and prompt we time the batched call and the sequential calls back to back
(alternating which goes first) and take the ratio ``sequential / batched``; the table shows the
median ratio and the median times. Goal: batched >= 2.5x faster for N=5 on zoo models.

    python bench/vote_batching.py                    # ~2-4 minutes on 2 shared cores
    python bench/vote_batching.py --repeats 5 --threads 0   # torch's default threads

Results: a table on stdout and ``bench/results/vote_batching.json`` (machine, torch threads and
load averages before/after: other people share this CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOAL = 2.5


def machine_info(threads: int) -> dict:
    import torch
    import transformers

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_threads": threads, "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def large_model(work: Path, hidden: int, layers: int, inter: int, heads: int) -> Path:
    """A random Llama with the zoo's tokenizer (saved once, reused while the shape matches)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llmcombo import zoo

    folder = work / f"llama-h{hidden}-l{layers}-i{inter}"
    if (folder / "config.json").is_file():
        return folder
    tok = AutoTokenizer.from_pretrained(zoo.model_path("base"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, max_position_embeddings=128,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    os.replace(tmp, folder)
    return folder


def measure(ref: str, prompts: list[str], n: int, repeats: int, *, temperature: float,
            max_new_tokens: int, seed: int = 0) -> dict:
    from llmcombo.ensemble import members as M

    lm = M.load_model(ref, device="cpu")
    rendered = [M.render("[ORDEN] {input} [COMANDO]", p) for p in prompts]
    kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, output="command")

    def batched(p):
        return M.generate(lm, [p], n=n, seed=seed, **kw)[0]

    def sequential(p):
        return [M.generate(lm, [p], n=1, seed=seed + i, **kw)[0][0] for i in range(n)]

    batched(rendered[0]), sequential(rendered[0])  # warm-up (first calls allocate, compile)
    t_b, t_s, ratios, tokens_b, tokens_s = [], [], [], [], []
    for r in range(repeats):
        for i, p in enumerate(rendered):
            order = (batched, sequential) if (r + i) % 2 == 0 else (sequential, batched)
            got = {}
            for fn in order:
                t0 = time.perf_counter()
                gens = fn(p)
                got[fn.__name__] = (time.perf_counter() - t0, gens)
            (tb, gb), (ts, gs) = got["batched"], got["sequential"]
            assert len(gb) == len(gs) == n
            t_b.append(tb)
            t_s.append(ts)
            ratios.append(ts / tb)
            tokens_b.append(sum(g.tokens for g in gb))
            tokens_s.append(sum(g.tokens for g in gs))
    return {"model": ref, "parameters": lm.parameters, "n": n, "temperature": temperature,
            "max_new_tokens": max_new_tokens, "prompts": len(prompts), "repeats": repeats,
            "pairs": len(ratios), "median_ratio": round(statistics.median(ratios), 3),
            "min_ratio": round(min(ratios), 3), "max_ratio": round(max(ratios), 3),
            "median_batched_ms": round(1000 * statistics.median(t_b), 2),
            "median_sequential_ms": round(1000 * statistics.median(t_s), 2),
            "mean_tokens_batched": round(statistics.mean(tokens_b), 1),
            "mean_tokens_sequential": round(statistics.mean(tokens_s), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=8, help="repeats over the prompts (zoo)")
    ap.add_argument("--large-repeats", type=int, default=3, help="repeats for the large model")
    ap.add_argument("--prompts", type=int, default=4, help="held-out domotica prompts")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on this 2-core machine shared with other "
                         "jobs, 2 threads made both variants 5-10x slower and the ratio noise; "
                         "0: torch's default)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--inter", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--work", default="/tmp/llmcombo-bench/vote", help="large model cache")
    ap.add_argument("--no-large", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "vote_batching.json"))
    args = ap.parse_args(argv)

    import torch

    from llmcombo import zoo
    from llmcombo.zoo import tasks

    if args.threads:
        torch.set_num_threads(args.threads)
    zoo.build()
    prompts = [e.prompt for e in tasks.get_task("domotica").split("test")[: args.prompts]]
    load_before = os.getloadavg()
    started = time.time()
    rows = []
    for n in (3, 5):
        rows.append(measure("zoo:domotica", prompts, n, args.repeats,
                            temperature=args.temperature, max_new_tokens=24))
        print(f"  zoo:domotica N={n}: {rows[-1]['median_ratio']}x", file=sys.stderr, flush=True)
    if not args.no_large:
        folder = large_model(Path(args.work), args.hidden, args.layers, args.inter, args.heads)
        for n in (3, 5):
            rows.append(measure(str(folder), prompts[:2], n, args.large_repeats,
                                temperature=1.0, max_new_tokens=16))
            rows[-1]["model"] = "large (random Llama)"
            print(f"  large N={n}: {rows[-1]['median_ratio']}x", file=sys.stderr, flush=True)
    result = {"bench": "vote_batching", "goal": f"N=5 batched >= {GOAL}x faster (zoo models)",
              "machine": machine_info(torch.get_num_threads()),
              "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()],
              "seconds": round(time.time() - started, 1), "rows": rows}
    five = [r for r in rows if r["n"] == 5 and r["model"] == "zoo:domotica"]
    result["goal_met"] = bool(five and five[0]["median_ratio"] >= GOAL)

    head = (f"{'model':22s} {'params':>8s} {'N':>2s} {'batched ms':>11s} {'sequential ms':>14s} "
            f"{'ratio (median)':>15s} {'min-max':>12s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:22s} {r['parameters'] / 1e6:7.1f}M {r['n']:2d} "
              f"{r['median_batched_ms']:11.1f} {r['median_sequential_ms']:14.1f} "
              f"{r['median_ratio']:14.2f}x {r['min_ratio']:5.2f}-{r['max_ratio']:<5.2f}")
    print(f"torch threads {torch.get_num_threads()}, load average before "
          f"{result['loadavg_before']}, after {result['loadavg_after']}; goal "
          f"{'met' if result['goal_met'] else 'NOT met'} ({result['goal']})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
