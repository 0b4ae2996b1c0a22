"""Running a multi-stage merge: mergekit-multimerge's own API through llmcombo.engine, each
stage's result cached under a name that follows its content, the output placed atomically.
Tiny random models from tests/factory.py (the run only needs shapes)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from factory import make_family

from llmcombo.importer import as_configuration, load_any
from llmcombo.run import STAGE_MARK, NullProgress, RunOptions, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    import transformers

    transformers.utils.logging.disable_progress_bar()
    return {k: str(v) for k, v in
            make_family(tmp_path_factory.mktemp("ms"), ("base", "a", "b", "c")).items()}


def multimerge_text(fam, t=0.5) -> str:
    return textwrap.dedent(f"""
        name: first
        merge_method: ties
        base_model: {fam["base"]}
        models:
          - model: {fam["a"]}
            parameters: {{weight: 0.5, density: 0.5}}
          - model: {fam["b"]}
            parameters: {{weight: 0.5, density: 0.5}}
        dtype: float32
        ---
        name: second
        merge_method: slerp
        base_model: {fam["base"]}
        models:
          - model: {fam["base"]}
          - model: first
        parameters:
          t: {t}
        dtype: float32
        ---
        merge_method: linear
        models:
          - model: second
            parameters: {{weight: 0.5}}
          - model: {fam["c"]}
            parameters: {{weight: 0.5}}
        dtype: float32
    """)


def test_a_mergekit_multimerge_file_runs_and_its_stages_are_reused(fam, tmp_path):
    src = tmp_path / "multi.yml"
    src.write_text(multimerge_text(fam))
    stages = tmp_path / "stages"
    options = RunOptions(device="cpu", intermediate_dir=str(stages))
    result = run(load_any(src), tmp_path / "out", options=options, progress=NullProgress())
    assert result.kind == "multimerge"
    assert (tmp_path / "out" / "config.json").is_file()
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    folders = result.lineage["stages"]
    assert set(folders) == {"first", "second"}
    for folder in folders.values():
        assert (tmp_path / "stages").resolve() in Path(folder).resolve().parents
        assert json.loads((Path(folder) / STAGE_MARK).read_text())
    first_written = (Path(folders["first"]) / "model.safetensors").stat().st_mtime_ns
    # the same configuration again: both stages are taken from the cache
    again = run(load_any(src), tmp_path / "out2", options=options, progress=NullProgress())
    assert again.lineage["stages"] == folders
    assert (Path(folders["first"]) / "model.safetensors").stat().st_mtime_ns \
        == first_written
    # changing the second stage makes a new second stage (and a new output), not a new first one
    src.write_text(multimerge_text(fam, t=0.25))
    changed = run(load_any(src), tmp_path / "out3", options=options, progress=NullProgress())
    assert changed.lineage["stages"]["first"] == folders["first"]
    assert changed.lineage["stages"]["second"] != folders["second"]


def test_an_unfinished_stage_is_built_again(fam, tmp_path):
    stages = tmp_path / "stages"
    options = RunOptions(device="cpu", intermediate_dir=str(stages))
    from llmcombo.configuration import Documents

    cfg = as_configuration(Documents(yaml.safe_load_all(multimerge_text(fam))))
    first = run(cfg, tmp_path / "out", options=options, progress=NullProgress())
    folder = Path(first.lineage["stages"]["first"])
    (folder / STAGE_MARK).unlink()  # as if the run had stopped before finishing this stage
    (folder / "model.safetensors").write_bytes(b"half a model")
    run(cfg, tmp_path / "out2", options=options, progress=NullProgress())
    assert (folder / STAGE_MARK).is_file()
    assert (folder / "model.safetensors").stat().st_size > 1000


def test_llmcombo_merge_runs_a_multimerge_file(fam, tmp_path, capsys, monkeypatch):
    from llmcombo.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = tmp_path / "multi.yml"
    src.write_text(multimerge_text(fam))
    assert main(["merge", str(src), str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert "multimerge" in capsys.readouterr().err
    assert list((tmp_path / "cache" / "llmcombo" / "stages").iterdir())


def test_sparse_upcycling_with_allow_same_experts(fam, tmp_path, capsys):
    from llmcombo.cli import main

    src = tmp_path / "moe.yml"
    src.write_text(yaml.safe_dump({
        "base_model": fam["base"], "gate_mode": "hidden", "dtype": "float32",
        "experts": [{"source_model": fam["a"], "positive_prompts": ["hello world"]},
                    {"source_model": fam["a"], "positive_prompts": ["write code"]}]}))
    assert main(["merge", str(src), str(tmp_path / "refused"), "--device", "cpu"]) == 1
    assert "All of your expert models are the same" in capsys.readouterr().err
    assert main(["merge", str(src), str(tmp_path / "out"), "--device", "cpu",
                 "--allow-same-experts"]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_local_experts"] == 2
