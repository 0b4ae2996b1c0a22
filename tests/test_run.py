"""Running merges and MoE in-process: every mergekit method end to end, atomic output, cancel,
kill -9, pre-flight refusals, progress, lineage, and the ``llmcombo merge`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from llmcombo.errors import Cancelled, UserError
from llmcombo.run import (LINEAGE_FILE, MERGE_YAML, MOE_YAML, CancelToken, LogProgress,
                          NullProgress, RunOptions, TqdmProgress, run, run_mergekit)

pytestmark = pytest.mark.slow

NAMES = ("base", "domotica", "tiempo", "selector")


@pytest.fixture(scope="session")
def models(zoo) -> dict[str, Path]:
    """The zoo's models (conftest builds or reuses the zoo once per session)."""
    return {name: Path(zoo.path(name)) for name in NAMES}


def load_and_generate(folder: Path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.eval()
    tok = AutoTokenizer.from_pretrained(folder)
    inputs = tok("[ORDEN] apaga la luz", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
    assert torch.isfinite(logits).all()
    assert out.shape[1] > inputs["input_ids"].shape[1]
    return model


class Recorder:
    """A Progress that records calls (and can be slowed down or trip a cancel)."""

    def __init__(self, delay: float = 0.0, on_update=None):
        self.calls: list[tuple] = []
        self.depth = 0
        self.max_depth = 0
        self.delay = delay
        self.on_update = on_update
        self.updates = 0

    def start(self, total, desc):
        self.calls.append(("start", total, desc))
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)

    def update(self, n=1):
        self.updates += n
        self.calls.append(("update", n))
        if self.on_update:
            self.on_update(self.updates)
        if self.delay:
            time.sleep(self.delay)

    def log(self, msg):
        self.calls.append(("log", msg))

    def close(self):
        self.calls.append(("close",))
        self.depth -= 1


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# ---------------------------------------------------------------------------------------------
# every merge method of the installed mergekit, configured from its contract
# ---------------------------------------------------------------------------------------------


def _methods():
    from mergekit.merge_methods import registered_methods

    return sorted(registered_methods(), key=lambda m: m.spec.name)


def _value_for(param) -> object:
    if param.name in ("weight", "t", "density", "select_topk"):
        return 0.5
    vt = param.value_type
    if vt is bool:
        return False
    if vt is int:
        return 1
    return 0.5


def config_for_method(method, models) -> dict:
    """A valid mergekit document for ``method``, built from ``spec.contract``/``spec.parameters``."""
    from mergekit.merge_methods.base import BasePolicy, ParameterScope

    spec = method.spec
    c = spec.contract
    use_base = c.base in (BasePolicy.REQUIRED, BasePolicy.OPTIONAL)
    chosen = None
    for n_other in (2, 1, 3):
        total = n_other + int(use_base)
        if total < c.min_inputs or (c.max_inputs is not None and total > c.max_inputs):
            continue
        if c.min_non_base is not None and n_other < c.min_non_base:
            continue
        if c.max_non_base is not None and n_other > c.max_non_base:
            continue
        chosen = n_other
        break
    assert chosen is not None, f"no input count fits {spec.name}: {c}"
    others = ["domotica", "tiempo", "selector"][:chosen]
    per_input = {p.name: _value_for(p) for p in spec.parameters
                 if p.required and p.scope in (ParameterScope.INPUT, ParameterScope.NON_BASE)}
    shared = {p.name: _value_for(p) for p in spec.parameters
              if p.required and p.scope == ParameterScope.SHARED}
    doc: dict = {"merge_method": spec.name, "dtype": "float32"}
    entries = [{"model": str(models[n])} for n in others]
    if use_base:
        doc["base_model"] = str(models["base"])
        input_scoped = [p for p in spec.parameters
                        if p.required and p.scope == ParameterScope.INPUT]
        if input_scoped:
            entries.insert(0, {"model": str(models["base"])})
    for e in entries:
        if per_input:
            e["parameters"] = dict(per_input)
    doc["models"] = entries
    if shared:
        doc["parameters"] = shared
    return doc


@pytest.mark.parametrize("method", _methods(), ids=lambda m: m.spec.name)
def test_every_merge_method_runs_end_to_end(method, models, tmp_path):
    doc = config_for_method(method, models)
    out = tmp_path / f"merged-{method.spec.name}"
    result = run_mergekit("merge", doc, out, progress=NullProgress(),
                          options=RunOptions(device="cpu"))
    assert result.path == out and out.is_dir()
    assert result.method == method.spec.name
    assert (out / MERGE_YAML).is_file() and (out / LINEAGE_FILE).is_file()
    assert siblings(out) == []
    load_and_generate(out)


def test_passthrough_slices_give_the_expected_depth(models, tmp_path):
    doc = {"merge_method": "passthrough", "dtype": "float32", "slices": [
        {"sources": [{"model": str(models["base"]), "layer_range": [0, 3]}]},
        {"sources": [{"model": str(models["domotica"]), "layer_range": [1, 4]}]},
    ]}
    out = tmp_path / "franken"
    run_mergekit("merge", doc, out, progress=NullProgress())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 6
    model = load_and_generate(out)
    assert len(model.model.layers) == 6


@pytest.mark.parametrize("gate_mode", ["hidden", "cheap_embed", "random", "uniform_random"])
def test_moe_with_each_gate_mode(gate_mode, models, tmp_path):
    doc = {"base_model": str(models["base"]), "gate_mode": gate_mode, "dtype": "float32",
           "experts_per_token": 2, "experts": [
               {"source_model": str(models["domotica"]),
                "positive_prompts": ["[ORDEN] apaga la luz del salon"]},
               {"source_model": str(models["tiempo"]),
                "positive_prompts": ["[ORDEN] que tiempo hace en madrid"]}]}
    out = tmp_path / f"moe-{gate_mode}"
    log = Recorder()
    result = run_mergekit("moe", doc, out, progress=log)
    assert result.kind == "moe"
    # mergekit explaining why it passed over Qwen/DeepSeek outputs is not a warning about this MoE
    logged = [c[1] for c in log.calls if c[0] == "log"]
    assert not [w for w in result.warnings + logged if "MoE" in w], (result.warnings, logged)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["MixtralForCausalLM"] and cfg["num_local_experts"] == 2
    assert yaml.safe_load((out / MOE_YAML).read_text()) == doc
    model = load_and_generate(out)
    assert type(model).__name__ == "MixtralForCausalLM"


# ---------------------------------------------------------------------------------------------
# the llmcombo configuration entry point, lineage, progress
# ---------------------------------------------------------------------------------------------


def ties_doc(models, **extra) -> dict:
    return {"merge_method": "ties", "base_model": str(models["base"]), "dtype": "float32",
            "models": [{"model": str(models[n]), "parameters": {"weight": 0.5, "density": 0.5}}
                       for n in ("domotica", "tiempo")], **extra}


def test_run_an_llmcombo_configuration_with_relative_paths(models, tmp_path):
    root = models["base"].parent
    config = {"merge": {"method": "ties", "base_model": "./base", "dtype": "float32",
                        "models": [{"model": "./domotica", "parameters": {"weight": 0.5,
                                                                          "density": 0.5}},
                                   {"model": "./tiempo", "parameters": {"weight": 0.5,
                                                                        "density": 0.5}}]}}
    out = tmp_path / "ties"
    result = run(config, out, base_dir=root, progress=NullProgress())
    lineage = json.loads((out / LINEAGE_FILE).read_text())
    assert lineage == result.lineage
    assert lineage["method"] == "ties" and lineage["kind"] == "merge"
    assert lineage["configuration"] == config
    given = {row["field"]: (row["given"], row["resolved"]) for row in lineage["inputs"]}
    assert given["merge.base_model"] == ("./base", str(models["base"].resolve()))
    assert given["merge.models[1].model"] == ("./tiempo", str(models["tiempo"].resolve()))
    for key in ("llmcombo", "mergekit", "torch", "transformers"):
        assert lineage["versions"][key]
    assert lineage["device"] == "cpu" and lineage["seconds"] > 0
    mk = yaml.safe_load((out / MERGE_YAML).read_text())
    assert mk["merge_method"] == "ties" and mk["base_model"] == str(models["base"].resolve())
    assert result.peak_rss_bytes and result.peak_rss_bytes > 50 * 2**20
    assert result.device == "cpu" and result.seconds > 0
    load_and_generate(out)


def test_progress_phases_are_balanced_and_the_hook_is_removed(models, tmp_path):
    import tqdm

    import mergekit.graph
    import mergekit.merge

    rec = Recorder()
    run_mergekit("merge", ties_doc(models), tmp_path / "out", progress=rec)
    starts = [c for c in rec.calls if c[0] == "start"]
    assert [c[2] for c in starts][:2] == ["Warmup loader cache", "Executing graph"]
    executing = next(c for c in starts if c[2] == "Executing graph")
    assert executing[1] > 10  # one step per load / merge / save task
    assert sum(1 for c in rec.calls if c[0] == "close") == len(starts)
    assert rec.depth == 0
    assert ("log", "checking the written model") in rec.calls
    assert mergekit.graph.tqdm is tqdm and mergekit.merge.tqdm is tqdm


def test_log_and_tqdm_progress_implementations(models, tmp_path, capsys):
    lines = []
    run_mergekit("merge", ties_doc(models), tmp_path / "a",
                 progress=LogProgress(print_fn=lines.append, interval=0))
    assert any(line.startswith("Executing graph: 100% (") for line in lines)
    assert any(line.startswith("Executing graph: done (") for line in lines)
    run_mergekit("merge", ties_doc(models), tmp_path / "b", progress=TqdmProgress())
    assert "Executing graph" in capsys.readouterr().err


def test_tqdm_outside_a_run_is_untouched():
    import tqdm

    from llmcombo.engine import hooks

    bar = hooks._HookedTqdm(range(3), disable=True)
    assert list(bar) == [0, 1, 2]
    assert isinstance(bar, tqdm.tqdm)


def test_options_map_to_mergekit():
    mo = RunOptions(device="cpu", shard_size="1B", random_seed=7).merge_options()
    assert mo.device == "cpu" and mo.out_shard_size == 10**9 and mo.random_seed == 7
    assert mo.lazy_unpickle and mo.copy_tokenizer and not mo.trust_remote_code
    assert not mo.low_cpu_memory
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert RunOptions().merge_options().device == expected
    assert RunOptions(extra={"clone_tensors": True}).merge_options().clone_tensors
    with pytest.raises(UserError, match="invalid run options"):
        RunOptions(extra={"no_such_option": 1, "out_shard_size": "x"}).merge_options()


def test_trust_remote_code_is_reported(models, tmp_path):
    result = run_mergekit("merge", ties_doc(models), tmp_path / "o", progress=NullProgress(),
                          options=RunOptions(trust_remote_code=True))
    assert any("trust_remote_code is on" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------
# refusals before any work
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_tensor_reads(monkeypatch):
    from mergekit.io import lazy_tensor_loader

    def boom(*a, **k):
        raise AssertionError("a tensor was read")

    monkeypatch.setattr(lazy_tensor_loader.LazyTensorLoader, "get_tensor", boom)
    import mergekit.merge

    monkeypatch.setattr(mergekit.merge, "run_merge", boom)


def test_incompatible_models_are_refused_before_work(models, tmp_path, no_tensor_reads):
    wide = tmp_path / "wide"
    wide.mkdir()
    cfg = json.loads((models["tiempo"] / "config.json").read_text())
    cfg["hidden_size"] *= 2
    (wide / "config.json").write_text(json.dumps(cfg))
    (wide / "model.safetensors").write_bytes(b"never read")
    doc = ties_doc(models)
    doc["models"][1]["model"] = str(wide)
    out = tmp_path / "out"
    with pytest.raises(UserError) as info:
        run_mergekit("merge", doc, out, progress=NullProgress())
    text = str(info.value)
    assert text.startswith(f"the run was refused before starting: merge.models[1].model: {wide} "
                           f"has hidden size {cfg['hidden_size']} but")
    assert not out.exists() and siblings(out) == []


def test_missing_model_is_refused_before_work(models, tmp_path, no_tensor_reads):
    doc = ties_doc(models)
    doc["models"][0]["model"] = str(tmp_path / "no-such-model")
    with pytest.raises(UserError, match=r"merge\.models\[0\]\.model: model folder not found: "):
        run_mergekit("merge", doc, tmp_path / "out", progress=NullProgress())
    assert not (tmp_path / "out").exists()


def test_full_disk_is_refused_before_work(models, tmp_path, no_tensor_reads):
    out = tmp_path / "out"
    with pytest.raises(UserError, match="not enough free disk space for the result"):
        run_mergekit("merge", ties_doc(models), out, progress=NullProgress(),
                     options=RunOptions(disk_free=1000))
    assert not out.exists() and siblings(out) == []


def test_bad_moe_is_refused_with_mergekits_reason(models, tmp_path):
    doc = {"base_model": str(models["base"]), "gate_mode": "hidden", "experts": [
        {"source_model": str(models["domotica"]), "positive_prompts": ["same"]},
        {"source_model": str(models["tiempo"]), "positive_prompts": ["same"]}]}
    out = tmp_path / "out"
    with pytest.raises(UserError) as info:
        run_mergekit("moe", doc, out, progress=NullProgress())
    assert "mergekit refused the configuration" in str(info.value)
    assert "prompts are identical for all experts" in str(info.value)
    assert not out.exists() and siblings(out) == []


def test_invalid_mergekit_document(tmp_path):
    with pytest.raises(UserError, match="mergekit does not accept the configuration"):
        run_mergekit("merge", {"merge_method": "ties"}, tmp_path / "o", progress=NullProgress())


def test_output_inside_an_input_is_refused(models, tmp_path):
    with pytest.raises(UserError, match="would replace one of the input models"):
        run_mergekit("merge", ties_doc(models), models["base"], progress=NullProgress(),
                     overwrite=True)


# ---------------------------------------------------------------------------------------------
# atomic output: existing folders, failed checks, cancel, kill -9
# ---------------------------------------------------------------------------------------------


def test_existing_output_is_kept_unless_overwrite(models, tmp_path):
    out = tmp_path / "out"
    run_mergekit("merge", ties_doc(models), out, progress=NullProgress())
    (out / "marker").write_text("first")
    with pytest.raises(UserError, match="the output folder already exists"):
        run_mergekit("merge", ties_doc(models), out, progress=NullProgress())
    assert (out / "marker").read_text() == "first"
    run_mergekit("merge", ties_doc(models), out, progress=NullProgress(), overwrite=True)
    assert not (out / "marker").exists() and (out / "config.json").is_file()
    assert siblings(out) == []


def test_overwrite_refuses_a_folder_that_is_not_a_model(models, tmp_path):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="does not look like a model folder"):
        run_mergekit("merge", ties_doc(models), out, progress=NullProgress(), overwrite=True)
    assert (out / "thesis.tex").read_text() == "precious"


def test_nan_weights_fail_the_check_and_keep_the_old_output(models, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in models["tiempo"].iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            (bad / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(models["tiempo"] / "model.safetensors"))
    tensors["model.norm.weight"][0] = float("nan")
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "out"
    run_mergekit("merge", ties_doc(models), out, progress=NullProgress())
    before = (out / "model.safetensors").read_bytes()
    doc = {"merge_method": "linear", "dtype": "float32", "models": [
        {"model": str(models["domotica"]), "parameters": {"weight": 0.5}},
        {"model": str(bad), "parameters": {"weight": 0.5}}]}
    with pytest.raises(UserError, match="NaN or infinite values: model.norm.weight"):
        run_mergekit("merge", doc, out, progress=NullProgress(), overwrite=True)
    assert (out / "model.safetensors").read_bytes() == before
    assert siblings(out) == []


def test_cancel_from_another_thread(models, tmp_path):
    token = CancelToken()
    started = threading.Event()
    rec = Recorder(delay=0.02, on_update=lambda n: started.set() if n >= 5 else None)
    out = tmp_path / "out"
    outcome = {}

    def work():
        try:
            run_mergekit("merge", ties_doc(models), out, progress=rec, cancel=token)
            outcome["result"] = "finished"
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["result"] = exc

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(60)
    token.cancel()
    worker.join(60)
    assert isinstance(outcome["result"], Cancelled)
    assert not out.exists() and siblings(out) == []
    assert rec.depth == 0  # every opened phase was closed
    executing = next(c for c in rec.calls if c[0] == "start" and c[2] == "Executing graph")
    assert rec.updates < executing[1]  # stopped before the end
    # the next run works
    run_mergekit("merge", ties_doc(models), out, progress=NullProgress())
    assert (out / "config.json").is_file()


_KILL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from llmcombo.run import run_mergekit

    doc, out, marker = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

    class Slow:
        n = 0
        def start(self, total, desc): pass
        def log(self, msg): pass
        def close(self): pass
        def update(self, n=1):
            self.n += n
            if self.n == 10:
                marker.write_text("halfway")
            time.sleep(0.05)

    run_mergekit("merge", doc, out, progress=Slow())
""")


def test_a_merge_killed_midway_leaves_no_output(models, tmp_path):
    out = tmp_path / "out"
    marker = tmp_path / "halfway"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, json.dumps(ties_doc(models)),
                             str(out), str(marker)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not out.exists()
    left = siblings(out)
    assert len(left) == 1 and left[0].startswith(f".{out.name}.llmcombo-partial-{proc.pid}-")
    # the next run succeeds and removes what the killed one left
    run_mergekit("merge", ties_doc(models), out, progress=NullProgress())
    assert (out / "config.json").is_file() and siblings(out) == []


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------


def test_cli_merge_with_a_mergekit_yaml(models, tmp_path, capsys):
    from llmcombo.cli import main

    cfg = tmp_path / "ties.yml"
    cfg.write_text(yaml.safe_dump(ties_doc(models)))
    out = tmp_path / "out"
    assert main(["merge", str(cfg), str(out), "--device", "cpu"]) == 0
    assert (out / LINEAGE_FILE).is_file()
    captured = capsys.readouterr()
    assert f"written to {out}" in captured.err
    assert main(["merge", str(cfg), str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: the output folder already exists: {out} (Choose another folder, or "
                   "allow replacing it (overwrite=True, --overwrite).)"]
    assert main(["merge", str(cfg), str(out), "--overwrite"]) == 0


def test_cli_merge_with_an_llmcombo_configuration(models, tmp_path, capsys):
    from llmcombo.cli import main

    root = models["base"].parent
    cfg = root / f"cli-moe-{os.getpid()}.yaml"
    cfg.write_text(yaml.safe_dump({"moe": {
        "base_model": "./base", "gate_mode": "random", "experts": [
            {"source_model": "./domotica", "positive_prompts": ["luz"]},
            {"source_model": "./tiempo", "positive_prompts": ["tiempo"]}]}}))
    try:
        out = tmp_path / "moe"
        assert main(["merge", str(cfg), str(out)]) == 0
        lineage = json.loads((out / LINEAGE_FILE).read_text())
        assert lineage["inputs"][0]["given"] == "./base"
    finally:
        cfg.unlink()


def test_cli_merge_refusal_is_one_clear_line(models, tmp_path, capsys):
    from llmcombo.cli import main

    doc = ties_doc(models)
    doc["models"][0]["model"] = str(tmp_path / "missing")
    cfg = tmp_path / "bad.yml"
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["merge", str(cfg), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: the run was refused before starting: merge.models[0].model: "
                             f"model folder not found: {tmp_path / 'missing'} Hint: ")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_nonfinite_scan_reads_in_chunks(tmp_path, dtype):
    from safetensors.torch import save_file

    from llmcombo.run import nonfinite_tensors

    big = torch.full((1000,), 60000.0 if dtype == torch.float16 else 3e38).to(dtype)
    tensors = {"ok": big.clone(), "ints": torch.arange(10), "nan": torch.zeros(999, dtype=dtype),
               "inf": torch.zeros(5, 7, dtype=dtype)}
    tensors["nan"][998] = float("nan")
    tensors["inf"][4, 6] = float("-inf")
    save_file(tensors, str(tmp_path / "m.safetensors"))
    # a finite tensor whose sum overflows is not reported; chunks far smaller than the tensors
    assert sorted(nonfinite_tensors(tmp_path / "m.safetensors", chunk_bytes=64)) == ["inf", "nan"]
    assert sorted(nonfinite_tensors(tmp_path / "m.safetensors")) == ["inf", "nan"]
