"""View-model of the Publish panel (plain Python, no ipywidgets): the model card and the upload to
the Hugging Face Hub; the token is an argument, never kept."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmcombo_widgets.jobs import Job
from llmcombo_widgets.run_model import RunModel


class PublishModel:
    """Repo id, license, private, dry run; :meth:`publish` takes the token as an argument and
    never keeps it."""

    LICENSES = ("apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "llama3", "other")

    def __init__(self, run: RunModel | None = None):
        self.run_model = run
        self.folder: str = ""
        self.repo_id: str = ""
        self.license: str = "apache-2.0"
        self.private: bool = True
        self.dry_run: bool = True
        self.result: Any = None
        self.error: str | None = None
        self.job = Job("publish")

    def folders(self) -> list[str]:
        """Every run's folder, newest first (earlier sessions' too)."""
        if self.run_model is None:
            return []
        return [str(r.path) for r in self.run_model.history()]

    def labels(self) -> list[tuple[str, str]]:
        if self.run_model is None:
            return []
        return [(r.label(), str(r.path)) for r in self.run_model.history()]

    @staticmethod
    def card(folder: str | os.PathLike, repo_id: str | None = None,
             license: str | None = None) -> str:
        """The model card that Publish would write (no local paths in it)."""
        from llmcombo.hub import build_card

        return str(build_card(Path(folder), repo_id=repo_id or None, license=license))

    def publish(self, token: str | None = None) -> Any:
        """Publish :attr:`folder` (a dry run unless :attr:`dry_run` is False)."""
        from llmcombo.errors import UserError
        from llmcombo.hub import publish

        self.error = None
        try:
            self.result = publish(self.folder, self.repo_id, private=self.private,
                                  license=self.license, dry_run=self.dry_run,
                                  token=token or None)
        except UserError as exc:
            self.result, self.error = None, exc.message + (f" {exc.hint}" if exc.hint else "")
        finally:
            token = None  # noqa: F841 - drop our reference at once
        return self.result

    def start(self, token: str | None = None, background: bool = True) -> Job:
        def work(job: Job, _token=token):
            result = self.publish(_token)
            if self.error:
                from llmcombo.errors import UserError

                raise UserError(self.error)
            return result

        token = None  # noqa: F841
        return self.job.run(work, background=background)
