"""The cache of measured products: one JSON file per product and split under ``OUT/trials``, so
the same product (same configuration hash) is measured once and a resumed search finds what it
already measured."""

from __future__ import annotations

import json
from pathlib import Path

from llmcombo.fsutil import atomic_write, config_hash

CACHE_DIR = "trials"


class ResultCache:
    """Measured products by configuration hash, one JSON file each (written atomically): a
    product is never built twice, and a resumed search finds what it already measured."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._mem: dict[str, dict] = {}

    def key(self, config: dict, split: str) -> str:
        return config_hash(config, split)

    def get(self, key: str) -> dict | None:
        if key in self._mem:
            return self._mem[key]
        p = self.folder / f"{key}.json"
        if p.is_file():
            try:
                self._mem[key] = json.loads(p.read_text(encoding="utf-8"))
                return self._mem[key]
            except ValueError:
                return None
        return None

    def put(self, key: str, result: dict) -> None:
        if result.get("status") != "ok":
            return  # a failure may be the machine's (memory): try again next time
        self._mem[key] = result
        atomic_write(self.folder / f"{key}.json", json.dumps(result, default=str))


__all__ = ["CACHE_DIR", "ResultCache"]
