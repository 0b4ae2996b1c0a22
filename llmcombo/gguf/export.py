"""GGUF export of one model with llama.cpp's own tools (see :mod:`llmcombo.gguf`)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmcombo.errors import Cancelled, UserError

ENV_CONVERTER = "LLMCOMBO_LLAMA_CPP_CONVERTER"
SHIPPED_CONVERTER = Path(__file__).resolve().parent.parent / "_vendor" / "llama_convert"
INSTALL_HINT = ("pip install 'llmcombo[llama]' (PyPI has no llama-cpp-python wheel for most "
                "platforms: pip builds llama.cpp from source, about 10 minutes the first time)")
GGUF_MAGIC = b"GGUF"

# what llama.cpp's converter writes itself (--outtype)
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
# what llama_model_quantize writes from a converted file: llama_ftype numbers (LLAMA_FTYPE_MOSTLY_*
# in llama.h; tests/test_gguf.py checks them against the installed llama_cpp)
QUANTIZER_TYPES = {
    "q6_k": 18, "q5_k_m": 17, "q5_k_s": 16, "q5_0": 8, "q5_1": 9, "q4_k_m": 15, "q4_k_s": 14,
    "q4_0": 2, "q4_1": 3, "q3_k_l": 13, "q3_k_m": 12, "q3_k_s": 11, "q2_k": 10, "iq4_nl": 25,
    "iq4_xs": 30,
}
QUANT_TYPES = CONVERTER_TYPES + tuple(QUANTIZER_TYPES)
# llama_ftype of the converter's types, for re-encoding a GGUF file with the quantiser
FTYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32, **QUANTIZER_TYPES}
ALIASES = {"float32": "f32", "fp32": "f32", "float16": "f16", "fp16": "f16", "half": "f16",
           "bfloat16": "bf16", "q8": "q8_0", "q4_k": "q4_k_m", "q5_k": "q5_k_m", "q3_k": "q3_k_m",
           "q6": "q6_k"}
SMALL_MODEL_BYTES = 2 * 2**30  # below: quantise from an f32 conversion; above: from the 16-bit one


class GGUFError(UserError):
    """A GGUF export or file that cannot work; ``log`` keeps the tool's own output."""

    def __init__(self, message: str, *, hint: str | None = None, log: str = "",
                 field: str | None = None):
        super().__init__(message, hint=hint, field=field)
        self.log = log


@dataclass
class ExportResult:
    """What :func:`export_gguf` wrote."""

    path: Path
    quant: str
    architecture: str
    size_bytes: int
    seconds: float
    steps: list[tuple[str, float]] = field(default_factory=list)
    tokenizer_check: dict = field(default_factory=dict)  # {checked, differ, examples}
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        size = f"{self.size_bytes / 2**20:.1f} MiB"
        tok = self.tokenizer_check
        check = (f"; tokenization checked on {tok['checked']} texts, {tok['differ']} differ"
                 if tok.get("checked") else "")
        return (f"GGUF {self.quant} of {self.architecture} written to {self.path} ({size}, "
                f"{self.seconds:.1f} s{check})")


# ---------------------------------------------------------------------------------------------
# checks that need no model
# ---------------------------------------------------------------------------------------------


def normalize_quant(quant: str) -> str:
    """``"Q4_K_M"``, ``"q4-k-m"``, ``"fp16"`` -> the canonical name; an unknown name is a
    :class:`GGUFError` that lists the valid ones."""
    q = str(quant).strip().lower().replace("-", "_")
    q = ALIASES.get(q, q)
    if q in QUANT_TYPES:
        return q
    import difflib

    close = difflib.get_close_matches(q, QUANT_TYPES, n=1, cutoff=0.6)
    raise GGUFError(f"unknown GGUF type {quant!r}" + (f" (did you mean {close[0]}?)" if close
                                                     else ""),
                    field="quant", hint="use one of " + ", ".join(QUANT_TYPES))


def llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def require_llama_cpp(what: str = "GGUF export") -> None:
    """A :class:`GGUFError` saying how to install llama-cpp-python when it is missing."""
    if not llama_cpp_installed():
        raise GGUFError(f"{what} needs llama-cpp-python, which is not installed.",
                        hint=INSTALL_HINT)


def gguf_version(path: str | os.PathLike) -> int:
    """The GGUF version of the file ``path``; a :class:`GGUFError` when it is not a GGUF file."""
    p = Path(path)
    if p.is_dir():
        raise GGUFError(f"{p} is a folder, not a GGUF file.",
                        hint="Give the .gguf file, or the model folder with backend llama_cpp "
                             "(converted once and cached).")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise GGUFError(f"GGUF file not found: {p}", hint="Check the path.") from None
    except OSError as exc:
        raise GGUFError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise GGUFError(f"{p} is not a GGUF file (it starts with {head[:4]!r}, not b'GGUF').",
                        hint="Export a model with `llmcombo export-gguf MODEL OUT.gguf`, or pick "
                             "the .gguf file.")
    return struct.unpack("<I", head[4:8])[0]


def is_gguf_file(path: str | os.PathLike) -> bool:
    try:
        gguf_version(path)
        return True
    except GGUFError:
        return False


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
# where the model is
# ---------------------------------------------------------------------------------------------


def local_model_folder(ref: Any, base_dir=None) -> Path:
    """A local folder for a model reference: a folder, ``zoo:NAME``, a Hub id (from the local
    Hugging Face cache, or downloaded), a :class:`llmcombo.run.RunResult`."""
    from llmcombo import modelref

    if hasattr(ref, "path") and not isinstance(ref, (str, os.PathLike)):
        ref = ref.path  # a RunResult
    ref = os.fspath(ref) if isinstance(ref, os.PathLike) else ref
    if not isinstance(ref, str) or not ref.strip():
        raise GGUFError(f"a model must be a folder, a hub id or zoo:NAME, not {ref!r}.")
    path = modelref.resolve(ref, base_dir)
    if os.path.isdir(path):
        return Path(path)
    if modelref.is_hub_id(path.split("@")[0]):
        repo, _, rev = path.partition("@")
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]
        try:
            return Path(snapshot_download(repo, revision=rev or None, allow_patterns=patterns,
                                          local_files_only=True))
        except Exception:
            pass
        try:
            return Path(snapshot_download(repo, revision=rev or None, allow_patterns=patterns))
        except Exception as exc:
            raise GGUFError(f"could not get {ref} from the Hugging Face Hub: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                            hint="Check the name and your connection, or give a local folder.") \
                from None
    raise GGUFError(f"model folder not found: {path}",
                    hint="Give a model folder, a hub id (owner/name) or zoo:NAME.")


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


def verify_gguf(path: str | os.PathLike, model_dir: str | os.PathLike | None = None,
                timeout: float | None = 600) -> dict:
    """Load ``path``'s metadata and vocabulary with the installed llama.cpp (a child process);
    given the Hugging Face folder it came from, also compare transformers' token ids (computed
    here) with llama.cpp's on :func:`llmcombo.gguf.tokens.check_texts`. Returns
    ``{n_tokens, architecture, tokenizer}`` (+ ``checked``, ``differ``, ``examples``)."""
    gguf_version(path)
    require_llama_cpp("reading a GGUF file")
    cmd = [sys.executable, "-m", "llmcombo.gguf._child", "verify", str(path)]
    tok = texts = None
    with tempfile.TemporaryDirectory(prefix="llmcombo-verify-") as tmp:
        if model_dir is not None:
            from llmcombo.gguf.tokens import check_texts
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(model_dir))
            plain = {tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token}
            marks = [t.content for t in getattr(tok, "added_tokens_decoder", {}).values()
                     if getattr(t, "special", False) and t.content not in plain]
            texts = check_texts(marks)
            check = Path(tmp) / "check.json"
            check.write_text(json.dumps({"texts": texts, "ids": [list(tok(t)["input_ids"])
                                                                 for t in texts]}),
                             encoding="utf-8")
            cmd.append(str(check))
        try:
            log = _run(cmd, f"loading {Path(path).name} with llama.cpp", timeout)
        except GGUFError as exc:
            raise GGUFError(f"llama.cpp cannot load {path}.", log=exc.log,
                            hint="The file may be damaged, or written by a newer llama.cpp than "
                                 "the installed llama-cpp-python.") from None
    lines = [ln for ln in log.splitlines() if ln.startswith("{")]
    info = json.loads(lines[-1]) if lines else {}
    if tok is not None and texts is not None:
        differ = info.pop("differ_ids", {})
        info["checked"], info["differ"] = len(texts), len(differ)
        info["examples"] = [{"text": texts[int(i)],
                             "transformers": tok.convert_ids_to_tokens(
                                 list(tok(texts[int(i)])["input_ids"]))[:24],
                             "llama_cpp": tok.convert_ids_to_tokens(
                                 [t for t in ids if 0 <= t < len(tok)])[:24]}
                            for i, ids in list(differ.items())[:3]]
    return info


def _weights_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) + \
        sum(f.stat().st_size for f in folder.glob("*.bin"))


def export_gguf(model: Any, out: str | os.PathLike, quant: str = "f16", *, base_dir=None,
                overwrite: bool = False, threads: int | None = None, check_tokenizer: bool = True,
                progress: Any = None, cancel=None, timeout: float | None = None) -> ExportResult:
    """Write ``model`` (a model folder, ``zoo:NAME``, a Hub id, a merge's
    :class:`~llmcombo.run.RunResult`) as one GGUF file ``out`` of type ``quant``
    (:data:`QUANT_TYPES`: ``f16``, ``q8_0``, ``q4_k_m``, ...). A ``.gguf`` file as ``model`` is
    re-encoded by the quantiser (f16 -> q4_k_m, say).

    llama.cpp's converter (llmcombo's copy, in a child process) writes f32/f16/bf16/q8_0; the
    other types are quantised from its output by ``llama_model_quantize`` (another child). The
    result is loaded by the installed llama.cpp and its tokenizer compared with transformers'
    (``check_tokenizer``; a difference is a warning in the result) before it is moved to ``out``:
    a failure or an interrupt leaves no file at ``out`` and no temporary file behind. ``out``
    is replaced only with ``overwrite=True``. Raises :class:`GGUFError` with a hint.
    """
    from llmcombo.fsutil import file_mode
    from llmcombo.progress import as_progress

    t0 = time.perf_counter()
    q = normalize_quant(quant)
    out_path = Path(out).expanduser().absolute()
    if out_path.is_dir():
        raise GGUFError(f"{out_path} is a folder; give the GGUF file's name (e.g. "
                        f"{out_path / ('model-' + q + '.gguf')}).", field="out")
    if out_path.exists() and not overwrite:
        raise GGUFError(f"{out_path} already exists.", field="out",
                        hint="Choose another name, or allow replacing it (overwrite=True, "
                             "--overwrite).")
    require_llama_cpp()
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".gguf"):
        return _requantize(Path(model).expanduser(), out_path, q, threads, progress, cancel,
                           timeout, t0)
    folder = local_model_folder(model, base_dir).resolve()
    arch = model_architecture(folder)
    check_architecture(arch)
    conv = find_converter()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    progress = as_progress(progress)
    conv_type = q if q in CONVERTER_TYPES else \
        ("f32" if _weights_bytes(folder) <= SMALL_MODEL_BYTES else "auto")
    temps: list[Path] = []

    def temp(tag: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{out_path.name}.{tag}.", suffix=".part",
                                    dir=out_path.parent)
        os.close(fd)
        temps.append(Path(name))
        return temps[-1]

    result = ExportResult(out_path, q, arch, 0, 0.0)
    steps = 2 + (q in QUANTIZER_TYPES)
    progress.start(steps, f"GGUF {q}")
    try:
        final = temp("gguf")
        target = temp(conv_type) if q in QUANTIZER_TYPES else final
        ts = time.perf_counter()
        progress.log(f"converting {folder} with llama.cpp's converter ({conv_type})")
        _run([sys.executable, "-m", "llmcombo.gguf._convert_runner", str(conv), str(folder), "--",
              str(folder), "--outtype", conv_type, "--outfile", str(target)],
             "the GGUF conversion", timeout, cancel)
        gguf_version(target)
        result.steps.append(("convert " + conv_type, round(time.perf_counter() - ts, 3)))
        progress.update(1)
        if q in QUANTIZER_TYPES:
            ts = time.perf_counter()
            n = threads or max(1, min(4, os.cpu_count() or 1))
            progress.log(f"quantising to {q}")
            _run([sys.executable, "-m", "llmcombo.gguf._child", "quantize", str(target),
                  str(final), str(QUANTIZER_TYPES[q]), str(n)], f"quantising to {q}", timeout,
                 cancel)
            target.unlink(missing_ok=True)
            result.steps.append(("quantize " + q, round(time.perf_counter() - ts, 3)))
            progress.update(1)
        gguf_version(final)
        ts = time.perf_counter()
        info = verify_gguf(final, folder if check_tokenizer else None)
        result.steps.append(("verify", round(time.perf_counter() - ts, 3)))
        progress.update(1)
        if check_tokenizer and "checked" in info:
            result.tokenizer_check = {k: info[k] for k in ("checked", "differ", "examples")}
            if info["differ"]:
                ex = info["examples"][0]
                result.warnings.append(
                    f"llama.cpp tokenizes {info['differ']} of {info['checked']} test texts "
                    f"differently from transformers (e.g. {ex['text']!r}: transformers "
                    f"{ex['transformers']}, llama.cpp {ex['llama_cpp']}); the GGUF model may "
                    "answer differently.")
                progress.log("warning: " + result.warnings[-1])
        os.chmod(final, file_mode())
        os.replace(final, out_path)
    except BaseException:
        for t in temps:
            t.unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    result.size_bytes = out_path.stat().st_size
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _requantize(src: Path, out_path: Path, q: str, threads, progress, cancel, timeout,
                t0: float) -> ExportResult:
    """A GGUF file re-encoded to another type by llama.cpp's quantiser (e.g. f16 -> q4_k_m)."""
    from llmcombo.fsutil import file_mode
    from llmcombo.progress import as_progress

    gguf_version(src)
    if src.resolve() == out_path.resolve():
        raise GGUFError(f"{out_path} is the input file; write the new type to another file.",
                        field="out")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    progress = as_progress(progress)
    fd, name = tempfile.mkstemp(prefix=f".{out_path.name}.gguf.", suffix=".part",
                                dir=out_path.parent)
    os.close(fd)
    tmp = Path(name)
    result = ExportResult(out_path, q, "", 0, 0.0)
    progress.start(2, f"GGUF {q}")
    try:
        ts = time.perf_counter()
        n = threads or max(1, min(4, os.cpu_count() or 1))
        _run([sys.executable, "-m", "llmcombo.gguf._child", "quantize", str(src), str(tmp),
              str(FTYPES[q]), str(n)], f"quantising {src.name} to {q}", timeout, cancel)
        result.steps.append(("quantize " + q, round(time.perf_counter() - ts, 3)))
        progress.update(1)
        ts = time.perf_counter()
        result.architecture = verify_gguf(tmp).get("architecture") or "?"
        result.steps.append(("verify", round(time.perf_counter() - ts, 3)))
        progress.update(1)
        os.chmod(tmp, file_mode())
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    result.size_bytes = out_path.stat().st_size
    result.seconds = round(time.perf_counter() - t0, 3)
    return result
