"""GGUF: llama.cpp's file format, for every product that is one model (a merge, a mixture of
experts, a zoo model, a Hub model)::

    from llmcombo.gguf import export_gguf
    export_gguf("out/my-merge", "out/my-merge/my-merge-q8_0.gguf", "q8_0")
    # llmcombo export-gguf out/my-merge my-merge-q8_0.gguf --quant q8_0

llama.cpp's own tools do the work: its converter ``convert_hf_to_gguf.py`` (a copy ships with
llmcombo, from the llama-cpp-python sdist the ``[llama]`` extra pins; ``$LLMCOMBO_LLAMA_CPP_CONVERTER``
points at another llama.cpp checkout) writes f32/f16/bf16/q8_0 in a child process, and
``llama_model_quantize`` from llama-cpp-python writes the other types (q4_k_m, q5_k_m, q6_k ...)
in another. The result is loaded by the installed llama.cpp, its tokenization compared with
transformers', and only then moved into place. :func:`cached_gguf` converts a model folder once
for the ``llama_cpp`` backend of ensemble members (:mod:`llmcombo.ensemble.llama_backend`).

Needs ``pip install 'llmcombo[llama]'`` (llama-cpp-python builds from source, about 10 minutes).
"""

from __future__ import annotations

_LAZY = {
    "export_gguf": "export", "ExportResult": "export", "GGUFError": "format",
    "QUANT_TYPES": "format", "normalize_quant": "format", "gguf_version": "format",
    "is_gguf_file": "format", "verify_gguf": "export", "find_converter": "tools",
    "supported_architectures": "tools", "llama_cpp_installed": "export",
    "require_llama_cpp": "export", "INSTALL_HINT": "export",
    "cached_gguf": "cache", "cache_dir": "cache",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"llmcombo.gguf.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
