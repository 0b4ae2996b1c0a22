"""The ``llmcombo`` command line.

Every sub-command is a small function that parses its arguments and calls the core. User mistakes
arrive as :class:`llmcombo.errors.UserError` and are printed as one clear message with exit code 1;
usage errors exit with 2 (argparse's convention). Heavy modules are imported inside the commands so
``llmcombo --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from llmcombo import __version__
from llmcombo.errors import UserError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Handler]] = []


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn`` as ``llmcombo NAME``; ``configure`` adds its arguments."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS.append((name, help, configure, fn))
        return fn

    return wrap


def _err(text: str) -> None:
    print(text, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# featuremodel / validate / import / generate  (core)
# ---------------------------------------------------------------------------------------------


def _args_featuremodel(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["tree", "uvl", "json"], default="tree",
                   help="tree: readable outline; uvl: Universal Variability Language; json: for tools")


@command("featuremodel", "print the feature model of LLM combinations", _args_featuremodel)
def cmd_featuremodel(args: argparse.Namespace) -> int:
    import json

    from llmcombo.featuremodel import export
    from llmcombo.productline import feature_model

    fm = feature_model()
    if args.format == "uvl":
        print(export.to_uvl(fm))
    elif args.format == "json":
        print(json.dumps(export.to_json(fm), indent=2))
    else:
        print(export.to_tree(fm))
    return 0


def _args_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="an llmcombo configuration or a mergekit YAML (detected)")
    p.add_argument("--no-preflight", action="store_true",
                   help="skip the model-aware checks that read each model's config.json")


@command("validate", "check a configuration and print its issues", _args_validate)
def cmd_validate(args: argparse.Namespace) -> int:
    from llmcombo.importer import load_any
    from llmcombo.validation import validate_full

    config = load_any(args.path)
    issues = validate_full(config, preflight=not args.no_preflight)
    errors = [i for i in issues if i.severity == "error"]
    for issue in issues:
        print(issue.format())
    if errors:
        print(f"{len(errors)} error(s), {len(issues) - len(errors)} warning(s): not valid.")
        return 1
    print(f"valid ({len(issues)} warning(s)).")
    return 0


def _args_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a mergekit YAML (merge or MoE)")
    p.add_argument("-o", "--output", help="write the llmcombo configuration here (default: stdout)")


@command("import", "turn a mergekit YAML into an llmcombo configuration", _args_import)
def cmd_import(args: argparse.Namespace) -> int:
    from llmcombo.configuration import dump_yaml, read_yaml_file
    from llmcombo.importer import import_mergekit

    data = read_yaml_file(args.path)
    config = import_mergekit(data)
    _write_text(dump_yaml(config), args.output)
    return 0


def _args_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="an llmcombo configuration")
    p.add_argument("-o", "--output", help="write the mergekit YAML / ensemble spec here (default: stdout)")


@command("generate", "turn an llmcombo configuration into a mergekit YAML or ensemble spec",
         _args_generate)
def cmd_generate(args: argparse.Namespace) -> int:
    from llmcombo.configuration import dump_yaml
    from llmcombo.importer import load_any
    from llmcombo.plan import make_plan

    plan = make_plan(load_any(args.path))
    doc = plan.resolved_document()
    if plan.runner == "mergekit":  # what we hand to mergekit is what mergekit accepts
        from llmcombo.engine.schema import check

        check(plan.kind, doc, "the generated configuration")
    _write_text(dump_yaml(doc), args.output)
    return 0


def _args_presets(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="print this preset (default: list them)")
    p.add_argument("-o", "--output", help="write the preset here instead of printing it")


@command("presets", "list the shipped configurations, or print one to start from", _args_presets)
def cmd_presets(args: argparse.Namespace) -> int:
    from llmcombo.configuration import list_presets, load_preset

    if not args.name:
        for name in list_presets():
            cfg = load_preset(name)
            print(f"{name:14s} {cfg.get('description', '')}")
        return 0
    _write_text(load_preset(args.name).to_yaml(), args.output)
    return 0


def _write_text(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from llmcombo.fsutil import atomic_write

    atomic_write(output, text if text.endswith("\n") else text + "\n")
    _err(f"wrote {output}")


# ---------------------------------------------------------------------------------------------
# merge / publish  (run.py, hub.py)
# ---------------------------------------------------------------------------------------------


def _args_merge(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="an llmcombo configuration (merge: or moe:) or a mergekit YAML")
    p.add_argument("out", help="folder for the new model (must not exist unless --overwrite)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to compute (auto: CUDA when available)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT, only once the new model is complete and checked")
    p.add_argument("--allow-remote-code", action="store_true",
                   help="let transformers run Python code from the model repositories "
                        "(trust_remote_code); off by default")


@command("merge", "run a merge or mixture of experts and write the model to OUT", _args_merge)
def cmd_merge(args: argparse.Namespace) -> int:
    from llmcombo.importer import load_any
    from llmcombo.run import RunOptions, TqdmProgress, run

    config = load_any(args.config)
    options = RunOptions(device=args.device, trust_remote_code=args.allow_remote_code)
    result = run(config, args.out, options=options, progress=TqdmProgress(),
                 overwrite=args.overwrite)
    _err(str(result))
    return 0


def _args_publish(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a model folder written by `llmcombo merge`")
    p.add_argument("--repo", required=True, help="the Hub repository, user/name")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--license", help="licence identifier for the model card, e.g. apache-2.0")
    p.add_argument("--dry-run", action="store_true",
                   help="write the model card and list what would be uploaded; no network")


@command("publish", "write a model card and upload a model folder to the Hugging Face Hub",
         _args_publish)
def cmd_publish(args: argparse.Namespace) -> int:
    from llmcombo.hub import publish

    result = publish(args.folder, args.repo, private=args.private, license=args.license,
                     dry_run=args.dry_run)
    print(result.summary())
    return 0


# ---------------------------------------------------------------------------------------------
# ask  (runtime ensembles: llmcombo.ensemble)
# ---------------------------------------------------------------------------------------------


def _args_ask(p: argparse.ArgumentParser) -> None:
    p.add_argument("product", help="an ensemble configuration (YAML), a generated ensemble spec, "
                                    "a model folder, a hub id or zoo:NAME")
    p.add_argument("prompt", nargs="+", help="the prompt (several words are joined)")
    p.add_argument("--trace", action="store_true",
                   help="also print how the answer was reached (route, votes, timings) as JSON")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help="override the configuration's device")


@command("ask", "answer a prompt with a model or an ensemble", _args_ask)
def cmd_ask(args: argparse.Namespace) -> int:
    import json
    import time

    from llmcombo.ensemble import load_product

    product = load_product(args.product, device=args.device)
    started = time.perf_counter()
    product.load()  # so the trace's timings are the answer's, not the models' loading
    load_s = time.perf_counter() - started
    answer = product.answer(" ".join(args.prompt))
    print(answer.text)
    if args.trace:
        answer.trace.setdefault("timings", {})["load_s"] = round(load_s, 6)
        print(json.dumps(answer.trace, indent=2, ensure_ascii=False, default=str))
    return 0


# ---------------------------------------------------------------------------------------------
# dashboard  (the Voila app: notebooks/dashboard.ipynb, widgets in llmcombo_widgets)
# ---------------------------------------------------------------------------------------------


def _args_dashboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("--notebook", help="serve this notebook instead of notebooks/dashboard.ipynb")


def dashboard_notebook() -> Path:
    """The dashboard notebook shipped inside the llmcombo_widgets package."""
    try:
        import llmcombo_widgets
    except ImportError:
        raise UserError("the dashboard needs llmcombo's widgets.",
                        hint="pip install 'llmcombo[widgets]'") from None
    nb = Path(llmcombo_widgets.__file__).resolve().parent / "dashboard.ipynb"
    if not nb.is_file():
        raise UserError(f"the dashboard notebook was not found (looked for {nb}).",
                        hint="Reinstall llmcombo, or pass --notebook PATH/dashboard.ipynb.")
    return nb


def _warm_mergekit_snapshot() -> None:
    """The dashboard's kernels build the feature model from a snapshot of mergekit's registry
    (reading mergekit itself imports torch and transformers: 10 s or more). When there is none
    yet (first use, or mergekit changed), a child process writes it while the server starts, so
    the first page does not pay for it; the server itself never imports torch."""
    import subprocess
    import sys

    from llmcombo.productline.registry import is_current

    if not is_current():
        subprocess.Popen([sys.executable, "-c", "from llmcombo.engine.registry import refresh;"
                          " refresh(force=True)"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


@command("dashboard", "serve the no-code dashboard (Voila) on 127.0.0.1", _args_dashboard)
def cmd_dashboard(args: argparse.Namespace) -> int:
    import os

    nb = Path(args.notebook).resolve() if args.notebook else dashboard_notebook()
    if not nb.is_file():
        raise UserError(f"notebook not found: {nb}")
    try:
        from voila.app import Voila
    except ImportError:
        raise UserError("the dashboard needs Voila and ipywidgets.",
                        hint="pip install 'llmcombo[widgets]'") from None
    # results land where the command was started, not next to the notebook
    os.environ.setdefault("LLMCOMBO_OUTPUTS", str(Path.cwd() / "outputs"))
    _warm_mergekit_snapshot()
    url = f"http://127.0.0.1:{args.port}/"
    print(f"llmcombo dashboard: {url}  (Ctrl+C to stop)", flush=True)
    argv = [str(nb), f"--port={args.port}", "--Voila.ip=127.0.0.1", "--strip_sources=True",
            "--Voila.open_browser=False"
            if args.no_browser else "--Voila.open_browser=True"]
    Voila.launch_instance(argv=argv)
    return 0


# ---------------------------------------------------------------------------------------------
# zoo  (llmcombo.zoo: tiny models shipped with llmcombo, retrainable offline)
# ---------------------------------------------------------------------------------------------


def _args_zoo(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["build", "list"],
                   help="build: train a zoo from scratch into DIR (reused when complete); list: "
                        "show where the zoo in use is, its models and their accuracies")
    p.add_argument("dir", nargs="?", default=None,
                   help="zoo folder (build: default $LLMCOMBO_ZOO_DIR or ~/.cache/llmcombo/zoo/vN; "
                        "list: default the zoo in use, the one shipped with llmcombo unless "
                        "$LLMCOMBO_ZOO_DIR says otherwise)")
    p.add_argument("--force", action="store_true", help="retrain even when a complete zoo is there")


@command("zoo", "build or list the offline model zoo (base, two specialists, a selector)",
         _args_zoo)
def cmd_zoo(args: argparse.Namespace) -> int:
    from llmcombo import zoo

    import os

    if args.action == "list":
        folder = args.dir if args.dir is not None else zoo.default_dir()
        if not zoo.is_complete(folder):
            raise UserError(f"there is no built zoo in {folder}",
                            hint="run `llmcombo zoo build DIR`; it takes a few minutes on a laptop CPU")
        z = zoo.Zoo(folder)
    else:
        folder = args.dir or os.environ.get(zoo.ENV_DIR, "").strip() or zoo.cache_dir()
        reused = zoo.is_complete(folder) and not args.force
        z = zoo.build(folder, force=args.force)
        _err(f"{'reused the zoo in' if reused else 'built the zoo in'} {z.dir} "
             f"({z.manifest.get('build_seconds', 0):.0f} s to train)")
        if Path(z.dir).resolve() != zoo.default_dir().resolve():
            _err(f"to use it instead of the zoo in use, set {zoo.ENV_DIR}={z.dir}")
    print(f"zoo v{z.manifest['zoo_version']} in {z.dir}")
    print("refer to a model as zoo:NAME, e.g. zoo:domotica; accuracies on the held-out test splits")
    print(z.table())
    return 0


# ---------------------------------------------------------------------------------------------
# demo  (llmcombo.demo: the whole flow on the zoo, offline)
# ---------------------------------------------------------------------------------------------


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="llmcombo-demo",
                   help="folder for results.csv, the figures and report.md (default ./llmcombo-demo;"
                        " merged models are cached in OUT/models)")
    p.add_argument("--quick", action="store_true",
                   help="CI sizes: 40 held-out prompts per task, fewer sweep and vote points")


@command("demo", "merge, mix and ensemble the zoo specialists, evaluate everything, plot, report",
         _args_demo)
def cmd_demo(args: argparse.Namespace) -> int:
    from llmcombo.zoo.demo import run_demo

    result = run_demo(args.out, quick=args.quick)
    print(result.table())
    _err(f"wrote {len(result.files)} files to {result.out} (report.md, results.csv, figures) "
         f"in {result.timings.get('total', 0):.0f} s")
    return 0


# ---------------------------------------------------------------------------------------------
# search  (llmcombo.search: product-line search with Optuna, locally or on Ray)
# ---------------------------------------------------------------------------------------------


def _args_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a search specification (YAML with a search: key)")
    p.add_argument("--out", help="folder for the study, study.csv, best.yaml, plots and report.md "
                                 "(default ./llmcombo-search/NAME)")
    p.add_argument("--trials", type=int, help="how many products to try (overrides the spec)")
    p.add_argument("--minutes", type=float, help="stop starting trials after this many minutes")
    p.add_argument("--workers", type=int, help="trials at once (processes, or Ray workers)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="auto|ADDRESS",
                   help="run the trials on a Ray cluster: auto (the one on this machine), an "
                        "address (ray://host:10001), or local (start one here); needs "
                        "pip install 'llmcombo[search]'")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --out (a killed search loses at most the trial "
                        "that was running)")


@command("search", "find the best combination: merges (and ensembles) searched with Optuna, "
                   "chosen on validation, reported on test", _args_search)
def cmd_search(args: argparse.Namespace) -> int:
    from llmcombo.progress import default_progress
    from llmcombo.search import search

    progress = default_progress()
    result = search(args.spec, args.out, trials=args.trials, minutes=args.minutes,
                    workers=args.workers, ray=args.ray, resume=args.resume, progress=progress,
                    log=progress.log)
    print(result.table())
    _err(f"wrote {len(result.files)} files to {result.out} (report.md, best.yaml, study.csv, "
         f"plots) in {result.timings.get('total_s', 0):.0f} s")
    return 0


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmcombo",
        description="Combine language models: merges, mixtures of experts and ensembles.",
    )
    parser.add_argument("--version", action="version", version=f"llmcombo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text, configure, fn in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure(p)
        p.set_defaults(_handler=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "_handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        _err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted; nothing was left half-written.")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
