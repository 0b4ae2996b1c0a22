"""How fast the dashboard is built in a kernel and how fast it reacts, outside the browser.

Each run is a fresh Python process (like a new Voila kernel) that times:

* ``import_s``: ``import llmcombo_widgets.dashboard``;
* ``build_s``: ``App()`` -- the view-model (feature model, validation) and every widget;
* ``heavy_modules_after_build``: which of torch / transformers / peft / mergekit.config /
  matplotlib / pandas the build left imported (the goal: none of them);
* ``method_switch_ms``: the kernel side of a click on a merge method (the ToggleButtons value
  changes -> view-model -> re-render -> every trait update queued), over a cycle of methods
  starting from the ``ties`` preset, after one untimed pass so every method's widgets exist (the
  browser test measures the same clicks end to end);
* ``first_switch_ms``: the same clicks on the first pass (new widgets are made);
* ``widget_messages_per_switch``: state updates sent to the browser per switch (median), and
  ``widgets_per_build``: widgets created by ``App()``;
* ``first_valid_s``: the edit that first makes a fresh form valid (the live mergekit YAML then
  needs mergekit's pydantic models): a method is chosen right after the build, the form is
  completed ``--valid-after`` seconds later (a user typing); 0 when the models were imported by
  then, the rest of their import otherwise.
* ``evaluate_one_model_s`` (``--evaluate``, needs the zoo): the Evaluate tab's work for one
  model (``zoo:domotica``, 40 held-out prompts of each of the two tasks, the default), in the
  same fresh process after the preload's imports (torch, transformers), so the model is loaded
  from disk and nothing is cached; ``evaluate_again_s``: the same model again after a new run
  would have replaced nothing (the model is in memory, the results are recomputed).

    python bench/dashboard_build.py                # 3 runs, writes bench/results/dashboard_build.json
    python bench/dashboard_build.py --runs 5 --no-snapshot   # read mergekit's registry every time
    python bench/dashboard_build.py --evaluate     # also time Evaluate of one zoo model

The browser test measures the same figures end to end (page ready after the kernel started,
click to updated form, Evaluate of a merged model) and lists every screen it checked:
``LLMCOMBO_RECORD_PERF=1 python -m pytest tests/test_dashboard_browser.py`` writes them to
bench/results/dashboard_perf.json.

The machine is shared: the load average before and after is recorded with the figures.
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
HEAVY = ("torch", "transformers", "peft", "mergekit.config", "matplotlib", "pandas")
CYCLE = ["linear", "ties", "slerp", "dare_ties", "task_arithmetic", "ties", "della", "linear"]


def evaluate_timings(app) -> dict:
    """Evaluate of one zoo model, as the Evaluate tab runs it (no thread: timed directly)."""
    import importlib

    for name in ("torch", "transformers"):  # what the dashboard's preload imports meanwhile
        importlib.import_module(name)
    model = app.evaluate_model
    t = time.perf_counter()
    model.start(["domotica"], model.tasks(), background=False)
    first = time.perf_counter() - t
    assert model.job.status == "done", model.job.error
    model.cache.clear()
    t = time.perf_counter()
    model.start(["domotica"], model.tasks(), background=False)
    again = time.perf_counter() - t
    n = int(model.frame["n"].sum())
    return {"evaluate_one_model_s": round(first, 3), "evaluate_again_s": round(again, 3),
            "evaluate_prompts": n}


def child(valid_after: float, evaluate: bool = False) -> dict:
    t0 = time.perf_counter()
    import ipywidgets as W

    from llmcombo_widgets.dashboard import App

    t1 = time.perf_counter()
    opened = {"n": 0}
    sent = {"n": 0}
    orig_open, orig_send = W.Widget.open, W.Widget._send

    def count_open(self):
        opened["n"] += 1
        return orig_open(self)

    def count_send(self, msg, buffers=None):
        if msg.get("method") == "update":
            sent["n"] += 1
        return orig_send(self, msg, buffers)

    W.Widget.open, W.Widget._send = count_open, count_send
    app = App(out_root=os.devnull)
    t2 = time.perf_counter()
    heavy = [m for m in HEAVY if m in sys.modules]
    widgets = opened["n"]

    # first valid form: a fresh App's form, edited the way a user would: a click on a method at
    # once, the rest typed over the next ``valid_after`` seconds
    form = app.form
    form.choose("merge.method", "ties")
    if valid_after:
        time.sleep(valid_after)
    form.set_text("merge.base_model", "zoo:base")
    form.set_text("merge.models[0].model", "zoo:domotica")
    form.add_item("merge.models")
    form.set_text("merge.models[1].model", "zoo:tiempo")
    form.set_toggle("merge.models[0].parameters", True)
    form.set_text("merge.models[0].parameters.weight", "1.0")
    form.set_toggle("merge.models[1].parameters", True)
    assert not form.can_generate
    t = time.perf_counter()
    form.set_text("merge.models[1].parameters.weight", "1.0")
    first_valid = time.perf_counter() - t
    assert form.can_generate, form.errors

    # method switches, as the ToggleButtons forwards a click
    form.apply_preset("ties")
    buttons = app.configurator._boxes["choice:merge.method#0"]["input"]
    first, times, msgs = [], [], []
    for timed in (first, times):
        for name in CYCLE:
            sent["n"] = 0
            t = time.perf_counter()
            buttons.value = name
            timed.append((time.perf_counter() - t) * 1000)
            if timed is times:
                msgs.append(sent["n"])
            assert form.data["merge"]["method"] == name
    extra = evaluate_timings(app) if evaluate else {}
    return {**extra, "import_s": round(t1 - t0, 3), "build_s": round(t2 - t1, 3),
            "heavy_modules_after_build": heavy, "widgets_per_build": widgets,
            "first_valid_s": round(first_valid, 3),
            "first_switch_ms": [round(x, 1) for x in first],
            "method_switch_ms": [round(x, 1) for x in times],
            "widget_messages_per_switch": statistics.median(msgs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-snapshot", action="store_true",
                    help="read mergekit's method registry in every run (LLMCOMBO_MERGEKIT_SNAPSHOT=0)")
    ap.add_argument("--valid-after", type=float, default=10.0,
                    help="seconds between the build and the first valid form (a user filling it)")
    ap.add_argument("--evaluate", action="store_true",
                    help="also time Evaluate of one zoo model (needs the zoo)")
    ap.add_argument("--out", default=str(HERE / "results" / "dashboard_build.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.valid_after, args.evaluate)))
        return

    env = dict(os.environ)
    if args.no_snapshot:
        env["LLMCOMBO_MERGEKIT_SNAPSHOT"] = "0"
    load_before = os.getloadavg()
    runs = []
    for i in range(args.runs):
        cmd = [sys.executable, __file__, "--child", "--valid-after", str(args.valid_after)]
        out = subprocess.run(cmd + (["--evaluate"] if args.evaluate else []),
                             env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = runs[-1]
        print(f"run {i + 1}: import {r['import_s']:.2f} s, build {r['build_s']:.2f} s, "
              f"switch median {statistics.median(r['method_switch_ms']):.1f} ms, "
              f"first valid {r['first_valid_s']:.2f} s, heavy: {r['heavy_modules_after_build']}")
    load_after = os.getloadavg()
    switches = [x for r in runs for x in r["method_switch_ms"]]
    firsts = [x for r in runs for x in r["first_switch_ms"]]
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
        "mergekit_snapshot": not args.no_snapshot,
        "valid_after_s": args.valid_after,
        "import_s_median": statistics.median(r["import_s"] for r in runs),
        "build_s_median": statistics.median(r["build_s"] for r in runs),
        "build_s_max": max(r["build_s"] for r in runs),
        "import_plus_build_s_max": max(round(r["import_s"] + r["build_s"], 3) for r in runs),
        "method_switch_ms_median": round(statistics.median(switches), 1),
        "method_switch_ms_max": round(max(switches), 1),
        "first_switch_ms_median": round(statistics.median(firsts), 1),
        "first_switch_ms_max": round(max(firsts), 1),
        "first_valid_s_median": statistics.median(r["first_valid_s"] for r in runs),
        "widgets_per_build": runs[0]["widgets_per_build"],
        "widget_messages_per_switch": statistics.median(r["widget_messages_per_switch"] for r in runs),
        "heavy_modules_after_build": sorted({m for r in runs for m in r["heavy_modules_after_build"]}),
        **({"evaluate_one_model_s_median": statistics.median(r["evaluate_one_model_s"] for r in runs),
            "evaluate_one_model_s_max": max(r["evaluate_one_model_s"] for r in runs),
            "evaluate_again_s_median": statistics.median(r["evaluate_again_s"] for r in runs),
            "evaluate_prompts": runs[0]["evaluate_prompts"]} if args.evaluate else {}),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
