"""The ipywidgets layer without a browser: rendering from the view-model, events, partial
updates, the progress protocol, background jobs, the token's handling."""

from __future__ import annotations

import json
import threading
import time

import ipywidgets as W
import pytest

from llmcombo_widgets.configurator import Configurator, slug
from llmcombo_widgets.dashboard import App, PublishPanel, WidgetProgress
from llmcombo_widgets.jobs import CANCELLED, DONE, FAILED, Job
from llmcombo_widgets.viewmodel import FormModel
from llmcombo_widgets.workbench import PublishModel, accuracy_figure, figure_png


def _ties(c: Configurator) -> None:
    c.vm.apply_preset("ties")


def _all_state_text() -> str:
    out = []
    for w in list(W.Widget.widgets.values()):
        try:
            out.append(json.dumps(w.get_state(), default=str))
        except Exception:
            pass
    return "\n".join(out)


def test_the_form_is_rendered_from_the_view_model():
    c = Configurator()
    keys = {f.key for f in c.vm.visible_fields()}
    assert keys <= set(c._fields)
    box = c._fields["merge.models[0].model"].box
    assert "llmcombo-field" in box._dom_classes
    assert f"llmcombo-key-{slug('merge.models[0].model')}" in box._dom_classes
    assert slug("merge.models[0].parameters.density") == "merge-models-0-parameters-density"
    assert c.generate_btn.disabled  # errors: no method, no model
    assert "error" in c.status.value


def test_typing_a_bad_value_shows_the_message_and_blocks_generate():
    c = Configurator()
    _ties(c)
    assert not c.generate_btn.disabled
    density = c._fields["merge.models[0].parameters.density"]
    density.input.value = "1.5"  # what the browser sends when the field is left
    assert "out of range" in density.issues.value and "llmcombo-error" in density.issues.value
    assert c.generate_btn.disabled
    density.input.value = "0.5"
    assert density.issues.value == ""
    assert not c.generate_btn.disabled
    c.generate_btn.click()
    assert "merge_method: ties" in c.generated_preview.value


def test_switching_method_updates_only_the_affected_widgets():
    c = Configurator()
    _ties(c)
    before = dict(c._fields)
    methods = c._boxes["choice:merge.method#0"]["input"]
    methods.value = "linear"  # a click on the Linear button
    assert c.vm.data["merge"]["method"] == "linear"
    shown = {f.key for f in c.vm.visible_fields()}
    assert "merge.base_model" not in shown
    # fields that stay are the very same widgets (updated, not rebuilt)
    for key in shown & set(before):
        assert c._fields[key] is before[key], key
    methods.value = "ties"
    assert c._fields["merge.base_model"] is before["merge.base_model"]
    assert c.vm.data["merge"]["base_model"] == "zoo:base"


def _shown(widget) -> bool:
    return widget.layout.display != "none"


def test_fields_that_leave_the_form_are_hidden_in_place_and_come_back():
    c = Configurator()
    _ties(c)
    methods = c._boxes["choice:merge.method#0"]["input"]
    merge_box = c._boxes["section:merge"]["box"]
    base = c._fields["merge.base_model"]
    assert base.box in merge_box.children and _shown(base.box)
    children = merge_box.children
    methods.value = "linear"
    # still in its box, at the same place, hidden: the page does not rebuild what follows it
    assert merge_box.children == children and not _shown(base.box)
    density = c._fields["merge.models[0].parameters.density"]
    assert not _shown(density.box)
    methods.value = "ties"
    assert merge_box.children == children and _shown(base.box) and _shown(density.box)
    # a hidden field keeps no stale message; when it comes back it shows the current one
    density.input.value = "1.5"
    assert "out of range" in density.issues.value
    methods.value = "linear"
    assert density.issues.value == ""
    methods.value = "ties"
    assert "out of range" in density.issues.value
    # what the page shows is exactly the view-model's visible fields
    shown = {k for k, fw in c._fields.items() if _visible_in_page(c, fw.box)}
    assert shown == {f.key for f in c.vm.visible_fields()}


def test_lists_and_families_show_exactly_the_view_models_fields():
    c = Configurator()
    _ties(c)

    def page_fields():
        return {k for k, fw in c._fields.items() if _visible_in_page(c, fw.box)}

    c._boxes["list:merge.models"]["add"].click()
    c.vm.set_text("merge.models[2].model", "zoo:base")
    assert page_fields() == {f.key for f in c.vm.visible_fields()}
    assert "merge.models[2].model" in page_fields()
    c._boxes["section:merge.models[1]"]["remove"].click()  # the third item moves up
    assert c._fields["merge.models[1].model"].input.value == "zoo:base"
    assert "merge.models[2].model" not in page_fields()
    assert page_fields() == {f.key for f in c.vm.visible_fields()}
    c._boxes["list:merge.models"]["add"].click()  # the hidden item comes back, empty
    assert c._fields["merge.models[2].model"].input.value == ""
    assert page_fields() == {f.key for f in c.vm.visible_fields()}
    family = c._boxes["choice:#0"]["input"]  # the root's group: merge, moe, ensemble
    family.value = "moe"
    assert page_fields() == {f.key for f in c.vm.visible_fields()}
    assert not any(k.startswith("merge.") for k in page_fields())
    family.value = "merge"
    assert page_fields() == {f.key for f in c.vm.visible_fields()}
    assert "merge.models[1].model" in page_fields()


def _visible_in_page(c: Configurator, widget) -> bool:
    """Reachable from the form's root through shown boxes only."""
    def walk(w):
        if not _shown(w):
            return False
        if w is widget:
            return True
        return any(walk(k) for k in getattr(w, "children", ()))

    return walk(c.form_box)


def test_a_method_switch_sends_few_updates_and_makes_no_widgets_once_seen():
    c = Configurator()
    _ties(c)
    methods = c._boxes["choice:merge.method#0"]["input"]
    cycle = ["linear", "ties", "slerp", "dare_ties", "della", "ties"]
    for name in cycle:  # every method's fields are made once
        methods.value = name
    opened, updates = [], []
    orig_open, orig_send = W.Widget.open, W.Widget._send

    def count_open(self):
        opened.append(self)
        return orig_open(self)

    def count_send(self, msg, buffers=None):
        if msg.get("method") == "update":
            updates.append((type(self).__name__, sorted(msg.get("state", {}))))
        return orig_send(self, msg, buffers)

    W.Widget.open, W.Widget._send = count_open, count_send
    try:
        counts = []
        for name in cycle:
            updates.clear()
            methods.value = name
            counts.append(len(updates))
            # a switch never replaces a box's children: fields are shown or hidden in place
            assert not [u for u in updates if "children" in u[1]], updates
    finally:
        W.Widget.open, W.Widget._send = orig_open, orig_send
    assert opened == []
    n_widgets = sum(1 for _ in _walk(c.widget))
    assert max(counts) < n_widgets / 4, (counts, n_widgets)


def _walk(w):
    yield w
    for k in getattr(w, "children", ()):
        yield from _walk(k)


def test_toggles_lists_and_presets_forward_to_the_view_model():
    c = Configurator()
    _ties(c)
    c._boxes["list:merge.models"]["add"].click()
    assert len(c.vm.data["merge"]["models"]) == 3
    c._boxes["section:merge.models[2]"]["remove"].click()
    assert len(c.vm.data["merge"]["models"]) == 2
    c._boxes["toggle:merge.parameters"]["cb"].value = False
    assert "parameters" not in c.vm.data["merge"]
    c.preset.value = "slerp"
    assert c.vm.data["merge"]["method"] == "slerp"
    dtype = c._fields["merge.dtype"]
    dtype.input.index = [v for _l, v in dtype.fv.choices].index("float16")
    assert c.vm.data["merge"]["dtype"] == "float16"


def test_import_from_the_paste_box():
    c = Configurator()
    c.paste.value = "merge_method: linear\nmodels:\n  - model: zoo:domotica\n    parameters: {weight: 1}\n" \
                    "  - model: zoo:tiempo\n    parameters: {weight: 1}\n"
    c.import_btn.click()
    assert c.vm.data["merge"]["method"] == "linear"
    assert "mergekit" in c.status.value
    assert c._boxes["choice:merge.method#0"]["input"].value == "linear"


def test_widget_progress_implements_the_run_protocol():
    from llmcombo.run import Progress

    p = WidgetProgress()
    assert isinstance(p, Progress)
    p.start(4, "merge")
    for _ in range(4):
        p.update()
        time.sleep(0.11)
    p.log("saving")
    p.close()
    p.finish(True)
    assert p.bar.value == 1.0 and p.bar.bar_style == "success"
    assert "saving" in p.log_view.value


def test_jobs_run_in_a_thread_report_and_cancel():
    job = Job("t")
    seen = []
    job.subscribe(lambda j: seen.append((j.status, round(j.fraction, 2))))
    gate = threading.Event()

    def work(j):
        j.start(10, "counting")
        for _ in range(10):
            j.cancel_token.raise_if_cancelled()
            j.update()
            gate.wait(0.01)
        j.close()
        return 42

    job.run(work).wait(10)
    assert job.status == DONE and job.result == 42 and job.fraction == 1.0
    assert ("running", 0.0) in seen

    def slow(j):
        j.start(None, "waiting")
        while True:
            j.cancel_token.raise_if_cancelled()
            time.sleep(0.01)

    job.run(slow)
    assert job.running
    job.cancel()
    job.wait(10)
    assert job.status == CANCELLED

    def broken(j):
        from llmcombo.errors import UserError

        raise UserError("the folder is missing", hint="create it")

    job.run(broken).wait(10)
    assert job.status == FAILED and job.error == "the folder is missing" and job.hint == "create it"


def test_token_is_cleared_and_never_kept(tmp_path):
    secret = "hf_TESTSECRET1234567890"
    panel = PublishPanel(PublishModel())
    assert isinstance(panel.token, W.Password)  # the browser shows dots, never the text
    panel.folder.value = str(tmp_path / "missing-model")
    panel.repo.value = "someone/merge"
    panel.dry_run.value = False
    panel.token.value = secret
    panel.publish()
    assert panel.token.value == ""
    panel.model.job.wait(30)
    assert panel.model.job.status == FAILED
    assert secret not in panel.status.value
    assert secret not in _all_state_text()
    assert secret not in repr(vars(panel.model))
    job = panel.model.job
    assert secret not in repr((job.error, job.hint, job.log_lines, job.result))


TOKEN_CELL = """
import os
from llmcombo_widgets.dashboard import App
app = App(out_root={out!r}, preload_after=None)
panel = app.publish_panel
panel.folder.value = {folder!r}
panel.repo.value = "someone/merge"
panel.dry_run.value = False
panel.token.value = os.environ.pop("LLMCOMBO_TEST_TOKEN")  # as if typed: not in the source
print("token field:", type(panel.token).__name__)
panel.publish()
panel.model.job.wait(60)
print("status:", panel.model.job.status)
app.widget
"""


def test_token_is_not_left_in_the_notebook(tmp_path, monkeypatch):
    """Run the Publish panel in a real kernel as a notebook, save it with its widget state, and
    look for the token anywhere in the file: outputs, widget state, metadata."""
    import nbformat
    from nbclient import NotebookClient

    secret = "hf_NOTEBOOKSECRET987654321"
    monkeypatch.setenv("LLMCOMBO_TEST_TOKEN", secret)  # the kernel inherits it
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(TOKEN_CELL.format(
        out=str(tmp_path / "outputs"), folder=str(tmp_path / "missing-model"))))
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "publish.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()
    outputs = nb.cells[0].outputs
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "token field: Password" in printed and "status: failed" in printed, printed
    widget_state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    assert widget_state.get("state"), "the widget state was not saved: the check would be empty"
    assert any(o.get("output_type") == "display_data" or o.get("output_type") == "execute_result"
               for o in outputs)
    assert secret not in text


def test_accuracy_figure_is_the_cores_plot_with_parents_hatched():
    from llmcombo.evaluate import accuracy_row, frame

    df = frame([accuracy_row("merged", "domotica", ["A", "B"], ["A", "A"]),
                accuracy_row("merged", "tiempo", ["C"], ["C"]),
                accuracy_row("domotica", "domotica", ["A"], ["A"]),
                accuracy_row("domotica", "tiempo", ["A"], ["C"])])
    fig = accuracy_figure(df)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["merged", "domotica"]
    assert sorted(round(p.get_height(), 2) for p in ax.patches) == [0.0, 0.5, 1.0, 1.0]
    assert sum(bool(p.get_hatch()) for p in ax.patches) == 2  # the zoo parent, both tasks
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_app_has_its_tabs_in_order():
    app = App(out_root="outputs-test", preload_after=None)
    assert [app.tabs.get_title(i) for i in range(len(App.TABS))] == list(App.TABS)
    assert app.run_panel.run_btn.disabled  # the new form has errors
    app.form.apply_preset("ties")
    assert not app.run_panel.run_btn.disabled
    assert app.run_panel.out.value.endswith("ties-specialists")
    assert "llmcombo-app" in app.widget._dom_classes


def test_panels_are_built_when_their_tab_is_first_shown():
    app = App(out_root="outputs-test", preload_after=None)
    assert app._panels == {}
    assert all(slot.children == () for slot in app.tabs.children[1:])
    app.form.apply_preset("ties")
    app.tabs.selected_index = 1  # the user opens Run
    run_slot = app.tabs.children[1]
    assert run_slot.children == (app.run_panel.widget,)
    assert not app.run_panel.run_btn.disabled
    assert app.run_panel.out.value.endswith("ties-specialists")
    app.form.set_text("merge.models[0].parameters.density", "1.5")  # the open panel follows
    assert app.run_panel.run_btn.disabled
    assert set(app._panels) == {"Run"}
    app.tabs.selected_index = 4
    assert isinstance(app.tabs.children[4].children[0], W.VBox)
    assert app.tabs.children[4].children == (app.publish_panel.widget,)
    assert set(app._panels) == {"Run", "Publish"}
    app.tabs.selected_index = 2
    assert "domotica" in app.evaluate_panel.products.options


def test_preload_imports_in_the_background(tmp_path, monkeypatch):
    import sys

    from llmcombo_widgets.viewmodel import Preload

    (tmp_path / "llmcombo_preload_probe.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("llmcombo_preload_probe", None)
    p = Preload(("llmcombo_preload_probe", "llmcombo_no_such_module"), delay=3600)
    assert "llmcombo_preload_probe" not in sys.modules  # waits for its delay ...
    p.now()  # ... or for the user to start editing
    assert p.wait(60)
    assert sys.modules["llmcombo_preload_probe"].LOADED
    sys.modules.pop("llmcombo_preload_probe", None)
