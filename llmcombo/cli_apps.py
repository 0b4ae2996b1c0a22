"""The commands of the apps built on the core: ``llmcombo dashboard`` (the Voila app),
``llmcombo zoo`` (the offline model zoo), ``llmcombo demo`` (the whole flow on the zoo) and
``llmcombo search`` (product-line search). :mod:`llmcombo.cli` lists them after the core's commands;
like those, they import what they run only when they run, so ``llmcombo --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmcombo.cli_base import Commands, err
from llmcombo.errors import UserError

COMMANDS = Commands()
command = COMMANDS.command


# ---------------------------------------------------------------------------------------------
# dashboard  (the Voila app: notebooks/dashboard.ipynb, widgets in llmcombo_widgets)
# ---------------------------------------------------------------------------------------------


def _args_dashboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("--notebook", help="serve this notebook instead of notebooks/dashboard.ipynb")


def dashboard_notebook() -> Path:
    """The dashboard notebook shipped inside the llmcombo_widgets package (found without importing
    the UI: the CLI is core)."""
    import importlib.util

    spec = importlib.util.find_spec("llmcombo_widgets")
    if spec is None or not spec.origin:
        raise UserError("the dashboard needs llmcombo's widgets.",
                        hint="pip install 'llmcombo[widgets]'")
    nb = Path(spec.origin).resolve().parent / "dashboard.ipynb"
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

    import importlib.util

    nb = Path(args.notebook).resolve() if args.notebook else dashboard_notebook()
    if not nb.is_file():
        raise UserError(f"notebook not found: {nb}")
    if importlib.util.find_spec("voila") is None or importlib.util.find_spec("ipywidgets") is None:
        raise UserError("the dashboard needs Voila and ipywidgets.",
                        hint="pip install 'llmcombo[widgets]'")
    # results land where the command was started, not next to the notebook
    os.environ.setdefault("LLMCOMBO_OUTPUTS", str(Path.cwd() / "outputs"))
    _warm_mergekit_snapshot()
    url = f"http://127.0.0.1:{args.port}/"
    print(f"llmcombo dashboard: {url}  (Ctrl+C to stop)", flush=True)
    # the dashboard's own page template (no CDN stylesheets), found beside the notebook
    share = Path(dashboard_notebook()).parent / "share"
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if share.is_dir() and str(share) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(share)] + paths)
    argv = [sys.executable, "-m", "voila", str(nb), f"--port={args.port}", "--Voila.ip=127.0.0.1",
            "--strip_sources=True", "--template=llmcombo",
            "--Voila.open_browser=False" if args.no_browser else "--Voila.open_browser=True"]
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # Voila takes over this process (Ctrl+C stops it)
    return 0  # pragma: no cover - execv does not return


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
        err(f"{'reused the zoo in' if reused else 'built the zoo in'} {z.dir} "
            f"({z.manifest.get('build_seconds', 0):.0f} s to train)")
        if Path(z.dir).resolve() != zoo.default_dir().resolve():
            err(f"to use it instead of the zoo in use, set {zoo.ENV_DIR}={z.dir}")
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
    err(f"wrote {len(result.files)} files to {result.out} (report.md, results.csv, figures) "
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
    err(f"wrote {len(result.files)} files to {result.out} (report.md, best.yaml, study.csv, "
        f"plots) in {result.timings.get('total_s', 0):.0f} s")
    return 0


__all__ = ["COMMANDS", "dashboard_notebook"]
