"""The snapshot of mergekit's method registry: what the feature model reads from mergekit is the
same whether it comes from mergekit, from the snapshot shipped with llmcombo or from the user's
cache; a stale or broken snapshot is never used. Also: building the dashboard with a snapshot
imports none of torch / transformers / peft."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llmcombo.engine import registry as engine_registry
from llmcombo.productline import registry as R

pytestmark = pytest.mark.slow  # reads mergekit itself (imports torch)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LLMCOMBO_MERGEKIT_SNAPSHOT", raising=False)
    R.snapshot.cache_clear()
    yield tmp_path
    R.snapshot.cache_clear()


def _files(root):
    return sorted((root / "llmcombo").glob("mergekit-*.json"))


@pytest.fixture(scope="module")
def live():
    return engine_registry.read_mergekit()


def test_shipped_snapshot_equals_what_mergekit_declares(fresh_cache, live):
    assert "ties" in live["methods"] and live["methods"]["ties"].param("density") is not None
    shipped = R.shipped_path(R.mergekit_version())
    assert shipped.is_file(), "no snapshot shipped for the pinned mergekit: run python -m llmcombo.engine.registry"
    assert R.decode(json.loads(shipped.read_text())) == live
    assert R.snapshot() == live  # nothing cached: the shipped snapshot, without importing mergekit


def test_refresh_writes_the_cache_and_it_reads_back_equal(fresh_cache, live):
    path = engine_registry.refresh(force=True)
    assert path == _files(fresh_cache)[0]
    raw = json.loads(path.read_text())
    assert raw["fingerprint"] == R.fingerprint()
    R.snapshot.cache_clear()
    again = R.snapshot()  # from the file this time
    assert again == live
    # types survive the round trip: tuples of ParamInfo, ints stay ints, floats stay floats
    for name, m in live["methods"].items():
        back = again["methods"][name]
        assert isinstance(back.params, tuple)
        for a, b in zip(m.params, back.params):
            assert type(a.default) is type(b.default), (name, a.name)


def test_a_snapshot_of_another_mergekit_is_not_used(fresh_cache):
    path = engine_registry.refresh(force=True)
    raw = json.loads(path.read_text())
    raw["methods"]["ties"]["pretty_name"] = "TAMPERED"
    raw["fingerprint"]["mergekit"] = "0.0.0"  # written by another version
    path.write_text(json.dumps(raw))
    R.snapshot.cache_clear()
    assert R.merge_methods()["ties"].pretty_name != "TAMPERED"
    # and the same file with the right fingerprint is used: the cache is really read
    raw["fingerprint"] = R.fingerprint()
    path.write_text(json.dumps(raw))
    R.snapshot.cache_clear()
    assert R.merge_methods()["ties"].pretty_name == "TAMPERED"


def test_a_file_of_mergekit_changing_makes_a_new_snapshot(fresh_cache):
    fp = R.fingerprint()
    assert any(f.startswith("merge_methods/") for f in fp["files"])
    assert any(f.startswith("moe/") for f in fp["files"])
    changed = dict(fp, files=fp["files"][:-1] + [fp["files"][-1] + "0"])
    assert R.cache_path(changed) != R.cache_path(fp)


def test_a_broken_snapshot_is_not_used_and_is_rewritten(fresh_cache, live):
    path = engine_registry.refresh(force=True)
    path.write_text("{not json")
    R.snapshot.cache_clear()
    assert R.snapshot() == live  # the shipped snapshot stands in
    engine_registry.refresh(force=True)
    assert json.loads(path.read_text())["fingerprint"] == R.fingerprint()


def test_the_cache_can_be_switched_off(fresh_cache, monkeypatch, live):
    engine_registry.refresh(force=True)
    [path] = _files(fresh_cache)
    raw = json.loads(path.read_text())
    raw["methods"]["ties"]["pretty_name"] = "TAMPERED"
    path.write_text(json.dumps(raw))
    monkeypatch.setenv("LLMCOMBO_MERGEKIT_SNAPSHOT", "0")
    R.snapshot.cache_clear()
    assert R.snapshot() == live


def test_another_mergekit_version_is_not_current_until_refreshed(fresh_cache, monkeypatch, live):
    monkeypatch.setattr(R, "mergekit_version", lambda: "9.9.9")  # a version llmcombo ships none for
    assert not R.is_current()
    assert R.snapshot() == live  # the newest shipped snapshot stands in meanwhile
    path = engine_registry.refresh()
    assert path is not None and "9.9.9" in path.name
    assert R.is_current()
    raw = json.loads(path.read_text())
    raw["fingerprint"]["files"] = []
    path.write_text(json.dumps(raw))
    assert not R.is_current()


def test_building_the_app_alone_imports_nothing_heavy(fresh_cache):
    code = (
        "import sys\n"
        "from llmcombo_widgets.dashboard import App\n"
        "app = App(out_root='outputs', preload_after=None)\n"
        "heavy = ('torch', 'transformers', 'peft', 'mergekit', 'matplotlib', 'pandas')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(fresh_cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", out.stdout


def test_llmcombo_dashboard_writes_a_missing_snapshot_in_a_child_process(fresh_cache, monkeypatch):
    import time

    from llmcombo import cli_apps

    monkeypatch.setattr(R, "is_current", lambda: False)
    cli_apps._warm_mergekit_snapshot()  # returns at once; the child writes the file
    end = time.monotonic() + 240
    while not _files(fresh_cache) and time.monotonic() < end:
        time.sleep(0.5)
    [path] = _files(fresh_cache)
    while time.monotonic() < end:
        try:
            raw = json.loads(path.read_text())
            break
        except ValueError:  # pragma: no cover - written atomically, so never half a file
            time.sleep(0.5)
    assert raw["fingerprint"] == R.fingerprint()
