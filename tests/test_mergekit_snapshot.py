"""The snapshot of mergekit's method registry: what the feature model reads from mergekit is the
same whether it comes from mergekit or from the snapshot, and a stale or broken snapshot is never
used. Also: building the dashboard with a snapshot imports none of torch / transformers / peft."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llmcombo import productline as pl


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LLMCOMBO_MERGEKIT_SNAPSHOT", raising=False)
    pl.mergekit_snapshot.cache_clear()
    yield tmp_path
    pl.mergekit_snapshot.cache_clear()


def _files(root):
    return sorted((root / "llmcombo").glob("mergekit-*.json"))


def test_snapshot_equals_what_mergekit_declares(fresh_cache):
    live = pl._methods_from_mergekit()
    archs = pl._moe_architectures_from_mergekit()
    assert "ties" in live and live["ties"].param("density") is not None
    first = pl.mergekit_snapshot()  # nothing cached yet: read from mergekit, then written
    assert first["methods"] == live and first["moe_architectures"] == archs
    [path] = _files(fresh_cache)
    raw = json.loads(path.read_text())
    assert raw["fingerprint"] == pl._mergekit_fingerprint()
    pl.mergekit_snapshot.cache_clear()
    second = pl.mergekit_snapshot()  # from the file this time
    assert second["methods"] == live and second["moe_architectures"] == archs
    # types survive the round trip: tuples of ParamInfo, ints stay ints, floats stay floats
    for name, m in live.items():
        again = second["methods"][name]
        assert isinstance(again.params, tuple)
        for a, b in zip(m.params, again.params):
            assert type(a.default) is type(b.default), (name, a.name)


def test_a_snapshot_of_another_mergekit_is_not_used(fresh_cache, monkeypatch):
    pl.mergekit_snapshot()
    [path] = _files(fresh_cache)
    raw = json.loads(path.read_text())
    raw["methods"]["ties"]["pretty_name"] = "TAMPERED"
    raw["fingerprint"]["mergekit"] = "0.0.0"  # written by another version
    path.write_text(json.dumps(raw))
    pl.mergekit_snapshot.cache_clear()
    assert pl.merge_methods()["ties"].pretty_name != "TAMPERED"
    # and the same file with the right fingerprint is used: the snapshot is really read
    raw["fingerprint"] = pl._mergekit_fingerprint()
    path.write_text(json.dumps(raw))
    pl.mergekit_snapshot.cache_clear()
    assert pl.merge_methods()["ties"].pretty_name == "TAMPERED"


def test_a_file_of_mergekit_changing_makes_a_new_snapshot(fresh_cache):
    fp = pl._mergekit_fingerprint()
    assert any(f.startswith("merge_methods/") for f in fp["files"])
    assert any(f.startswith("moe/") for f in fp["files"])
    changed = dict(fp, files=fp["files"][:-1] + [fp["files"][-1] + "0"])
    assert pl._snapshot_path(changed) != pl._snapshot_path(fp)


def test_a_broken_snapshot_is_rebuilt(fresh_cache):
    pl.mergekit_snapshot()
    [path] = _files(fresh_cache)
    path.write_text("{not json")
    pl.mergekit_snapshot.cache_clear()
    assert pl.merge_methods() == pl._methods_from_mergekit()
    assert json.loads(path.read_text())["fingerprint"] == pl._mergekit_fingerprint()


def test_snapshot_can_be_switched_off(fresh_cache, monkeypatch):
    monkeypatch.setenv("LLMCOMBO_MERGEKIT_SNAPSHOT", "0")
    assert pl.merge_methods() == pl._methods_from_mergekit()
    assert _files(fresh_cache) == []


def test_building_the_app_alone_imports_nothing_heavy(fresh_cache):
    pl.mergekit_snapshot()
    code = (
        "import sys\n"
        "from llmcombo_widgets.dashboard import App\n"
        "app = App(out_root='outputs', preload_after=None)\n"
        "heavy = ('torch', 'transformers', 'peft', 'mergekit.config', 'mergekit.merge_methods',\n"
        "         'mergekit.moe', 'matplotlib', 'pandas')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(fresh_cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", out.stdout


def test_snapshot_is_current_is_told_without_reading_mergekit(fresh_cache):
    assert not pl.mergekit_snapshot_is_current()
    pl.mergekit_snapshot()
    assert pl.mergekit_snapshot_is_current()
    [path] = _files(fresh_cache)
    raw = json.loads(path.read_text())
    raw["fingerprint"]["files"] = []
    path.write_text(json.dumps(raw))
    assert not pl.mergekit_snapshot_is_current()


def test_llmcombo_dashboard_writes_a_missing_snapshot_in_a_child_process(fresh_cache):
    import time

    from llmcombo import cli

    assert not pl.mergekit_snapshot_is_current()
    cli._warm_mergekit_snapshot()  # returns at once; the child writes the file
    end = time.monotonic() + 240
    while not pl.mergekit_snapshot_is_current() and time.monotonic() < end:
        time.sleep(0.5)
    assert pl.mergekit_snapshot_is_current()
    pl.mergekit_snapshot.cache_clear()
    assert pl.merge_methods() == pl._methods_from_mergekit()
