"""Which engine runs each model of an ensemble: ``transformers`` or ``llama_cpp``
(:mod:`llmcombo.ensemble.llama_backend`). The attributes every member, the selector and a judge
carry, the rules about them, and their part of the generated spec (used by
:mod:`llmcombo.ensemble.branch`, :mod:`llmcombo.ensemble.rules` and :mod:`llmcombo.ensemble.spec`).

Rules (errors only where the engine itself fails): a ``.gguf`` file on ``backend: transformers``
cannot load; ``llama_cpp`` needs llama-cpp-python and a model whose architecture llama.cpp can
convert (model-aware check, reads config.json); ``threads`` / ``quant`` on a transformers model do
nothing and ``device: cuda`` does not move llama.cpp models (warnings).
"""

from __future__ import annotations


from llmcombo.featuremodel import Attribute, EnumType, IntType, error, warning
from llmcombo.featuremodel.issues import Issue
from llmcombo.shapes import as_list as _as_list

E = "ensemble"

BACKENDS = {"transformers": "PyTorch + transformers (the model folder as it is)",
            "llama_cpp": "llama.cpp (a .gguf file, or the folder converted once to GGUF)"}


def backend_attributes() -> list[Attribute]:
    """Which engine runs a model (members, the selector, a judge)."""
    from llmcombo.gguf.format import QUANT_TYPES

    return [
        Attribute("backend", EnumType(tuple(BACKENDS), labels=BACKENDS), default="transformers",
                  label="backend", description="transformers, or llama_cpp (llama.cpp: a .gguf "
                  "file always uses it; a folder is converted to GGUF once and cached)"),
        Attribute("quant", EnumType(QUANT_TYPES), default="f16", label="GGUF type", advanced=True,
                  description="llama_cpp only: the type a model folder is converted to (f16 keeps "
                              "the answers; q8_0 / q4_k_m are smaller and faster on big models)"),
        Attribute("threads", IntType(1, 256), label="CPU threads", advanced=True,
                  description="llama_cpp only: llama.cpp's threads (default 1 for models under "
                              "50M parameters, else up to 4)"),
    ]


def model_entries(config: dict) -> list[tuple[str, dict]]:
    """``(path, dict)`` of every place that names a model and may choose its backend: stages,
    vote members, routes, the judge and the selector."""
    ens = config.get(E) if isinstance(config, dict) else None
    if not isinstance(ens, dict):
        return []
    kinds = [k for k in ("pipeline", "vote", "router") if isinstance(ens.get(k), dict)]
    if len(kinds) != 1:
        return []
    kind = kinds[0]
    body = ens[kind]
    key = {"pipeline": "stages", "vote": "members", "router": "routes"}[kind]
    out = [(f"{E}.{kind}.{key}[{i}]", m) for i, m in enumerate(_as_list(body.get(key)))
           if isinstance(m, dict)]
    for sub in ("judge", "selector"):
        if isinstance(body.get(sub), dict):
            out.append((f"{E}.{kind}.{sub}", body[sub]))
    return out


def check_backends(ens: dict, data: dict) -> list[Issue]:
    """A .gguf file on transformers cannot load; llama.cpp settings on transformers do nothing;
    llama.cpp runs on the CPU whatever the ensemble's device says."""
    issues: list[Issue] = []
    on_llama = []
    for path, m in model_entries(data):
        ref, backend = m.get("model"), m.get("backend")
        is_gguf = isinstance(ref, str) and ref.lower().endswith(".gguf")
        effective = backend or ("llama_cpp" if is_gguf else "transformers")
        if is_gguf and backend == "transformers":
            issues.append(error(f"{path}.backend", f"{ref} is a GGUF file, which the transformers "
                                                   "backend cannot load.",
                                "Use backend: llama_cpp (or remove backend: a .gguf model runs on "
                                "llama.cpp).", "backend"))
        if effective == "transformers":
            for key in ("threads", "quant"):
                if m.get(key) is not None:
                    issues.append(warning(f"{path}.{key}", f"{key} only applies to the llama_cpp "
                                                           "backend; this model runs on "
                                                           "transformers.",
                                          "Set backend: llama_cpp, or remove it.", "ignored"))
        elif m.get("kind") != "keywords":
            on_llama.append(path)
    if on_llama and ens.get("device") == "cuda":
        issues.append(warning(f"{E}.device", "llama_cpp models run on the CPU here (llama-cpp-python "
                                             "as llmcombo installs it); only the transformers "
                                             "models use CUDA.",
                              "Use device: auto, or backend: transformers for the models that "
                              "should use the GPU.", "backend"))
    return issues


def check_llama_model(ref: str, path: str, base_dir, classifier: bool) -> list[Issue]:
    """What llama.cpp would refuse: no llama-cpp-python, a .gguf that is not GGUF, a model whose
    architecture llama.cpp cannot convert (read from config.json)."""
    from llmcombo import modelref
    from llmcombo.gguf import export as gx

    backend = path.rsplit(".", 1)[0] + ".backend"
    if not gx.llama_cpp_installed():
        return [error(backend, "the llama_cpp backend needs llama-cpp-python, which is not "
                               "installed.", gx.INSTALL_HINT, "llama_missing")]
    try:
        resolved = modelref.resolve(ref, base_dir)
    except Exception:
        return []  # inspect_model reports it
    if ref.lower().endswith(".gguf"):
        try:
            gx.gguf_version(resolved)
        except gx.GGUFError as exc:
            return [error(path, exc.message, exc.hint, "not_gguf")]
        return []
    import json
    from pathlib import Path

    folder = Path(resolved)
    if classifier:  # the classifier's base model is what llama.cpp runs
        try:
            base = json.loads((folder / "selector.json").read_text(encoding="utf-8"))["base"]
            folder = Path(modelref.resolve(base))
        except (OSError, ValueError, KeyError, TypeError):
            return []
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # a hub id, or a folder inspect_model reports on
    archs = cfg.get("architectures") or []
    if archs and archs[0] not in gx.supported_architectures():
        return [error(path, f"llama.cpp cannot convert the architecture {archs[0]} of {ref}.",
                      "Use backend: transformers for this model.", "llama_arch")]
    return []


def backend_spec(m: dict) -> dict:
    """``backend`` (always), and for llama_cpp ``quant`` and ``threads`` (None: automatic)."""
    ref = m.get("model")
    backend = m.get("backend") or ("llama_cpp" if isinstance(ref, str)
                                   and ref.lower().endswith(".gguf") else "transformers")
    if backend != "llama_cpp":
        return {"backend": backend}
    return {"backend": backend, "quant": m.get("quant") or "f16",
            "threads": int(m["threads"]) if m.get("threads") else None}
