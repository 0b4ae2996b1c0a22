"""llama.cpp's tools, as llmcombo runs them: its converter ``convert_hf_to_gguf.py`` (where it is,
which version, which Hugging Face architectures it knows, and a model folder's architecture) and
:func:`_run`, which runs one tool in a child process (cancellable, with a timeout) and turns its
known failures into a :class:`~llmcombo.gguf.format.GGUFError` with a hint. Used by
:mod:`llmcombo.gguf.export`, which re-exports the public names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from llmcombo.errors import Cancelled
from llmcombo.gguf.format import GGUFError

ENV_CONVERTER = "LLMCOMBO_LLAMA_CPP_CONVERTER"
SHIPPED_CONVERTER = Path(__file__).resolve().parent.parent / "_vendor" / "llama_convert"


# ---------------------------------------------------------------------------------------------
# the converter
# ---------------------------------------------------------------------------------------------


def _is_converter_dir(d: Path) -> bool:
    return ((d / "convert_hf_to_gguf.py").is_file() and (d / "conversion").is_dir()
            and (d / "gguf-py" / "gguf").is_dir())


def find_converter() -> Path:
    """llama.cpp's converter: ``$LLMCOMBO_LLAMA_CPP_CONVERTER`` (a llama.cpp checkout) or the copy
    shipped with llmcombo (``llmcombo/_vendor/llama_convert``, from the pinned llama-cpp-python)."""
    env = os.environ.get(ENV_CONVERTER, "").strip()
    if env:
        d = Path(env).expanduser()
        if not _is_converter_dir(d):
            raise GGUFError(f"{ENV_CONVERTER}={env} is not a llama.cpp converter folder.",
                            field=ENV_CONVERTER, hint="It must hold convert_hf_to_gguf.py, "
                            "conversion/ and gguf-py/ (a llama.cpp checkout); or unset it.")
        return d
    if _is_converter_dir(SHIPPED_CONVERTER):
        return SHIPPED_CONVERTER
    raise GGUFError("llama.cpp's converter is missing from this llmcombo installation.",
                    hint=f"Reinstall llmcombo, or set {ENV_CONVERTER} to a llama.cpp checkout.")


def converter_version() -> str:
    """The llama-cpp-python version the shipped converter comes from (``VERSION.json``), or the
    override's path."""
    conv = find_converter()
    try:
        return json.loads((conv / "VERSION.json").read_text(encoding="utf-8"))["llama_cpp_python"]
    except (OSError, ValueError, KeyError):
        return f"custom:{conv}"


@lru_cache(maxsize=4)
def _architectures(conv: str) -> frozenset[str]:
    names: set[str] = set()
    for f in (Path(conv) / "conversion").glob("*.py"):
        for args in re.findall(r"ModelBase\.register\(([^)]*)\)", f.read_text(encoding="utf-8")):
            names.update(re.findall(r"[\"']([A-Za-z0-9_]+)[\"']", args))
    return frozenset(names)


def supported_architectures() -> frozenset[str]:
    """The Hugging Face ``architectures`` names llama.cpp's converter knows (read from its source,
    without importing torch)."""
    return _architectures(str(find_converter()))


def model_architecture(folder: str | os.PathLike) -> str:
    cfg_path = Path(folder) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GGUFError(f"{folder} has no config.json, so it is not a model folder.") from None
    except (OSError, ValueError) as exc:
        raise GGUFError(f"cannot read {cfg_path}: {exc}") from None
    archs = cfg.get("architectures") or (cfg.get("text_config") or {}).get("architectures") or []
    if not archs:
        raise GGUFError(f"{cfg_path} names no architecture ('architectures' is missing).",
                        hint="Save the model with transformers' save_pretrained.")
    return str(archs[0])


def check_architecture(arch: str, field: str | None = None) -> None:
    if arch not in supported_architectures():
        raise GGUFError(f"llama.cpp cannot convert the architecture {arch}.", field=field,
                        hint="GGUF export and the llama_cpp backend work for the architectures "
                             "llama.cpp knows (Llama, Mistral, Mixtral, Qwen, Gemma, Phi, GPT-2, "
                             "...); use backend: transformers for this model.")


# ---------------------------------------------------------------------------------------------
# running the tools
# ---------------------------------------------------------------------------------------------

_KNOWN_FAILURES = [
    (r"Model (\S+) is not supported", "llama.cpp cannot convert the architecture {0}.",
     "GGUF export works for the architectures llama.cpp knows (Llama, Mistral, Mixtral, Qwen, "
     "Gemma, Phi, GPT-2, ...)."),
    (r"BPE pre-tokenizer was not recognized|Cannot find Llama BPE tokenizer|"
     r"Cannot find tokenizer", "llama.cpp does not recognise this model's tokenizer.",
     "llama.cpp reads SentencePiece tokenizers (tokenizer.model), Llama-2-style tokenizer.json "
     "files (BPE with byte_fallback) and the byte-level BPE tokenizers of the models it knows; "
     "retrain or save the tokenizer in one of those shapes, or use backend: transformers."),
    (r"No module named '(sentencepiece|google\.protobuf|google)'",
     "llama.cpp's converter needs the Python package {0} for this tokenizer.",
     "pip install 'llmcombo[llama]' (it brings sentencepiece and protobuf)."),
    (r"Can not map tensor '([^']+)'", "llama.cpp cannot map the tensor {0} of this model.",
     "The model has weights its architecture does not have in llama.cpp."),
    (r"KeyError: '([^']+)'", "llama.cpp's converter expects '{0}' in config.json, which this "
     "model's config lacks.", "The config may come from a newer transformers than this converter "
     "knows; add the key by hand, or update llmcombo's converter copy."),
    (r"No space left on device", "the disk is full.", "Free some space and export again."),
    (r"ncols \d+ not divisible|requires imatrix|importance matrix",
     "llama.cpp cannot quantise this model to the requested type.",
     "Use q8_0, q6_k, q5_k_m or q4_k_m."),
]


def _explain(log: str, what: str) -> GGUFError:
    for pattern, message, hint in _KNOWN_FAILURES:
        m = re.search(pattern, log)
        if m:
            return GGUFError(message.format(*m.groups()), hint=hint, log=log)
    tail = "\n".join(log.strip().splitlines()[-8:])
    return GGUFError(f"{what} failed:\n{tail}", log=log)


def _run(cmd: list[str], what: str, timeout: float | None, cancel=None) -> str:
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own gguf-py
    env.setdefault("PYTHONIOENCODING", "utf-8")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryFile() as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            while True:
                try:
                    rc = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled(f"{what} was cancelled") from None
                    if timeout is not None and time.monotonic() - started > timeout:
                        raise GGUFError(f"{what} took longer than {timeout:.0f} s and was "
                                        "stopped.") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        log_file.seek(0)
        log = log_file.read().decode("utf-8", errors="replace")
    if rc != 0:
        if rc < 0 or rc == 134:  # killed by a signal (GGML_ASSERT -> abort)
            log += f"\n(the process was stopped by signal {-rc if rc < 0 else 6})"
        raise _explain(log, what)
    return log
