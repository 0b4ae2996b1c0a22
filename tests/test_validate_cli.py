"""``llmcombo validate`` as a linter: many files in one process, a summary line, JSON for tools,
no torch / transformers / peft / mergekit imported, no traceback on any input; ``import`` and
``generate`` of mergekit-multimerge files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from llmcombo.cli import main

CORPUS = Path(__file__).parent / "corpus"


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_many_files_one_summary_line(capsys):
    files = [str(CORPUS / n) for n in ("001-linear-three-chat-models.yml", "085-ties-without-base.yml",
                                       "101-not-yaml.yml", "015-karcher-yaml11-tol.yml")]
    code, out, err = run(["validate", "--no-preflight", *files], capsys)
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[-1] == "4 files: 2 valid, 2 not valid, 2 error(s), 1 warning(s)."
    assert f"{files[0]}: valid (0 error(s), 0 warning(s))" in lines
    assert any(line.startswith(f"{files[1]}: error: merge.base_model:") for line in lines)
    assert any(line.startswith(f"{files[2]}: error: (configuration):") and "not valid YAML" in line
               for line in lines)
    assert any(line.startswith(f"{files[3]}: warning: merge.parameters.tol:") and "1e-05" in line
               for line in lines)
    assert "Traceback" not in out + err


def test_json_for_tools(capsys):
    files = [str(CORPUS / "054-multistage-two-plus-final.yml"), str(CORPUS / "102-empty.yml")]
    code, out, _ = run(["validate", "--no-preflight", "--format", "json", *files], capsys)
    data = json.loads(out)
    assert code == 1 and data["valid"] == 1 and data["invalid"] == 1
    first, second = data["files"]
    assert first == {"path": files[0], "valid": True, "errors": 0, "warnings": 0, "issues": []}
    assert second["valid"] is False and second["issues"][0]["code"] == "file"
    assert set(second["issues"][0]) == {"severity", "path", "message", "hint", "code"}


def test_one_file_keeps_its_short_form(capsys, tmp_path):
    p = tmp_path / "c.yml"
    p.write_text((CORPUS / "059-misspelled-normalize.yml").read_text())
    code, out, _ = run(["validate", "--no-preflight", str(p)], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("warning: merge.parameters.nomalize:")
    assert "Did you mean normalize?" in out and out.strip().endswith("valid (1 warning(s)).")


def test_validate_imports_no_torch_transformers_peft_or_mergekit(tmp_path):
    files = sorted(str(p) for p in CORPUS.glob("*.yml"))
    code = ("import sys\n"
            "from llmcombo.cli import main\n"
            f"rc = main(['validate', '--no-preflight', '--format', 'json', *{files!r}])\n"
            "heavy = ('torch', 'transformers', 'peft', 'mergekit')\n"
            "sys.stderr.write('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().endswith("HEAVY="), proc.stderr[-500:]
    data = json.loads(proc.stdout)
    assert len(data["files"]) == len(files)


def test_import_and_generate_a_multimerge_file(tmp_path, capsys):
    src = CORPUS / "054-multistage-two-plus-final.yml"
    cfg_path = tmp_path / "llmcombo.yml"
    code, _, _ = run(["import", str(src), "-o", str(cfg_path)], capsys)
    assert code == 0
    cfg = yaml.safe_load(cfg_path.read_text())
    assert [s.get("name") for s in cfg["stages"]] == ["hermes-math", "coder-medic", None]
    out_path = tmp_path / "multi.yml"
    code, _, _ = run(["generate", str(cfg_path), "-o", str(out_path)], capsys)
    assert code == 0
    text = out_path.read_text()
    assert text.count("\n---\n") == 2
    assert list(yaml.safe_load_all(text)) == [
        d for d in yaml.safe_load_all(src.read_text()) if d is not None]


def test_merge_offers_sparse_upcycling(capsys):
    from llmcombo.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "--allow-same-experts" in sub.choices["merge"].format_help()


def test_bad_inputs_never_print_a_traceback(tmp_path):
    cases = {"not-yaml.yml": "merge: [unclosed\n", "template.yml": "models:\n  - model: {{ base }}\n",
             "vars.yml": "merge_method: ${METHOD}\nmodels: ${MODELS}\n", "empty.yml": "",
             "binary.yml": None}
    paths = []
    for name, text in cases.items():
        p = tmp_path / name
        if text is None:
            p.write_bytes(b"\x00\xff\xfe garbage \x80")
        else:
            p.write_text(text)
        paths.append(str(p))
    proc = subprocess.run([sys.executable, "-m", "llmcombo.cli", "validate", "--no-preflight",
                           *paths, str(tmp_path / "missing.yml")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("6 files: 0 valid, 6 not valid")


def test_a_template_with_placeholders_is_explained(tmp_path, capsys):
    p = tmp_path / "t.yml"
    p.write_text(textwrap.dedent("""
        base_model: ${BASE}
        models:
          - model: ${A}
            parameters: {weight: 1.0}
        merge_method: task_arithmetic
    """))
    code, out, _ = run(["validate", "--no-preflight", str(p)], capsys)
    assert code == 0 and "template placeholder" in out


def test_validate_with_preflight_of_a_merge_imports_no_torch_either(tmp_path):
    """Pre-flight reads config.json files; which architectures mergekit knows (and their
    modules) comes from the snapshot, not from importing mergekit."""
    for name in ("base", "a", "b"):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
            "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2,
            "vocab_size": 32}))
        (d / "model.safetensors").write_bytes(b"never read")
        (d / "tokenizer.json").write_text("{}")
    cfg = tmp_path / "ties.yml"
    cfg.write_text(yaml.safe_dump({
        "merge_method": "ties", "base_model": "./base", "modules": {"text_decoder": {"models": [
            {"model": "./a", "parameters": {"weight": 0.5}},
            {"model": "./b", "parameters": {"weight": 0.5}}]}}}))
    code = ("import sys\nfrom llmcombo.cli import main\n"
            f"rc = main(['validate', {str(cfg)!r}])\n"
            "sys.stderr.write('HEAVY=' + ','.join(m for m in ('torch', 'transformers', 'peft', "
            "'mergekit') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert proc.stderr.strip().endswith("HEAVY="), proc.stderr[-2000:]
    assert "merge.modules[0].name: LlamaForCausalLM models have no module 'text_decoder'" \
        in proc.stdout
