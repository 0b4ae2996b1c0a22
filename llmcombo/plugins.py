"""Plugins: modules that register families of combinations, ensemble formats, ... on import.

They are found through the ``llmcombo.plugins`` entry-point group, so the host never names them
(``pyproject.toml`` lists llmcombo's own: the ensembles, the zoo's task format, the search).
A third-party package adds a family the same way::

    [project.entry-points."llmcombo.plugins"]
    myfamily = "mypackage.llmcombo_family"
"""

from __future__ import annotations

import importlib.metadata
import threading
import warnings

GROUP = "llmcombo.plugins"
_lock = threading.RLock()
_loaded = False


def load_plugins() -> None:
    """Import every registered plugin module once (later calls return at once). A broken plugin
    of another package is skipped with a warning; a broken plugin of llmcombo's own is a bug and
    raises."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        _loaded = True  # set first: a plugin that uses a registry must not recurse
        for ep in importlib.metadata.entry_points(group=GROUP):
            dist = getattr(ep.dist, "name", None) if ep.dist is not None else None
            try:
                ep.load()
            except Exception as exc:
                if dist == "llmcombo":
                    raise
                warnings.warn(f"llmcombo plugin {ep.name!r} of {dist or 'an unknown package'} "
                              f"failed to load and was skipped: {exc}", stacklevel=2)
