"""Where the zoo is and what it holds, without training anything.

The zoo ships with llmcombo (``llmcombo/zoo/data``: four tiny Llama models and ``zoo.json``), so
``zoo:NAME`` works at once on any machine. ``$LLMCOMBO_ZOO_DIR`` points at another zoo, for
example one retrained with ``llmcombo zoo build`` (``~/.cache/llmcombo/zoo/v{ZOO_VERSION}`` by
default). Resolving a zoo model never trains it: a missing zoo is an error that names the command
that builds it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmcombo.errors import UserError

ZOO_VERSION = 2
MODEL_NAMES = ("base", "domotica", "tiempo", "selector")
MANIFEST = "zoo.json"
ENV_DIR = "LLMCOMBO_ZOO_DIR"
SHIPPED_DIR = Path(__file__).resolve().parent / "data"


def cache_dir() -> Path:
    """Where ``llmcombo zoo build`` trains a zoo by default."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(cache).expanduser().absolute() / "llmcombo" / "zoo" / f"v{ZOO_VERSION}"


def default_dir() -> Path:
    """``$LLMCOMBO_ZOO_DIR`` if set, else the zoo shipped with llmcombo when it is there, else
    :func:`cache_dir`."""
    env = os.environ.get(ENV_DIR, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    if is_complete(SHIPPED_DIR):
        return SHIPPED_DIR
    return cache_dir()


def _check_name(name: str) -> str:
    if name not in MODEL_NAMES:
        raise UserError(f"there is no zoo model called {name!r}",
                        hint=f"valid zoo models: {', '.join(MODEL_NAMES)}")
    return name


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a whole zoo of the current :data:`ZOO_VERSION`."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if not manifest or manifest.get("zoo_version") != ZOO_VERSION:
        return False
    needed = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    return all((folder / name / f).is_file() for name in MODEL_NAMES for f in needed)


class Zoo:
    """A built zoo on disk."""

    def __init__(self, dir: str | os.PathLike):
        self.dir = Path(dir)
        manifest = _read_manifest(self.dir)
        if manifest is None:
            raise UserError(f"{self.dir} is not a built zoo (no {MANIFEST})",
                            hint="run `llmcombo zoo build`")
        self.manifest: dict = manifest

    def path(self, name: str) -> Path:
        """The folder of zoo model ``name`` (base, domotica, tiempo, selector)."""
        return self.dir / _check_name(name)

    @property
    def models(self) -> dict[str, Path]:
        return {name: self.dir / name for name in MODEL_NAMES}

    @property
    def tasks(self) -> dict:
        from llmcombo.zoo import tasks

        return tasks.TASKS

    @property
    def accuracy(self) -> dict[str, dict[str, float]]:
        """``{model: {"domotica": acc, "tiempo": acc, "routing": acc}}`` (held-out test splits)."""
        return {n: dict(m["accuracy"]) for n, m in self.manifest["models"].items()}

    def load(self, name: str):
        """``(model, tokenizer)`` of zoo model ``name``, in eval mode."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.path(name)
        model = AutoModelForCausalLM.from_pretrained(path)
        model.eval()
        return model, AutoTokenizer.from_pretrained(path)

    def table(self) -> str:
        """The models, their sizes and accuracies, as a text table."""
        rows = [("model", "params", "size", "domotica", "tiempo", "routing")]
        for name in MODEL_NAMES:
            info = self.manifest["models"][name]
            acc = info["accuracy"]
            rows.append((name, f"{info['parameters'] / 1e6:.2f}M", f"{info['size_bytes'] / 2**20:.1f} MiB",
                         f"{acc['domotica']:.1%}", f"{acc['tiempo']:.1%}", f"{acc['routing']:.1%}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Zoo({str(self.dir)!r})"


def model_path(name: str) -> Path:
    """The folder of zoo model ``name`` in the default zoo (it may not exist: see
    :func:`is_complete`). Never trains."""
    return default_dir() / _check_name(name)
