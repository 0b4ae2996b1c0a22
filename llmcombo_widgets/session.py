"""What survives a reload of the page: the form and the runs, saved beside the outputs.

The dashboard writes ``OUTPUTS/.llmcombo-session.json`` (the configuration being edited, the
folders of runs made elsewhere, the Evaluate and Ensembles choices) after every change, atomically,
and reads it when a new page opens. The runs themselves are found on disk: every folder under
``OUTPUTS`` (and every folder the session remembers) holding ``llmcombo_lineage.json``, newest
first, with the configuration that made it (from its lineage).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcombo.outputs import LINEAGE_FILE

SESSION_FILE = ".llmcombo-session.json"
VERSION = 1


@dataclass
class RunRecord:
    """One output folder written by a run (read from its lineage)."""

    path: Path
    kind: str = ""
    method: str = ""
    run_id: str | None = None
    finished_at: str = ""
    seconds: float | None = None
    configuration: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def label(self) -> str:
        """What a picker shows: the folder's name, what it is and when it was made."""
        when = self.finished_at.replace("T", " ")[:16] if self.finished_at else ""
        what = f"{self.kind} {self.method}".strip() if self.method != self.kind else self.kind
        extra = ", ".join(x for x in (what, when) if x)
        return f"{self.name} ({extra})" if extra else self.name

    @classmethod
    def read(cls, folder: str | os.PathLike) -> RunRecord | None:
        folder = Path(folder)
        try:
            lineage = json.loads((folder / LINEAGE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(lineage, dict) or not (folder / "config.json").is_file():
            return None
        return cls(folder.absolute(), str(lineage.get("kind") or ""), str(lineage.get("method") or ""),
                   lineage.get("run_id"), str(lineage.get("finished_at") or ""),
                   lineage.get("seconds"), lineage.get("configuration") or {})


def find_runs(out_root: str | os.PathLike, extra: list[str] | None = None) -> list[RunRecord]:
    """Every run folder under ``out_root`` (one level down) and in ``extra``, newest first."""
    seen: dict[Path, RunRecord] = {}
    root = Path(out_root)
    candidates = []
    if root.is_dir():
        candidates = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    candidates += [Path(x) for x in extra or []]
    for folder in candidates:
        rec = RunRecord.read(folder)
        if rec is not None:
            seen[rec.path] = rec
    return sorted(seen.values(), key=lambda r: (r.finished_at, r.name), reverse=True)


class Session:
    """The saved state of a dashboard beside its outputs. ``enabled=False`` (or an ``out_root``
    that is not a folder one can make, like ``os.devnull``) reads and writes nothing."""

    def __init__(self, out_root: str | os.PathLike, enabled: bool = True):
        self.out_root = Path(out_root).expanduser().absolute()
        self.enabled = enabled and str(out_root) != os.devnull
        self.data: dict[str, Any] = {}
        self.error: str | None = None
        if self.enabled:
            self.data = self._read()

    @property
    def path(self) -> Path:
        return self.out_root / SESSION_FILE

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # a broken file: start afresh, say so
            self.error = f"the saved session {self.path} could not be read ({exc}); starting afresh"
            return {}
        return data if isinstance(data, dict) and data.get("version") == VERSION else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def update(self, **values: Any) -> None:
        """Change some keys and write the file (atomically); a failure to write is kept in
        :attr:`error`, never raised into the page."""
        self.data.update(values)
        if not self.enabled:
            return
        from llmcombo.fsutil import atomic_write

        self.data["version"] = VERSION
        self.data["saved_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self.out_root.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self.data, indent=1, default=str) + "\n")
            self.error = None
        except OSError as exc:
            self.error = f"the session could not be saved in {self.out_root}: {exc}"

    def remember_run(self, folder: str | os.PathLike) -> None:
        folder = str(Path(folder).absolute())
        runs = [r for r in self.get("runs", []) if r != folder] + [folder]
        self.update(runs=runs[-50:])


__all__ = ["RunRecord", "SESSION_FILE", "Session", "find_runs"]
