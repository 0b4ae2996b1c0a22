"""The search space, read from the feature model: which products of the parents a search may try,
and how an Optuna trial picks one.

* **merges** -- every merge method of the installed mergekit that *applies to the parents*: a
  method applies when the configuration it would make validates (the feature model's rules and
  mergekit's input contracts decide, not a list written here). The arrangement tried is, in order:
  the parents on the search's base model; the parents without a base (methods that ignore it);
  the first parent as base (SLERP, NearSwap, Arcee Fusion take exactly two models, base
  included).
* **parameters** -- each numeric parameter of the method (:func:`llmcombo.productline.merge_methods`),
  over its feature-model domain (:func:`llmcombo.productline.param_domain`), narrowed where the
  domain is unbounded (``weight`` any number -> [0, 1], as mergekit-evolve searches); per model
  where mergekit reads it per model. Optional per-layer gradients (``gradient_points`` k: k values
  interpolated over the layers) and filters (``filters: [self_attn, mlp]``: a value for the
  attention tensors, one for the MLP, one for the rest), as mergekit-evolve does.
* **ensembles** -- optionally a vote of the parents and a router over them.

:meth:`Space.suggest` turns an Optuna trial into a :class:`Candidate` (a configuration of the
feature model) and :meth:`Space.problems` validates it: a candidate that breaks a rule (DELLA's
density +/- epsilon outside (0, 1) ...) is never run; the search marks it infeasible and asks
again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from llmcombo.fsutil import config_hash

# Where the feature model's domain is unbounded (or wider than anything worth searching), the range
# searched: (method or "*", parameter) -> (low, high, log scale). Intersected with the domain.
SEARCH_RANGES: dict[tuple[str, str], tuple[float, float, bool]] = {
    ("*", "weight"): (0.0, 1.0, False),
    ("*", "density"): (0.05, 1.0, False),
    ("*", "gamma"): (0.0, 0.2, False),
    ("*", "lambda"): (0.5, 1.5, False),
    ("*", "t"): (0.0, 1.0, False),
    ("*", "select_topk"): (0.05, 1.0, False),
    ("della", "epsilon"): (0.0, 0.45, False),
    ("della_linear", "epsilon"): (0.0, 0.45, False),
    ("ramplus_tl", "r"): (0.0, 1.0, False),
    ("ramplus_tl", "alpha"): (0.0, 1.0, False),
    ("nearswap", "t"): (1e-4, 1.0, True),
}
# Parameters left at mergekit's default: numerical-stability constants and iteration limits.
NOT_SEARCHED = {"eps", "tol", "max_iter"}
ENSEMBLES = ("vote", "router")
ROUTER_EXAMPLES = 8  # example prompts per route for the embedding selector


def short_name(ref: str) -> str:
    """``zoo:domotica`` -> ``domotica``; ``/x/y/model`` -> ``model``; ``owner/name`` -> ``name``."""
    text = str(ref).rstrip("/")
    return text.split(":", 1)[1] if text.startswith("zoo:") else text.rsplit("/", 1)[-1]


def search_range(method: str, name: str, kind: str,
                 overrides: dict | None = None) -> tuple[float, float, bool] | None:
    """The range searched for a parameter (None: not searched): the feature model's domain,
    narrowed by :data:`SEARCH_RANGES` (or the search's own ``ranges``)."""
    from llmcombo.productline import param_domain

    if kind not in ("float", "int") or name in NOT_SEARCHED:
        return None
    dom = param_domain(method, name)
    if overrides and name in overrides:
        lo, hi = (float(x) for x in overrides[name])
        log = False
    else:
        found = SEARCH_RANGES.get((method, name)) or SEARCH_RANGES.get(("*", name))
        if found is None:
            return None
        lo, hi, log = found
    if dom is not None:
        if dom.minimum is not None:
            lo = max(lo, dom.minimum + (1e-3 if dom.min_open else 0.0))
        if dom.maximum is not None:
            hi = min(hi, dom.maximum - (1e-3 if dom.max_open else 0.0))
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return None
    return (lo, hi, log and lo > 0)


# ---------------------------------------------------------------------------------------------
# which methods apply
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How a method takes the parents: ``base`` (or None) and the ``models`` list."""

    method: str
    base: str | None
    models: tuple[str, ...]


def _layouts(method: Any, parents: Sequence[str], base: str | None) -> list[Layout]:
    parents = tuple(parents)
    out: list[Layout] = []
    if method.base in ("required", "optional") and base is not None:
        out.append(Layout(method.name, base, parents))
    if method.base in ("ignored", "forbidden", "optional"):
        out.append(Layout(method.name, None, parents))
    if method.base == "required" and len(parents) == 2:
        out.append(Layout(method.name, parents[0], parents))
    return out


def _mid(method: str, p: Any) -> Any:
    rng = search_range(method, p.name, p.kind)
    if rng is None:
        return p.default if p.default is not None else 1.0
    return round((rng[0] + rng[1]) / 2, 6)


def probe_config(layout: Layout, dtype: str = "float32") -> dict:
    """The configuration of ``layout`` with every required parameter at the middle of its range
    (what decides whether the method applies)."""
    from llmcombo.productline import merge_methods

    info = merge_methods()[layout.method]
    merge: dict[str, Any] = {"method": layout.method}
    if layout.base is not None:
        merge["base_model"] = layout.base
    models = []
    for ref in layout.models:
        params = {}
        for p in info.input_params:
            if p.required and not (p.scope == "non_base" and ref == layout.base):
                params[p.name] = _mid(layout.method, p)
        models.append({"model": ref, **({"parameters": params} if params else {})})
    merge["models"] = models
    shared = {p.name: _mid(layout.method, p) for p in info.shared_params if p.required}
    if shared:
        merge["parameters"] = shared
    merge["dtype"] = dtype
    return {"merge": merge}


def applicable_methods(parents: Sequence[str], base: str | None
                       ) -> tuple[dict[str, Layout], dict[str, str]]:
    """``({method: layout}, {method: why not})`` for every merge method of the installed mergekit,
    decided by validating the configuration each would make (no model is read)."""
    from llmcombo.productline import feature_model, merge_methods

    fm = feature_model()
    ok: dict[str, Layout] = {}
    why: dict[str, str] = {}
    for name, info in merge_methods().items():
        reason = None
        for layout in _layouts(info, parents, base):
            errors = [i for i in fm.validate(probe_config(layout)) if i.is_error]
            if not errors:
                ok[name] = layout
                break
            reason = reason or errors[0].message
        if name not in ok:
            if reason is None:
                reason = ("it needs a base model" if info.base == "required" and base is None
                          else "it cannot take these models")
            why[name] = reason
    return ok, why


# ---------------------------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One product a trial proposes: ``config`` (a configuration of the feature model: ``merge:``
    or ``ensemble:``), what it is (``kind``: merge, vote, router; ``method``), and the Optuna
    parameters that made it."""

    kind: str
    method: str
    config: dict
    params: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return config_hash(self.config)

    @property
    def label(self) -> str:
        """The merge method, or the ensemble kind (vote, router)."""
        return self.method


@dataclass
class Space:
    """The space of a search document (:func:`llmcombo.search.spec.to_document`).
    ``specialists``: the parent that is best on each task (routes of a router), known once the
    parents were measured; ``route_examples``: example prompts per task (embedding router)."""

    doc: dict
    specialists: dict = field(default_factory=dict)
    route_examples: dict = field(default_factory=dict)

    def __post_init__(self):
        self.layouts: dict[str, Layout] = {}
        space = self.doc["space"]
        if space["methods"]:
            found, _why = applicable_methods(self.refs, self.doc["base_model"])
            self.layouts = {m: found[m] for m in space["methods"] if m in found}

    @property
    def refs(self) -> list[str]:
        return list(self.doc["models"])

    @property
    def choices(self) -> list[str]:
        """The products a trial chooses among: merge methods, then ensembles."""
        return list(self.layouts) + list(self.doc["space"]["ensembles"])

    def is_empty(self) -> bool:
        return not self.choices

    # -- one value ------------------------------------------------------------------------------
    def _value(self, trial: Any, name: str, rng: tuple[float, float, bool], integer: bool) -> Any:
        space = self.doc["space"]
        k = int(space["gradient_points"])
        filters = list(space["filters"])

        def one(suffix: str) -> Any:
            lo, hi, log = rng
            if integer:
                return trial.suggest_int(name + suffix, int(math.ceil(lo)), int(math.floor(hi)),
                                         log=log)
            return round(trial.suggest_float(name + suffix, lo, hi, log=log), 4)

        def curve(prefix: str) -> Any:
            if k <= 1:
                return one(prefix)
            return [one(f"{prefix}.{i}") for i in range(k)]

        if not filters:
            return curve("")
        return [{"filter": f, "value": curve(f".{f}")} for f in filters] + [{"value": curve("")}]

    # -- merges -----------------------------------------------------------------------------------
    def _merge(self, trial: Any, method: str) -> Candidate:
        from llmcombo.productline import merge_methods

        info = merge_methods()[method]
        layout = self.layouts[method]
        ranges = self.doc["space"].get("ranges") or {}
        merge: dict[str, Any] = {"method": method}
        if layout.base is not None:
            merge["base_model"] = layout.base
        models = []
        for ref in layout.models:
            params: dict[str, Any] = {}
            for p in info.input_params:
                if p.scope == "non_base" and ref == layout.base:
                    continue
                rng = search_range(method, p.name, p.kind, ranges)
                if rng is None:
                    continue
                params[p.name] = self._value(trial, f"{method}.{p.name}[{short_name(ref)}]", rng,
                                             p.kind == "int")
            models.append({"model": ref, **({"parameters": params} if params else {})})
        merge["models"] = models
        shared: dict[str, Any] = {}
        for p in info.shared_params:
            rng = search_range(method, p.name, p.kind, ranges)
            if rng is not None:
                shared[p.name] = self._value(trial, f"{method}.{p.name}", rng, p.kind == "int")
        if shared:
            merge["parameters"] = shared
        merge["dtype"] = self.doc["dtype"]
        return Candidate("merge", method, {"merge": merge})

    # -- ensembles --------------------------------------------------------------------------------
    def _member(self, ref: str) -> dict:
        ev = self.doc["evaluation"]
        return {"model": ref, "template": ev["template"], "output": ev["output"],
                "max_new_tokens": ev["max_new_tokens"]}

    def _vote(self, trial: Any) -> Candidate:
        samples = trial.suggest_int("vote.samples", 1, 3)
        vote: dict[str, Any] = {"members": [self._member(r) for r in self.refs],
                                "samples": samples, "decide": "majority",
                                "tie_break": trial.suggest_categorical("vote.tie_break",
                                                                       ["likelihood", "first"])}
        if samples > 1:
            vote["sampling"] = {"temperature": round(trial.suggest_float("vote.temperature", 0.1,
                                                                         1.5), 4),
                                "seed": int(self.doc["seed"])}
        else:
            vote["sampling"] = {"temperature": 0.0, "seed": int(self.doc["seed"])}
        return Candidate("ensemble", "vote", {"ensemble": {"device": self.doc["device"],
                                                           "vote": vote}})

    def router_config(self, trial: Any = None) -> dict:
        """A router over the parents: route i answers task i with the parent that is best on it.
        With a ``router_selector`` (a label model answering LLM1, LLM2 ... in the order of the
        tasks) it picks the route; otherwise an embedding selector compares the prompt with a few
        example prompts of each task. ``trial`` None: the default settings."""
        space = self.doc["space"]
        tasks = [t["name"] for t in self.doc["tasks"]]
        routes = []
        for i, task in enumerate(tasks):
            ref = self.specialists.get(task, self.refs[min(i, len(self.refs) - 1)])
            route = {"label": f"LLM{i + 1}", **self._member(ref)}
            if not space.get("router_selector"):
                route["examples"] = list(self.route_examples.get(task) or [])[:ROUTER_EXAMPLES]
            routes.append(route)
        pick = (lambda name, choices, default: default) if trial is None else \
            (lambda name, choices, default: trial.suggest_categorical(name, choices))
        num = (lambda name, lo, hi, default, log=False: default) if trial is None else \
            (lambda name, lo, hi, default, log=False: round(trial.suggest_float(name, lo, hi,
                                                                                log=log), 4))
        if space.get("router_selector"):
            selector = {"kind": "label_model", "model": space["router_selector"],
                        "threshold": num("router.threshold", 0.0, 0.9, 0.5)}
        else:
            selector = {"kind": "embedding",
                        "model": self.doc["base_model"] or self.refs[0],
                        "layer": pick("router.layer", [-1, 0, 1], -1),
                        "temperature": num("router.temperature", 0.01, 0.2, 0.05, True),
                        "threshold": num("router.threshold", 0.0, 0.9, 0.0)}
        return {"ensemble": {"device": self.doc["device"],
                             "router": {"selector": selector, "routes": routes,
                                        "fallback": "LLM1"}}}

    def vote_config(self) -> dict:
        """The default vote of the parents: each answers once, greedily; a tie goes to the
        answer its model found most likely."""
        vote = {"members": [self._member(r) for r in self.refs], "samples": 1,
                "decide": "majority", "tie_break": "likelihood",
                "sampling": {"temperature": 0.0, "seed": int(self.doc["seed"])}}
        return {"ensemble": {"device": self.doc["device"], "vote": vote}}

    # -- known points ------------------------------------------------------------------------------
    def params_for(self, config: dict) -> dict | None:
        """The trial parameters that make (as nearly as the space can) the merge ``config``: a
        scalar value becomes every gradient point and every filter's value; a parameter the
        configuration leaves out takes mergekit's default (a required one is left to the
        sampler). None when the space cannot make it (another method or arrangement)."""
        from llmcombo.productline import merge_methods

        merge = config.get("merge") or {}
        method = merge.get("method")
        if not isinstance(method, str):
            return None
        layout = self.layouts.get(method)
        if layout is None or merge.get("base_model") != layout.base or \
                [m.get("model") for m in merge.get("models") or []] != list(layout.models):
            return None
        info = merge_methods()[method]
        ranges = self.doc["space"].get("ranges") or {}
        out: dict[str, Any] = {"product": method}

        def put(name: str, p: Any, value: Any) -> None:
            rng = search_range(method, p.name, p.kind, ranges)
            if rng is None or not isinstance(value, (int, float)) or isinstance(value, bool):
                return
            value = min(max(float(value), rng[0]), rng[1])
            if p.kind == "int":
                value = int(round(value))
            k = int(self.doc["space"]["gradient_points"])
            for f in [None] + list(self.doc["space"]["filters"]):
                prefix = name + (f".{f}" if f else "")
                for key in ([prefix] if k <= 1 else [f"{prefix}.{i}" for i in range(k)]):
                    out[key] = value

        shared = merge.get("parameters") or {}
        for m in merge.get("models") or []:
            given = m.get("parameters") or {}
            for p in info.input_params:
                value = given.get(p.name, shared.get(p.name, p.default))
                if value is not None:
                    put(f"{method}.{p.name}[{short_name(m['model'])}]", p, value)
        for p in info.shared_params:
            value = shared.get(p.name, p.default)
            if value is not None:
                put(f"{method}.{p.name}", p, value)
        return out

    # -- a trial -----------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> Candidate:
        """The candidate of an Optuna trial (define-by-run: the product first, then its
        parameters)."""
        choices = self.choices
        choice = trial.suggest_categorical("product", choices)
        if choice == "vote":
            cand = self._vote(trial)
        elif choice == "router":
            cand = Candidate("ensemble", "router", self.router_config(trial))
        else:
            cand = self._merge(trial, choice)
        cand.params = dict(trial.params)
        return cand

    @staticmethod
    def problems(candidate: Candidate) -> list:
        """The errors the feature model finds in a candidate (none: it may run)."""
        from llmcombo.productline import feature_model

        return [i for i in feature_model().validate(candidate.config) if i.is_error]

    def models_count(self, candidate: Candidate) -> int:
        """How many models answer each prompt (the *models* cost): 1 for a merge."""
        if candidate.kind == "merge":
            return 1
        body = next(iter(v for k, v in candidate.config["ensemble"].items()
                         if k in ("vote", "router")))
        refs = {m["model"] for m in body.get("members", body.get("routes", []))}
        sel = body.get("selector") or {}
        if sel.get("model"):
            refs.add(sel["model"])
        return len(refs)


__all__ = ["Candidate", "ENSEMBLES", "Layout", "SEARCH_RANGES", "Space", "applicable_methods",
           "probe_config", "search_range", "short_name"]
