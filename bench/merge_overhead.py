"""Overhead of ``llmcombo merge`` over ``mergekit-yaml`` on the same TIES configuration.

Zoo-shaped models (LlamaForCausalLM, float32, untied embeddings, one shared tokenizer; a base and
two fine-tunes = base + small noise) are scaled up until one merge takes several seconds on this
CPU. Both commands run as child processes, alternating, ``--runs`` times each after one untimed
warm-up each (so both see a warm page cache). Per run we record the wall time and the child's peak
RSS (``os.wait4`` rusage ``ru_maxrss``: that child only).

A linear merge is also compared with an I/O floor: the time to read every input weight file and to
write as many bytes as the output holds (no fsync, like mergekit), plus the interpreter's import
floor (``python -c "import mergekit.merge"``).

    python bench/merge_overhead.py                 # ~5-10 minutes on 2 cores
    python bench/merge_overhead.py --runs 3 --layers 4

Results: a table on stdout and ``bench/results/merge_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def make_models(root: Path, *, hidden: int, layers: int, vocab: int, inter: int, heads: int,
                kv_heads: int, seed: int = 0) -> dict[str, Path]:
    """base + two fine-tunes (base + noise), written directly as safetensors (fast)."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    names = ("base", "domotica", "tiempo")
    paths = {n: root / n for n in names}
    stamp = root / "shape.json"
    shape = dict(hidden=hidden, layers=layers, vocab=vocab, inter=inter, heads=heads,
                 kv_heads=kv_heads, seed=seed)
    if stamp.exists() and json.loads(stamp.read_text()) == shape and \
            all((p / "model.safetensors").exists() for p in paths.values()):
        return paths
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    from llmcombo.zoo import train_tokenizer

    tok = train_tokenizer(["[ORDEN] apaga la luz del salon [COMANDO] LUZ_SL OFF"] * 20, 300)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, max_position_embeddings=128,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg.architectures = ["LlamaForCausalLM"]
    head_dim = hidden // heads
    g = torch.Generator().manual_seed(seed)
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,),
              "lm_head.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
                       p + "self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
                       p + "self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
                       p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
                       p + "mlp.gate_proj.weight": (inter, hidden),
                       p + "mlp.up_proj.weight": (inter, hidden),
                       p + "mlp.down_proj.weight": (hidden, inter),
                       p + "input_layernorm.weight": (hidden,),
                       p + "post_attention_layernorm.weight": (hidden,)})
    base = {k: (torch.randn(s, generator=g) * 0.02 if len(s) == 2 else torch.ones(s))
            for k, s in shapes.items()}
    for j, name in enumerate(names):
        folder = paths[name]
        folder.mkdir()
        tensors = base if j == 0 else {
            k: v + torch.randn(v.shape, generator=g) * 0.002 for k, v in base.items()}
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        cfg.save_pretrained(folder)
        tok.save_pretrained(folder)
    stamp.write_text(json.dumps(shape))
    return paths


def write_configs(root: Path, paths: dict[str, Path]) -> dict[str, Path]:
    import yaml

    ties = {"merge_method": "ties", "base_model": str(paths["base"]), "dtype": "float32",
            "models": [{"model": str(paths[n]), "parameters": {"weight": 0.5, "density": 0.5}}
                       for n in ("domotica", "tiempo")]}
    linear = {"merge_method": "linear", "dtype": "float32",
              "models": [{"model": str(paths[n]), "parameters": {"weight": 1.0 / 3}}
                         for n in ("base", "domotica", "tiempo")]}
    out = {}
    for name, doc in (("ties", ties), ("linear", linear)):
        out[name] = root / f"{name}.yml"
        out[name].write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def timed(cmd: list[str], env=None) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes of that child, exit status)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    # read stderr while waiting so a chatty child never blocks on a full pipe
    err_chunks = []

    def drain():
        for chunk in iter(lambda: proc.stderr.read(65536), b""):
            err_chunks.append(chunk)

    import threading

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(b"".join(err_chunks)[-3000:].decode(errors="replace"))
    return wall, usage.ru_maxrss * 1024, proc.returncode


def tool_cmd(tool: str, cfg: Path, out: Path) -> list[str]:
    if tool == "llmcombo":
        return [str(BIN / "llmcombo"), "merge", str(cfg), str(out), "--device", "cpu"]
    return [str(BIN / "mergekit-yaml"), str(cfg), str(out)]


def run_pair(cfg: Path, work: Path, runs: int, label: str) -> dict:
    results = {"llmcombo": [], "mergekit": []}
    inproc = []
    for warm in ("llmcombo", "mergekit"):  # untimed warm-up: page cache, .pyc files
        out = work / f"warm-{warm}"
        shutil.rmtree(out, ignore_errors=True)
        _, _, rc = timed(tool_cmd(warm, cfg, out))
        assert rc == 0, f"{warm} warm-up failed"
        shutil.rmtree(out, ignore_errors=True)
    for i in range(runs):
        order = ("llmcombo", "mergekit") if i % 2 == 0 else ("mergekit", "llmcombo")
        for tool in order:
            out = work / f"{label}-{tool}-{i}"
            shutil.rmtree(out, ignore_errors=True)
            wall, rss, rc = timed(tool_cmd(tool, cfg, out))
            assert rc == 0, f"{tool} run {i} failed"
            if tool == "llmcombo":
                lineage = json.loads((out / "llmcombo_lineage.json").read_text())
                inproc.append(lineage["seconds"])
            results[tool].append({"wall_s": round(wall, 3), "peak_rss_bytes": rss})
            print(f"  {label} run {i + 1}/{runs} {tool:9s} {wall:7.2f} s  "
                  f"{rss / 2**20:8.0f} MiB", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    summary = {}
    for tool, rows in results.items():
        summary[tool] = {"median_wall_s": statistics.median(r["wall_s"] for r in rows),
                         "median_peak_rss_bytes": int(statistics.median(r["peak_rss_bytes"]
                                                                        for r in rows)),
                         "runs": rows}
    summary["llmcombo"]["median_in_process_s"] = statistics.median(inproc)
    summary["wall_ratio"] = summary["llmcombo"]["median_wall_s"] / summary["mergekit"]["median_wall_s"]
    summary["rss_ratio"] = (summary["llmcombo"]["median_peak_rss_bytes"]
                            / summary["mergekit"]["median_peak_rss_bytes"])
    return summary


def io_floor(inputs: list[Path], out_bytes: int, work: Path) -> dict:
    """Seconds to read the inputs (warm cache, as in the merges) and write ``out_bytes``."""
    t0 = time.perf_counter()
    total = 0
    for p in inputs:
        with open(p, "rb", buffering=0) as fh:
            buf = bytearray(64 * 2**20)
            while n := fh.readinto(buf):
                total += n
    t_read = time.perf_counter() - t0
    target = work / "io-floor.bin"
    chunk = b"\0" * (64 * 2**20)
    t0 = time.perf_counter()
    with open(target, "wb") as fh:
        left = out_bytes
        while left > 0:
            fh.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)
    t_write = time.perf_counter() - t0
    target.unlink()
    return {"read_s": round(t_read, 3), "write_s": round(t_write, 3),
            "total_s": round(t_read + t_write, 3), "read_bytes": total, "write_bytes": out_bytes}


def import_floor(n: int = 3) -> float:
    walls = [timed([sys.executable, "-c", "import mergekit.merge"])[0] for _ in range(n)]
    return statistics.median(walls)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.environ.get("LLMCOMBO_BENCH_DIR",
                                                     "/tmp/llmcombo-bench"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--linear-runs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--inter", type=int, default=2816)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "merge_overhead.json"))
    args = ap.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"models in {work} ...", flush=True)
    paths = make_models(work / "models", hidden=args.hidden, layers=args.layers, vocab=args.vocab,
                        inter=args.inter, heads=args.heads, kv_heads=args.kv_heads)
    cfgs = write_configs(work, paths)
    weights = [p / "model.safetensors" for p in paths.values()]
    model_bytes = weights[0].stat().st_size
    load0 = os.getloadavg()
    print(f"3 models x {model_bytes / 1e6:.0f} MB; TIES, {args.runs} runs each, alternating",
          flush=True)
    ties = run_pair(cfgs["ties"], work, args.runs, "ties")
    print(f"linear, {args.linear_runs} runs each", flush=True)
    linear = run_pair(cfgs["linear"], work, args.linear_runs, "linear")
    floor = io_floor(weights, model_bytes, work)
    imp = import_floor()
    load1 = os.getloadavg()

    from importlib import metadata

    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_start": load0,
                    "load_avg_end": load1},
        "versions": {p: metadata.version(p) for p in ("mergekit", "torch", "transformers",
                                                      "llmcombo")},
        "models": {"hidden": args.hidden, "intermediate": args.inter, "layers": args.layers,
                   "vocab": args.vocab, "heads": args.heads, "kv_heads": args.kv_heads,
                   "bytes_each": model_bytes, "dtype": "float32"},
        "ties": ties,
        "linear": linear,
        "io_floor": floor,
        "import_floor_s": round(imp, 3),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    def row(name, s):
        return (f"{name:8s} {s['llmcombo']['median_wall_s']:9.2f} {s['mergekit']['median_wall_s']:9.2f}"
                f" {s['wall_ratio']:7.3f} {s['llmcombo']['median_peak_rss_bytes'] / 2**20:9.0f}"
                f" {s['mergekit']['median_peak_rss_bytes'] / 2**20:9.0f} {s['rss_ratio']:7.3f}")

    print()
    print("merge    llmcombo  mergekit   wall   llm RSS    mk RSS    RSS")
    print("            (s)       (s)    ratio    (MiB)     (MiB)   ratio")
    print(row("ties", ties))
    print(row("linear", linear))
    print()
    print(f"goal: wall ratio <= 1.05, RSS ratio <= 1.10 (TIES: "
          f"{'met' if ties['wall_ratio'] <= 1.05 else 'NOT met'} / "
          f"{'met' if ties['rss_ratio'] <= 1.10 else 'NOT met'})")
    print(f"linear merge: llmcombo {linear['llmcombo']['median_wall_s']:.2f} s wall, "
          f"{linear['llmcombo']['median_in_process_s']:.2f} s in-process; mergekit "
          f"{linear['mergekit']['median_wall_s']:.2f} s wall")
    print(f"I/O floor: read {floor['read_bytes'] / 1e6:.0f} MB in {floor['read_s']:.2f} s + write "
          f"{floor['write_bytes'] / 1e6:.0f} MB in {floor['write_s']:.2f} s = {floor['total_s']:.2f} s;"
          f" import floor (python -c 'import mergekit.merge') {imp:.2f} s")
    print(f"load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
