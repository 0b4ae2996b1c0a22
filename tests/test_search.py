"""The search: its specification (a family of the feature model), its space (read from the feature
model), the honest splits, and the loop (ask, validate, run, tell, resume) with a stand-in for the
workers, so nothing here loads a model. Real searches on the zoo are in test_search_run.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import optuna
import pytest

from llmcombo.cli import main
from llmcombo.datasets import Example
from llmcombo.errors import UserError
from llmcombo.fsutil import config_hash
from llmcombo.productline import family_of, feature_model
from llmcombo.search import driver, executors
from llmcombo.search import study as S
from llmcombo.search.data import split_examples
from llmcombo.search.space import Space, applicable_methods, search_range
from llmcombo.search.spec import to_document

PARENTS = ["zoo:domotica", "zoo:tiempo"]


def spec(**search):
    body = {"models": [{"model": m} for m in PARENTS], "base_model": "zoo:base",
            "tasks": [{"task": "domotica"}, {"task": "tiempo"}], "trials": 8,
            "evaluation": {"limit": 10, "test_limit": 10}}
    body.update(search)
    return {"name": "t", "search": body}


def errors(data):
    return {i.path: i for i in feature_model().validate(data) if i.is_error}


# ---------------------------------------------------------------------------------------------
# the specification
# ---------------------------------------------------------------------------------------------


def test_search_is_a_family_of_the_feature_model_registered_as_a_plugin():
    from importlib.metadata import entry_points

    assert "llmcombo.search.spec" in {ep.value for ep in entry_points(group="llmcombo.plugins")}
    root = [c.name for c in feature_model().root.groups[0].children]
    assert "search" in root
    assert family_of(spec()) == "search"
    assert errors(spec()) == {}


@pytest.mark.parametrize("change, path, words", [
    ({"trials": 0}, "search.trials", "at least 1"),
    ({"space": {"methods": ["tiez"]}}, "search.space.methods[0]", "Did you mean ties"),
    ({"space": {"methods": ["passthrough"]}}, "search.space.methods[0]", "does not apply"),
    ({"space": {"methods": [], "ensembles": []}}, "search.space", "empty"),
    ({"space": {"ensembles": ["rooter"]}}, "search.space.ensembles[0]", "Did you mean router"),
    ({"tasks": [{"task": "domotica", "file": "x.jsonl"}]}, "search.tasks[0]", "not both"),
    ({"tasks": [{"name": "x"}]}, "search.tasks[0]", "either"),
    ({"tasks": [{"task": "domotika"}]}, "search.tasks[0].task", "Did you mean domotica"),
    ({"tasks": [{"task": "domotica"}, {"task": "domotica"}]}, "search.tasks[1].name", "two tasks"),
    ({"models": [{"model": "zoo:domotica"}, {"model": "zoo:domotica"}]}, "search.models",
     "more than once"),
    ({"models": [{"model": "zoo:domotica"}]}, "search.models", "at least 2"),
    ({"base_model": "zoo:tiempo"}, "search.base_model", "also one of the parents"),
    ({"sampler": "cmaes", "objective": "pareto"}, "search.sampler", "CMA-ES"),
    ({"space": {"gradient_points": 0}}, "search.space.gradient_points", "at least 1"),
    ({"models": [{"model": "zoo:domotica"}, {"model": "zoo:tiempos"}]}, "search.models[1].model",
     "tiempo"),
])
def test_mistakes_are_one_clear_message_at_their_field(change, path, words):
    errs = errors(spec(**change))
    assert path in errs, errs
    assert words in errs[path].message + " " + (errs[path].hint or "")


def test_the_cli_refuses_a_bad_spec_before_any_trial(tmp_path, capsys):
    import yaml

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(spec(space={"methods": ["tiez"]})), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["search", str(p), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "search.space.methods[0]" in err and "Did you mean ties" in err
    assert "Traceback" not in err and not out.exists()
    p.write_text(yaml.safe_dump(spec()), encoding="utf-8")
    assert main(["search", str(p), "--out", str(out), "--trials", "0"]) == 1
    assert "search.trials" in capsys.readouterr().err and not out.exists()


def test_a_cost_is_a_pareto_objective_only():
    issues = feature_model().validate(spec(objective="worst", cost="models"))
    assert [i for i in issues if i.path == "search.cost" and i.severity == "warning"]
    assert not errors(spec(objective="pareto", cost="latency"))


def test_task_files_are_checked_before_any_trial(tmp_path):
    bad = tmp_path / "orders.jsonl"
    bad.write_text('{"prompt": "apaga la luz", "expected": "LUZ_SL OFF"}\n{"prompt": "x"}\n',
                   encoding="utf-8")
    with pytest.raises(UserError) as info:
        driver.load_spec(spec(tasks=[{"file": str(bad)}, {"task": "tiempo"}]))
    text = str(info.value)
    assert "search.tasks[0].file" in text and "line 2" in text and "expected" in text
    with pytest.raises(UserError, match="not found"):
        driver.load_spec(spec(tasks=[{"file": str(tmp_path / "missing.csv")}]))


def _model_folder(path, **cfg):
    path.mkdir()
    base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 128,
            "intermediate_size": 256, "num_attention_heads": 4, "num_key_value_heads": 4,
            "num_hidden_layers": 4, "vocab_size": 1024}
    base.update(cfg)
    (path / "config.json").write_text(json.dumps(base), encoding="utf-8")
    return str(path)


def test_incompatible_parents_are_refused_before_any_trial(tmp_path):
    a = _model_folder(tmp_path / "a")
    b = _model_folder(tmp_path / "b", hidden_size=256)
    data = spec(models=[{"model": a}, {"model": b}], base_model=None)
    data["search"].pop("base_model")
    with pytest.raises(UserError) as info:
        driver.load_spec(data)
    assert "search.models[1].model" in str(info.value) and "hidden size" in str(info.value)


def test_to_document_fills_defaults_and_lists_the_methods_that_apply():
    _kind, doc = to_document(spec(), resolve=False)
    ok, _why = applicable_methods(PARENTS, "zoo:base")
    assert doc["space"]["methods"] == list(ok)
    assert "passthrough" not in doc["space"]["methods"]
    assert doc["sampler"] == "tpe" and doc["objective"] == "worst" and doc["cost"] == "none"
    assert [t["name"] for t in doc["tasks"]] == ["domotica", "tiempo"]
    _kind, doc = to_document(spec(space={"methods": ["slerp", "ties"]}), resolve=False)
    assert doc["space"]["methods"] == ["slerp", "ties"]


# ---------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------


def test_which_methods_apply_is_decided_by_the_feature_model():
    ok, why = applicable_methods(PARENTS, "zoo:base")
    assert {"ties", "dare_ties", "task_arithmetic", "slerp", "linear", "model_stock"} <= set(ok)
    assert ok["slerp"].base == "zoo:domotica"  # exactly two inputs, the base counting as one
    assert ok["ties"].base == "zoo:base" and ok["linear"].base is None
    assert "passthrough" in why and "1" in why["passthrough"]
    three = PARENTS + ["zoo:selector"]
    ok3, why3 = applicable_methods(three, "zoo:base")
    assert "slerp" not in ok3 and "slerp" in why3 and "ties" in ok3
    _ok, why_nobase = applicable_methods(PARENTS, None)
    assert "model_stock" in why_nobase  # needs three inputs with the base


def test_ranges_come_from_the_feature_model_domains():
    from llmcombo.productline import param_domain

    lo, hi, _ = search_range("ties", "density", "float")
    dom = param_domain("ties", "density")
    assert dom.minimum <= lo < hi <= dom.maximum  # density: [0, 1] (advice; mergekit runs any)
    assert search_range("slerp", "t", "float")[:2] == (0.0, 1.0)
    assert search_range("karcher", "max_iter", "int") is None  # left at mergekit's default
    assert search_range("ties", "weight", "float", {"weight": [0, 2]})[:2] == (0.0, 2.0)


def _space(**space):
    _kind, doc = to_document(spec(space=space), resolve=False)
    return Space(doc, specialists={"domotica": PARENTS[0], "tiempo": PARENTS[1]},
                 route_examples={"domotica": ["apaga la luz"], "tiempo": ["llueve hoy"]})


def _random_candidates(space, n, seed=0):
    st = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        t = st.ask()
        out.append(space.suggest(t))
        st.tell(t, 0.0)
    return out


def test_every_candidate_is_a_product_of_the_feature_model_or_flagged():
    space = _space(ensembles=["vote", "router"])
    seen, flagged = set(), 0
    for cand in _random_candidates(space, 300):
        seen.add(cand.label)
        problems = space.problems(cand)
        if problems:  # only value rules may fail (DELLA's density +/- epsilon ...)
            assert all(p.code in ("range",) for p in problems), problems
            flagged += 1
        else:
            assert family_of(cand.config) in ("merge", "ensemble")
    assert seen == set(space.choices)
    assert flagged  # della's constraint is reachable: the search must handle it


def test_gradients_and_filters_shape_the_values_like_mergekit_evolve():
    space = _space(methods=["ties"], gradient_points=3, filters=["self_attn", "mlp"])
    cand = _random_candidates(space, 1)[0]
    density = cand.config["merge"]["models"][0]["parameters"]["density"]
    assert [d.get("filter") for d in density] == ["self_attn", "mlp", None]
    assert all(isinstance(d["value"], list) and len(d["value"]) == 3 for d in density)
    assert not space.problems(cand)
    from llmcombo.engine.schema import parse
    from llmcombo.generate import to_document as generate

    kind, doc = generate(cand.config, resolve=False)  # mergekit's own schema accepts it

    parse(kind, doc)


def test_router_routes_each_task_to_its_best_parent():
    space = _space(methods=[], ensembles=["router"])
    cfg = space.router_config()
    routes = cfg["ensemble"]["router"]["routes"]
    assert [r["model"] for r in routes] == PARENTS
    assert routes[0]["examples"] == ["apaga la luz"]
    assert not space.problems(_random_candidates(space, 1)[0])
    assert space.models_count(_random_candidates(space, 1)[0]) == 3  # two routes + the selector


# ---------------------------------------------------------------------------------------------
# the splits
# ---------------------------------------------------------------------------------------------


def test_file_tasks_are_split_by_a_seeded_shuffle_that_keeps_repeats_together():
    exs = [Example(f"Orden número {i}", f"C{i}") for i in range(40)]
    exs += [Example("orden numero 3!", "C3")]  # the same prompt, written differently
    val, test = split_examples(exs, 0.5, seed=0, name="orders")
    assert len(val) + len(test) == len(exs)
    key = lambda e: e.prompt.lower().replace("ú", "u").strip("!")  # noqa: E731
    assert not {key(e) for e in val} & {key(e) for e in test}
    assert split_examples(exs, 0.5, 0, "orders") == (val, test)
    assert split_examples(exs, 0.5, 1, "orders") != (val, test)
    assert 15 <= len(val) <= 26
    with pytest.raises(UserError, match="at least two"):
        split_examples(exs[:1], 0.5, 0, "one")


def test_zoo_tasks_give_the_search_their_validation_split():
    from llmcombo.search.data import load_tasks
    from llmcombo.zoo import tasks

    _kind, doc = to_document(spec(), resolve=False)
    found = load_tasks(doc)
    dom = tasks.get_task("domotica")
    assert found[0].validation == dom.validation[:10] and found[0].test == dom.test[:10]
    test_keys = {tasks.prompt_key(e.prompt) for e in dom.test}
    assert not {tasks.prompt_key(e.prompt) for e in dom.validation} & test_keys


# ---------------------------------------------------------------------------------------------
# the loop, with a stand-in for the workers
# ---------------------------------------------------------------------------------------------


class FakeWorkers:
    """Answers jobs at once with accuracies that depend only on the configuration."""

    kind = "local"
    made: list = []

    def __init__(self, payload, workers, ray=None, fail=None, stop_after=None):
        self.payload, self.workers = payload, max(1, workers)
        self.jobs: list[dict] = []
        self.fail, self.stop_after = fail, stop_after
        FakeWorkers.made.append(self)

    def run(self, jobs):
        if self.stop_after is not None and len(self.jobs) >= self.stop_after:
            raise KeyboardInterrupt  # as if the search was killed while these jobs ran
        self.jobs += jobs
        return [self.answer(j) for j in jobs]

    def answer(self, job):
        tasks = list(self.payload["tasks"])
        cfg = job["config"]
        if job["kind"] == "model":
            i = self.payload["doc"]["models"].index(cfg["model"])
            acc = {t: (0.9 if j == i else 0.0) for j, t in enumerate(tasks)}
        else:
            h = int(config_hash(cfg), 16)
            acc = {t: ((h >> (8 * j)) % 90) / 100 for j, t in enumerate(tasks)}
        if self.fail and self.fail(job):
            return {"status": "failed", "error": "out of memory: fake", "acc": {},
                    "merge_s": 0.0, "eval_s": 0.0, "worker_s": 0.0, "prompts": 0}
        n = {t: 10 for t in tasks}
        return {"status": "ok", "error": None, "acc": acc, "n": n,
                "correct": {t: round(a * 10) for t, a in acc.items()},
                "ci_low": {t: 0.0 for t in tasks}, "ci_high": {t: 1.0 for t in tasks},
                "merge_s": 0.01, "eval_s": 0.02, "worker_s": 0.03, "prompts": 20,
                "latency_s": 0.001, "in_memory": job["kind"] == "merge"}

    def close(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    FakeWorkers.made = []
    options = {}

    def make(payload, workers, ray=None):
        return FakeWorkers(payload, workers, ray, **options)

    monkeypatch.setattr(executors, "make_executor", make)
    return options


def _jobs():
    return [j for w in FakeWorkers.made for j in w.jobs]


def test_the_budget_counts_run_trials_and_infeasible_ones_never_run(fake, tmp_path):
    data = spec(trials=12, space={"methods": ["della"], "ranges": {"density": [0.05, 0.3],
                                                                    "epsilon": [0.1, 0.45]}})
    r = driver.search(data, tmp_path / "s", report=False)
    states = r.trials["state"].value_counts().to_dict()
    assert states.get("complete", 0) + states.get("fail", 0) == 12
    assert states.get("infeasible", 0) > 0 and r.counts["infeasible"] == states["infeasible"]
    infeasible = set(r.trials[r.trials["state"] == "infeasible"]["hash"].dropna())
    trial_jobs = [j for j in _jobs() if j["name"].startswith("trial")]
    assert len(trial_jobs) == 12 and not {j["hash"] for j in trial_jobs} & infeasible
    for j in trial_jobs:  # every product that ran is a valid configuration
        assert errors(j["config"]) == {}
    assert r.trials[r.trials["state"] == "infeasible"]["infeasible"].str.contains("epsilon").all()


def test_same_seed_same_study_and_batches_do_not_change_it(fake, tmp_path):
    def run(out, **kw):
        r = driver.search(spec(trials=10, space={"methods": ["ties", "slerp", "linear"]}, **kw),
                          tmp_path / out, report=False)
        cols = [c for c in r.trials.columns if c.startswith("param:")] + ["value", "state"]
        return r.trials[cols].round(6).astype(object).fillna(-1).to_dict("records")

    a = run("a")
    assert run("b") == a
    assert run("c", seed=1) != a
    assert run("d", workers=2) == run("e", workers=2)


def test_a_failed_trial_is_recorded_with_its_reason_and_the_search_goes_on(fake, tmp_path):
    fake["fail"] = lambda job: job["kind"] == "merge" and "slerp" in json.dumps(job["config"])
    r = driver.search(spec(trials=12, space={"methods": ["slerp", "ties"]}), tmp_path / "s",
                      report=False)
    failed = r.trials[r.trials["state"] == "fail"]
    assert len(failed) and (failed["method"] == "slerp").all()
    assert failed["error"].str.contains("out of memory").all()
    assert (r.trials["state"] == "complete").sum() + len(failed) == 12
    assert r.best["merge"]["method"] == "ties"


def test_the_same_product_is_measured_once(fake, tmp_path):
    # karcher's parameters are numerical constants left at their defaults: one product
    r = driver.search(spec(trials=5, space={"methods": ["karcher"]}), tmp_path / "s",
                      report=False)
    trial_jobs = [j for j in _jobs() if j["name"].startswith("trial")]
    assert len(trial_jobs) == 1
    assert r.trials["cached"].tolist() == [False, True, True, True, True]
    assert (r.trials["state"] == "complete").all()


def test_resume_continues_the_same_study(fake, tmp_path):
    out = tmp_path / "s"
    first = driver.search(spec(trials=4), out, report=False)
    with pytest.raises(UserError, match="already holds a search"):
        driver.search(spec(trials=4), out)
    with pytest.raises(UserError, match="another specification"):
        driver.search(spec(trials=6, seed=5), out, resume=True)
    more = driver.search(spec(trials=4), out, trials=7, resume=True, report=False)
    assert S.counted(S.open_study(out, more.doc, create=False)) == 7
    cols = ["trial", "value"]
    assert more.trials[cols].head(4).equals(first.trials[cols])
    with pytest.raises(UserError, match="no search to resume"):
        driver.search(spec(), tmp_path / "empty", resume=True)


def test_a_killed_search_loses_at_most_the_running_trial(fake, tmp_path):
    from llmcombo.search.report import preset_configs

    out = tmp_path / "s"
    _kind, doc = to_document(spec(), resolve=False)
    references = len(PARENTS) + len(preset_configs(doc)) + 2  # parents, presets, vote, router
    fake["stop_after"] = references + 3  # killed while the 4th trial runs
    with pytest.raises(KeyboardInterrupt):
        driver.search(spec(trials=6, space={"methods": ["ties", "linear"]}), out)
    fake.clear()
    before = S.open_study(out, {}, create=False).get_trials()
    measured = [t for t in before if t.state.name == "COMPLETE"]
    running = [t for t in before if t.state.name == "RUNNING"]
    assert len(running) == 1 and len(measured) >= 3  # the cache may answer preset-like trials
    r = driver.search(spec(trials=6, space={"methods": ["ties", "linear"]}), out, resume=True,
                      report=False)
    states = r.trials.set_index("trial")["state"]
    assert states[running[0].number] == "interrupted"
    assert (states == "complete").sum() == 6  # nothing measured before the kill was lost
    after = {t.number: t for t in S.open_study(out, r.doc, create=False).get_trials()}
    for t in measured:
        assert after[t.number].values == t.values
    rerun = after[running[0].number + 1]  # the interrupted trial is asked again, first
    assert rerun.params == running[0].params


def test_outputs_are_written_and_best_yaml_opens_in_the_form(fake, tmp_path):
    from llmcombo.importer import load_any
    from llmcombo_widgets.viewmodel import FormModel

    r = driver.search(spec(trials=6, objective="pareto", cost="models",
                           space={"methods": ["ties", "linear"], "ensembles": ["vote"]}),
                      tmp_path / "s")
    names = {p.name for p in r.files}
    assert {"study.csv", "references.csv", "results.csv", "best.yaml", "report.md", "search.json",
            "history.png", "pareto.png", "importances.png", "cost.png"} <= names
    best = load_any(tmp_path / "s" / "best.yaml")
    assert errors(dict(best)) == {}
    vm = FormModel()
    assert vm.load_file(tmp_path / "s" / "best.yaml") and not vm.errors
    report = (tmp_path / "s" / "report.md").read_text(encoding="utf-8")
    assert "test split" in report and "validation" in report and "6 trials" in report
    res = r.results
    assert {"parent", "preset", "ensemble", "best"} <= set(res["role"])
    assert set(res["task"]) == {"domotica", "tiempo"}
    # the test split was read only for the report, after every trial
    trial_splits = {j["split"] for j in _jobs() if j["name"].startswith("trial")}
    assert trial_splits == {"validation"}
    assert r.trials.columns.str.startswith("param:").any()
    assert not math.isnan(r.trials["worst_kept"].dropna().iloc[0])


def test_the_local_path_does_not_import_ray():
    code = ("import sys, llmcombo; from llmcombo.search import driver, executors, worker, report;"
            "executors.make_executor; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_llmcombo_search_is_the_package_and_the_function():
    import llmcombo
    import llmcombo.search as pkg

    assert callable(llmcombo.search) and callable(pkg)
    assert pkg.search.__module__ == "llmcombo.search"


def test_ray_missing_or_unreachable_says_how_to_run_locally(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError) as info:
        executors.connect_ray("auto", 1)
    assert "llmcombo[search]" in info.value.hint and "without --ray" in info.value.hint
