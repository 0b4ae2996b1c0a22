"""Pre-flight's Hub look-ups run in parallel, each with a short timeout: a configuration of many
Hub models costs about its slowest look-up, and a Hub that does not answer is a warning."""

from __future__ import annotations

import json
import threading

import pytest

from llmcombo import preflight
from llmcombo.preflight import check_models


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fake Hub: every repository has a Llama config.json; records concurrency and timeouts."""
    import huggingface_hub

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                               "hidden_size": 8, "num_hidden_layers": 2, "vocab_size": 32}))
    state = {"active": 0, "peak": 0, "timeouts": [], "repos": []}
    lock = threading.Lock()
    two_at_once = threading.Event()

    def download(repo, filename, **kw):
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            state["timeouts"].append(kw.get("etag_timeout"))
            state["repos"].append(repo)
            if state["active"] >= 2:
                two_at_once.set()
        try:
            two_at_once.wait(5)  # a look-up returns once another one runs beside it
            if repo.endswith("slow"):
                raise TimeoutError("read timed out")
            return str(cfg)
        finally:
            with lock:
                state["active"] -= 1

    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return state


def config(*repos):
    return {"merge": {"method": "linear", "models": [{"model": r, "parameters": {"weight": 1.0}}
                                                     for r in repos]}}


def test_hub_look_ups_run_side_by_side(hub):
    repos = [f"org/model-{i}" for i in range(6)]
    issues = check_models(config(*repos))
    assert [i for i in issues if i.is_error] == []
    assert sorted(hub["repos"]) == repos  # each repository asked once
    assert hub["peak"] >= 2
    assert set(hub["timeouts"]) == {preflight.models.HUB_TIMEOUT}


def test_a_hub_that_does_not_answer_in_time_is_a_warning(hub):
    issues = check_models(config("org/model-a", "org/very-slow"))
    slow = [i for i in issues if i.path == "merge.models[1].model"]
    assert slow and slow[0].severity == "warning" and slow[0].code == "hub_unreachable"
    assert not [i for i in issues if i.is_error]


def test_the_same_model_twice_is_looked_up_once(hub):
    check_models({"merge": {"method": "ties", "base_model": "org/base", "models": [
        {"model": "org/base"}, {"model": "org/a", "parameters": {"weight": 1}}]}})
    assert sorted(hub["repos"]) == ["org/a", "org/base"]
