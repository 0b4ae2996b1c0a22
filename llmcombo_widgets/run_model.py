"""View-model of the Run panel (plain Python, no ipywidgets): pre-flight, the run in a thread
(:class:`~llmcombo_widgets.jobs.Job`, with progress and cancel), GGUF export, the runs made
before and their files to take away."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcombo_widgets.downloads import Download, file_stem, text_download
from llmcombo_widgets.jobs import Job
from llmcombo_widgets.session import RunRecord, Session, find_runs
from llmcombo_widgets.viewmodel import FormModel


def _mtime(path: str) -> int | None:
    try:
        return Path(path).parent.stat().st_mtime_ns
    except OSError:
        return None


@dataclass
class PreflightSummary:
    """What the Run panel shows before running."""

    kind: str
    inputs: list[dict] = field(default_factory=list)  # ref, resolved, where, size, params
    device: str = ""
    output_bytes: int | None = None
    output_params: int | None = None
    ram_bytes: int | None = None
    ram_available: int | None = None
    disk_needed: int | None = None
    disk_free: int | None = None
    out_dir: str = ""
    issues: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list:
        return [i for i in self.issues if i.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def rows(self) -> list[tuple[str, str]]:
        from llmcombo.preflight import fmt_bytes

        rows = [("kind", self.kind), ("device", self.device)]
        for inp in self.inputs:
            params = f", {inp['params'] / 1e6:.2f}M parameters" if inp.get("params") else ""
            rows.append((f"input {inp['ref']}", f"{fmt_bytes(inp.get('size'))} ({inp['where']}{params})"))
        rows += [("estimated output size", fmt_bytes(self.output_bytes)),
                 ("estimated memory", fmt_bytes(self.ram_bytes)),
                 ("memory available", fmt_bytes(self.ram_available)),
                 ("output folder", self.out_dir),
                 ("disk needed / free", f"{fmt_bytes(self.disk_needed)} / {fmt_bytes(self.disk_free)}")]
        return rows


class RunModel:
    """Pre-flight, run (in a thread, with progress and cancel) and the result of a merge / MoE;
    the runs made before (found on disk, see :mod:`llmcombo_widgets.session`)."""

    def __init__(self, form: FormModel, out_root: str | os.PathLike = "outputs",
                 session: Session | None = None):
        self.form = form
        self.out_root = Path(out_root)
        self.session = session
        self.out_dir: str | None = None  # None: derived from the configuration
        self.overwrite = True
        self.job = Job("run")
        self.gguf_job = Job("gguf")
        self.results: list[Any] = []  # RunResult of every finished run (newest last)
        self.summary: PreflightSummary | None = None

    def history(self) -> list[RunRecord]:
        """Every run folder: under the outputs folder, those this session made elsewhere, and
        this page's runs; newest first. Read again only when the outputs folder changed (a run
        adds or replaces a folder there by renaming it into place) or a run finished."""
        extra = [str(r.path) for r in self.results]
        if self.session is not None:
            extra += list(self.session.get("runs", []))
        try:
            stamp = self.out_root.stat().st_mtime_ns
        except OSError:
            stamp = None
        key = (stamp, tuple(extra), tuple(_mtime(x) for x in extra))
        if getattr(self, "_history_key", None) != key:
            self._history = find_runs(self.out_root, extra)
            self._history_key = key
        return list(self._history)

    def record(self, folder: str | os.PathLike) -> RunRecord | None:
        return RunRecord.read(folder)

    @staticmethod
    def downloads(folder: str | os.PathLike) -> list[Download]:
        """The small files of a run: its configuration (as written in the form), the mergekit
        YAML it ran and the model card (no local paths). The model itself is
        :meth:`model_download` (it takes a moment)."""
        from llmcombo.configuration import dump_yaml

        folder = Path(folder)
        out: list[Download] = []
        rec = RunRecord.read(folder)
        if rec is not None and rec.configuration:
            out.append(text_download(f"{folder.name}.yaml", dump_yaml(rec.configuration),
                                     "configuration YAML"))
        for name in ("mergekit_config.yml", "mergekit_moe_config.yml"):
            if (folder / name).is_file():
                out.append(Download(name, (folder / name).read_bytes(), "mergekit YAML"))
        try:
            from llmcombo.hub import build_card

            out.append(text_download("README.md", str(build_card(folder)), "model card"))
        except Exception:  # a folder the card cannot be made for: no card link
            pass
        return out

    @staticmethod
    def model_download(folder: str | os.PathLike) -> Download:
        """The model folder as a zip (raises ValueError when too large for a browser)."""
        from llmcombo_widgets.downloads import zip_folder

        folder = Path(folder)
        return Download(f"{folder.name}.zip", zip_folder(folder), "model (zip)")

    def default_out(self) -> str:
        data = self.form.data
        name = data.get("name") if isinstance(data.get("name"), str) else None
        if not name:
            fam = self.form.family or "product"
            method = None
            if fam == "merge":
                m = (data.get("merge") or {}).get("method")
                method = m if isinstance(m, str) else (next(iter(m)) if isinstance(m, dict) and m else None)
            name = f"{fam}-{method}" if method else fam
        return str(self.out_root / file_stem(name, "product"))

    @property
    def out(self) -> str:
        return self.out_dir or self.default_out()

    @property
    def runnable(self) -> bool:
        return self.form.can_generate and self.form.family in ("merge", "moe")

    def why_not_runnable(self) -> str | None:
        if self.form.family not in ("merge", "moe"):
            return "Ensembles are not built: try them in the Ensembles tab."
        if not self.form.can_generate:
            red, todo = len(self.form.shown_errors), len(self.form.todo)
            if red:
                return f"The configuration has {red} error(s): fix them in Configure."
            return (f"The configuration is not complete yet ({todo} thing{'s' if todo != 1 else ''}"
                    " to fill in): finish it in Configure.")
        return None

    def preflight(self) -> PreflightSummary:
        """Inputs, sizes, device and the disk / memory estimate (config.json and headers only)."""
        from llmcombo import preflight
        from llmcombo.productline import family_of

        cfg = self.form.configuration()
        kind = family_of(cfg) or (self.form.family or "unknown")
        summary = PreflightSummary(kind=kind, out_dir=self.out)
        try:
            from llmcombo.run import RunOptions

            summary.device = RunOptions().resolved_device()
        except Exception:  # pragma: no cover - torch missing
            summary.device = "cpu"
        if kind not in ("merge", "moe"):
            summary.notes.append(self.why_not_runnable() or "")
            self.summary = summary
            return summary
        base_dir = self.form.base_dir
        summary.issues = list(preflight.check_models(dict(cfg), base_dir=base_dir))
        est = preflight.estimate(dict(cfg), base_dir, out_path=self.out)
        summary.inputs = [{"ref": i.ref, "resolved": i.resolved, "where": i.where,
                           "size": i.bytes_on_disk, "params": i.params} for i in est.inputs]
        summary.output_bytes, summary.output_params = est.output_bytes, est.output_params
        summary.ram_bytes, summary.ram_available = est.ram_bytes, est.ram_available
        summary.disk_needed, summary.disk_free = est.disk_needed, est.disk_free
        summary.notes = list(est.notes)
        summary.issues += preflight.check_resources(dict(cfg), self.out, base_dir, est=est)
        self.summary = summary
        return summary

    def start(self, extra_progress: Any = None, background: bool = True) -> Job:
        """Run the configuration into :attr:`out` in a thread; returns the job."""
        reason = self.why_not_runnable()
        if reason:
            from llmcombo.errors import UserError

            raise UserError(reason)
        from llmcombo.run import run

        cfg = self.form.configuration()
        out = self.out
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        self.job.extra = extra_progress

        def work(job: Job):
            result = run(cfg, out, progress=job, cancel=job.cancel_token, overwrite=self.overwrite,
                         base_dir=self.form.base_dir)
            self.results.append(result)
            if self.session is not None:
                self.session.remember_run(result.path)
            return result

        return self.job.run(work, background=background)

    def cancel(self) -> None:
        self.job.cancel()

    # -- export to GGUF (llama.cpp) after a merge ------------------------------------------
    gguf_quant = "q8_0"  # what "export to GGUF" writes (llmcombo.gguf.QUANT_TYPES)

    def can_export_gguf(self) -> bool:
        return bool(self.results) and not self.gguf_job.running

    def export_gguf(self, quant: str | None = None, background: bool = True) -> Job:
        """Write the last run's model as ``OUT/NAME-QUANT.gguf`` (beside its safetensors, so
        Publish uploads it too) with :func:`llmcombo.gguf.export_gguf`; returns the job (its
        result is the :class:`~llmcombo.gguf.ExportResult`)."""
        from llmcombo.errors import UserError

        if not self.results:
            raise UserError("Run a merge first: its output folder is what gets exported.")
        folder = Path(self.results[-1].path)
        q = quant or self.gguf_quant

        def work(job: Job):
            from llmcombo.gguf import export_gguf

            return export_gguf(folder, folder / f"{folder.name}-{q}.gguf", q, overwrite=True,
                               progress=job, cancel=job.cancel_token)

        return self.gguf_job.run(work, background=background)

    def result_rows(self) -> list[tuple[str, str]]:
        r = self.job.result
        if r is None:
            return []
        mem = f"{r.peak_rss_bytes / 2**20:.0f} MiB" if r.peak_rss_bytes else "unknown"
        rows = [("output", str(r.path)), ("kind", f"{r.kind} ({r.method})"),
                ("time", f"{r.seconds:.1f} s on {r.device}"), ("peak memory", mem),
                ("run id", str(r.run_id or ""))]
        rows += [("warning", w) for w in r.warnings]
        return rows
