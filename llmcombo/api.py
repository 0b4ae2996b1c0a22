"""The short Python path: build a configuration from arguments, validate it, run it.

::

    import llmcombo
    merged = llmcombo.merge("ties", ["zoo:domotica", "zoo:tiempo"], base="zoo:base", density=0.5)
    llmcombo.compare([merged, "zoo:domotica", "zoo:tiempo"])   # table + plot

Everything here is a thin layer over the configuration dicts that the CLI, the forms and the YAML
files use, so what you build in Python can be saved (``configure(...).to_yaml()``) and reopened in
the dashboard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from llmcombo.configuration import Configuration
from llmcombo.errors import UserError, raise_for_errors


def configure(method: str, models: Sequence[str | dict], *, base: str | None = None,
              dtype: str | None = None, name: str | None = None, **parameters: Any) -> Configuration:
    """A validated merge configuration.

    ``models`` are model references (a folder, a Hub id or ``zoo:NAME``), or dicts
    ``{"model": ref, "weight": 0.7, ...}`` whose extra keys become that model's parameters.
    Keyword ``parameters`` apply to the whole merge (``density=0.5`` is every model's density;
    ``t=0.5`` is SLERP's factor). A method that needs a weight per model gets 1.0 each unless
    one is given.
    """
    from llmcombo.productline import merge_methods
    from llmcombo.validation import validate

    info = merge_methods().get(method)
    entries = []
    for m in models:
        if isinstance(m, dict):
            m = dict(m)
            ref = m.pop("model", None)
            entry = {"model": ref}
            if m:
                entry["parameters"] = m
        else:
            entry = {"model": m}
        entries.append(entry)
    if info is not None:
        weight = info.param("weight")
        if weight is not None and weight.required and "weight" not in parameters:
            for e in entries:
                if e["model"] == base and weight.scope == "non_base":
                    continue
                e.setdefault("parameters", {}).setdefault("weight", 1.0)
    merge: dict[str, Any] = {"method": method}
    if base is not None:
        merge["base_model"] = base
    merge["models"] = entries
    if parameters:
        merge["parameters"] = dict(parameters)
    if dtype is not None:
        merge["dtype"] = dtype
    data: dict[str, Any] = {"merge": merge}
    if name:
        data = {"name": name, **data}
    cfg = Configuration(data)
    raise_for_errors(validate(cfg), f"the {method} configuration is not valid")
    return cfg


def outputs_dir() -> Path:
    """Where results go when no folder is given: ``$LLMCOMBO_OUTPUTS``, else ``./llmcombo-out``."""
    return Path(os.environ.get("LLMCOMBO_OUTPUTS", "").strip() or "llmcombo-out").expanduser()


def merge(method: str, models: Sequence[str | dict], *, base: str | None = None,
          out: str | Path | None = None, overwrite: bool = False, device: str = "auto",
          progress=None, cancel=None, **parameters: Any):
    """Configure, validate and run a merge; returns :class:`llmcombo.run.RunResult`.

    Without ``out`` the model goes to :func:`outputs_dir` ``/<method>-<hash>`` (``./llmcombo-out``
    unless ``$LLMCOMBO_OUTPUTS`` says otherwise; the path is logged and in the result): the same
    configuration always lands in the same folder, and running it again replaces it.
    """
    from llmcombo.fsutil import config_hash
    from llmcombo.progress import as_progress
    from llmcombo.run import RunOptions, run

    cfg = configure(method, models, base=base, **parameters)
    progress = as_progress(progress)
    if out is None:
        out = outputs_dir() / f"{method}-{config_hash(dict(cfg), length=10)}"
        overwrite = True
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        progress.log(f"the merged model goes to {Path(out).absolute()}")
    return run(cfg, out, options=RunOptions(device=device), progress=progress, cancel=cancel,
               overwrite=overwrite)


class Comparison:
    """What :func:`compare` returns: the tidy accuracy frame, a wide table and the plot.

    In a notebook it displays as the table followed by the grouped-bar plot; ``str()`` is the
    table as text; ``.frame`` is the tidy frame (concatenate it, ``save_results`` it);
    ``.plot()`` returns the matplotlib Figure.
    """

    def __init__(self, frame, parents: Sequence[str] = ()):
        self.frame = frame
        self.parents = list(parents)

    def table(self):
        """Accuracy per product (rows, in the order given) and task (columns)."""
        from llmcombo.evaluate import accuracy_table

        return accuracy_table(self.frame)

    def plot(self):
        from llmcombo.plots import plot_accuracy

        return plot_accuracy(self.frame, parents=self.parents)

    def __str__(self) -> str:
        return self.table().to_string(float_format=lambda v: f"{v:.1%}")

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import base64
        import io

        import matplotlib.pyplot as plt

        fig = self.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        img = base64.b64encode(buf.getvalue()).decode("ascii")
        table = self.table().to_html(float_format=lambda v: f"{v:.1%}")
        return f'{table}<img src="data:image/png;base64,{img}" alt="accuracy per task"/>'


def compare(products: Any, tasks: Any = None, *, limit: int | None = None,
            progress=None) -> Comparison:
    """Accuracy of each product on each task (zoo task names or JSONL/CSV files of
    prompt/expected pairs; default: every zoo task), on the held-out split.

    ``products``: a list (model folders, hub ids, ``zoo:NAME``, ensemble configurations, the
    result of :func:`merge`) or a dict ``{name: product}``. Products from the zoo are drawn as
    parents (hatched bars) in the plot. ``limit`` evaluates only the first N examples per task.
    """
    from llmcombo.datasets import task_names
    from llmcombo.evaluate import _products, evaluate

    if isinstance(products, dict):
        named = {str(k): _as_product(v) for k, v in products.items()}
    else:
        single = isinstance(products, (str, Path)) or hasattr(products, "lineage")
        named = _products([_as_product(p) for p in ([products] if single else products)])
    if not named:
        raise UserError("compare needs at least one product", field="products")
    parents = [n for n, p in named.items() if isinstance(p, str) and p.startswith("zoo:")]
    tasks = task_names() if tasks is None else tasks
    return Comparison(evaluate(named, tasks, limit=limit, progress=progress), parents)


def _as_product(p: Any) -> Any:
    """A :class:`~llmcombo.run.RunResult` stands for its model folder."""
    return str(p.path) if hasattr(p, "path") and hasattr(p, "lineage") else p
