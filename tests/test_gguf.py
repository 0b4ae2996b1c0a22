"""GGUF export (llmcombo.gguf, ``llmcombo export-gguf``, publish --gguf, the Run panel's hook) on
tiny models made here (tests/llama_factory.py), so nothing depends on the zoo.

Each error rule is shown against the engine: llama.cpp's converter, or llama.cpp itself, fails on
the same input."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import llama_factory as F
from llmcombo.cli import main
from llmcombo.errors import Cancelled, UserError
from llmcombo.gguf import export as gx
from llmcombo.gguf.tokens import StripRules, strip_rules

ROOT = Path(__file__).resolve().parent.parent


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# fast: no conversion
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("given,canonical", [("f16", "f16"), ("FP16", "f16"), ("Q4_K_M", "q4_k_m"),
                                             ("q4-k-m", "q4_k_m"), ("q8", "q8_0"),
                                             ("bfloat16", "bf16")])
def test_quant_names_are_normalised(given, canonical):
    assert gx.normalize_quant(given) == canonical


def test_an_unknown_quant_lists_the_valid_ones():
    with pytest.raises(gx.GGUFError) as exc:
        gx.normalize_quant("q4_km")
    text = str(exc.value)
    assert "unknown GGUF type 'q4_km'" in text and "did you mean q4_k_m" in text
    assert all(q in text for q in ("f16", "q8_0", "q4_k_m", "q6_k"))


def test_quantizer_numbers_are_llama_cpps(llama_cpp):
    for name, number in gx.QUANTIZER_TYPES.items():
        assert getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name.upper()}") == number, name


def test_a_file_that_is_not_gguf_is_named_as_such(tmp_path):
    zip_file = tmp_path / "model.gguf"
    zip_file.write_bytes(b"PK\x03\x04 a zip, not a gguf")
    with pytest.raises(gx.GGUFError, match=r"is not a GGUF file \(it starts with b'PK"):
        gx.gguf_version(zip_file)
    with pytest.raises(gx.GGUFError, match="GGUF file not found"):
        gx.gguf_version(tmp_path / "missing.gguf")
    with pytest.raises(gx.GGUFError, match="is a folder"):
        gx.gguf_version(tmp_path)
    good = tmp_path / "ok.gguf"
    good.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\0" * 16)
    assert gx.gguf_version(good) == 3


@pytest.mark.slow
def test_llama_cpp_itself_refuses_a_file_that_is_not_gguf(tmp_path, llama_cpp):
    """The engine side of the rule above (its own loader, in a child: no magic check of ours)."""
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 a zip, not a gguf" * 10)
    proc = subprocess.run([sys.executable, "-m", "llmcombo.gguf._child", "verify", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0


def test_the_converter_knows_llama_and_mixtral_and_not_a_made_up_architecture():
    archs = gx.supported_architectures()
    assert {"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM",
            "GPT2LMHeadModel"} <= archs
    assert "FooForCausalLM" not in archs


def test_the_shipped_converter_is_the_pinned_llama_cpp_python_and_intact():
    conv = gx.find_converter()
    assert conv == gx.SHIPPED_CONVERTER
    info = json.loads((conv / "VERSION.json").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["llama"]
    assert f"llama-cpp-python=={info['llama_cpp_python']}" in extra
    for rel, digest in info["sha256"].items():
        assert hashlib.sha256((conv / rel).read_bytes()).hexdigest() == digest, rel
    assert "MIT License" in (conv / "LICENSE").read_text()
    assert "MIT License" in (conv / "gguf-py" / "LICENSE").read_text()
    package_data = pyproject["tool"]["setuptools"]["package-data"]["llmcombo._vendor"]
    assert "llama_convert/**/*" in package_data


def test_the_installed_llama_cpp_is_the_one_the_converter_comes_from(llama_cpp):
    info = json.loads((gx.SHIPPED_CONVERTER / "VERSION.json").read_text())
    assert llama_cpp.__version__ == info["llama_cpp_python"]


def test_an_override_that_is_not_a_converter_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(gx.ENV_CONVERTER, str(tmp_path))
    with pytest.raises(gx.GGUFError, match="not a llama.cpp converter folder"):
        gx.find_converter()


def test_an_architecture_llama_cpp_cannot_convert_is_refused_before_any_work(tmp_path, llama_cpp):
    folder = tmp_path / "foo"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["FooForCausalLM"]}))
    with pytest.raises(gx.GGUFError) as exc:
        gx.export_gguf(folder, tmp_path / "foo.gguf", "f16")
    assert "llama.cpp cannot convert the architecture FooForCausalLM" in str(exc.value)
    assert "backend: transformers" in exc.value.hint
    assert not (tmp_path / "foo.gguf").exists() and leftovers(tmp_path) == []


def test_without_llama_cpp_python_export_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gx, "llama_cpp_installed", lambda: False)
    with pytest.raises(gx.GGUFError) as exc:
        gx.export_gguf(tmp_path, tmp_path / "x.gguf", "f16")
    assert "pip install 'llmcombo[llama]'" in exc.value.hint and "10 minutes" in exc.value.hint
    assert main(["export-gguf", str(tmp_path), str(tmp_path / "x.gguf")]) == 1
    err = capsys.readouterr().err
    assert "llama-cpp-python, which is not installed" in err and "Traceback" not in err


def test_cli_rejects_an_unknown_quant_with_exit_1(tmp_path, capsys):
    assert main(["export-gguf", str(tmp_path), str(tmp_path / "x.gguf"), "--quant", "q9"]) == 1
    err = capsys.readouterr().err
    assert "unknown GGUF type 'q9'" in err and "q4_k_m" in err and "Traceback" not in err


def test_an_existing_output_is_kept_without_overwrite(tmp_path, llama_cpp):
    out = tmp_path / "model.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(gx.GGUFError, match="already exists"):
        gx.export_gguf(tmp_path, out, "f16")
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("flags,text,expected", [
    ((True, True), "[ORDEN] apaga la luz [COMANDO] LUZ_SL OFF", "[ORDEN]apaga la luz[COMANDO]LUZ_SL OFF"),
    ((True, False), "x  [ORDEN]  y", "x[ORDEN]  y"),
    ((False, True), "x  [ORDEN]\u00a0 y", "x  [ORDEN]y"),
    ((False, False), "x [ORDEN] y", "x [ORDEN] y"),
])
def test_strip_rules_remove_the_whitespace_transformers_swallows(flags, text, expected):
    tj = {"added_tokens": [{"content": "[ORDEN]", "lstrip": flags[0], "rstrip": flags[1]},
                           {"content": "[COMANDO]", "lstrip": flags[0], "rstrip": flags[1]},
                           {"content": "<s>", "lstrip": False, "rstrip": False}]}
    rules = strip_rules(tj)
    assert rules.apply(text) == expected
    assert StripRules.from_json(rules.to_json()) == rules
    assert StripRules.from_json("not json") == StripRules() and not StripRules()


# ---------------------------------------------------------------------------------------------
# slow: llama.cpp's converter and quantiser in child processes
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random tiny Llama with the zoo's quirks: markers with lstrip/rstrip, padded vocabulary."""
    return F.model_folder(tmp_path_factory.mktemp("tiny") / "tiny", strip_markers=True,
                          pad_vocab=True)


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["f16", "q8_0", "q4_k_m"])
def test_export_writes_a_gguf_llama_cpp_loads_and_tokenizes_like_transformers(tiny, tmp_path,
                                                                               quant, llama_cpp):
    out = tmp_path / "sub" / f"tiny-{quant}.gguf"
    r = gx.export_gguf(tiny, out, quant)
    assert r.path == out and out.is_file() and gx.gguf_version(out) == 3
    assert r.quant == quant and r.architecture == "LlamaForCausalLM"
    assert r.size_bytes == out.stat().st_size > 10_000
    # the tokenizer check ran on the markers (which swallow spaces) and found no difference
    assert r.tokenizer_check["checked"] > 50 and r.tokenizer_check["differ"] == 0, r.warnings
    assert [s for s, _ in r.steps][-1] == "verify"
    assert ("quantize q4_k_m" in [s for s, _ in r.steps]) == (quant == "q4_k_m")
    info = gx.verify_gguf(out)
    cfg = json.loads((tiny / "config.json").read_text())
    assert info["n_tokens"] == cfg["vocab_size"]  # the padding rows are tokens too
    assert info["architecture"] == "llama"
    assert leftovers(out.parent) == []
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600


def _umask() -> int:
    from llmcombo.fsutil import umask

    return umask()


@pytest.mark.slow
def test_a_tokenizer_llama_cpp_does_not_recognise_gets_one_clear_message(tmp_path, llama_cpp):
    """Zoo v1's tokenizer shape (Metaspace pre-tokenizer, no byte fallback): the converter itself
    stops at the vocabulary."""
    folder = F.model_folder(tmp_path / "v1like", metaspace=True)
    out = tmp_path / "out" / "v1.gguf"
    with pytest.raises(gx.GGUFError) as exc:
        gx.export_gguf(folder, out, "f16")
    assert str(exc.value).startswith("llama.cpp does not recognise this model's tokenizer.")
    assert "Llama-2-style" in exc.value.hint
    assert "BPE pre-tokenizer was not recognized" in exc.value.log  # the converter's own words
    assert not out.exists() and leftovers(out.parent) == []


@pytest.mark.slow
def test_the_converter_itself_fails_on_an_unknown_architecture(tiny, tmp_path, llama_cpp):
    """The engine side of the architecture rule: without our pre-check, llama.cpp's converter
    stops with 'not supported'."""
    folder = F.model_folder(tmp_path / "foo", architecture="FooForCausalLM")
    with pytest.raises(gx.GGUFError, match="cannot convert the architecture FooForCausalLM"):
        gx._run([sys.executable, "-m", "llmcombo.gguf._convert_runner", str(gx.find_converter()),
                 str(folder), "--", str(folder), "--outtype", "f16", "--outfile",
                 str(tmp_path / "foo.gguf")], "the GGUF conversion", 600)


@pytest.mark.slow
def test_without_the_tokenizer_fixes_llama_cpp_would_tokenize_differently(tiny, tmp_path,
                                                                          llama_cpp):
    """Why the runner adds scores and strip flags: a GGUF without the strip flags tokenizes the
    markers' prompts differently, and the export's check says so (a warning, not an error)."""
    plain = gx.export_gguf(tiny, tmp_path / "ok.gguf", "f16")
    assert plain.warnings == []
    tj = json.loads((tiny / "tokenizer.json").read_text())
    assert strip_rules(tj)  # the factory's markers do swallow spaces
    from llmcombo.gguf import _child

    # tokenize with llama.cpp without applying the rules: the prompts differ from transformers
    import llama_cpp as L

    p = L.llama_model_default_params()
    p.vocab_only = True
    model = L.llama_model_load_from_file(str(tmp_path / "ok.gguf").encode(), p)
    vocab = L.llama_model_get_vocab(model)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    text = F.prompt("apaga la luz del salon")
    assert _child.tokenize(L, vocab, text) != list(tok(text)["input_ids"])
    assert _child.tokenize(L, vocab, strip_rules(tj).apply(text)) == list(tok(text)["input_ids"])
    L.llama_model_free(model)


@pytest.mark.slow
def test_a_mixture_of_experts_exports_too(tmp_path, llama_cpp):
    folder = F.mixtral_folder(tmp_path / "moe")
    r = gx.export_gguf(folder, tmp_path / "moe.gguf", "f16")
    assert r.architecture == "MixtralForCausalLM" and gx.verify_gguf(r.path)["n_tokens"] > 256


@pytest.mark.slow
def test_a_cancelled_export_leaves_nothing(tiny, tmp_path, llama_cpp):
    from llmcombo.progress import CancelToken

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        gx.export_gguf(tiny, tmp_path / "x.gguf", "q4_k_m", cancel=token)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_export_gguf(tiny, tmp_path, capsys, llama_cpp):
    out = tmp_path / "tiny-q8_0.gguf"
    assert main(["export-gguf", str(tiny), str(out), "--quant", "Q8_0"]) == 0
    assert f"GGUF q8_0 of LlamaForCausalLM written to {out}" in capsys.readouterr().out
    before = out.stat().st_mtime_ns
    assert main(["export-gguf", str(tiny), str(out)]) == 1  # exists
    assert "already exists" in capsys.readouterr().err and out.stat().st_mtime_ns == before


@pytest.mark.slow
def test_publish_dry_run_uploads_the_gguf_files_beside_the_safetensors(tiny, tmp_path,
                                                                       llama_cpp):
    import shutil

    from llmcombo.hub import publish

    folder = tmp_path / "my-merge"
    shutil.copytree(tiny, folder)
    with pytest.raises(gx.GGUFError, match="unknown GGUF type"):  # checked before any work
        publish(folder, "me/my-merge", dry_run=True, gguf=["q8_0", "q9"])
    assert not list(folder.glob("*.gguf"))
    r = publish(folder, "me/my-merge", dry_run=True, gguf=["q8_0"])
    assert r.dry_run and {"model.safetensors", "my-merge-q8_0.gguf"} <= set(r.files)
    card = (folder / "README.md").read_text()
    assert "- gguf" in card and "| `my-merge-q8_0.gguf` | Q8_0 |" in card
    mtime = (folder / "my-merge-q8_0.gguf").stat().st_mtime_ns
    publish(folder, "me/my-merge", dry_run=True, gguf=["q8_0"])  # up to date: not redone
    assert (folder / "my-merge-q8_0.gguf").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_run_panel_exports_the_last_merge_to_gguf(tiny, tmp_path, llama_cpp):
    import shutil
    from types import SimpleNamespace

    from llmcombo_widgets.jobs import DONE
    from llmcombo_widgets.viewmodel import FormModel
    from llmcombo_widgets.workbench import RunModel

    run = RunModel(FormModel({}), tmp_path)
    assert not run.can_export_gguf()
    with pytest.raises(UserError, match="Run a merge first"):
        run.export_gguf(background=False)
    folder = tmp_path / "merge-ties"
    shutil.copytree(tiny, folder)
    run.results.append(SimpleNamespace(path=folder))  # what a finished run leaves
    job = run.export_gguf(background=False)
    assert job.status == DONE, job.error
    assert job.result.path == folder / "merge-ties-q8_0.gguf" and job.result.path.is_file()


def test_env_keeps_no_local_gguf_out_of_the_child(monkeypatch):
    """The converter must use its own gguf-py: NO_LOCAL_GGUF would make it import another one."""
    monkeypatch.setenv("NO_LOCAL_GGUF", "1")
    out = gx._run([sys.executable, "-c", "import os; print(os.environ.get('NO_LOCAL_GGUF'))"],
                  "a child", 60)
    assert out.strip() == "None"
    assert os.environ["NO_LOCAL_GGUF"] == "1"


@pytest.mark.slow
def test_a_gguf_file_is_re_encoded_by_the_quantiser(tiny, tmp_path, llama_cpp):
    f16 = gx.export_gguf(tiny, tmp_path / "t-f16.gguf", "f16", check_tokenizer=False).path
    r = gx.export_gguf(f16, tmp_path / "t-q4_k_m.gguf", "q4_k_m")
    assert [s for s, _ in r.steps] == ["quantize q4_k_m", "verify"]
    assert r.architecture == "llama" and 0 < r.size_bytes < f16.stat().st_size
    with pytest.raises(gx.GGUFError, match="is the input file"):
        gx.export_gguf(f16, f16, "q8_0", overwrite=True)
    bad = tmp_path / "zip.gguf"
    bad.write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(gx.GGUFError, match="is not a GGUF file"):
        gx.export_gguf(bad, tmp_path / "never.gguf", "q8_0")
    assert not (tmp_path / "never.gguf").exists() and leftovers(tmp_path) == []
