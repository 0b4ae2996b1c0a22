"""The house rules of the code, checked on the source: no import cycles, mergekit imported by
the engine wing only, the core never importing the UI, and modules kept to a readable size."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import importgraph

MAX_LINES = 500  # issue 9: the largest module at most 500 lines


def test_no_import_cycles():
    assert importgraph.cycles(importgraph.graph()) == []


def test_only_the_engine_imports_mergekit():
    outside = {m for m in importgraph.third_party_importers("mergekit")
               if not m.startswith("llmcombo.engine")}
    assert outside == set()


def test_the_core_never_imports_the_ui():
    ui = ("ipywidgets", "voila", "IPython", "llmcombo_widgets")
    for pkg in ui:
        offenders = {m for m in importgraph.third_party_importers(pkg) if m.startswith("llmcombo.")
                     or m == "llmcombo"}
        assert offenders == set(), (pkg, offenders)


def test_modules_stay_readable():
    sizes = {m: len(p.read_text().splitlines()) for m, p in importgraph.modules().items()}
    too_big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert too_big == {}


def test_plugins_are_registered_by_entry_point_not_named_by_the_host():
    names = {ep.name for ep in importlib.metadata.entry_points(group="llmcombo.plugins")}
    assert {"ensemble", "zoo"} <= names
    from llmcombo.productline import families

    assert {"merge", "moe", "ensemble"} <= set(families())


def test_a_text_step_imports_no_torch():
    """Validating and generating read text: they must not pull torch/transformers/mergekit in."""
    code = ("import sys\n"
            "from llmcombo.importer import load_any\n"
            "from llmcombo.validation import validate\n"
            "from llmcombo.plan import make_plan\n"
            "cfg = {'merge': {'method': 'ties', 'base_model': 'zoo:base', 'models': ["
            "{'model': 'zoo:domotica', 'parameters': {'weight': 1, 'density': 0.5}},"
            "{'model': 'zoo:tiempo', 'parameters': {'weight': 1, 'density': 0.5}}]}}\n"
            "assert not [i for i in validate(cfg) if i.is_error]\n"
            "make_plan(cfg).resolved_document()\n"
            "print(','.join(m for m in ('torch', 'transformers', 'peft', 'mergekit') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""
