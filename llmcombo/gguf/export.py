"""GGUF export of one model with llama.cpp's own tools (see :mod:`llmcombo.gguf`).

The GGUF types, the file header and :class:`GGUFError` are in :mod:`llmcombo.gguf.format`;
llama.cpp's converter and the running of its tools in :mod:`llmcombo.gguf.tools`. Their public
names are importable from here too, as before.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcombo.gguf.format import (
    ALIASES, CONVERTER_TYPES, FTYPES, GGUF_MAGIC, QUANT_TYPES, QUANTIZER_TYPES, GGUFError,
    gguf_version, is_gguf_file, normalize_quant,
)
from llmcombo.gguf.tools import (
    ENV_CONVERTER, SHIPPED_CONVERTER, _run, check_architecture, converter_version,
    find_converter, model_architecture, supported_architectures,
)

__all__ = [
    "ALIASES", "CONVERTER_TYPES", "ENV_CONVERTER", "FTYPES", "GGUF_MAGIC", "INSTALL_HINT",
    "QUANTIZER_TYPES", "QUANT_TYPES", "SHIPPED_CONVERTER", "SMALL_MODEL_BYTES", "ExportResult",
    "GGUFError", "check_architecture", "converter_version", "export_gguf", "find_converter",
    "gguf_version", "is_gguf_file", "llama_cpp_installed", "local_model_folder",
    "model_architecture", "normalize_quant", "require_llama_cpp", "supported_architectures",
    "verify_gguf",
]

INSTALL_HINT = ("pip install 'llmcombo[llama]' (PyPI has no llama-cpp-python wheel for most "
                "platforms: pip builds llama.cpp from source, about 10 minutes the first time)")
SMALL_MODEL_BYTES = 2 * 2**30  # below: quantise from an f32 conversion; above: from the 16-bit one


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
# checks that need no model (the GGUF types and header: llmcombo.gguf.format)
# ---------------------------------------------------------------------------------------------


def llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def require_llama_cpp(what: str = "GGUF export") -> None:
    """A :class:`GGUFError` saying how to install llama-cpp-python when it is missing."""
    if not llama_cpp_installed():
        raise GGUFError(f"{what} needs llama-cpp-python, which is not installed.",
                        hint=INSTALL_HINT)


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
# verifying and exporting
# ---------------------------------------------------------------------------------------------


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
