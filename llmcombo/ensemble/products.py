"""Products that answer prompts: one model (a zoo model, a hub model, a merge's output folder),
a pipeline, a vote, a router. One interface for all::

    product = load_product("ensemble.yaml")      # or "zoo:domotica", a folder, a dict
    a = product.answer("apaga la luz del salon")
    a.text                                       # "LUZ_SL OFF"
    a.trace                                      # who answered, votes, route, confidence, timings
    product.answer_batch([...])                  # the same, batched (one generate per model)

The trace is a plain dict (JSON-ready). Keys every product sets: ``kind``, ``member`` (the model
whose answer was returned, as written in the configuration), ``backend`` (``transformers`` or
``llama_cpp``: what ran that model), ``timings`` (seconds:
``total_s`` and the parts, e.g. ``selector_s`` / ``generate_s``; in a batch they are the batch's
time divided by the number of prompts). Per kind:

* model: ``prompt`` (what the model received), ``raw`` (what it generated);
* pipeline: ``stages``: one ``{member, backend, input, prompt, raw, output}`` per stage;
* vote: ``votes`` ({answer: count}, most frequent first), ``samples`` (every answer with its member,
  backend and log-probability), ``winner_count``, ``n``, ``tie`` (the tied answers or None), ``tie_rule``,
  ``decided_by`` (majority / tie rule / judge), ``judge_scores`` when a judge scored;
* router: ``route``, ``confidence``, ``fallback`` (True when the fallback answered), ``reason``,
  ``selector`` ({kind, answer, scores}), ``prompt``, ``raw``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmcombo.ensemble import formats
from llmcombo.ensemble import members as M
from llmcombo.ensemble.members import Member
from llmcombo.ensemble.spec import DEFAULT_TEMPLATE
from llmcombo.errors import UserError


@dataclass
class Answer:
    """A product's answer: the text and how it was reached."""

    text: str
    trace: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


class Product:
    """Anything that answers prompts."""

    kind = "product"
    spec: dict | None = None

    def answer(self, prompt: str) -> Answer:
        return self.answer_batch([prompt])[0]

    def answer_batch(self, prompts: Sequence[str]) -> list[Answer]:  # pragma: no cover
        raise NotImplementedError

    def members(self) -> list[Member]:  # pragma: no cover
        raise NotImplementedError

    def load(self) -> "Product":
        """Load every model now (otherwise the first answer does)."""
        for m in self.members():
            _ = m.lm
        return self

    def __call__(self, prompt: str) -> str:
        return self.answer(prompt).text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(m.ref for m in self.members())})"


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise UserError("answer_batch takes a list of prompts; use answer() for one prompt.")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise UserError(f"a prompt must be text, not {bad[0]!r}.")
    return list(prompts)


def _timings(total: float, n: int, **parts: float) -> dict:
    n = max(1, n)
    out = {k: round(v / n, 6) for k, v in parts.items()}
    out["total_s"] = round(total / n, 6)
    if n > 1:
        out["batch"] = n
    return out


# ---------------------------------------------------------------------------------------------
# one model
# ---------------------------------------------------------------------------------------------


class SingleModel(Product):
    """One model answering directly (a zoo model, a hub model, a merged model's folder)."""

    kind = "model"

    def __init__(self, ref: str, *, template: str = DEFAULT_TEMPLATE, output: str = "command",
                 max_new_tokens: int = 24, device: str = "auto", dtype: str = "auto",
                 base_dir=None, backend: str | None = None, threads: int | None = None,
                 quant: str | None = None):
        self.member = Member({"model": ref, "template": template, "output": output,
                              "max_new_tokens": max_new_tokens, "backend": backend,
                              "threads": threads, "quant": quant}, device, dtype, base_dir)
        self.spec = {"kind": "model", "model": ref, "template": template, "output": output,
                     "max_new_tokens": max_new_tokens, "backend": self.member.backend}

    def members(self) -> list[Member]:
        return [self.member]

    def answer_batch(self, prompts: Sequence[str]) -> list[Answer]:
        prompts = _check_prompts(prompts)
        t0 = time.perf_counter()
        rendered = [self.member.render(p) for p in prompts]
        gens = self.member.generate(rendered)
        total = time.perf_counter() - t0
        return [Answer(g[0].answer, {"kind": self.kind, "member": self.member.ref,
                                     "backend": self.member.backend, "prompt": r, "raw": g[0].text,
                                     "timings": _timings(total, len(prompts), generate_s=total)})
                for r, g in zip(rendered, gens)]


# ---------------------------------------------------------------------------------------------
# pipeline
# ---------------------------------------------------------------------------------------------


class Pipeline(Product):
    """Stage 1 answers the prompt; each next stage answers its template filled with the previous
    answer (``{input}``) and the original prompt (``{prompt}``)."""

    kind = "pipeline"

    def __init__(self, spec: dict, base_dir=None):
        self.spec = spec
        dev, dt = spec.get("device", "auto"), spec.get("dtype", "auto")
        self.stages = [Member(s, dev, dt, base_dir) for s in spec["stages"]]

    def members(self) -> list[Member]:
        return list(self.stages)

    def answer_batch(self, prompts: Sequence[str]) -> list[Answer]:
        prompts = _check_prompts(prompts)
        t0 = time.perf_counter()
        traces: list[list[dict]] = [[] for _ in prompts]
        current = list(prompts)
        per_stage = []
        for member in self.stages:
            ts = time.perf_counter()
            rendered = [member.render(x, p) for x, p in zip(current, prompts)]
            gens = member.generate(rendered)
            per_stage.append(time.perf_counter() - ts)
            for tr, x, r, g in zip(traces, current, rendered, gens):
                tr.append({"member": member.ref, "backend": member.backend, "input": x,
                           "prompt": r, "raw": g[0].text, "output": g[0].answer})
            current = [g[0].answer for g in gens]
        total = time.perf_counter() - t0
        n = len(prompts)
        timing = _timings(total, n, **{f"stage{i + 1}_s": t for i, t in enumerate(per_stage)})
        last = self.stages[-1]
        return [Answer(c, {"kind": self.kind, "member": last.ref, "backend": last.backend,
                           "stages": tr, "timings": timing}) for c, tr in zip(current, traces)]


# ---------------------------------------------------------------------------------------------
# vote
# ---------------------------------------------------------------------------------------------


def judge_function(name: str) -> Callable[[str, str], float]:
    """A registered scoring function (:mod:`llmcombo.ensemble.formats`: longest, shortest,
    known_command ...) or ``module:function`` (called as fn(prompt, answer))."""
    from llmcombo.ensemble import formats

    builtin = formats.judge(name)
    if builtin is not None:
        return builtin
    if ":" in name:
        import importlib

        mod, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"the judge function {name} cannot be imported: {exc}",
                            field="ensemble.vote.judge.function",
                            hint="Write it as module:function, importable from here.") from None
        if not callable(fn):
            raise UserError(f"{name} is not a function.", field="ensemble.vote.judge.function")
        return fn
    raise UserError(f"unknown judge function {name!r}", field="ensemble.vote.judge.function",
                    hint=f"Use {', '.join(formats.judges())} or module:function.")


class Vote(Product):
    """Every member answers ``samples`` times (one batched generate per member); answers are
    normalised and counted; the most frequent wins, a tie is broken by ``tie_break``; or a judge
    picks the best answer."""

    kind = "vote"

    def __init__(self, spec: dict, base_dir=None):
        self.spec = spec
        dev, dt = spec.get("device", "auto"), spec.get("dtype", "auto")
        self.voters = [Member(m, dev, dt, base_dir) for m in spec["members"]]
        self.samples = int(spec.get("samples", 1))
        self.sampling = dict(spec.get("sampling") or {})
        self.decide = spec.get("decide", "majority")
        self.tie_break = spec.get("tie_break", "first")
        j = spec.get("judge")
        self.judge_member = Member(j, dev, dt, base_dir) if j and j["kind"] == "model" else None
        self.judge_fn = judge_function(j["function"]) if j and j["kind"] == "function" else None
        self._rng = random.Random(self.sampling.get("seed"))

    @property
    def n(self) -> int:
        return len(self.voters) * self.samples

    def members(self) -> list[Member]:
        return self.voters + ([self.judge_member] if self.judge_member else [])

    def _judge(self, prompt: str, candidates: list[str]) -> list[float]:
        if self.judge_fn is not None:
            return [float(self.judge_fn(prompt, c)) for c in candidates]
        j = self.judge_member
        assert j is not None  # called with a judge only (decide/tie_break judge require one)
        rendered = j.render(prompt)
        return M.score(j.lm, [rendered] * len(candidates), candidates)

    def answer_batch(self, prompts: Sequence[str]) -> list[Answer]:
        prompts = _check_prompts(prompts)
        t0 = time.perf_counter()
        s = self.sampling
        per_prompt: list[list[tuple[Member, M.Generation]]] = [[] for _ in prompts]
        for member in self.voters:
            gens = member.generate([member.render(p) for p in prompts], n=self.samples,
                                   temperature=float(s.get("temperature", 1.0)),
                                   top_k=int(s.get("top_k", 0)), top_p=float(s.get("top_p", 1.0)),
                                   seed=s.get("seed"))
            for slot, g in zip(per_prompt, gens):
                slot += [(member, x) for x in g]
        t_gen = time.perf_counter() - t0
        answers = [self._decide(p, votes) for p, votes in zip(prompts, per_prompt)]
        total = time.perf_counter() - t0
        timing = _timings(total, len(prompts), generate_s=t_gen, decide_s=total - t_gen)
        for a in answers:
            a.trace["timings"] = timing
        return answers

    def _decide(self, prompt: str, votes: list[tuple[Member, M.Generation]]) -> Answer:
        groups: dict[str, dict] = {}  # key -> {text, count, logprobs, members}, in order seen
        for member, g in votes:
            key = formats.vote_key(g.answer, member.output)
            grp = groups.setdefault(key, {"text": g.answer, "count": 0, "logprobs": [],
                                          "members": []})
            grp["count"] += 1
            grp["logprobs"].append(g.logprob)
            grp["members"].append(member)
        keys = list(groups)
        trace: dict[str, Any] = {
            "kind": self.kind, "n": len(votes),
            "votes": {groups[k]["text"]: groups[k]["count"]
                      for k in sorted(keys, key=lambda k: -groups[k]["count"])},
            "samples": [{"member": m.ref, "backend": m.backend, "answer": g.answer,
                         "logprob": round(g.logprob, 4)} for m, g in votes],
            "tie": None, "tie_rule": None,
        }
        if self.decide == "judge":
            scores = self._judge(prompt, [groups[k]["text"] for k in keys])
            trace["judge_scores"] = {groups[k]["text"]: round(s, 4) for k, s in zip(keys, scores)}
            best = max(range(len(keys)), key=lambda i: (scores[i], groups[keys[i]]["count"], -i))
            winner, how = keys[best], "judge"
        else:
            top = max(groups[k]["count"] for k in keys)
            tied = [k for k in keys if groups[k]["count"] == top]
            if len(tied) == 1:
                winner, how = tied[0], "majority"
            else:
                trace["tie"] = [groups[k]["text"] for k in tied]
                trace["tie_rule"] = self.tie_break
                winner, how = self._break_tie(prompt, tied, groups, trace), f"tie:{self.tie_break}"
        grp = groups[winner]
        first = grp["members"][0]
        trace.update(winner_count=grp["count"], decided_by=how, member=first.ref,
                     backend=first.backend, members=sorted({m.ref for m in grp["members"]}))
        return Answer(grp["text"], trace)

    def _break_tie(self, prompt: str, tied: list[str], groups: dict, trace: dict) -> str:
        rule = self.tie_break
        if rule == "random":
            return self._rng.choice(tied)
        if rule == "likelihood":
            means = {k: sum(groups[k]["logprobs"]) / len(groups[k]["logprobs"]) for k in tied}
            trace["tie_scores"] = {groups[k]["text"]: round(v, 4) for k, v in means.items()}
            return max(tied, key=lambda k: means[k])  # max keeps the first among equals
        if rule == "judge" and (self.judge_fn or self.judge_member):
            scores = self._judge(prompt, [groups[k]["text"] for k in tied])
            trace["judge_scores"] = {groups[k]["text"]: round(s, 4) for k, s in zip(tied, scores)}
            return tied[max(range(len(tied)), key=lambda i: (scores[i], -i))]
        return tied[0]  # "first": the tied answer that was given first


# ---------------------------------------------------------------------------------------------
# router
# ---------------------------------------------------------------------------------------------


class Router(Product):
    """The selector picks a route per prompt; below the confidence threshold, or when the
    selector names no route, the fallback route answers. Prompts are grouped per route, so each
    route's model runs once per batch."""

    kind = "router"

    def __init__(self, spec: dict, base_dir=None):
        from llmcombo.ensemble.selectors import make_selector

        self.spec = spec
        dev, dt = spec.get("device", "auto"), spec.get("dtype", "auto")
        self.routes: dict[str, Member] = {}
        for r in spec["routes"]:
            self.routes[r["label"]] = Member(r, dev, dt, base_dir)
        self.fallback = spec.get("fallback") or spec["routes"][0]["label"]
        self.threshold = float(spec["selector"].get("threshold", 0.5))
        self.selector = make_selector(spec["selector"], spec["routes"], dev, dt, base_dir)

    def members(self) -> list[Member]:
        return list(self.routes.values()) + self.selector.members()

    def route(self, prompts: Sequence[str]) -> list[dict]:
        """The routing decision for each prompt (no answer generated): ``{route, confidence,
        fallback, reason, selector}``."""
        prompts = _check_prompts(prompts)
        out = []
        for choice in self.selector.select(prompts):
            label, conf = choice.label, choice.confidence
            sel = {"kind": self.selector.kind, "backend": self.selector.backend,
                   "answer": choice.answer,
                   "scores": {k: round(v, 4) for k, v in (choice.scores or {}).items()}}
            if label not in self.routes:
                reason = choice.reason or (f"the selector answered {choice.answer!r}, which is not a "
                                           "route")
                out.append({"route": self.fallback, "confidence": conf, "fallback": True,
                            "reason": reason, "selector": sel})
            elif conf < self.threshold:
                out.append({"route": self.fallback, "confidence": conf, "fallback": True,
                            "reason": f"unsure: confidence {conf:.2f} is below the threshold "
                                      f"{self.threshold:g} (it would have chosen {label})",
                            "selector": sel})
            else:
                out.append({"route": label, "confidence": conf, "fallback": False,
                            "reason": "selector", "selector": sel})
        return out

    def answer_batch(self, prompts: Sequence[str]) -> list[Answer]:
        prompts = _check_prompts(prompts)
        t0 = time.perf_counter()
        decisions = self.route(prompts)
        t_sel = time.perf_counter() - t0
        by_route: dict[str, list[int]] = {}
        for i, d in enumerate(decisions):
            by_route.setdefault(d["route"], []).append(i)
        answers: list[Answer | None] = [None] * len(prompts)
        gen_time = [0.0] * len(prompts)
        for label, idx in by_route.items():
            member = self.routes[label]
            ts = time.perf_counter()
            rendered = [member.render(prompts[i]) for i in idx]
            gens = member.generate(rendered)
            share = (time.perf_counter() - ts) / len(idx)
            for i, r, g in zip(idx, rendered, gens):
                gen_time[i] = share
                trace = {"kind": self.kind, "member": member.ref, "backend": member.backend,
                         **decisions[i], "prompt": r, "raw": g[0].text}
                answers[i] = Answer(g[0].answer, trace)
        n = len(prompts)
        out: list[Answer] = []
        for i, a in enumerate(answers):
            assert a is not None  # every prompt went to a route, which answered it
            sel_s = t_sel / n
            a.trace["timings"] = {"selector_s": round(sel_s, 6), "generate_s": round(gen_time[i], 6),
                                  "total_s": round(sel_s + gen_time[i], 6),
                                  **({"batch": n} if n > 1 else {})}
            out.append(a)
        return out


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------

_KINDS = {"pipeline": Pipeline, "vote": Vote, "router": Router}


def from_spec(spec: dict, base_dir=None) -> Product:
    """A product from a generated ensemble spec (see :func:`llmcombo.ensemble.spec.to_spec`)."""
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise UserError(f"unknown ensemble kind {kind!r}", hint="pipeline, vote or router")
    return _KINDS[kind](spec, base_dir)


def load_product(x: Any, *, base_dir=None, device: str | None = None) -> Product:
    """A product from anything that answers prompts.

    ``x`` may be a :class:`Product` (returned as is); a model folder, a hub id or ``zoo:NAME``
    (one model, zoo task prompt format); an llmcombo ensemble configuration (a dict with an
    ``ensemble`` key, or a YAML file); or a generated ensemble spec (dict or YAML file).
    ``device`` overrides the configuration's device. Invalid configurations raise
    :class:`UserError` listing their errors.
    """
    from llmcombo.ensemble.spec import is_spec, to_spec

    if isinstance(x, Product):
        return x
    if isinstance(x, Path):
        x = str(x)
    if isinstance(x, str):
        p = Path(x).expanduser()
        if p.is_file() and p.suffix.lower() in (".yaml", ".yml", ".json"):
            from llmcombo.configuration import read_yaml_file

            data = read_yaml_file(p)
            return load_product(data, base_dir=p.resolve().parent, device=device)
        if p.suffix.lower() in (".yaml", ".yml") and not p.exists():
            raise UserError(f"file not found: {p}", hint="Check the path.")
        return SingleModel(x, device=device or "auto", base_dir=base_dir)
    if isinstance(x, dict):
        if is_spec(x):
            spec = dict(x)
        elif "ensemble" in x:
            from llmcombo.configuration import Configuration
            from llmcombo.productline import feature_model

            from llmcombo.ensemble.spec import check_models

            if base_dir is None and isinstance(x, Configuration):
                base_dir = x.base_dir
            issues = feature_model().validate(dict(x))
            errors = [i for i in issues if i.is_error]
            if not errors:  # the models named exist (reads config.json files only)
                errors = [i for i in check_models(dict(x), base_dir) if i.is_error]
            _raise_issues(errors)
            _, spec = to_spec(x, base_dir, resolve=False)
        elif "merge" in x or "moe" in x:
            raise UserError("this configuration describes a model to build (a merge or a mixture "
                            "of experts), not something that answers prompts.",
                            hint="Run it first (llmcombo run), then answer with its output folder.")
        else:
            raise UserError("not an ensemble configuration: it has no 'ensemble' key.",
                            hint="Give a model folder, zoo:NAME, or a configuration with "
                                 "ensemble: {pipeline | vote | router}.")
        if device:
            spec["device"] = device
        return from_spec(spec, base_dir)
    raise UserError(f"cannot make a product from {type(x).__name__}.",
                    hint="Give a model folder, zoo:NAME, a hub id, or an ensemble configuration.")


def _raise_issues(errors: list) -> None:
    """One error: one line naming the field; several: a list."""
    if len(errors) == 1:
        e = errors[0]
        raise UserError(e.message, field=e.path or None, hint=e.hint)
    if errors:
        lines = "\n".join("  - " + i.format() for i in errors)
        raise UserError(f"the ensemble configuration has {len(errors)} errors:\n{lines}")


def accuracy(product: Product, examples: Sequence[Any]) -> float:
    """Exact-match accuracy (normalised commands) of a product on ``examples``
    (:class:`llmcombo.zoo.tasks.Example` or ``(prompt, expected)`` pairs)."""
    from llmcombo.zoo.tasks import normalize_command

    pairs = [(e.prompt, e.expected) if hasattr(e, "prompt") else tuple(e) for e in examples]
    if not pairs:
        return 0.0
    answers = product.answer_batch([p for p, _ in pairs])
    return sum(normalize_command(a.text) == normalize_command(e)
               for a, (_, e) in zip(answers, pairs)) / len(pairs)
