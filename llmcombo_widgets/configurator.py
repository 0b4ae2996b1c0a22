"""The configurator: ipywidgets rendered from the view-model's tree.

Rendering is a keyed reconciliation, like a virtual DOM: every node of the view tree has a key
(its data path); the widget made for a key is kept and *updated* on the next render (value,
options, messages, children), and only nodes that did not exist before get new widgets. Setting a
trait to the value it already has sends nothing to the browser, so switching the merge method
only touches the fields that appear, disappear or change their domain.

A node that leaves the view is *hidden* (``layout.display = "none"``), not taken out of its box:
the browser's widget manager re-creates every child view after the first change in a box's
children list, so removing the base model field when switching TIES -> Linear would rebuild the
whole models list in the page. Hidden widgets keep their place, and showing them again (Linear
-> TIES) is a style change. A box's children only change when a node is shown for the first time.

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
import re
import threading
from typing import Any, Callable

import ipywidgets as W

from llmcombo_widgets.theme import CSS, columns, grow
from llmcombo_widgets.viewmodel import (
    ChoiceView,
    FieldView,
    FormModel,
    ListView,
    SectionView,
    ToggleView,
    check_model_ref,
)

ZOO_REFS = ("zoo:base", "zoo:domotica", "zoo:tiempo", "zoo:selector")


def slug(key: str) -> str:
    """A CSS-class-safe form of a data path."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", key).strip("-")
    return s or "root"


def issues_html(issues, revealed: Callable[[Any], bool] | None = None) -> str:
    """Messages as HTML: errors in red (``llmcombo-error``), warnings in amber; an error the
    user has not reached yet (``revealed`` says no) is shown as something to do, not in red."""
    rows = []
    for i in issues:
        if i.is_error:
            cls = "llmcombo-error" if revealed is None or revealed(i) else "llmcombo-todo"
        else:
            cls = "llmcombo-warning"
        hint = f" <i>{html.escape(i.hint)}</i>" if i.hint else ""
        rows.append(f'<div class="{cls}">{html.escape(i.message)}{hint}</div>')
    return "".join(rows)


def _set(widget: W.Widget, **traits: Any) -> None:
    """Set only the traits whose value differs (nothing is sent for the others)."""
    for name, value in traits.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)


def _children(box: W.Box, children: list) -> None:
    new = tuple(children)
    if box.children != new:
        box.children = new


def _display(widget: W.Widget, shown: bool) -> None:
    want = None if shown else "none"
    if widget.layout.display != want:
        widget.layout.display = want


def _mount(box: W.Box, kids: list, dead: set) -> None:
    """Show ``kids`` in ``box`` in this order; children shown before and not now stay in the box,
    hidden. ``dead`` holds replaced widgets, which are dropped."""
    order = [w for w in box.children if w not in dead]
    merged = list(order)
    at = {w: i for i, w in enumerate(merged)}
    last = -1
    for k in kids:
        i = at.get(k)
        if i is None:  # first time shown: right after the previous visible one
            merged.insert(last + 1, k)
            at = {w: j for j, w in enumerate(merged)}
            last += 1
        elif i > last:
            last = i
        else:  # the order changed: the visible ones in order, the hidden ones after them
            shown = set(kids)
            merged = list(kids) + [w for w in order if w not in shown]
            break
    shown = set(kids)
    for w in merged:
        if w not in shown:
            _display(w, False)
    for k in kids:
        _display(k, True)
    _children(box, merged)


class _FieldWidget:
    """Label, typed input, messages (and for model references a Check button)."""

    def __init__(self, fv: FieldView, form: Configurator):
        self.key = fv.key
        self.kind = fv.kind
        self.signature = fv.signature
        self.form = form  # the Configurator
        self.label = W.HTML(layout=W.Layout(width="160px", min_width="110px", flex="0 1 160px"))
        self.label.add_class("llmcombo-field-label")
        layout = grow("140px")
        k = fv.kind
        if k in ("enum", "bool"):
            self.input = W.Dropdown(options=[c[0] for c in fv.choices], layout=layout)
            self.input.observe(self._on_index, "index")
        elif k in ("text", "string_list", "mapping"):
            self.input = W.Textarea(continuous_update=False,
                                    layout=W.Layout(flex="1 1 auto", width="auto", min_width="140px",
                                                    height="64px"))
            self.input.observe(self._on_text, "value")
        elif k == "model":
            # typed references are checked while typing ("did you mean zoo:domotica?")
            self.input = W.Combobox(options=form.options_now, ensure_option=False,
                                    continuous_update=True, layout=layout)
            self.input.observe(self._on_text, "value")
        elif k == "enum_open":
            self.input = W.Combobox(options=[str(c[1]) for c in fv.choices], ensure_option=False,
                                    continuous_update=False, layout=layout)
            self.input.observe(self._on_text, "value")
        else:
            self.input = W.Text(continuous_update=False, layout=layout)
            self.input.observe(self._on_text, "value")
        self.input.add_class("llmcombo-input")
        self.input.add_class(f"llmcombo-input-{k}")
        self.issues = W.HTML()
        self.issues.add_class("llmcombo-issues")
        self.help = W.HTML(layout=W.Layout(margin="0 0 0 164px"))
        self.help.add_class("llmcombo-field-help")
        row = [self.label, self.input]
        self.info = None
        if k == "model":
            self.check = W.Button(description="Check", layout=W.Layout(width="72px", flex="0 0 72px"),
                                  tooltip="read the model's config.json: architecture, layers, size")
            self.check.add_class("llmcombo-check")
            self.check.on_click(self._on_check)
            self.info = W.HTML()
            self.info.add_class("llmcombo-model-info")
            row.append(self.check)
        self.row = W.HBox(row, layout=W.Layout(width="100%", align_items="center"))
        parts = [self.row, self.help, self.issues] + ([self.info] if self.info is not None else [])
        self.box = W.VBox(parts)
        self.box.add_class("llmcombo-field")
        self.box.add_class(f"llmcombo-key-{slug(fv.key)}")
        self.box.add_class(f"llmcombo-kind-{k}")
        self.fv = fv

    def update(self, fv: FieldView) -> None:
        self.fv = fv
        star = ' <span style="color:#c62828">*</span>' if fv.required else ""
        label = f"{html.escape(fv.label)}{star}"
        _set(self.label, value=label)
        tip = fv.description or fv.label
        if fv.kind in ("enum", "bool"):
            index = next((i for i, c in enumerate(fv.choices) if c[1] == fv.value
                          and type(c[1]) is type(fv.value)), 0)
            # the labels follow the selection ("(default: yes)"): updated in place
            _set(self.input, options=tuple(c[0] for c in fv.choices))
            _set(self.input, index=index, tooltip=tip)
        else:
            _set(self.input, value=fv.text, placeholder=fv.placeholder, tooltip=tip)
            if fv.kind == "enum_open":
                _set(self.input, options=tuple(str(c[1]) for c in fv.choices))
            elif fv.kind == "model":
                _set(self.input, options=self.form.options_now)
        _set(self.help, value=html.escape(fv.help, quote=False))
        _set(self.issues, value=issues_html(fv.issues, self.form.vm.revealed))

    def hide(self) -> None:
        """The field left the form: its widget stays (hidden) for when it comes back; its
        messages (and a model's details) go, so nothing stale is left in the page."""
        _set(self.issues, value="")
        if self.info is not None:
            _set(self.info, value="")

    # events -> view-model
    def _on_text(self, change) -> None:
        if self.form.syncing:
            return
        self.form.act(lambda: self.form.vm.set_text(self.key, change["new"]))

    def _on_index(self, change) -> None:
        if self.form.syncing or change["new"] is None:
            return
        value = self.fv.choices[change["new"]][1]
        self.form.act(lambda: self.form.vm.set_value(self.key, value))

    def _on_check(self, _button) -> None:
        ref = self.input.value
        self.info.value = f"<span class='llmcombo-help'>checking {html.escape(ref)} …</span>"
        base_dir = self.form.vm.base_dir

        def work():
            try:
                summary = check_model_ref(ref, base_dir)
                text = html.escape(summary.text())
                cls = "llmcombo-status-ok" if summary.ok else (
                    "llmcombo-info" if summary.missing_zoo else "llmcombo-status-error")
            except Exception as exc:  # never let a check break the form
                cls, text = "llmcombo-status-error", html.escape(f"{type(exc).__name__}: {exc}")
            self.info.value = f"<div class='{cls}'>{text}</div>"

        threading.Thread(target=work, daemon=True).start()


class Configurator:
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
        self._fields: dict[str, _FieldWidget] = {}
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
            _children(self.form_box, [root])
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
        from llmcombo_widgets.downloads import links, text_download

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
        name = str(vm.data.get("name") or family or "configuration")
        files = [text_download(f"{_file_stem(name)}.yaml", vm.yaml_preview, "configuration YAML")]
        if vm.can_generate and not vm.mergekit_preview.startswith("#"):
            fname = {"merge": "mergekit_config.yml", "moe": "mergekit_moe_config.yml"}.get(
                family or "", f"{_file_stem(name)}-spec.yaml")
            files.append(text_download(fname, vm.mergekit_preview, title))
        _set(self.downloads, value=links(files))
        preset = vm.data.get("description") if isinstance(vm.data.get("description"), str) else ""
        _set(self.preset_help, value=html.escape(preset) if preset and vm.message.startswith(
            "Loaded preset") else "")

    def _render(self, node: Any) -> W.Widget:
        if isinstance(node, FieldView):
            return self._render_field(node)
        if isinstance(node, SectionView):
            return self._render_section(node)
        if isinstance(node, ToggleView):
            return self._render_toggle(node)
        if isinstance(node, ChoiceView):
            return self._render_choice(node)
        if isinstance(node, ListView):
            return self._render_list(node)
        raise TypeError(node)  # pragma: no cover

    def _render_field(self, fv: FieldView) -> W.Widget:
        fw = self._fields.get(fv.key)
        if fw is None or fw.signature != fv.signature:
            if fw is not None:
                self._dead.add(fw.box)
            fw = _FieldWidget(fv, self)
            self._fields[fv.key] = fw
        fw.update(fv)
        self._shown.add(fv.key)
        return fw.box

    def _entry(self, kind: str, key: str, make: Callable[[], dict]) -> dict:
        k = f"{kind}:{key}"
        e = self._boxes.get(k)
        if e is None:
            e = make()
            self._boxes[k] = e
        return e

    def _render_section(self, sec: SectionView) -> W.Widget:
        def make():
            title = W.HTML()
            issues = W.HTML()
            issues.add_class("llmcombo-issues")
            remove = W.Button(description="remove", icon="trash", layout=W.Layout(width="100px"))
            remove.add_class("llmcombo-remove")
            box = W.VBox()
            box.add_class("llmcombo-section")
            box.add_class(f"llmcombo-section-{slug(sec.key)}")
            e = {"title": title, "issues": issues, "remove": remove, "box": box,
                 "header": W.HBox([title, remove])}
            remove.on_click(lambda _b: self.act(lambda: self._remove(e)))
            return e

        e = self._entry("section", sec.key, make)
        e["list_key"], e["index"] = sec.key.rsplit("[", 1)[0], sec.index
        if sec.index is not None:
            title = f"<b>{html.escape(sec.title)} {sec.index + 1}</b>"
        elif sec.key:
            title = f"<b>{html.escape(sec.title)}</b>"
            if sec.description:
                title += f" <span class='llmcombo-help'>{html.escape(sec.description)}</span>"
        else:
            title = ""
        _set(e["title"], value=title)
        _set(e["remove"], disabled=not sec.removable)
        e["remove"].layout.display = None if sec.index is not None else "none"
        _set(e["issues"], value=issues_html(sec.issues, self.vm.revealed))
        kids = [e["header"], e["issues"]] if title or sec.index is not None else [e["issues"]]
        # inside a family, its decisions come first (the merge method, then models or slices):
        # the meaning of the other fields depends on them. The root keeps name and description
        # on top.
        first = [p for p in sec.parts if sec.key and _is_decision(p)]
        first += [p for p in sec.parts if sec.key and isinstance(p, ChoiceView)
                  and not p.multiple and p not in first]
        kids += [self._render(p) for p in first]
        kids += [self._render(f) for f in sec.fields]
        kids += [self._render(p) for p in sec.parts if p not in first]
        if sec.index is not None:
            e["box"].add_class("llmcombo-list-item")
        _mount(e["box"], kids, self._dead)
        return e["box"]

    def _remove(self, e: dict) -> None:
        self.vm.remove_item(e["list_key"], e["index"])

    def _render_toggle(self, t: ToggleView) -> W.Widget:
        def make():
            cb = W.Checkbox(description=t.title, indent=False)
            cb.add_class("llmcombo-toggle-input")
            issues = W.HTML()
            issues.add_class("llmcombo-issues")
            box = W.VBox()
            box.add_class("llmcombo-toggle")
            box.add_class(f"llmcombo-toggle-{slug(t.key)}")
            key = t.key
            cb.observe(lambda ch: None if self.syncing else self.act(
                lambda: self.vm.set_toggle(key, ch["new"])), "value")
            return {"cb": cb, "issues": issues, "box": box}

        e = self._entry("toggle", t.key, make)
        _set(e["cb"], value=t.on, tooltip=t.description or t.title)
        _set(e["issues"], value=issues_html(t.issues, self.vm.revealed))
        kids = [e["cb"], e["issues"]]
        if t.body is not None:
            kids.append(self._render(t.body))
        _mount(e["box"], kids, self._dead)
        return e["box"]

    def _render_choice(self, c: ChoiceView) -> W.Widget:
        sig = tuple(c.options)

        def make():
            if c.multiple:
                inp = W.VBox([W.Checkbox(description=label, indent=False, value=False)
                              for label, _name in c.options])
                for cb, (_label, name) in zip(inp.children, c.options):
                    cb.observe(lambda ch, n=name: self._on_multi(c.instance, c.group_index, n, ch), "value")
            else:
                inp = W.ToggleButtons(options=list(c.options), value=None,
                                      tooltips=[c.descriptions.get(n, "") for _l, n in c.options],
                                      style={"button_width": "auto"})
                inst, gi = c.instance, c.group_index
                inp.observe(lambda ch: None if self.syncing or ch["new"] is None else self.act(
                    lambda: self.vm.choose(inst, ch["new"], gi)), "value")
            inp.add_class("llmcombo-choice-input")
            help_ = W.HTML()
            help_.add_class("llmcombo-help")
            box = W.VBox()
            box.add_class("llmcombo-choice")
            box.add_class(f"llmcombo-choice-{slug(c.instance or 'root')}")
            return {"input": inp, "help": help_, "box": box, "sig": sig}

        e = self._entry("choice", c.key, make)
        if e["sig"] != sig:  # the options changed (a plugin added a family): rebuild
            self._dead.add(self._boxes.pop(f"choice:{c.key}")["box"])
            e = self._entry("choice", c.key, make)
        if c.multiple:
            for cb, (_label, name) in zip(e["input"].children, c.options):
                _set(cb, value=name in c.chosen)
        else:
            _set(e["input"], value=c.chosen[0] if c.chosen else None)
        with_body = {b.key.rsplit(".", 1)[-1] for b in c.bodies}
        label = {n: lab for lab, n in c.options}
        helps = [f"{html.escape(label.get(n, n))}: {html.escape(c.descriptions[n], quote=False)}"
                 for n in c.chosen if c.descriptions.get(n) and n not in with_body]
        _set(e["help"], value="<br>".join(helps))
        kids = [e["input"], e["help"]] + [self._render(b) for b in c.bodies]
        _mount(e["box"], kids, self._dead)
        return e["box"]

    def _on_multi(self, instance: str, gi: int, name: str, change) -> None:
        if self.syncing:
            return
        choice = self.vm.choice(instance, gi)
        chosen = list(choice.chosen) if choice else []
        if change["new"] and name not in chosen:
            chosen.append(name)
        elif not change["new"] and name in chosen:
            chosen.remove(name)
        self.act(lambda: self.vm.choose(instance, chosen, gi))

    def _render_list(self, lv: ListView) -> W.Widget:
        def make():
            title = W.HTML()
            add = W.Button(description="add", icon="plus", layout=W.Layout(width="90px"))
            add.add_class("llmcombo-add")
            key = lv.key
            add.on_click(lambda _b: self.act(lambda: self.vm.add_item(key)))
            issues = W.HTML()
            issues.add_class("llmcombo-issues")
            box = W.VBox()
            box.add_class("llmcombo-list")
            box.add_class(f"llmcombo-list-{slug(lv.key)}")
            return {"title": title, "add": add, "issues": issues, "box": box,
                    "header": W.HBox([title, add])}

        e = self._entry("list", lv.key, make)
        limits = [f"at least {lv.minimum}"] if lv.minimum else []
        if lv.maximum is not None:
            limits.append(f"at most {lv.maximum}")
        count = f"{len(lv.items)} so far" + (f"; {', '.join(limits)}" if limits else "")
        _set(e["title"], value=f"<b>{html.escape(lv.title)}</b> <span class='llmcombo-help'>"
                               f"({count})</span>")
        _set(e["add"], disabled=not lv.can_add)
        _set(e["issues"], value=issues_html(lv.issues, self.vm.revealed))
        _mount(e["box"], [e["header"], e["issues"]] + [self._render(s) for s in lv.items], self._dead)
        return e["box"]


def _is_decision(part: Any) -> bool:
    """A mandatory part that is nothing but a choice (the merge method)."""
    return (isinstance(part, SectionView) and not part.fields and len(part.parts) == 1
            and isinstance(part.parts[0], ChoiceView) and not part.parts[0].multiple)


def _file_stem(name: str) -> str:
    import re as _re

    return _re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "configuration"


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
