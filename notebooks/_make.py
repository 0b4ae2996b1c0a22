"""Write the tutorial notebooks (01-06) from the cell lists below, without outputs.

    python notebooks/_make.py          # rewrite every tutorial notebook
    python notebooks/_make.py --check  # exit 1 when a committed notebook differs from this file

Edit the cells here, not in Jupyter, so the notebooks stay reviewable as plain Python. Every
notebook asserts the results it shows: ``tests/test_notebooks.py`` runs them headless, so a
notebook whose claims stop holding fails the test suite. ``dashboard.ipynb`` is not made here.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# ---------------------------------------------------------------------------------------------
# shared cells
# ---------------------------------------------------------------------------------------------


def repo_url() -> str | None:
    """The GitHub repository in pyproject's [project.urls] (Repository, Source or Homepage)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    urls = data.get("project", {}).get("urls", {}) or {}
    for key in ("Repository", "repository", "Source", "source", "Homepage", "homepage"):
        url = urls.get(key)
        if url and "github.com" in url:
            return url.rstrip("/").removesuffix(".git")
    return None


def install_spec(extras: str = "widgets") -> str:
    url = repo_url()
    return f"llmcombo[{extras}] @ git+{url}.git" if url else f"llmcombo[{extras}]"


def colab_markdown() -> str:
    url = repo_url()
    where = (f"from its repository ({url})" if url else
             "from PyPI (`pip install llmcombo[widgets]`). The project has not named its "
             "public repository in `pyproject.toml` yet and we have not checked that a "
             "package called `llmcombo` on PyPI is this one, so on Colab you may need to "
             "replace that line with `%pip install -q \"/content/llmcombo-0.1.0-py3-none-any.whl[widgets]\"` "
             "after uploading a wheel (`python -m build` in a checkout)")
    return ("**Running on Google Colab?** The next cell installs llmcombo " + where + ". "
            "Anywhere else (a local Jupyter, Binder, the tests) it does nothing: install "
            "llmcombo there with `pip install -e .[widgets]` or `environment.yml`. "
            "The tiny offline model zoo ships with llmcombo: nothing is trained or downloaded.")


def colab_cell(extras: str = "widgets") -> str:
    return f'''\
# Google Colab only: install llmcombo (elsewhere this cell does nothing)
import sys

if "google.colab" in sys.modules:
    %pip install -q "{install_spec(extras)}"
    from google.colab import output

    output.enable_custom_widget_manager()  # ipywidgets forms in Colab'''


def setup_cell(name: str, n: int) -> str:
    return f'''\
%matplotlib inline
import os
import tempfile
from pathlib import Path

from IPython.display import display
from transformers.utils import logging as transformers_logging

import llmcombo
from llmcombo import zoo

transformers_logging.disable_progress_bar()  # no "Loading weights" bar per model load

# Everything this notebook writes goes to a working folder outside the repository:
# $LLMCOMBO_OUTPUTS (the tests and the dashboard set it) or a folder in the temp directory.
WORK = Path(os.environ.get("LLMCOMBO_OUTPUTS")
            or Path(tempfile.gettempdir()) / "llmcombo-notebooks") / "{name}"
WORK.mkdir(parents=True, exist_ok=True)
os.chdir(WORK)
N = {n}  # held-out prompts per task: enough to tell a kept skill from a lost one, quick on a CPU

z = zoo.build()  # the zoo shipped with llmcombo (trained once and reused if not shipped)
print("zoo:", z.dir)
print("working folder:", WORK)
assert {{"base", "domotica", "tiempo", "selector"}} <= set(z.models)'''


def head(title: str, text: str, name: str, n: int, extras: str = "widgets") -> list:
    return [("md", f"# {title}\n\n{text}"), ("md", colab_markdown()), ("code", colab_cell(extras)),
            ("code", setup_cell(name, n))]


# ---------------------------------------------------------------------------------------------
# 01 quickstart
# ---------------------------------------------------------------------------------------------

QUICKSTART = head(
    "Quick start: merge two specialists and compare them with their parents",
    """\
The *zoo* is four tiny Llama models (about a million parameters each) that llmcombo trains
offline on two Spanish command tasks:

| model | what it knows |
|---|---|
| `zoo:base` | Spanish text of both tasks and the shape of an answer, but not which answer |
| `zoo:domotica` | `base` fine-tuned on home automation: *apaga la luz del salón* → `LUZ_SL OFF` |
| `zoo:tiempo` | `base` fine-tuned on weather questions: *¿llueve mañana en Bilbao?* → `TIEMPO ...` |
| `zoo:selector` | `base` fine-tuned to say which specialist should answer (`LLM1` / `LLM2`) |

Each specialist is good at its own task and useless at the other. Here we **merge** the two
with TIES (base `zoo:base`) into one model and check, on held-out prompts, that the merge keeps
both skills. It takes seconds on a CPU (the zoo ships with llmcombo).""", "01_quickstart", 50) + [
    ("md", """\
## 1. The configuration

`llmcombo.configure` builds and validates a configuration of the feature model (the same data
the dashboard form edits and `llmcombo validate` checks). TIES keeps the largest `density`
share of each task vector (fine-tuned minus base weights), elects a sign per weight and
averages what agrees. On these two specialists TIES keeps both skills at a density of 0.5
as at 0.9 (notebook 02 compares densities and other methods)."""),
    ("code", """\
cfg = llmcombo.configure("ties", ["zoo:domotica", "zoo:tiempo"], base="zoo:base", density=0.9)
print(cfg.to_yaml())
issues = llmcombo.validate(cfg)
assert not [i for i in issues if i.is_error], issues
assert cfg["merge"]["method"] == "ties" and cfg["merge"]["base_model"] == "zoo:base\""""),
    ("md", "## 2. Run the merge\n\nmergekit runs in-process; the result is an ordinary "
           "Hugging Face model folder (plus `llmcombo_lineage.json`: what it was made from)."),
    ("code", """\
merged = llmcombo.merge("ties", ["zoo:domotica", "zoo:tiempo"], base="zoo:base", density=0.9,
                        out=WORK / "ties", overwrite=True)
print(merged)
assert (merged.path / "config.json").is_file()
assert any(merged.path.glob("*.safetensors"))
assert merged.method == "ties\""""),
    ("md", """\
## 3. Compare with the parents

`llmcombo.compare` asks every product the same held-out prompts of both tasks and scores exact
matches of the command; the frame carries 95 % Wilson intervals."""),
    ("code", """\
comparison = llmcombo.compare({"ties": merged, "domotica": "zoo:domotica",
                               "tiempo": "zoo:tiempo", "base": "zoo:base"}, limit=N)
acc = comparison.table()
display(acc.style.format("{:.0%}"))
ci = comparison.frame.set_index(["product", "task"])
display(comparison.frame[["product", "task", "value", "n", "ci_low", "ci_high"]])"""),
    ("md", "What the table must show, checked here so that running the notebook is a test:"),
    ("code", """\
# each specialist knows its own task and not the other one; the base knows neither
assert acc.loc["domotica", "domotica"] >= 0.8 and acc.loc["tiempo", "tiempo"] >= 0.8
assert acc.loc["domotica", "tiempo"] <= 0.2 and acc.loc["tiempo", "domotica"] <= 0.2
assert acc.loc["base"].max() <= 0.2
# the merge answers BOTH tasks: on each task its 95 % interval lies above the interval of the
# parent that does not know that task and above the base
for task, outsider in (("domotica", "tiempo"), ("tiempo", "domotica")):
    for parent in (outsider, "base"):
        assert ci.loc[("ties", task), "ci_low"] > ci.loc[(parent, task), "ci_high"], (task, parent)
# so its weaker skill beats every parent's weaker skill
assert acc.loc["ties"].min() > max(acc.loc[p].min() for p in ("domotica", "tiempo", "base"))
print({t: f"{v:.0%}" for t, v in acc.loc["ties"].items()})"""),
    ("code", """\
from llmcombo import plots

fig = comparison.plot()
plots.save_figure(fig, WORK / "accuracy.png")
assert (WORK / "accuracy.png").stat().st_size > 0
fig"""),
    ("md", """\
## 4. The same in three lines of Python

Without `out=`, `llmcombo.merge` writes to `<outputs>/<method>-<hash>`, where `<outputs>` is
`$LLMCOMBO_OUTPUTS` or `llmcombo-out` in the current folder (`merged.path` says where): the same
configuration always lands in the same place."""),
    ("code", """\
import llmcombo
merged = llmcombo.merge("ties", ["zoo:domotica", "zoo:tiempo"], base="zoo:base", density=0.9)
llmcombo.compare([merged, "zoo:domotica", "zoo:tiempo"], limit=N)"""),
    ("code", """\
# the three lines build the same weights, so they score exactly as above
# (`_` is the result of the previous cell: the comparison it displayed)
again = _.table()
assert Path(merged.path).parent == llmcombo.api.outputs_dir().absolute()
assert list(again.loc[merged.path.name]) == list(acc.loc["ties", again.columns])"""),
    ("md", """\
## 5. The same as a form

The dashboard's configurator is generated from the feature model; here it opens on the
configuration above (change the density, the live YAML follows)."""),
    ("code", """\
from llmcombo_widgets.configurator import configurator

form = configurator(dict(cfg))
display(form.widget)
assert not form.vm.errors
assert "merge_method: ties" in form.vm.mergekit_preview"""),
]


# ---------------------------------------------------------------------------------------------
# 02 merge methods
# ---------------------------------------------------------------------------------------------

MERGE_METHODS = head(
    "Merge methods, validation and an interpolation sweep",
    """\
The feature model lists every merge method of the installed mergekit with its parameters. This
notebook merges the two zoo specialists with several of them, shows how a wrong value is
reported (the same sentence in Python, on the command line and in the form), previews the
mergekit YAML that llmcombo generates, and sweeps SLERP from one specialist to the other.""",
    "02_merge_methods", 40) + [
    ("md", "## 1. The methods the feature model knows (from mergekit's registry)"),
    ("code", """\
import pandas as pd

from llmcombo import evaluate as ev
from llmcombo import plots
from llmcombo.productline import merge_methods
from llmcombo.run import run_cached

methods = merge_methods()
catalogue = pd.DataFrame(
    [{"method": name, "parameters": ", ".join(
        f"{p.name}{'*' if p.required else ''} ({p.scope})" for p in info.params)}
     for name, info in methods.items()])
display(catalogue)
assert {"linear", "slerp", "task_arithmetic", "ties", "dare_ties", "della"} <= set(methods)
assert "density" in {p.name for p in methods["ties"].params}"""),
    ("md", """\
## 2. Six merges of the same two specialists

Each configuration is validated and run by mergekit; `run_cached` keeps the result in
`models/` under a hash of the configuration, so running the notebook again reuses it."""),
    ("code", """\
pair = ["zoo:domotica", "zoo:tiempo"]
configs = {
    "linear": llmcombo.configure("linear", pair, weight=0.5),
    "slerp": llmcombo.configure("slerp", pair, base="zoo:domotica", t=0.5),
    "task_arithmetic": llmcombo.configure("task_arithmetic", pair, base="zoo:base"),
    "ties d=0.5": llmcombo.configure("ties", pair, base="zoo:base", density=0.5),
    "ties d=0.9": llmcombo.configure("ties", pair, base="zoo:base", density=0.9),
    "dare_ties": llmcombo.configure("dare_ties", pair, base="zoo:base", density=0.7),
}
folders = {name: run_cached(cfg, WORK / "models", name=name.replace(" ", "_"))
           for name, cfg in configs.items()}
for name, folder in folders.items():
    print(f"{name:16s} {folder.name}")
    assert (folder / "config.json").is_file()"""),
    ("code", """\
parents = {"domotica": "zoo:domotica", "tiempo": "zoo:tiempo", "base": "zoo:base"}
results = ev.evaluate({**parents, **{n: str(f) for n, f in folders.items()}}, limit=N)
acc = results.pivot_table(index="product", columns="task", values="value", sort=False)
display(acc.style.format("{:.0%}"))
plots.plot_accuracy(results, parents=list(parents))"""),
    ("code", """\
ci = results.set_index(["product", "task"])
keeps_both = [m for m in configs
              if all(ci.loc[(m, t), "ci_low"] > ci.loc[("base", t), "ci_high"]
                     for t in ("domotica", "tiempo"))]
print("keep both skills (95 % interval above the base on both tasks):", keeps_both)
# every merge of these two specialists keeps something of both skills ...
assert set(keeps_both) == set(configs)
# ... but averaging the weights halves each specialist's task vector and the weather skill
# suffers; the methods that add task vectors to the base keep it (intervals do not overlap)
for m in ("task_arithmetic", "ties d=0.5", "ties d=0.9", "dare_ties"):
    for averaged in ("linear", "slerp"):
        assert ci.loc[(m, "tiempo"), "ci_low"] > ci.loc[(averaged, "tiempo"), "ci_high"], (m, averaged)"""),
    ("md", """\
## 3. A wrong value: `density: half`

Validation never raises for a user's mistake: it returns issues, each with the path of the
field and a sentence that says what to do. An error is what mergekit itself would refuse (a
density that is not a number); what mergekit runs but looks unusual (a density of 1.5) is only a
warning. `llmcombo.configure` refuses to build an invalid configuration and lists the same
issues."""),
    ("code", """\
import copy

from llmcombo.errors import UserError

unusual = copy.deepcopy(dict(llmcombo.load_preset("ties")))
unusual["merge"]["models"][1]["parameters"]["density"] = 1.5  # mergekit runs it: a warning
warned = llmcombo.validate(unusual)
for issue in warned:
    print(issue.format())
assert warned and not [i for i in warned if i.is_error]

bad = copy.deepcopy(dict(llmcombo.load_preset("ties")))
bad["merge"]["models"][1]["parameters"]["density"] = "half"  # mergekit refuses it: an error
issues = llmcombo.validate(bad)
for issue in issues:
    print(issue.format())
errors = [i for i in issues if i.is_error]
assert [i.path for i in errors] == ["merge.models[1].parameters.density"]
message = errors[0].message
assert "density" in message and "half" in message

try:
    llmcombo.configure("ties", pair, base="zoo:base", density="half")
    raise AssertionError("configure accepted density 'half'")
except UserError as exc:
    print(exc)
    assert "density" in str(exc)"""),
    ("md", "The command line says the same (exit status 1: not valid):"),
    ("code", """\
import subprocess
import sys

import yaml

(WORK / "bad.yaml").write_text(yaml.safe_dump(bad, sort_keys=False), encoding="utf-8")
cli = subprocess.run([sys.executable, "-m", "llmcombo.cli", "validate", str(WORK / "bad.yaml")],
                     capture_output=True, text=True)
print(cli.stdout + cli.stderr)
assert cli.returncode == 1
assert message in cli.stdout + cli.stderr"""),
    ("md", """\
And the form shows it under the field; typing a valid value clears it (the cell below types
into the widget, as a user would)."""),
    ("code", """\
from llmcombo_widgets.configurator import configurator


def find(widget, css_class):
    \"\"\"The first widget under ``widget`` that carries ``css_class``.\"\"\"
    if css_class in getattr(widget, "_dom_classes", ()):
        return widget
    for child in getattr(widget, "children", ()):
        hit = find(child, css_class)
        if hit is not None:
            return hit
    return None


form = configurator(bad)
display(form.widget)
field = find(form.widget, "llmcombo-key-merge-models-1-parameters-density")
shown = find(field, "llmcombo-issues").value
print(shown)
assert message in shown.replace("&#x27;", "'")
assert form.vm.mergekit_preview.startswith("# fix 1 error")

find(field, "llmcombo-input").value = "0.5"  # what typing into the field does
assert form.vm.errors == []
assert find(field, "llmcombo-issues").value == \"\""""),
    ("md", """\
## 4. The generated mergekit YAML

What llmcombo hands to mergekit (model references resolved to folders), checked against
mergekit's own configuration model."""),
    ("code", """\
from mergekit.config import MergeConfiguration

text = llmcombo.generate_yaml(form.vm.configuration())
print(text)
doc = yaml.safe_load(text)
MergeConfiguration.model_validate(doc)  # raises if mergekit would reject it
assert doc["merge_method"] == "ties"
assert [m["parameters"]["density"] for m in doc["models"]] == [0.5, 0.5]
assert doc["base_model"] == str(z.path("base"))"""),
    ("md", """\
## 5. An interpolation sweep

SLERP from `domotica` (t = 0) to `tiempo` (t = 1): each point is a merge (cached), evaluated
on both tasks. The two skills trade places along the way."""),
    ("code", """\
from llmcombo.zoo import experiments

sweep = experiments.interpolation_sweep("zoo:domotica", "zoo:tiempo", method="slerp",
                                        ts=(0.0, 0.25, 0.5, 0.75, 1.0), limit=N,
                                        cache_dir=WORK / "models")
display(sweep.pivot_table(index="t", columns="task", values="value").style.format("{:.0%}"))
plots.plot_interpolation_sweep(sweep, label_a="domotica", label_b="tiempo")"""),
    ("code", """\
at = sweep.set_index(["t", "task"])["value"]
# the ends are the specialists themselves (SLERP at t=0 / t=1 returns model A / model B)
assert at[(0.0, "domotica")] == acc.loc["domotica", "domotica"]
assert at[(1.0, "tiempo")] == acc.loc["tiempo", "tiempo"]
# and the skills trade places from one end to the other
assert at[(1.0, "tiempo")] > at[(0.0, "tiempo")]
assert at[(0.0, "domotica")] > at[(1.0, "domotica")]
assert at[(0.5, "domotica")] > at[(1.0, "domotica")] and at[(0.5, "tiempo")] > at[(0.0, "tiempo")]"""),
]


# ---------------------------------------------------------------------------------------------
# 03 mixture of experts
# ---------------------------------------------------------------------------------------------

MOE = head(
    "A mixture of experts from the two specialists",
    """\
mergekit can build a Mixtral-style **mixture of experts** from dense models: every expert's
MLP layers come from one source model, the attention, embeddings and norms from `base_model`,
and a gate in each layer picks the expert for each token. With `gate_mode: hidden` the gates are
initialised from the hidden states of *positive prompts* of each expert, so no training is
needed.

We build one from `zoo:domotica` and `zoo:tiempo`, with positive prompts taken from each task's
training split, load it, let it generate, and look at how its gates route tokens. The honest
result, checked below: with these tiny, fully fine-tuned specialists the MoE does **not** keep
their skills: the attention layers the experts were trained with are replaced by the base's,
and the hidden-state gates barely tell the two tasks apart (embedding gates do better).""",
    "03_mixture_of_experts", 40) + [
    ("md", "## 1. The configuration"),
    ("code", """\
from llmcombo.zoo import tasks

positive = {t: [e.prompt for e in tasks.get_task(t).split("train")][:8]
            for t in ("domotica", "tiempo")}
cfg = {"name": "moe-specialists",
       "moe": {"base_model": "zoo:base", "gate_mode": "hidden", "experts_per_token": 1,
               "dtype": "float32",
               "experts": [{"source_model": "zoo:domotica", "positive_prompts": positive["domotica"]},
                           {"source_model": "zoo:tiempo", "positive_prompts": positive["tiempo"]}]}}
assert not [i for i in llmcombo.validate(cfg) if i.is_error]
print(llmcombo.generate_yaml(cfg, resolve=False))"""),
    ("md", "Hidden gates need prompts for every expert; validation says so, with the field:"),
    ("code", """\
import copy

no_prompts = copy.deepcopy(cfg)
del no_prompts["moe"]["experts"][1]["positive_prompts"]
errors = [i for i in llmcombo.validate(no_prompts) if i.is_error]
for i in errors:
    print(i.format())
assert [i.path for i in errors] == ["moe.experts[1].positive_prompts"]"""),
    ("md", "## 2. Build it"),
    ("code", """\
import json

from llmcombo.run import run

moe = run(cfg, WORK / "moe", overwrite=True)
print(moe)
config = json.loads((moe.path / "config.json").read_text())
print(config["architectures"], "experts:", config["num_local_experts"],
      "per token:", config["num_experts_per_tok"])
assert config["architectures"] == ["MixtralForCausalLM"]
assert config["num_local_experts"] == 2 and config["num_experts_per_tok"] == 1"""),
    ("md", "## 3. Load it and generate\n\nAn ordinary transformers model:"),
    ("code", """\
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmcombo.zoo.tasks import format_prompt

tok = AutoTokenizer.from_pretrained(moe.path)
model = AutoModelForCausalLM.from_pretrained(moe.path).eval()
print(type(model).__name__, f"{sum(p.numel() for p in model.parameters()):,} parameters")
prompts = ["apaga la luz del salon", "va a llover mañana en sevilla"]
for p in prompts:
    ids = tok(format_prompt(p), return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"{p!r:40} -> {text!r}")
    assert out.shape[1] > ids["input_ids"].shape[1]  # it generated tokens
assert type(model).__name__ == "MixtralForCausalLM\""""),
    ("md", """\
## 4. Accuracy against the experts

The comparison also builds a second MoE whose shared weights come from `zoo:domotica` instead of
`zoo:base`: if the replaced attention layers are what breaks the experts, that MoE gets the home
automation skill back."""),
    ("code", """\
from llmcombo import evaluate as ev
from llmcombo.run import run_cached

shared_dom = copy.deepcopy(cfg)
shared_dom["moe"]["base_model"] = "zoo:domotica"
moe_dom = run_cached(shared_dom, WORK / "models", name="moe-shared-domotica")
comparison = llmcombo.compare({"moe": moe, "moe (shared from domotica)": str(moe_dom),
                               "domotica": "zoo:domotica", "tiempo": "zoo:tiempo",
                               "base": "zoo:base"}, limit=N)
acc = comparison.table()
display(acc.style.format("{:.0%}"))
comparison.plot()"""),
    ("code", """\
# the experts are good at their tasks, so a poor MoE is not the experts' fault
assert acc.loc["domotica", "domotica"] >= 0.8 and acc.loc["tiempo", "tiempo"] >= 0.8
# the MoE on the base's shared weights keeps neither skill (well below each expert)
assert acc.loc["moe", "domotica"] < acc.loc["domotica", "domotica"] - 0.5
assert acc.loc["moe", "tiempo"] < acc.loc["tiempo", "tiempo"] - 0.5
# with domotica's attention and embeddings, domotica's skill comes back
assert acc.loc["moe (shared from domotica)", "domotica"] > acc.loc["moe", "domotica"] + 0.5"""),
    ("md", """\
## 5. Where the gates send the tokens

Hooks on every layer's gate count which expert each real (non-padding) token of held-out prompts
goes to. For contrast we also build the same MoE with `gate_mode: cheap_embed` (gates from the
prompts' raw token embeddings instead of hidden states)."""),
    ("code", """\
import pandas as pd

from llmcombo import analysis, plots
from llmcombo.run import run_cached
from llmcombo.zoo.tasks import format_prompt

held_out = {t: [e.prompt for e in ev.dataset(t, limit=N).examples] for t in ("domotica", "tiempo")}
cheap = copy.deepcopy(cfg)
cheap["moe"]["gate_mode"] = "cheap_embed"
moe_cheap = run_cached(cheap, WORK / "models", name="moe-cheap-embed")
routing = {"hidden": analysis.moe_routing_share(moe.path, held_out, template=format_prompt),
           "cheap_embed": analysis.moe_routing_share(moe_cheap, held_out, template=format_prompt)}
to_domotica_expert = pd.DataFrame(
    {mode: r[r["expert"] == 0].groupby("prompt_set")["share"].mean() for mode, r in routing.items()}).T
display(to_domotica_expert.style.format("{:.0%}").set_caption(
    "share of tokens sent to expert 0 (domotica), mean over layers"))
display(plots.plot_routing_share(routing["hidden"], expert_names=["domotica", "tiempo"],
                                 title="hidden gates: share of tokens per expert"))
plots.plot_routing_share(routing["cheap_embed"], expert_names=["domotica", "tiempo"],
                         title="cheap_embed gates: share of tokens per expert")"""),
    ("code", """\
for r in routing.values():
    sums = r.groupby(["prompt_set", "layer"])["share"].sum()
    assert ((sums - 1).abs() < 1e-9).all()  # every token goes to exactly one expert
    assert r.groupby("expert")["tokens"].sum().min() > 0  # both experts are used
separation = to_domotica_expert["domotica"] - to_domotica_expert["tiempo"]
print(separation.map("{:+.0%}".format).to_dict())
# cheap_embed gates send home-automation prompts to the home-automation expert clearly more
# often than weather prompts; the hidden-state gates of this tiny base barely tell them apart
assert separation["cheap_embed"] > 0.1
assert separation["cheap_embed"] > separation["hidden"]
assert abs(separation["hidden"]) < 0.15"""),
    ("md", "## 6. The form\n\nThe same configuration in the configurator (the MoE branch of "
           "the feature model):"),
    ("code", """\
from llmcombo_widgets.configurator import configurator

form = configurator(copy.deepcopy(cfg))
display(form.widget)
assert not form.vm.errors
assert "gate_mode: hidden" in form.vm.mergekit_preview"""),
]


# ---------------------------------------------------------------------------------------------
# 04 ensembles
# ---------------------------------------------------------------------------------------------

ENSEMBLES = head(
    "Runtime ensembles: pipeline, vote and router",
    """\
Instead of combining weights, an *ensemble* combines answers at run time. The three
architectures of the seed's home-automation example:

* **pipeline** (*LLM en línea*): model A's answer becomes model B's prompt;
* **vote** (*varios LLM en paralelo*): several answers to the same prompt, the most frequent wins
  (the example: three samples of the home-automation model, keep the command at least two give);
* **router** (*selección del mejor modelo*): a selector model reads the prompt and says which
  specialist answers: `LLM1` (home automation) or `LLM2` (weather).

Every answer comes with a trace of how it was reached.""", "04_ensembles", 40) + [
    ("code", """\
import json

from llmcombo import evaluate as ev
from llmcombo.ensemble import load_product
from llmcombo.zoo.tasks import normalize_command


def show(answer):
    print("answer:", answer.text)
    trace = {k: v for k, v in answer.trace.items() if k != "timings"}
    print(json.dumps(trace, indent=2, ensure_ascii=False, default=str))


dom = ev.dataset("domotica", limit=N).examples
tie = ev.dataset("tiempo", limit=N).examples"""),
    ("md", """\
## 1. Pipeline

`zoo:domotica` turns the order into a command; `zoo:base` then continues that command as free
text (`{input}` in a stage's template is the previous stage's answer)."""),
    ("code", """\
pipeline_cfg = {"ensemble": {"pipeline": {"stages": [
    {"model": "zoo:domotica"},
    {"model": "zoo:base", "template": "{input} es", "output": "text"}]}}}
assert not [i for i in llmcombo.validate(pipeline_cfg) if i.is_error]
pipeline = load_product(pipeline_cfg)
answer = pipeline.answer(dom[0].prompt)
show(answer)
first, second = answer.trace["stages"]
assert normalize_command(first["output"]) == normalize_command(dom[0].expected)
assert second["input"] == first["output"]          # A's answer is B's input ...
assert second["prompt"] == first["output"] + " es"  # ... placed in B's template
assert answer.text == second["output"]"""),
    ("md", """\
## 2. Vote

Five sampled answers of `zoo:domotica` (temperature 1.0, so single answers are often wrong);
the most frequent command wins, a tie goes to the answer the model found more likely."""),
    ("code", """\
vote_cfg = {"ensemble": {"vote": {
    "members": [{"model": "zoo:domotica"}], "samples": 5,
    "sampling": {"temperature": 1.0, "seed": 0}, "tie_break": "likelihood"}}}
vote = load_product(vote_cfg)
show(vote.answer(dom[0].prompt))"""),
    ("code", """\
answers = vote.answer_batch([e.prompt for e in dom])
right = lambda text, e: normalize_command(text) == normalize_command(e.expected)  # noqa: E731
majority = sum(right(a.text, e) for a, e in zip(answers, dom)) / len(dom)
single = (sum(right(s["answer"], e) for a, e in zip(answers, dom) for s in a.trace["samples"])
          / sum(len(a.trace["samples"]) for a in answers))
print(f"one sampled answer: {single:.0%}   majority of 5: {majority:.0%}   ({len(dom)} prompts)")
assert all(a.trace["n"] == 5 for a in answers)
assert majority > single + 0.1  # voting repairs most of the sampling mistakes"""),
    ("md", """\
## 3. Router

`zoo:selector` answers `LLM1` or `LLM2`; its confidence must reach the threshold, otherwise the
fallback route answers."""),
    ("code", """\
router_cfg = {"ensemble": {"router": {
    "selector": {"kind": "label_model", "model": "zoo:selector", "threshold": 0.5},
    "routes": [{"label": "LLM1", "model": "zoo:domotica"},
               {"label": "LLM2", "model": "zoo:tiempo"}],
    "fallback": "LLM1"}}}
router = load_product(router_cfg)
a_dom, a_tie = router.answer(dom[0].prompt), router.answer(tie[0].prompt)
show(a_dom)
show(a_tie)
assert a_dom.trace["route"] == "LLM1" and a_tie.trace["route"] == "LLM2"
assert right(a_dom.text, dom[0]) and right(a_tie.text, tie[0])"""),
    ("code", """\
routes = {t: [d["route"] for d in router.route([e.prompt for e in exs])]
          for t, exs in (("domotica", dom), ("tiempo", tie))}
routed_right = {"domotica": routes["domotica"].count("LLM1") / N,
                "tiempo": routes["tiempo"].count("LLM2") / N}
print("prompts sent to the right specialist:", {k: f"{v:.0%}" for k, v in routed_right.items()})
assert min(routed_right.values()) >= 0.9

comparison = llmcombo.compare({"router": router_cfg, "domotica": "zoo:domotica",
                               "tiempo": "zoo:tiempo"}, limit=N)
acc = comparison.table()
display(acc.style.format("{:.0%}"))
# the router answers both tasks; each specialist only its own
assert acc.loc["router"].min() >= 0.8
assert acc.loc["router"].min() > max(acc.loc["domotica"].min(), acc.loc["tiempo"].min()) + 0.5
comparison.plot()"""),
    ("md", "## 4. The form\n\nEnsembles are a branch of the same feature model, so the "
           "configurator edits them too:"),
    ("code", """\
from llmcombo_widgets.configurator import configurator

form = configurator(router_cfg)
display(form.widget)
assert not form.vm.errors
spec = form.vm.mergekit_preview  # for an ensemble: the generated ensemble spec
print(spec)
assert "LLM1" in spec and "LLM2" in spec"""),
]


# ---------------------------------------------------------------------------------------------
# 05 evaluate and publish
# ---------------------------------------------------------------------------------------------

PUBLISH = head(
    "Evaluate products and publish one (dry run)",
    """\
Evaluation results are tidy pandas frames (`product, task, metric, value, n, ci_low, ci_high`)
that concatenate, save as CSV and plot. Publishing writes a model card (lineage, mergekit YAML,
evaluation table) and uploads the folder to the Hugging Face Hub; here only as a **dry run**:
the card is written and the file list shown, nothing leaves the machine and no token is
needed.""", "05_evaluate_and_publish", 40) + [
    ("md", "## 1. Products"),
    ("code", """\
import pandas as pd

from llmcombo import evaluate as ev
from llmcombo import plots
from llmcombo.run import run_cached

pair = ["zoo:domotica", "zoo:tiempo"]
ties = run_cached(llmcombo.configure("ties", pair, base="zoo:base", density=0.9),
                  WORK / "models", name="ties")
task_arithmetic = run_cached(llmcombo.configure("task_arithmetic", pair, base="zoo:base"),
                                  WORK / "models", name="task_arithmetic")
router = {"ensemble": {"router": {
    "selector": {"kind": "label_model", "model": "zoo:selector"},
    "routes": [{"label": "LLM1", "model": "zoo:domotica"},
               {"label": "LLM2", "model": "zoo:tiempo"}]}}}
products = {"base": "zoo:base", "domotica": "zoo:domotica", "tiempo": "zoo:tiempo",
            "ties": str(ties), "task_arithmetic": str(task_arithmetic), "router": router}"""),
    ("md", "## 2. Accuracy and perplexity in one frame"),
    ("code", """\
from llmcombo.zoo.tasks import format_example

accuracy = ev.evaluate(products, limit=N)
texts = {t: [format_example(e) for e in ev.dataset(t, limit=N).examples]
         for t in ("domotica", "tiempo")}
perplexity = pd.concat([ev.evaluate_perplexity(products[m], texts[t], name=m, task=t,
                                               progress=False)
                        for m in ("base", "domotica", "tiempo", "ties") for t in texts],
                       ignore_index=True)
results = pd.concat([accuracy, perplexity], ignore_index=True)
display(results)"""),
    ("code", """\
assert list(results.columns[:7]) == ev.COLUMNS
assert set(results["metric"]) == {"accuracy", "perplexity"}
acc = accuracy.pivot_table(index="product", columns="task", values="value", sort=False)
ppl = perplexity.pivot_table(index="product", columns="task", values="value", sort=False)
display(acc.style.format("{:.0%}"), ppl.style.format("{:.2f}"))
# each specialist finds its own task's texts (order + command) more predictable than the
# other task's (the perplexity of the whole text, so the orders weigh more than the commands)
assert ppl.loc["domotica", "domotica"] < ppl.loc["domotica", "tiempo"]
assert ppl.loc["tiempo", "tiempo"] < ppl.loc["tiempo", "domotica"]
# every interval contains its value
assert ((results["ci_low"] <= results["value"]) & (results["value"] <= results["ci_high"])).all()
# the combinations know both tasks, the specialists one each
for combo in ("ties", "task_arithmetic", "router"):
    assert acc.loc[combo].min() > max(acc.loc[p].min() for p in ("base", "domotica", "tiempo"))"""),
    ("md", "## 3. Save and reload as CSV"),
    ("code", """\
path = ev.save_results(results, WORK / "results.csv")
print(path, f"{path.stat().st_size} bytes")
again = ev.load_results(path)
pd.testing.assert_frame_equal(again[ev.COLUMNS], results[ev.COLUMNS], check_dtype=False)"""),
    ("md", "## 4. Plots"),
    ("code", """\
fig = plots.plot_accuracy(results, parents=["base", "domotica", "tiempo"])
plots.save_figure(fig, WORK / "accuracy.png")
fig"""),
    ("code", """\
from llmcombo import analysis

norms = analysis.task_vector_norms("zoo:base", {"domotica": "zoo:domotica", "tiempo": "zoo:tiempo"})
assert (norms["norm"] > 0).all() and set(norms["model"]) == {"domotica", "tiempo"}
fig = plots.plot_task_vector_norms(norms)
plots.save_figure(fig, WORK / "task_vectors.png")
assert (WORK / "accuracy.png").stat().st_size > 0 and (WORK / "task_vectors.png").stat().st_size > 0
fig"""),
    ("md", """\
## 5. Publish: dry run

The TIES model's own results go into its folder as `evaluation.csv`, so the card shows them.
`dry_run=True` writes `README.md` (the model card) and lists what would be uploaded; it never
reads a token and never opens a connection. Without `dry_run`, the token comes from `HF_TOKEN`
or your `huggingface-cli login`; llmcombo never prints it or writes it anywhere."""),
    ("code", """\
from llmcombo.hub import publish

ev.save_results(accuracy[accuracy["product"] == "ties"], ties / "evaluation.csv")
result = publish(ties, "your-name/llmcombo-zoo-ties", license="apache-2.0", dry_run=True)
print(result.summary())
card = result.card_path.read_text(encoding="utf-8")
assert result.dry_run and result.commit_url is None
assert result.card_path == ties / "README.md"
assert "model.safetensors" in result.files and "README.md" in result.files
assert "TIES" in card and "zoo:domotica" in card and "merge_method: ties" in card
assert "evaluation.csv" in card  # the evaluation table made it into the card
print(card[:1500])"""),
    ("md", """\
The same from the command line. The cell gives the command a made-up token in its environment
(only there) and checks that it appears in no output and no file: a dry run does not even read
it."""),
    ("code", """\
import subprocess
import sys

fake_token = "hf_" + "notARealToken" * 3
env = {**os.environ, "HF_TOKEN": fake_token, "HF_HUB_OFFLINE": "1"}
cli = subprocess.run([sys.executable, "-m", "llmcombo.cli", "publish", str(ties),
                      "--repo", "your-name/llmcombo-zoo-ties", "--dry-run"],
                     capture_output=True, text=True, env=env)
print(cli.stdout + cli.stderr)
assert cli.returncode == 0
assert "dry run" in cli.stdout + cli.stderr
assert fake_token not in cli.stdout + cli.stderr
assert not [f for f in ties.rglob("*") if f.is_file() and fake_token.encode() in f.read_bytes()]"""),
    ("md", "## 6. The dashboard\n\nThe Evaluate and Publish tabs do the same with forms "
           "(`llmcombo dashboard` serves it with Voila):"),
    ("code", """\
from llmcombo_widgets.dashboard import dashboard

app = dashboard(out_root=str(WORK / "dashboard"))
display(app.widget)
assert {"Evaluate", "Publish"} <= set(app.TABS)"""),
]


# ---------------------------------------------------------------------------------------------
# 06 search
# ---------------------------------------------------------------------------------------------

SEARCH = head(
    "Search: find the best combination of two specialists",
    """\
The presets of notebook 02 are guesses: TIES at density 0.5 keeps home automation and loses the
weather. A **search** tries many products of the feature model (every merge method of the
installed mergekit that applies to the parents, each parameter over its domain; optionally
votes and routers) and keeps the one that loses least of either skill. It is honest by
construction: every trial is measured on the tasks' **validation** prompts, the choice is made
there, and the **test** prompts are read once, at the end, for the report. Optuna picks the
trials (TPE by default; CMA-ES and NSGA-II too); Ray runs them on a cluster when one machine is
not enough (`llmcombo search SPEC --ray auto`). A few minutes on a CPU.""", "06_search", 40) + [
    ("md", """\
## 1. The specification

A search is a configuration like any other (`search:`), validated by the feature model: here the
two zoo specialists on their base, both zoo tasks, the worst-case share of each specialist's
skill kept as the objective, a budget of trials. As YAML it is what `llmcombo search SPEC`
reads."""),
    ("code", """\
from llmcombo.configuration import dump_yaml

spec = {"name": "two-skills", "search": {
    "models": [{"model": "zoo:domotica"}, {"model": "zoo:tiempo"}],
    "base_model": "zoo:base",
    "tasks": [{"task": "domotica"}, {"task": "tiempo"}],
    "objective": "worst", "trials": 14, "seed": 0,
    "space": {"methods": ["linear", "slerp", "task_arithmetic", "ties"], "ensembles": ["vote"]},
    # validation prompts per task and trial; test prompts per task, read once for the report
    "evaluation": {"limit": 40, "test_limit": 100}}}
print(dump_yaml(spec))
issues = llmcombo.validate(spec)
assert not [i for i in issues if i.is_error], issues"""),
    ("md", """\
A mistake is one clear message naming the field, before anything runs (the same in the CLI and
the dashboard's form):"""),
    ("code", """\
import copy

bad = copy.deepcopy(spec)
bad["search"]["trials"] = 0
bad["search"]["space"]["methods"] = ["ties", "passthrough", "tiez"]
for issue in llmcombo.validate(bad):
    print(issue.format())
paths = {i.path for i in llmcombo.validate(bad) if i.is_error}
assert paths == {"search.trials", "search.space.methods[1]", "search.space.methods[2]"}"""),
    ("md", """\
## 2. The space comes from the feature model

Which merge methods apply to these parents is decided by validating the configuration each
would make, not by a list: passthrough copies one model per slice, Model Stock needs three
inputs (with the base it has them)."""),
    ("code", """\
from llmcombo.search.space import applicable_methods

applies, why_not = applicable_methods(["zoo:domotica", "zoo:tiempo"], "zoo:base")
print("applies:", ", ".join(applies))
for method, reason in why_not.items():
    print(f"not {method}: {reason}")
assert {"ties", "task_arithmetic", "slerp", "linear", "model_stock"} <= set(applies)
assert "passthrough" in why_not"""),
    ("md", """\
## 3. Run it

The first trials are the shipped presets that are in the space (the search starts from them),
then each other product once, then TPE. Merges are computed in memory (no model folder per
trial); the same product twice is measured once."""),
    ("code", """\
result = llmcombo.search(spec, WORK / "search", log=print)
trials = result.trials
display(trials[["trial", "state", "method", "value", "acc:domotica", "acc:tiempo",
                "merge_s", "eval_s"]].round(3))
assert (trials["state"] == "complete").sum() == 14
assert set(trials["method"]) >= {"linear", "slerp", "task_arithmetic", "ties", "vote"}"""),
    ("md", """\
## 4. Chosen on validation, reported on test

The best product was chosen by its validation score; the test split was read once, for it and
for what it is compared with: the parents, the presets and the ensembles."""),
    ("code", """\
print(result.table())
refs = result.references.set_index("product")
best_trial = trials.set_index("trial").loc[result.best_trial]
presets = refs[refs["role"] == "preset"]
print(f"best on validation: trial {result.best_trial} ({best_trial['method']}), worst-case "
      f"skill kept {best_trial['worst_kept']:.0%}; best preset {presets['worst_kept'].max():.0%}")
# the search starts from the presets, so on validation it is at least as good as the best one
assert best_trial["worst_kept"] >= presets["worst_kept"].max()
test = result.results
assert {"parent", "preset", "ensemble", "best"} <= set(test["role"])
assert (test["n"] == 100).all()
assert ((test["ci_low"] <= test["value"]) & (test["value"] <= test["ci_high"])).all()"""),
    ("md", "## 5. Plots\n\nHistory, the Pareto front of the two tasks (parents, presets and "
           "ensembles on the same axes), parameter importances, accuracy against cost."),
    ("code", """\
from IPython.display import Image

for name in ("history.png", "pareto.png", "importances.png", "cost.png"):
    assert (result.out / name).stat().st_size > 10_000, name
display(Image(result.out / "pareto.png"), Image(result.out / "history.png"))"""),
    ("code", """\
from llmcombo.search import plots as search_plots

fig = search_plots.plot_pareto(trials, result.references, task_a="domotica", task_b="tiempo")
assert len(fig.axes[0].collections) >= 3  # trials, the front, parents, presets, ensembles
fig"""),
    ("md", """\
## 6. `best.yaml` opens in the form and runs with `llmcombo merge`

(When the best product is an ensemble, the best merge is in `best_merge.yaml`.)"""),
    ("code", """\
from llmcombo_widgets.viewmodel import FormModel

best_file = result.out / ("best_merge.yaml" if (result.out / "best_merge.yaml").exists()
                          else "best.yaml")
print(best_file.read_text(encoding="utf-8"))
form = FormModel()
assert form.load_file(best_file) and not form.errors
assert form.family == "merge"
merged = llmcombo.run.run(llmcombo.load_any(best_file), WORK / "best-model", overwrite=True,
                          progress=False)
assert (merged.path / "config.json").is_file()"""),
    ("md", """\
## 7. Resume

The study is on disk (`study.journal`): a search that was stopped (or killed) continues where it
was, and asking for more trials continues too. The trials already measured stay as they were."""),
    ("code", """\
more = llmcombo.search(spec, WORK / "search", trials=18, resume=True)
assert (more.trials["state"] == "complete").sum() == 18
first = trials.set_index("trial")["value"]
assert more.trials.set_index("trial")["value"].loc[first.index].equals(first)"""),
    ("md", "## 8. The Search tab\n\nThe dashboard does the same with a form: parents, tasks, "
           "budget, a live Pareto plot and *open the best in Configure*."),
    ("code", """\
from llmcombo_widgets.dashboard import dashboard

app = dashboard(out_root=str(WORK / "dashboard"))
app.tabs.selected_index = app.tab_titles.index("Search")
display(app.widget)
assert "Search" in app.tab_titles and not app._panels["Search"].start_btn.disabled"""),
]


# ---------------------------------------------------------------------------------------------
# 07 llama.cpp
# ---------------------------------------------------------------------------------------------

LLAMA_CPP = head(
    "llama.cpp: GGUF export, and the seed's vote and router on llama.cpp",
    """\
The second seed builds its ensembles on [llama.cpp](https://github.com/ggml-org/llama.cpp): the
home-automation model answers three times at once with llama.cpp's `batched` example and the
command at least two instances agree on wins; a selector model sends each prompt to `LLM1`
(home automation) or `LLM2` (weather). Here the same, word for word, with the zoo models
converted to GGUF, llama.cpp's file format, by llama.cpp's own converter:

* `llmcombo.gguf.export_gguf` / `llmcombo export-gguf MODEL OUT.gguf --quant q8_0` converts any
  single model (a merge, a zoo model, a Hub model);
* any ensemble member can say `backend: llama_cpp` (a `.gguf` file, or a model folder converted
  once and cached).

Needs the `[llama]` extra: `pip install 'llmcombo[llama]'` builds llama.cpp from source (about
10 minutes the first time).""", "07_llama_cpp", 40, extras="widgets,llama") + [
    ("code", """\
import json

from llmcombo import evaluate as ev
from llmcombo.ensemble import SingleModel, load_product
from llmcombo.gguf import export_gguf
from llmcombo.zoo.tasks import normalize_command"""),
    ("md", """\
## 1. A zoo model in GGUF

The converter runs in a child process; the file is checked by the installed llama.cpp (it
loads it and tokenizes test texts exactly as transformers does) before it appears."""),
    ("code", """\
f16 = export_gguf("zoo:domotica", WORK / "domotica-f16.gguf", "f16", overwrite=True)
q8 = export_gguf("zoo:domotica", WORK / "domotica-q8_0.gguf", "q8_0", overwrite=True)
print(f16)
print(q8)
assert f16.tokenizer_check["differ"] == 0 and q8.tokenizer_check["differ"] == 0
assert q8.size_bytes < f16.size_bytes"""),
    ("md", """\
## 2. The vote of three instances

The seed:

```
./batched ./ggml-onoff-256x8x16-f32.gguf \\\\
    "<s> [ORDEN] apaga la luz del salon [COMANDO]" 3
```

The same prompt (the template `{input}` passes it as written; llama.cpp adds `<s>`), three
sampled answers of one model as three sequences of **one** batch, as `batched` does, and the
command at least two of them give wins."""),
    ("code", """\
SEED_PROMPT = "[ORDEN] apaga la luz del salon [COMANDO]"
vote = load_product({"ensemble": {"vote": {
    "members": [{"model": str(f16.path), "template": "{input}"}],
    "samples": 3, "sampling": {"temperature": 0.7, "seed": 0}}}})
lm = vote.voters[0].lm
lm.decode_calls = 0
answer = vote.answer(SEED_PROMPT)
for i, sample in enumerate(answer.trace["samples"]):
    print(f"sequence {i}:\\n\\n<s> {SEED_PROMPT} {sample['answer']} </s>\\n")
print("votes:", answer.trace["votes"], "->", answer.text)
assert answer.trace["n"] == 3 and answer.trace["backend"] == "llama_cpp"
assert lm.decode_calls <= 1 + vote.voters[0].max_new_tokens  # one decode loop, not three
assert answer.trace["winner_count"] >= 2  # at least two instances agree
assert normalize_command(answer.text) == "LUZ_SL OFF\""""),
    ("md", """\
## 3. The selector: LLM1 or LLM2

The seed:

```
./main -m ggml-select-256x16x32-f32.gguf -r "</s>" \\\\
    -p "<s>\\\\n [ORDEN] apaga la luz del salon\\\\n [COMANDO]"        -> LLM1
./main -m ggml-select-256x16x32-f32.gguf -r "</s>" \\\\
    -p "<s>\\\\n [ORDEN] que tiempo hace\\\\n [COMANDO]"               -> LLM2
```

`zoo:selector` on llama.cpp (the folder is converted once into the GGUF cache)."""),
    ("code", """\
selector = SingleModel("zoo:selector", backend="llama_cpp")
for prompt, label in (("apaga la luz del salon", "LLM1"), ("que tiempo hace", "LLM2")):
    a = selector.answer(prompt)
    print(f"{a.trace['prompt']!r} -> {a.text}")
    assert a.text == label and a.trace["backend"] == "llama_cpp\""""),
    ("md", "## 4. The router\n\nThe selector decides, the specialist answers; every model on "
           "llama.cpp."),
    ("code", """\
router_cfg = {"ensemble": {"router": {
    "selector": {"kind": "label_model", "model": "zoo:selector", "backend": "llama_cpp"},
    "routes": [{"label": "LLM1", "model": "zoo:domotica", "backend": "llama_cpp"},
               {"label": "LLM2", "model": "zoo:tiempo", "backend": "llama_cpp"}],
    "fallback": "LLM1"}}}
assert not [i for i in llmcombo.validate(router_cfg) if i.is_error]
router = load_product(router_cfg)
dom, wea = router.answer("apaga la luz del salon"), router.answer("que tiempo hace")
for a in (dom, wea):
    print(a.text, json.dumps({k: a.trace[k] for k in ("route", "confidence", "backend")}))
assert (dom.trace["route"], wea.trace["route"]) == ("LLM1", "LLM2")
assert normalize_command(dom.text) == "LUZ_SL OFF"
assert normalize_command(wea.text).startswith("TIEMPO")"""),
    ("md", """\
## 5. The same answers as transformers

On held-out prompts: the home-automation model on transformers and on llama.cpp (f16 and
q8_0), and the router on both backends."""),
    ("code", """\
router_tf = {"ensemble": {"router": {
    "selector": {"kind": "label_model", "model": "zoo:selector"},
    "routes": [{"label": "LLM1", "model": "zoo:domotica"}, {"label": "LLM2", "model": "zoo:tiempo"}],
    "fallback": "LLM1"}}}
products = {"transformers": "zoo:domotica",
            "llama.cpp f16": SingleModel("zoo:domotica", backend="llama_cpp"),
            "llama.cpp q8_0": SingleModel("zoo:domotica", backend="llama_cpp", quant="q8_0"),
            "router (transformers)": router_tf, "router (llama.cpp)": router_cfg}
comparison = llmcombo.compare(products, limit=N)
acc = comparison.table()
display(acc.style.format("{:.1%}"))
prompts = [e.prompt for e in ev.dataset("domotica", limit=N).examples]
reference = [a.text for a in load_product("zoo:domotica").answer_batch(prompts)]
same = {name: sum(a.text == r for a, r in zip(products[name].answer_batch(prompts), reference)) / N
        for name in ("llama.cpp f16", "llama.cpp q8_0")}
print("answers identical to transformers:", {k: f"{v:.0%}" for k, v in same.items()})
assert same["llama.cpp f16"] >= 1 - 1 / N  # at most one of N prompts answers otherwise
assert abs(acc.loc["llama.cpp f16", "domotica"] - acc.loc["transformers", "domotica"]) <= 1 / N
assert abs(acc.loc["llama.cpp q8_0", "domotica"] - acc.loc["transformers", "domotica"]) <= 2 / N
for task in acc.columns:
    assert abs(acc.loc["router (llama.cpp)", task] - acc.loc["router (transformers)", task]) <= 2 / N
comparison.plot()"""),
    ("md", """\
## 6. How fast

One prompt at a time, as `answer()` runs it (medians; `bench/llama_vs_transformers.py` measures it properly,
with the load average). Timings vary with the machine, so nothing is asserted here."""),
    ("code", """\
import statistics
import time


def latency(product, prompts, rounds=3):
    product.answer(prompts[0])  # warm up
    times = []
    for _ in range(rounds):
        for p in prompts:
            t = time.perf_counter()
            product.answer(p)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


tf_s = latency(load_product("zoo:domotica"), prompts[:10])
ll_s = latency(products["llama.cpp f16"], prompts[:10])
print(f"per answer: transformers {tf_s * 1e3:.1f} ms, llama.cpp {ll_s * 1e3:.1f} ms "
      f"({tf_s / ll_s:.1f}x), load average {os.getloadavg()[0]:.1f}")"""),
]


NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_merge_methods.ipynb": MERGE_METHODS,
    "03_mixture_of_experts.ipynb": MOE,
    "04_ensembles.ipynb": ENSEMBLES,
    "05_evaluate_and_publish.ipynb": PUBLISH,
    "06_search.ipynb": SEARCH,
    "07_llama_cpp.ipynb": LLAMA_CPP,
}


def build(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                             for kind, src in cells])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids: no churn in diffs
        cell["id"] = f"c{i:02d}"
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = nbformat.writes(build(cells)) + "\n"
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print("wrote", path.relative_to(ROOT))
    if stale:
        print("out of date (run python notebooks/_make.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
