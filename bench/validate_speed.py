"""How fast ``llmcombo validate`` is, and what it says about the corpus.

1. **Cold process**: ``llmcombo validate --no-preflight FILE`` as a child process, ``--runs``
   times on each of a few corpus files (a merge, a MoE, a multi-stage file); median wall time
   (goal <= 1.0 s on 2 cores; it was 6-18 s when validation imported mergekit -> torch). Also the
   interpreter floor (``python -c pass``) and the modules the command imported.
2. **One process over the corpus**: every ``tests/corpus/*.yml`` validated ``--passes`` times in
   one process (``llmcombo.cli.validate_file``, what ``llmcombo validate A B C ...`` runs);
   files per second, first pass (imports included) and the later passes (goal >= 50/s).
3. **The corpus**: accepted files that round-trip (import -> generate -> the same document under
   mergekit's own models), false errors (an error on a file expected valid; goal 0), problems
   caught (files expected to have a problem that get an error or the expected warnings; goal all).
   This part imports mergekit (torch) and runs after the timings.

    python bench/validate_speed.py              # ~1 minute on 2 cores
    python bench/validate_speed.py --runs 5 --passes 3

Results: a summary on stdout and ``bench/results/validate_speed.json`` (with the load average
at the start and the end: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = ROOT / "tests" / "corpus"
COLD_FILES = ("008-dare-ties-union-tokenizer.yml", "041-moe-hidden-negative-prompts.yml",
              "054-multistage-two-plus-final.yml")
HEAVY = ("torch", "transformers", "peft", "mergekit")


def _env(bytecode: bool) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def cold(runs: int, bytecode: bool = True) -> dict:
    """``bytecode``: Python's compiled-module cache is used (as after ``pip install``); without
    it every process compiles llmcombo's modules again (some sandboxes set
    PYTHONDONTWRITEBYTECODE=1 and have no __pycache__ for an editable install)."""
    env = _env(bytecode)
    if bytecode:  # one untimed run writes the cache
        import compileall

        compileall.compile_dir(str(ROOT / "llmcombo"), quiet=1)
    out: dict = {"files": {}, "bytecode_cache": bytecode}
    floor = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        floor.append(time.perf_counter() - t)
    out["python_floor_median_s"] = round(statistics.median(floor), 3)
    for name in COLD_FILES:
        walls = []
        for _ in range(runs):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "llmcombo.cli", "validate",
                                   "--no-preflight", str(CORPUS / name)],
                                  capture_output=True, text=True, env=env)
            walls.append(time.perf_counter() - t)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        out["files"][name] = {"median_wall_s": round(statistics.median(walls), 3),
                              "runs_s": [round(w, 3) for w in walls]}
    probe = ("import sys\nfrom llmcombo.cli import main\n"
             f"main(['validate', '--no-preflight', {str(CORPUS / COLD_FILES[0])!r}])\n"
             f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    out["heavy_modules_imported"] = proc.stdout.strip().splitlines()[-1].removeprefix("HEAVY=")
    out["median_wall_s"] = round(statistics.median(
        [w for f in out["files"].values() for w in f["runs_s"]]), 3)
    return out


def one_process(passes: int) -> dict:
    code = (
        "import json, sys, time\n"
        "t0 = time.perf_counter()\n"
        "from llmcombo.cli import validate_file\n"
        f"files = sorted(str(p) for p in __import__('pathlib').Path({str(CORPUS)!r}).glob('*.yml'))\n"
        "laps = []\n"
        f"for _ in range({passes}):\n"
        "    t = time.perf_counter()\n"
        "    for f in files:\n"
        "        validate_file(f, False)\n"
        "    laps.append(time.perf_counter() - t)\n"
        "print(json.dumps({'files': len(files), 'import_s': t0, 'laps_s': laps,\n"
        "                  'total_s': time.perf_counter() - t0}))\n")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(True), check=True)
    wall = time.perf_counter() - t
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    n = data["files"]
    first, later = data["laps_s"][0], data["laps_s"][1:]
    return {"files": n, "passes": passes, "process_wall_s": round(wall, 3),
            "first_pass_s": round(first, 3),
            "files_per_s_including_startup": round(n / wall, 1) if passes == 1 else
            round(n * passes / wall, 1),
            "files_per_s_first_pass": round(n / first, 1),
            "files_per_s_later_passes": round(n * len(later) / sum(later), 1) if later else None}


def corpus() -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    import yaml

    import test_corpus as T
    from llmcombo.errors import UserError

    counts = {"files": 0, "expected_ok": 0, "accepted_round_tripped": 0, "false_errors": [],
              "expected_problems": 0, "problems_caught": 0, "missed": [],
              "schema_agreement": {"documents": 0, "disagree": []}}
    for path in T.FILES:
        counts["files"] += 1
        verdict, details = T.expectation(path)
        try:
            cfg = T.load(path)
        except UserError:
            if verdict == "unreadable":
                counts["expected_problems"] += 1
                counts["problems_caught"] += 1
            else:
                counts["missed" if verdict != "ok" else "false_errors"].append(path.name)
            continue
        issues = T.issues_of(cfg)
        errors = [i for i in issues if i.is_error]
        codes = {i.code for i in issues if not i.is_error}
        problem = verdict != "ok" or bool(details)
        if verdict == "ok":
            counts["expected_ok"] += 1
            if errors:
                counts["false_errors"].append(path.name)
            else:
                try:
                    T.test_accepted_files_round_trip_under_mergekits_models(path)
                    counts["accepted_round_tripped"] += 1
                except AssertionError:
                    pass
        if problem:
            counts["expected_problems"] += 1
            caught = (bool(errors) and all(any(i.path == w for i in errors) for w in details)) \
                if verdict == "error" else (not errors and set(details) <= codes)
            counts["problems_caught"] += int(caught)
            if not caught:
                counts["missed"].append(path.name)
        for kind, doc in T._mergekit_documents(path):
            counts["schema_agreement"]["documents"] += 1
            theirs, ours = T._mergekit_reads(kind, doc), T._ours_reads(kind, doc)
            if theirs[0] != ours[0] or (theirs[0] and theirs[1] != ours[1]):
                counts["schema_agreement"]["disagree"].append(path.name)
    del yaml
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="cold runs per file (default 7)")
    ap.add_argument("--passes", type=int, default=5, help="passes over the corpus (default 5)")
    ap.add_argument("--out", default=str(HERE / "results" / "validate_speed.json"))
    args = ap.parse_args()
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(),
                          "load_avg_start": list(os.getloadavg())}}
    result["cold_process"] = cold(args.runs)
    result["cold_process_without_bytecode_cache"] = cold(args.runs, bytecode=False)
    result["one_process"] = one_process(args.passes)
    result["machine"]["load_avg_after_timings"] = list(os.getloadavg())
    result["corpus"] = corpus()
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    from importlib.metadata import version

    result["versions"] = {p: version(p) for p in ("llmcombo", "mergekit", "pydantic", "pyyaml")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    c, o, k = result["cold_process"], result["one_process"], result["corpus"]
    la = result["machine"]
    print(f"load average at start {la['load_avg_start'][0]:.2f}, after timings "
          f"{la['load_avg_after_timings'][0]:.2f} ({la['cpus']} cpus)")
    print(f"cold `llmcombo validate --no-preflight FILE`: median {c['median_wall_s']} s "
          f"(python alone {c['python_floor_median_s']} s); heavy modules imported: "
          f"{c['heavy_modules_imported'] or 'none'}")
    for name, f in c["files"].items():
        print(f"  {name}: median {f['median_wall_s']} s over {len(f['runs_s'])} runs")
    print(f"  without Python's bytecode cache (PYTHONDONTWRITEBYTECODE=1): median "
          f"{result['cold_process_without_bytecode_cache']['median_wall_s']} s")
    print(f"one process, {o['files']} corpus files x {o['passes']}: first pass "
          f"{o['files_per_s_first_pass']} files/s, later passes {o['files_per_s_later_passes']} "
          f"files/s, whole process (startup included) {o['files_per_s_including_startup']} files/s")
    print(f"corpus: {k['files']} files; {k['accepted_round_tripped']}/{k['expected_ok']} accepted "
          f"and round-tripped; false errors {len(k['false_errors'])}; problems caught "
          f"{k['problems_caught']}/{k['expected_problems']}; schema disagreements "
          f"{len(k['schema_agreement']['disagree'])} of {k['schema_agreement']['documents']} "
          "documents")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
