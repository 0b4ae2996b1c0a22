"""The ``llmcombo`` command line.

Every sub-command is a small function that parses its arguments and calls the core. User mistakes
arrive as :class:`llmcombo.errors.UserError` and are printed as one clear message with exit code 1;
usage errors exit with 2 (argparse's convention). Heavy modules are imported inside the commands so
``llmcombo --help`` stays instant.

This module holds the core's commands (feature model, configurations, merge, publish, GGUF export,
ask), the parser and :func:`main`; the apps' commands (dashboard, zoo, demo, search) are in
:mod:`llmcombo.cli_apps`, listed after these; :mod:`llmcombo.cli_base` is what both share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from llmcombo import __version__, cli_apps
from llmcombo.cli_base import Commands, err
from llmcombo.errors import UserError

_COMMANDS = Commands()  # the core's commands; the apps' (cli_apps.COMMANDS) are listed after them
command = _COMMANDS.command


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
    p.add_argument("paths", nargs="+", metavar="path",
                   help="llmcombo configurations or mergekit YAMLs (detected; a mergekit-multimerge "
                        "file with several documents too)")
    p.add_argument("--no-preflight", action="store_true",
                   help="skip the model-aware checks that read each model's config.json")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: one line per issue and a summary; json: one object for tools")


def validate_file(path: str, preflight: bool) -> dict:
    """One file's verdict: ``{"path", "valid", "errors", "warnings", "issues": [...]}``; a file
    that cannot be read or is not a configuration is one error (never a traceback)."""
    from llmcombo.importer import load_any
    from llmcombo.validation import validate_full

    try:
        config = load_any(path)
        issues = [i.to_dict() for i in validate_full(config, preflight=preflight)]
    except UserError as exc:
        issues = [{"severity": "error", "path": "", "message": exc.message, "hint": exc.hint,
                   "code": "file"}]
    errors = sum(1 for i in issues if i["severity"] == "error")
    return {"path": path, "valid": errors == 0, "errors": errors,
            "warnings": len(issues) - errors, "issues": issues}


@command("validate", "check configurations and print their issues", _args_validate)
def cmd_validate(args: argparse.Namespace) -> int:
    import json

    results = [validate_file(p, not args.no_preflight) for p in args.paths]
    bad = [r for r in results if not r["valid"]]
    if args.format == "json":
        print(json.dumps({"files": results, "valid": len(results) - len(bad), "invalid": len(bad)},
                         indent=2, ensure_ascii=False))
        return 1 if bad else 0
    many = len(results) > 1
    for r in results:
        for i in r["issues"]:
            where = i["path"] or "(configuration)"
            line = f"{i['severity']}: {where}: {i['message']}" + (f" Hint: {i['hint']}" if i["hint"] else "")
            if i["code"] == "file" and not many:
                err(f"error: {i['message']}" + (f" ({i['hint']})" if i["hint"] else ""))
                continue
            print(f"{r['path']}: {line}" if many else line)
        if many:
            verdict = "valid" if r["valid"] else "not valid"
            print(f"{r['path']}: {verdict} ({r['errors']} error(s), {r['warnings']} warning(s))")
    if not many:
        r = results[0]
        if r["valid"]:
            print(f"valid ({r['warnings']} warning(s)).")
        elif not (len(r["issues"]) == 1 and r["issues"][0]["code"] == "file"):
            print(f"{r['errors']} error(s), {r['warnings']} warning(s): not valid.")
        return 0 if r["valid"] else 1
    warns = sum(r["warnings"] for r in results)
    print(f"{len(results)} files: {len(results) - len(bad)} valid, {len(bad)} not valid, "
          f"{sum(r['errors'] for r in results)} error(s), {warns} warning(s).")
    return 1 if bad else 0


def _args_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a mergekit YAML (merge, MoE, or a mergekit-multimerge file)")
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
    from llmcombo.errors import raise_for_errors
    from llmcombo.generate import document_text
    from llmcombo.importer import load_any
    from llmcombo.plan import make_plan
    from llmcombo.validation import schema_issues

    config = load_any(args.path)
    plan = make_plan(config)
    # what we hand to mergekit is what mergekit's schema accepts
    raise_for_errors(schema_issues(plan.config, plan.base_dir), "the generated configuration "
                                                                "is not accepted by mergekit")
    _write_text(document_text(plan.kind, plan.resolved_document()), args.output)
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
    err(f"wrote {output}")


# ---------------------------------------------------------------------------------------------
# merge / publish  (run.py, hub.py)
# ---------------------------------------------------------------------------------------------


def _args_merge(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="an llmcombo configuration (merge:, moe: or stages:) or a "
                                  "mergekit YAML (a mergekit-multimerge file too)")
    p.add_argument("out", help="folder for the new model (must not exist unless --overwrite)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to compute (auto: CUDA when available)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT, only once the new model is complete and checked")
    p.add_argument("--allow-remote-code", action="store_true",
                   help="let transformers run Python code from the model repositories "
                        "(trust_remote_code); off by default")
    p.add_argument("--allow-same-experts", action="store_true",
                   help="build a mixture of experts whose experts are all one model (sparse "
                        "upcycling, to be trained afterwards); mergekit refuses it otherwise")


@command("merge", "run a merge or mixture of experts and write the model to OUT", _args_merge)
def cmd_merge(args: argparse.Namespace) -> int:
    from llmcombo.importer import load_any
    from llmcombo.run import RunOptions, TqdmProgress, run

    config = load_any(args.config)
    options = RunOptions(device=args.device, trust_remote_code=args.allow_remote_code,
                         allow_same_experts=args.allow_same_experts)
    result = run(config, args.out, options=options, progress=TqdmProgress(),
                 overwrite=args.overwrite)
    err(str(result))
    return 0


def _args_publish(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a model folder written by `llmcombo merge`")
    p.add_argument("--repo", required=True, help="the Hub repository, user/name")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--license", help="licence identifier for the model card, e.g. apache-2.0")
    p.add_argument("--dry-run", action="store_true",
                   help="write the model card and list what would be uploaded; no network")
    p.add_argument("--gguf", metavar="TYPES", default="",
                   help="also export GGUF files of these types into the folder first and upload "
                        "them beside the safetensors, e.g. --gguf q8_0,q4_k_m (needs the [llama] "
                        "extra); GGUF files already in the folder are uploaded anyway")


@command("publish", "write a model card and upload a model folder to the Hugging Face Hub",
         _args_publish)
def cmd_publish(args: argparse.Namespace) -> int:
    from llmcombo.hub import publish

    gguf = [q.strip() for q in args.gguf.split(",") if q.strip()]
    result = publish(args.folder, args.repo, private=args.private, license=args.license,
                     dry_run=args.dry_run, gguf=gguf)
    print(result.summary())
    return 0


def _args_export_gguf(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a model folder (a merge's output), zoo:NAME, a hub id, or a "
                                  ".gguf file to re-encode")
    p.add_argument("out", help="the GGUF file to write, e.g. my-merge-q8_0.gguf")
    p.add_argument("--quant", default="f16",
                   help="GGUF type: f16 (default), f32, bf16, q8_0, q6_k, q5_k_m, q4_k_m, ...")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT, only once the new file is complete and checked")
    p.add_argument("--threads", type=int, default=None, help="threads for quantising")


@command("export-gguf", "convert a model to one GGUF file with llama.cpp's converter (and quantiser)",
         _args_export_gguf)
def cmd_export_gguf(args: argparse.Namespace) -> int:
    from llmcombo.gguf import export_gguf
    from llmcombo.progress import default_progress

    result = export_gguf(args.model, args.out, args.quant, overwrite=args.overwrite,
                         threads=args.threads, progress=default_progress())
    for w in result.warnings:
        err(f"warning: {w}")
    print(result)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmcombo",
        description="Combine language models: merges, mixtures of experts and ensembles.",
    )
    parser.add_argument("--version", action="version", version=f"llmcombo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text, configure, fn in [*_COMMANDS, *cli_apps.COMMANDS]:
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
        err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        err("interrupted; nothing was left half-written.")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
