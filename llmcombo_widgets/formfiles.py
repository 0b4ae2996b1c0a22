"""The form's file actions: load (an llmcombo configuration or a mergekit YAML), save, import,
presets, generate; and the model references' check. Each says its outcome in ``message``."""

from __future__ import annotations

import copy
import os
from typing import Any

from llmcombo_widgets.formview import FormViewing
from llmcombo_widgets.modelcheck import ModelSummary, check_model_ref
from llmcombo_widgets.viewtree import FieldView


class FormFiles(FormViewing):
    """Load / save / import / presets / generate."""

    # load / save / import / presets ---------------------------------------------------------
    def load_data(self, data: Any, source: str = "") -> bool:
        """Replace the form with a configuration (a mergekit document is imported)."""
        from llmcombo.errors import UserError
        from llmcombo.importer import as_configuration

        try:
            cfg = as_configuration(copy.deepcopy(data))
        except UserError as exc:
            self._report(f"Could not load {source or 'the configuration'}: {exc.message}", True)
            return False
        if cfg.base_dir is not None:
            self.base_dir = cfg.base_dir
        imported = " (imported from a mergekit YAML)" if cfg.imported_from == "mergekit" else ""
        self.reveal_all = True  # a loaded configuration shows all its problems at once
        self._set(dict(cfg))
        self._say(f"Loaded {source or 'the configuration'}{imported}.")
        self._changed()
        return True

    def load_yaml(self, text: str, source: str = "") -> bool:
        """Load YAML text: an llmcombo configuration or a mergekit YAML (detected)."""
        from llmcombo.configuration import parse_yaml_text
        from llmcombo.errors import UserError

        try:
            data = parse_yaml_text(text, source or "the YAML")
        except UserError as exc:
            self._report(exc.message + (f" {exc.hint}" if exc.hint else ""), True)
            return False
        return self.load_data(data, source)

    def load_file(self, path: str | os.PathLike) -> bool:
        from llmcombo.configuration import read_yaml_file
        from llmcombo.errors import UserError

        try:
            data = read_yaml_file(path)
        except UserError as exc:
            self._report(exc.message, True)
            return False
        ok = self.load_data(data, str(path))
        if ok:
            self.base_dir = os.path.dirname(os.path.abspath(path))
        return ok

    def import_mergekit(self, text: str, source: str = "the mergekit YAML") -> bool:
        """Import a mergekit YAML (merge or MoE) into the form."""
        from llmcombo.configuration import is_mergekit_document, parse_yaml_text
        from llmcombo.errors import UserError

        try:
            data = parse_yaml_text(text, source)
        except UserError as exc:
            self._report(exc.message, True)
            return False
        if not is_mergekit_document(data):
            self._report(f"{source} is not a mergekit YAML: it has no merge_method (merge) and no "
                         "base_model + experts (MoE).", True)
            return False
        return self.load_data(data, source)

    def save(self, path: str | os.PathLike) -> str:
        """Write the configuration as YAML (atomically); returns the path."""
        from llmcombo.fsutil import atomic_write

        atomic_write(path, self.yaml_preview)
        self._report(f"Saved to {path}.")
        return str(path)

    @staticmethod
    def presets() -> list[str]:
        from llmcombo.configuration import list_presets

        return list_presets()

    def apply_preset(self, name: str) -> bool:
        from llmcombo.configuration import load_preset
        from llmcombo.errors import UserError

        try:
            data = load_preset(name)
        except UserError as exc:
            self._say(exc.message, True)
            return False
        return self.load_data(dict(data), f"preset {name}")

    # generate ---------------------------------------------------------------------------------
    def generate_yaml(self, resolve: bool = False) -> str:
        """The generated mergekit YAML / ensemble spec (the core's ``generate_yaml``).

        Raises :class:`llmcombo.errors.UserError` while the configuration has errors."""
        from llmcombo.generate import generate_yaml

        return generate_yaml(self.configuration(), self.base_dir, resolve=resolve)

    def generate(self, path: str | os.PathLike | None = None, resolve: bool = False) -> str | None:
        """Generate (and write to ``path`` when given). Returns the text, or None when the
        configuration cannot be generated (the reason is in :attr:`message`)."""
        from llmcombo.errors import UserError

        if not self.can_generate:
            self.reveal_all = True
            self._report(f"Fix the {len(self.errors)} error(s) first.", True)
            return None
        try:
            text = self.generate_yaml(resolve=resolve)
        except UserError as exc:
            self._report(exc.message, True)
            return None
        if path is not None:
            from llmcombo.fsutil import atomic_write

            atomic_write(path, text if text.endswith("\n") else text + "\n")
        self.generated = text
        self._report(f"Generated {path}." if path is not None else "Generated.")
        return text

    # model references ---------------------------------------------------------------------------
    def check_model(self, key: str) -> ModelSummary:
        """Read config.json of the model named at field ``key`` (never weights)."""
        return check_model_ref(self.get(key), self.base_dir)

    def model_fields(self) -> list[FieldView]:
        return [f for f in self.visible_fields() if f.kind == "model"]
