"""The configurator: ipywidgets rendered from the view-model's tree.

The form is rendered by keyed reconciliation (:mod:`.formwidgets`: a widget per data path,
updated in place, hidden when its node leaves the view); around it, the Configurator has its
chrome: presets, the load / save / import / Hub section, the live YAML previews, Generate, the
status line and the downloads.

Widgets only render and forward events to :class:`~llmcombo_widgets.viewmodel.FormModel`; the
logic lives there. Every widget carries stable CSS classes (``llmcombo-...``) for tests and themes:
``llmcombo-field``, ``llmcombo-key-<path>`` (``merge.models[0].model`` ->
``llmcombo-key-merge-models-0-model``), ``llmcombo-input``, ``llmcombo-issues``,
``llmcombo-choice-<path>``, ``llmcombo-toggle-<path>``, ``llmcombo-list-<path>``,
``llmcombo-add``, ``llmcombo-remove``, ``llmcombo-generate``, ``llmcombo-yaml-preview``.
"""

from __future__ import annotations

import html
import os
import threading
from typing import Any, Callable

import ipywidgets as W

from llmcombo_widgets.formwidgets import FieldWidget, FormRendering
from llmcombo_widgets.render import issues_html, set_children, slug
from llmcombo_widgets.theme import CSS, columns, grow
from llmcombo_widgets.theme import set_traits as _set
from llmcombo_widgets.viewmodel import FormModel

ZOO_REFS = ("zoo:base", "zoo:domotica", "zoo:tiempo", "zoo:selector")


class Configurator(FormRendering):
    """The form for a :class:`FormModel`; ``.widget`` is the whole configurator."""

    def __init__(self, vm: FormModel | None = None, *, on_error: Callable[[str], None] | None = None,
                 save_folder: str | None = None, recent_models: Callable[[], list[str]] | None = None):
        self.vm = vm or FormModel()
        self.syncing = False
        self.on_error = on_error
        self.save_folder = save_folder or os.getcwd()
        self.recent_models = recent_models  # e.g. the folders of earlier runs
        self.hub_results: list[str] = []  # Hub ids found with the search box
        self.options_now: tuple[str, ...] = tuple(ZOO_REFS)  # model options of this render
        self._fields: dict[str, FieldWidget] = {}
        self._boxes: dict[str, dict] = {}
        self._dead: set = set()  # replaced widgets, dropped from their boxes
        self._shown: set[str] = set()  # field keys in the last render
        self.renders = 0
        self.last_render_ms = 0.0
        self._build_chrome()
        self.vm.subscribe(lambda _vm: self.refresh())
        self.refresh()

    def model_options(self) -> list[str]:
        """What a model field offers: the zoo's models, recent outputs, Hub search results."""
        from llmcombo import modelref

        try:
            known = modelref.known_refs()
        except Exception:  # a broken plugin must not take the form down
            known = list(ZOO_REFS)
        recent = list(self.recent_models() if self.recent_models else [])
        return list(dict.fromkeys(known + recent + self.hub_results))

    # -- events ---------------------------------------------------------------------------
    def act(self, fn: Callable[[], Any]) -> None:
        """Run an action of the view-model; an unexpected error is shown, never raised into the
        widget machinery (where it would vanish into the kernel log)."""
        try:
            fn()
        except Exception as exc:  # pragma: no cover - shown to the user
            self.status.value = (f"<span class='llmcombo-status-error'>{html.escape(type(exc).__name__)}: "
                                 f"{html.escape(str(exc))}</span>")

    # -- chrome: toolbar, status, preview -------------------------------------------------
    def _build_chrome(self) -> None:
        vm = self.vm
        self.preset = W.Dropdown(options=["(choose a preset)"] + vm.presets(), description="Preset",
                                 layout=W.Layout(width="280px"))
        self.preset.add_class("llmcombo-preset")
        self.preset.observe(self._on_preset, "value")
        self.preset_help = W.HTML()
        self.preset_help.add_class("llmcombo-field-help")
        self.advanced = W.Checkbox(value=vm.show_advanced, description="show advanced settings",
                                   indent=False, layout=W.Layout(width="auto"))
        self.advanced.add_class("llmcombo-advanced")
        self.advanced.observe(lambda ch: self.act(lambda: vm.set_show_advanced(ch["new"])), "value")
        # load, save, import, the Hub: built when the section is first opened (or used), so the
        # page has fewer widgets to create when it opens
        self.io = W.Accordion(children=[W.VBox()], selected_index=None)
        self.io.set_title(0, "Load, save, import a mergekit YAML, find a Hub model")
        self.io.observe(lambda ch: self._build_io() if ch["new"] == 0 else None, "selected_index")
        self.status = W.HTML()
        self.status.add_class("llmcombo-status")
        self.generate_btn = W.Button(description="Generate", button_style="primary", icon="cogs")
        self.generate_btn.add_class("llmcombo-generate")
        self.generate_btn.on_click(lambda _b: self.act(self._generate))
        self.form_box = W.VBox()
        self.form_box.add_class("llmcombo-form")
        self.config_preview = W.HTML()
        self.config_preview.add_class("llmcombo-yaml-preview")
        self.config_preview.add_class("llmcombo-config-preview")
        self.generated_preview = W.HTML()
        self.generated_preview.add_class("llmcombo-yaml-preview")
        self.generated_preview.add_class("llmcombo-generated-preview")
        preview = W.Tab(children=[self.config_preview, self.generated_preview],
                        layout=W.Layout(width="100%"))
        preview.set_title(0, "configuration")
        preview.set_title(1, "mergekit YAML")
        preview.add_class("llmcombo-preview-tabs")
        self.preview = preview
        self.downloads = W.HTML()
        self.downloads.add_class("llmcombo-config-downloads")
        top = W.HBox([self.preset, self.advanced], layout=W.Layout(flex_flow="row wrap",
                                                                   align_items="center"))
        left = [top, self.preset_help, self.io, self.form_box]
        right = [W.HTML("<b>Live YAML</b> <span class='llmcombo-help'>(what Save writes, and "
                        "what the engine will run)</span>"), preview,
                 W.HBox([self.generate_btn]), self.status, self.downloads]
        self.widget = W.VBox([W.HTML(CSS), columns(left, right, left_basis="560px",
                                                   right_basis="380px")])
        self.widget.add_class("llmcombo-configurator")

    IO_WIDGETS = ("folder", "path", "load_btn", "save_btn", "upload", "paste", "import_btn",
                  "hub_query", "hub_btn", "hub_out")

    def __getattr__(self, name: str):
        # the load / save / import / Hub widgets exist once their section was opened or used
        if name in Configurator.IO_WIDGETS and "vm" in self.__dict__ and \
                not self.__dict__.get("_io_built"):
            self._build_io()
            return getattr(self, name)
        raise AttributeError(name)

    def _build_io(self) -> None:
        if self.__dict__.get("_io_built"):
            return
        self._io_built = True
        vm = self.vm
        # a folder the user chooses, shown in full
        self.folder = W.Text(value=self.save_folder, description="Folder", layout=grow("200px"),
                             style={"description_width": "60px"})
        self.folder.add_class("llmcombo-folder")
        self.path = W.Text(value="configuration.yaml", description="File",
                           layout=W.Layout(width="260px"), style={"description_width": "40px"})
        self.path.add_class("llmcombo-path")
        self.load_btn = W.Button(description="Load", icon="folder-open",
                                 tooltip="load an llmcombo or mergekit YAML file from the folder",
                                 layout=W.Layout(width="90px"))
        self.save_btn = W.Button(description="Save", icon="save",
                                 tooltip="save the configuration as YAML into the folder",
                                 layout=W.Layout(width="90px"))
        self.load_btn.add_class("llmcombo-load")
        self.save_btn.add_class("llmcombo-save")
        self.load_btn.on_click(lambda _b: self.act(lambda: vm.load_file(self.file_path())))
        self.save_btn.on_click(lambda _b: self.act(self._save))
        self.upload = W.FileUpload(accept=".yaml,.yml", multiple=False, description="Upload YAML",
                                   layout=W.Layout(width="150px"))
        self.upload.add_class("llmcombo-upload")
        self.upload.observe(self._on_upload, "value")
        self.paste = W.Textarea(placeholder="paste a mergekit YAML (merge_method: ... or MoE) here",
                                layout=W.Layout(width="auto", flex="1 1 auto", height="90px"))
        self.paste.add_class("llmcombo-paste")
        self.import_btn = W.Button(description="Import mergekit YAML", layout=W.Layout(width="190px"))
        self.import_btn.add_class("llmcombo-import")
        self.import_btn.on_click(lambda _b: self.act(lambda: vm.import_mergekit(self.paste.value)))
        # the Hub: a search box (only useful online; it says so when offline)
        self.hub_query = W.Text(placeholder="search the Hugging Face Hub, e.g. qwen2.5 0.5b",
                                layout=grow("160px"))
        self.hub_query.add_class("llmcombo-hub-query")
        self.hub_btn = W.Button(description="Search", icon="search", layout=W.Layout(width="100px"))
        self.hub_btn.add_class("llmcombo-hub-search")
        self.hub_btn.on_click(lambda _b: self._hub_search())
        self.hub_out = W.HTML()
        self.hub_out.add_class("llmcombo-hub-results")
        io = W.VBox([
            W.HBox([self.folder], layout=W.Layout(width="100%")),
            W.HBox([self.path, self.load_btn, self.save_btn, self.upload],
                   layout=W.Layout(flex_flow="row wrap", width="100%")),
            W.HBox([self.paste, self.import_btn], layout=W.Layout(width="100%")),
            W.HTML("<b>Find a model on the Hub</b> <span class='llmcombo-help'>(results are "
                   "offered in every model field)</span>"),
            W.HBox([self.hub_query, self.hub_btn], layout=W.Layout(width="100%")),
            self.hub_out])
        self.io.children = (io,)

    def file_path(self) -> str:
        """The full path of the file to load or save (folder + file name)."""
        from llmcombo_widgets.downloads import resolve_folder

        name = os.path.expanduser(self.path.value.strip() or "configuration.yaml")
        if os.path.isabs(name):
            return name
        return str(resolve_folder(self.folder.value, self.save_folder) / name)

    def _hub_search(self, background: bool = True) -> None:
        query = self.hub_query.value.strip()
        if not query:
            self.hub_out.value = "<span class='llmcombo-help'>Type a few words to search.</span>"
            return
        self.hub_out.value = "<span class='llmcombo-help'>searching the Hub …</span>"

        def work():
            try:
                found = hub_search(query)
            except Exception as exc:  # offline, or the Hub refused: information, not a crash
                self.hub_out.value = (f"<div class='llmcombo-info'>{html.escape(str(exc))}</div>")
                return
            self.hub_results = found
            if not found:
                self.hub_out.value = "<span class='llmcombo-help'>No model found.</span>"
                return
            self.hub_out.value = ("<span class='llmcombo-help'>Offered in the model fields: "
                                  + ", ".join(f"<code>{html.escape(f)}</code>" for f in found)
                                  + "</span>")
            self.refresh()

        if background:
            threading.Thread(target=work, daemon=True).start()
        else:
            work()

    def _on_preset(self, change) -> None:
        name = change["new"]
        if self.syncing or not name or name.startswith("("):
            return
        self.act(lambda: self.vm.apply_preset(name))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        f = files[0]
        text = bytes(f["content"]).decode("utf-8", errors="replace")
        self.act(lambda: self.vm.load_yaml(text, f.get("name", "the uploaded file")))

    def _save(self) -> None:
        from llmcombo.errors import UserError

        target = self.file_path()
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.vm.save(target)
        except (UserError, OSError) as exc:
            msg = getattr(exc, "message", None) or f"could not save to {target}: {exc}"
            self.vm._say(msg, True)  # noqa: SLF001
            self.refresh()

    def _generate(self) -> None:
        self.vm.generate()

    # -- rendering --------------------------------------------------------------------------
    def refresh(self) -> None:
        import time

        t0 = time.perf_counter()
        self.syncing = True
        try:
            self.options_now = tuple(self.model_options())
            view = self.vm.view()
            before, self._shown = self._shown, set()
            root = self._render(view)
            set_children(self.form_box, [root])
            for key in before - self._shown:
                fw = self._fields.get(key)
                if fw is not None:
                    fw.hide()
            self._dead.clear()
            self._render_chrome()
        finally:
            self.syncing = False
        self.renders += 1
        self.last_render_ms = (time.perf_counter() - t0) * 1000

    def _render_chrome(self) -> None:
        from llmcombo_widgets.downloads import file_stem, links, text_download

        vm = self.vm
        red, todo, n_warn = len(vm.shown_errors), len(vm.todo), len(vm.warnings)
        if vm.message:
            cls = "llmcombo-status-error" if vm.message_is_error else "llmcombo-status-ok"
            msg = f"<div class='{cls} llmcombo-message'>{html.escape(vm.message)}</div>"
        else:
            msg = ""
        warn = f", {n_warn} warning{'s' if n_warn != 1 else ''}" if n_warn else ""
        if red:
            more = f" and {todo} more to fill in" if todo else ""
            summary = (f"<div class='llmcombo-status-error llmcombo-summary'>{red} error"
                       f"{'s' if red != 1 else ''}{more}{warn}: fix the messages in red to "
                       "generate.</div>")
        elif todo:
            summary = (f"<div class='llmcombo-status-todo llmcombo-summary'>{todo} thing"
                       f"{'s' if todo != 1 else ''} still to fill in{warn} (marked →) before "
                       "you can generate.</div>")
        else:
            summary = (f"<div class='llmcombo-status-ok llmcombo-summary'>valid"
                       f"{f' ({n_warn} warning(s))' if n_warn else ''}: ready to generate.</div>")
        _set(self.status, value=summary + msg)
        _set(self.generate_btn, disabled=not vm.can_generate)
        _set(self.config_preview, value=f"<pre>{html.escape(vm.yaml_preview)}</pre>")
        _set(self.generated_preview, value=f"<pre>{html.escape(vm.mergekit_preview)}</pre>")
        family = vm.family
        title = {"merge": "mergekit YAML", "moe": "mergekit MoE YAML",
                 "ensemble": "ensemble spec"}.get(family or "", "generated")
        if self.preview.get_title(1) != title:
            self.preview.set_title(1, title)
        stem = file_stem(str(vm.data.get("name") or family or "configuration"), "configuration")
        files = [text_download(f"{stem}.yaml", vm.yaml_preview, "configuration YAML")]
        if vm.can_generate and not vm.mergekit_preview.startswith("#"):
            fname = {"merge": "mergekit_config.yml", "moe": "mergekit_moe_config.yml"}.get(
                family or "", f"{stem}-spec.yaml")
            files.append(text_download(fname, vm.mergekit_preview, title))
        _set(self.downloads, value=links(files))
        preset = vm.data.get("description") if isinstance(vm.data.get("description"), str) else ""
        _set(self.preset_help, value=html.escape(preset) if preset and vm.message.startswith(
            "Loaded preset") else "")


def hub_search(query: str, limit: int = 12) -> list[str]:
    """Hub ids of text-generation models matching ``query`` (most downloaded first); raises
    OfflineError when the Hub cannot be reached."""
    from llmcombo.errors import OfflineError
    from llmcombo.preflight import models as pm

    if not pm.hub_reachable():
        raise OfflineError("The Hugging Face Hub cannot be reached from here (offline?): type a "
                           "Hub id (owner/name) of a model in your cache, or use zoo: models.")
    from huggingface_hub import HfApi

    found = HfApi().list_models(search=query, pipeline_tag="text-generation", sort="downloads",
                                limit=limit)
    return [m.id for m in found]


def configurator(data: dict | None = None, **kw) -> Configurator:
    """A configurator for ``data`` (default: a new configuration)."""
    return Configurator(FormModel(data, **kw))


__all__ = ["CSS", "Configurator", "ZOO_REFS", "configurator", "hub_search", "issues_html", "slug"]
