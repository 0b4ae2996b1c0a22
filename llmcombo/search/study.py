"""The Optuna side of a search: the study on disk, the samplers, the objective values, the tidy
frame of the trials and the choice of the best.

The study lives in ``OUT/study.journal`` (Optuna's journal file storage: every change is one
appended line, so a search killed at any moment leaves a readable study). A trial's state says
what happened to it:

* ``COMPLETE`` -- the product was built and measured on the validation split;
* ``FAIL`` -- it could not be built or measured (user attribute ``error``: why);
* ``PRUNED`` -- it was never run: the candidate broke a rule of the feature model (user attribute
  ``infeasible``: which); the sampler then proposes another one.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

STUDY_FILE = "study.journal"
STUDY_NAME = "llmcombo-search"


def objective_names(doc: dict) -> list[str]:
    """The names of the study's objective values, in order."""
    if doc["objective"] != "pareto":
        return [f"{doc['objective']} skill kept"]
    names = [f"accuracy {t['name']}" for t in doc["tasks"]]
    if doc["cost"] != "none":
        names.append(doc["cost"])
    return names


def directions(doc: dict) -> list[Any]:
    if doc["objective"] != "pareto":
        return ["maximize"]
    return ["maximize"] * len(doc["tasks"]) + (["minimize"] if doc["cost"] != "none" else [])


def kept(acc: dict, reference: dict) -> dict:
    """The share of each task's reference accuracy (its best parent's) that ``acc`` keeps."""
    out = {}
    for task, ref in reference.items():
        a = acc.get(task)
        out[task] = (a / ref) if (a is not None and ref and ref > 0) else math.nan
    return out


def scalar(acc: dict, reference: dict, how: str) -> float:
    """worst: the smallest share kept over the tasks; mean: the mean share."""
    values = [v for v in kept(acc, reference).values() if not math.isnan(v)]
    if not values:
        return 0.0
    return min(values) if how != "mean" else sum(values) / len(values)


def values_of(result: dict, doc: dict, reference: dict, cost: float | None) -> list[float]:
    """The objective values of a measured product."""
    if doc["objective"] != "pareto":
        return [scalar(result["acc"], reference, doc["objective"])]
    vals = [float(result["acc"].get(t["name"], 0.0)) for t in doc["tasks"]]
    if doc["cost"] != "none":
        vals.append(float(cost if cost is not None else math.inf))
    return vals


# ---------------------------------------------------------------------------------------------
# storage and samplers
# ---------------------------------------------------------------------------------------------


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO level; the search reports its own progress."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage(out: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(Path(out) / STUDY_FILE)
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def has_study(out: Path) -> bool:
    return (Path(out) / STUDY_FILE).is_file()


def sampler_seed(seed: int, n: int) -> int:
    """The sampler's seed for the trial asked after ``n`` trials: the study depends on the seed
    and on its history only, not on the process that asks (local, Ray, or a resumed search)."""
    return (int(seed) * 1_000_003 + int(n) * 7919 + 17) % (2**31 - 1)


def make_sampler(doc: dict, n_before: int):
    """The sampler for the next trial (a fresh one, seeded by :func:`sampler_seed`; the samplers
    read everything else from the study's trials)."""
    import optuna

    seed = sampler_seed(doc["seed"], n_before)
    name = doc["sampler"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False,
                                                n_startup_trials=min(10, max(1, doc["trials"] // 4)))
        if name == "nsga2":
            pop = max(4, min(50, doc["trials"] // 3))
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=pop)
        # independent TPE: each parameter's density from the trials that have it, sampled only
        # when the trial's product uses it. (Multivariate TPE with group decomposition samples
        # every product's parameters at every ask: 6-10x the sampling time with the 19 methods
        # of mergekit 0.1.5, over 10 % of a trial after a few hundred trials.)
        return optuna.samplers.TPESampler(seed=seed, multivariate=False, constant_liar=True,
                                          n_startup_trials=min(10, max(2, doc["trials"] // 5)))


def open_study(out: Path, doc: dict, *, create: bool):
    import optuna

    quiet_optuna()
    if create:
        return optuna.create_study(storage=storage(out), study_name=STUDY_NAME,
                                   directions=directions(doc), load_if_exists=False)
    return optuna.load_study(storage=storage(out), study_name=STUDY_NAME)


def info(trial) -> dict:
    """What the search recorded about a trial, as one dict: the candidate (``kind``, ``method``,
    ``hash``, ``config``; ``infeasible``: the rule it broke) and, once told, its result (``acc``,
    ``kept``, ``worst_kept``, timings; ``error`` when it failed). Two user attributes per trial,
    so a trial costs two writes to the study file."""
    ua = trial.user_attrs
    return {**(ua.get("candidate") or {}), **(ua.get("result") or {})}


def interrupted(trial) -> bool:
    """A trial that was running when its search was killed (failed with no result recorded)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and "result" not in trial.user_attrs


def counted(study) -> int:
    """Trials that count against the budget: measured or failed; not the infeasible ones (never
    run) nor the interrupted ones (run again)."""
    from optuna.trial import TrialState

    return sum(t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not
                                                  interrupted(t))
               for t in study.get_trials(deepcopy=False))


# ---------------------------------------------------------------------------------------------
# the trials as a tidy frame; the best
# ---------------------------------------------------------------------------------------------


def trials_frame(study, doc: dict):
    """One row per trial: ``trial, state, kind, method, hash, value`` (or one column per
    objective), ``acc:TASK`` and ``kept:TASK`` (validation), ``models``, ``latency_s``, timings
    (``merge_s``, ``eval_s``, ``worker_s``, ``driver_s``, ``batch_s``), ``cached``, ``error``,
    ``infeasible``, and ``param:NAME`` for every sampled parameter."""
    import pandas as pd
    from optuna.trial import TrialState

    names = objective_names(doc)
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:  # queued (each product once first), not asked yet
            continue
        ua = info(t)
        state = "interrupted" if interrupted(t) else t.state.name.lower()
        state = {"pruned": "infeasible"}.get(state, state)
        r: dict[str, Any] = {"trial": t.number, "state": state,
                             "kind": ua.get("kind"), "method": ua.get("method"),
                             "hash": ua.get("hash")}
        vals = t.values if t.values is not None else [math.nan] * len(names)
        if len(names) == 1:
            r["value"] = vals[0]
        else:
            for n, v in zip(names, vals):
                r[n] = v
        for task, v in (ua.get("acc") or {}).items():
            r[f"acc:{task}"] = v
        for task, v in (ua.get("kept") or {}).items():
            r[f"kept:{task}"] = v
        r["worst_kept"] = ua.get("worst_kept", math.nan)
        for key in ("models", "latency_s", "merge_s", "eval_s", "worker_s", "driver_s", "batch_s",
                    "cached", "in_memory", "error", "infeasible"):
            r[key] = ua.get(key)
        r["started"] = t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None
        r["seconds"] = t.duration.total_seconds() if t.duration else None
        for k, v in t.params.items():
            r[f"param:{k}"] = v
        rows.append(r)
    return pd.DataFrame(rows)


def best_trial(study, *, kind: str | None = None):
    """The best measured trial on the validation split (``kind='merge'``: the best merge):
    the highest objective; for a pareto search the highest worst-case share kept among the
    Pareto-optimal trials (then the earliest)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if kind is None or info(t).get("kind") == kind]
    if not done:
        return None
    if len(study.directions) == 1:
        return max(done, key=lambda t: (t.values[0], -t.number))
    front = _pareto(done, study.directions)
    return max(front, key=lambda t: (info(t).get("worst_kept", 0.0), -t.number))


def _pareto(trials, dirs):
    from optuna.study import StudyDirection

    signs = [1 if d == StudyDirection.MAXIMIZE else -1 for d in dirs]

    def dominates(a, b):
        va = [s * v for s, v in zip(signs, a.values)]
        vb = [s * v for s, v in zip(signs, b.values)]
        return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))

    return [t for t in trials if not any(dominates(o, t) for o in trials if o is not t)]


def pareto_mask(points: list[tuple[float, float]]) -> list[bool]:
    """Which 2-D points (both maximised) no other point dominates."""
    out = []
    for i, (a, b) in enumerate(points):
        out.append(not any((c >= a and d >= b and (c > a or d > b))
                           for j, (c, d) in enumerate(points) if j != i))
    return out


def importances(study, doc: dict):
    """Parameter importances for the worst-case share kept (Optuna's PED-ANOVA, which handles the
    conditional parameters of a product-line space): a frame ``param, importance``, empty when
    there are too few measured trials."""
    import optuna
    import pandas as pd
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 4:
        return pd.DataFrame(columns=["param", "importance"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                target=lambda t: info(t).get("worst_kept", 0.0))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return pd.DataFrame(columns=["param", "importance"])
    return pd.DataFrame([{"param": k, "importance": float(v)} for k, v in imp.items()])


__all__ = ["STUDY_FILE", "best_trial", "counted", "directions", "has_study", "importances", "info",
           "kept", "make_sampler", "objective_names", "open_study", "pareto_mask",
           "sampler_seed", "scalar", "storage", "trials_frame", "values_of"]
