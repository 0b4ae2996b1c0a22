"""The core CLI commands: featuremodel, validate, import, generate (exit codes, no tracebacks)."""

import json
import subprocess
import sys

import pytest
import yaml

from llmcombo.cli import main

TIES = """
merge:
  method: ties
  base_model: org/base
  models:
    - model: org/a
      parameters: {weight: 0.5, density: 0.5}
    - model: org/b
      parameters: {weight: 0.5, density: 0.5}
"""

MERGEKIT = """
models:
  - model: org/a
    parameters: {weight: 0.5}
  - model: org/b
    parameters: {weight: 0.5}
merge_method: linear
dtype: float16
"""


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_featuremodel_formats(capsys):
    code, out, _ = run(["featuremodel"], capsys)
    assert code == 0 and "merge" in out and "ties" in out
    code, out, _ = run(["featuremodel", "--format", "json"], capsys)
    data = json.loads(out)
    assert data["name"] == "LLMCombination"
    code, out, _ = run(["featuremodel", "--format", "uvl"], capsys)
    assert out.startswith("namespace LLMCombination") and "constraints" in out


def test_validate_valid_configuration(tmp_path, capsys):
    code, out, _ = run(["validate", "--no-preflight", write(tmp_path, "c.yaml", TIES)], capsys)
    assert code == 0 and "valid" in out


def test_validate_invalid_configuration_exits_1_with_path(tmp_path, capsys):
    bad = TIES.replace("density: 0.5}\n    - model: org/b", "density: half}\n    - model: org/b")
    code, out, _ = run(["validate", "--no-preflight", write(tmp_path, "c.yaml", bad)], capsys)
    assert code == 1
    assert "merge.models[0].parameters.density" in out and "not valid" in out


def test_validate_detects_a_mergekit_yaml(tmp_path, capsys):
    code, out, _ = run(["validate", "--no-preflight", write(tmp_path, "m.yml", MERGEKIT)], capsys)
    assert code == 0


@pytest.mark.parametrize("text,fragment", [
    ("merge: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "empty"),
    ("merge:\n  method: ties\n\tmodels: 1\n", "not valid YAML"),
])
def test_validate_bad_files_are_one_clear_line(tmp_path, capsys, text, fragment):
    code, out, err = run(["validate", write(tmp_path, "bad.yaml", text)], capsys)
    assert code == 1
    assert fragment in err and "Traceback" not in err + out


def test_validate_missing_file(tmp_path, capsys):
    code, _, err = run(["validate", str(tmp_path / "nope.yaml")], capsys)
    assert code == 1 and "file not found" in err


def test_usage_error_exits_2():
    proc = subprocess.run([sys.executable, "-m", "llmcombo.cli", "validate"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_import_then_generate_round_trip(tmp_path, capsys):
    src = write(tmp_path, "m.yml", MERGEKIT)
    out_cfg = tmp_path / "llmcombo.yaml"
    code, _, _ = run(["import", src, "-o", str(out_cfg)], capsys)
    assert code == 0
    cfg = yaml.safe_load(out_cfg.read_text())
    assert cfg["merge"]["method"] == "linear"
    out_mk = tmp_path / "mergekit.yaml"
    code, _, _ = run(["generate", str(out_cfg), "-o", str(out_mk)], capsys)
    assert code == 0
    assert yaml.safe_load(out_mk.read_text()) == yaml.safe_load(MERGEKIT)


def test_generate_refuses_invalid_and_writes_nothing(tmp_path, capsys):
    bad = write(tmp_path, "c.yaml", TIES.replace("  base_model: org/base\n", ""))
    out = tmp_path / "out.yaml"
    code, _, err = run(["generate", bad, "-o", str(out)], capsys)
    assert code == 1 and "merge.base_model" in err
    assert not out.exists()


def test_generate_to_stdout(tmp_path, capsys):
    code, out, _ = run(["generate", write(tmp_path, "c.yaml", TIES)], capsys)
    assert code == 0 and yaml.safe_load(out)["merge_method"] == "ties"


def test_every_command_has_help():
    from llmcombo.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: llmcombo " + name), name


def test_presets_list_and_print(capsys, tmp_path):
    code, out, _ = run(["presets"], capsys)
    assert code == 0 and "ties" in out and "moe" in out
    code, out, _ = run(["presets", "ties"], capsys)
    assert code == 0 and yaml.safe_load(out)["merge"]["method"] == "ties"
    code, _, err = run(["presets", "tie"], capsys)
    assert code == 1 and "Known presets" in err
