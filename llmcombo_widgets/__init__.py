"""ipywidgets user interface of llmcombo (installed as ``llmcombo_widgets``).

The widgets are derived from llmcombo's feature model and depend on the core package;
the core never imports this package.
"""

import os as _os
from pathlib import Path as _Path

SHARE = _Path(__file__).resolve().parent / "share"
VOILA_TEMPLATE = "llmcombo"


def voila_template_args() -> list[str]:
    """Voila options for the dashboard's own page template (Voila's lab template without the
    stylesheets it loads from a CDN: the page needs nothing from the network). Puts the template
    folder on ``JUPYTER_PATH`` so Voila finds it."""
    paths = [p for p in _os.environ.get("JUPYTER_PATH", "").split(_os.pathsep) if p]
    if str(SHARE) not in paths:
        _os.environ["JUPYTER_PATH"] = _os.pathsep.join([str(SHARE)] + paths)
    return [f"--template={VOILA_TEMPLATE}"]
