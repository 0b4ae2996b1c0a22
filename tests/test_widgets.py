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
from llmcombo_widgets.workbench import PublishModel, accuracy_figure, figure_png


def _ties(c: Configurator) -> None:
    c.vm.apply_preset("ties")


def _all_issue_html(c: Configurator) -> str:
    return "\n".join([fw.issues.value for fw in c._fields.values()]
                     + [e["issues"].value for e in c._boxes.values() if "issues" in e]
                     + [c.status.value])


def _all_state_text() -> str:
    from ipywidgets.widgets.widget import _instances  # every live widget (Widget.widgets is deprecated)

    out = []
    for w in list(_instances.values()):
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
    # ... shown as things to fill in, not in red: the user has not touched the page yet
    assert "llmcombo-status-todo" in c.status.value and "2 things still to fill in" in c.status.value
    assert "llmcombo-error" not in _all_issue_html(c)


def test_typing_a_bad_value_shows_the_message_and_blocks_generate():
    c = Configurator()
    _ties(c)
    assert not c.generate_btn.disabled
    density = c._fields["merge.models[0].parameters.density"]
    # what the browser sends when the field is left; mergekit refuses it (1.5 it runs: a warning)
    density.input.value = "half"
    assert "must be a number" in density.issues.value and "llmcombo-error" in density.issues.value
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
    density.input.value = "half"
    assert "must be a number" in density.issues.value
    methods.value = "linear"
    assert density.issues.value == ""
    methods.value = "ties"
    assert "must be a number" in density.issues.value
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
    app.form.set_text("merge.models[0].parameters.density", "half")  # the open panel follows
    assert app.run_panel.run_btn.disabled
    assert set(app._panels) == {"Run"}
    app.tabs.selected_index = 4
    assert isinstance(app.tabs.children[4].children[0], W.Box)
    assert app.tabs.children[4].children == (app.publish_panel.widget,)
    assert set(app._panels) == {"Run", "Publish"}
    app.tabs.selected_index = 2
    assert "domotica" in [v for _l, v in app.evaluate_panel.products.options]


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


# ---- guidance: no red on an untouched page, help beside every field, words for intervals ----


def test_errors_turn_red_only_where_the_user_has_been():
    c = Configurator()
    methods = c._boxes["choice:merge.method#0"]["input"]
    methods.value = "ties"  # a click on TIES: its base model is still to fill in, not an error
    base = c._fields["merge.base_model"]
    assert "needs a base model" in base.issues.value and "llmcombo-todo" in base.issues.value
    assert "llmcombo-error" not in _all_issue_html(c)
    # a wrong value typed into a field is an error at once, in red, beside that field
    c.vm.set_toggle("merge.models[0].parameters", True)
    density = c._fields["merge.models[0].parameters.density"]
    density.input.value = "half"  # mergekit refuses it (1.5 it runs: a warning)
    assert "llmcombo-error" in density.issues.value and "must be a number" in density.issues.value
    assert "llmcombo-todo" in base.issues.value  # elsewhere: still "to do"
    assert "1 error" in c.status.value and "llmcombo-status-error" in c.status.value
    # asking to generate shows every problem as what it is
    c.generate_btn.disabled = False
    c.generate_btn.click()
    assert "llmcombo-error" in base.issues.value
    # a loaded configuration shows its problems at once too
    c2 = Configurator()
    c2.vm.load_yaml("merge:\n  method: ties\n  models: [{model: zoo:domotica}]\n")
    assert "llmcombo-error" in c2._fields["merge.base_model"].issues.value


def test_every_parameter_has_a_plain_line_beside_it_with_its_interval_in_words():
    from llmcombo.featuremodel import FloatType, IntType
    from llmcombo_widgets.viewmodel import number_words

    c = Configurator()
    _ties(c)
    for key, fw in c._fields.items():
        if not _shown(fw.box) or fw.kind not in ("number", "gradient"):
            continue
        assert fw.help.value and len(fw.help.value) > 20, key  # what it does, not only its range
    density = c._fields["merge.models[0].parameters.density"].help.value
    assert "share of this model" in density and "a number between 0 and 1" in density
    assert "[0, 1]" not in density
    assert number_words(FloatType(0.0, 1.0)) == "a number between 0 and 1"
    assert number_words(IntType(1, None)) == "a whole number, 1 or more"
    assert number_words(FloatType(0.0, 1.0, max_open=True)) == "a number from 0 up to, but not, 1"
    assert number_words(FloatType()) == "any number"
    # the chosen method says what it does, in words, beside the choice
    method_help = c._boxes["choice:merge.method#0"]["help"].value
    assert method_help.startswith("TIES: ") and "keeps only each model" in method_help


def test_model_typos_are_caught_while_typing_with_did_you_mean():
    c = Configurator()
    _ties(c)
    field = c._fields["merge.models[1].model"]
    assert field.input.continuous_update  # every keystroke reaches the view-model
    assert {"zoo:domotica", "zoo:tiempo", "zoo:base"} <= set(field.input.options)
    field.input.value = "zoo:tiemp"
    assert "llmcombo-error" in field.issues.value and "Did you mean zoo:tiempo?" in field.issues.value
    assert c.vm.errors and c.generate_btn.disabled  # counted like any other error
    field.input.value = "tiempo"  # no prefix: neither a folder here nor a Hub id
    assert "did you mean zoo:tiempo?" in field.issues.value and "llmcombo-warning" in field.issues.value
    field.input.value = "zoo:tiempo"
    assert field.issues.value == "" and not c.generate_btn.disabled


def test_status_lines_of_a_family_go_when_the_family_changes(tmp_path):
    app = App(out_root=str(tmp_path / "out"), preload_after=None)
    app.form.apply_preset("ties")
    assert "Loaded preset ties" in app.configurator.status.value
    assert app.configurator.preview.get_title(1) == "mergekit YAML"
    run = app.run_panel
    run.preflight.value = "<b>Pre-flight</b> of the TIES merge"  # (reading it imports torch)
    family = app.configurator._boxes["choice:#0"]["input"]
    family.value = "ensemble"
    assert "Loaded preset" not in app.configurator.status.value
    assert app.configurator.preview.get_title(1) == "ensemble spec"  # not "mergekit YAML"
    assert run.preflight.value == "" and "llmcombo-info" in run.status.value
    assert "Ensembles tab" in run.status.value


def test_configuration_downloads_and_save_to_a_chosen_folder(tmp_path):
    import base64
    import re

    c = Configurator(save_folder=str(tmp_path))
    _ties(c)
    hrefs = dict(re.findall(r"download='([^']+)' href='data:[^;]+;base64,([^']+)'", c.downloads.value))
    assert base64.b64decode(hrefs["ties-specialists.yaml"]).decode() == c.vm.yaml_preview
    assert "merge_method: ties" in base64.b64decode(hrefs["mergekit_config.yml"]).decode()
    c.folder.value = str(tmp_path / "my configs")
    c.path.value = "ties.yaml"
    c.save_btn.click()
    target = tmp_path / "my configs" / "ties.yaml"
    assert target.read_text() == c.vm.yaml_preview
    assert str(target) in c.status.value  # the full path, not a bare file name


# ---- the session survives a reload; runs are picked, never typed -------------------------------


def _fake_run(folder, name="ties-demo", run_id="a" * 32, configuration=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    lineage = {"llmcombo_lineage": 1, "run_id": run_id, "kind": "merge", "method": "ties",
               "finished_at": "2026-12-01T10:00:00+00:00", "seconds": 1.5,
               "configuration": configuration or {"name": name, "merge": {"method": "ties"}},
               "inputs": [{"field": "merge.base_model", "role": "base", "given": "zoo:base",
                           "resolved": "/home/someone/.cache/llmcombo/zoo/base"}],
               "mergekit_config": {"merge_method": "ties",
                                   "base_model": "/home/someone/.cache/llmcombo/zoo/base"}}
    (folder / "llmcombo_lineage.json").write_text(json.dumps(lineage))
    return folder


def test_the_session_survives_a_reload(tmp_path):
    out = tmp_path / "outputs"
    app = App(out_root=str(out), preload_after=None, session=True)
    app.form.apply_preset("ties")
    app.form.set_text("merge.models[0].parameters.density", "0.7")
    _fake_run(out / "ties-demo")
    elsewhere = _fake_run(tmp_path / "elsewhere" / "my-merge", run_id="b" * 32)
    app.session.remember_run(elsewhere)
    # a new page (a new kernel) on the same outputs folder
    again = App(out_root=str(out), preload_after=None, session=True)
    assert again.form.data == app.form.data
    assert "Welcome back" in again.widget.children[2].children[0].children[0].value
    runs = {r.name for r in again.run_model.history()}
    assert runs == {"ties-demo", "my-merge"}
    assert {"ties-demo", "my-merge"} <= set(again.evaluate_model.products())
    assert [v for _l, v in again.publish_panel.runs.options] == [str(r.path) for r in
                                                                  again.run_model.history()]
    # no session: nothing read, nothing written
    App(out_root=str(tmp_path / "plain"), preload_after=None).form.apply_preset("linear")
    assert not (tmp_path / "plain").exists()


def test_run_files_to_take_away(tmp_path):
    import zipfile
    from io import BytesIO

    from llmcombo_widgets.workbench import RunModel

    folder = _fake_run(tmp_path / "ties-demo")
    (folder / "mergekit_config.yml").write_text("merge_method: ties\n")
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    files = {d.filename: d for d in RunModel.downloads(folder)}
    assert set(files) == {"ties-demo.yaml", "mergekit_config.yml", "README.md"}
    card = files["README.md"].data.decode()
    assert "zoo:base" in card and "/home/someone" not in card  # no local absolute path
    z = zipfile.ZipFile(BytesIO(RunModel.model_download(folder).data))
    assert sorted(z.namelist()) == sorted(f"ties-demo/{p.name}" for p in folder.iterdir())


# ---- readable answers, and what the results say ------------------------------------------------


def test_traces_read_as_sentences_with_the_raw_json_behind_a_disclosure():
    from llmcombo_widgets.words import trace_html, trace_sentences

    routed = {"kind": "router", "member": "zoo:tiempo", "route": "LLM2", "confidence": 0.95,
              "fallback": False, "reason": "selector",
              "selector": {"kind": "label_model", "scores": {"LLM1": 0.05, "LLM2": 0.95}},
              "timings": {"total_s": 0.12}}
    said = trace_sentences(routed)
    assert said[0] == "Routed to the weather model (zoo:tiempo), route LLM2, 95% sure."
    assert "LLM1 5%" in said[1] and said[-1] == "Took 0.12 s."
    unsure = dict(routed, member="zoo:domotica", route="LLM1", fallback=True, confidence=0.55,
                  reason="unsure: confidence 0.55 is below the threshold 0.6 (it would have "
                         "chosen LLM2)")
    assert "not sure enough" in trace_sentences(unsure)[0]
    assert "the home-automation model" in trace_sentences(unsure)[0]
    tie = {"kind": "vote", "n": 6, "votes": {"LUZ_GA ON": 3, "TIEMPO MADRID MANANA": 3},
           "winner_count": 3, "decided_by": "tie:likelihood", "tie": ["LUZ_GA ON", "TIEMPO MADRID MANANA"],
           "tie_rule": "likelihood"}
    assert "tied" in trace_sentences(tie)[0] and "more likely" in trace_sentences(tie)[0]
    pipe = {"kind": "pipeline", "stages": [{"member": "zoo:domotica", "output": "LUZ_SL OFF"},
                                           {"member": "zoo:domotica", "output": "LUZ_SL OFF"}]}
    assert trace_sentences(pipe)[1].startswith("Stage 2, the home-automation model")
    page = trace_html(routed)
    assert "<details" in page and "raw trace (JSON)" in page and "&quot;confidence&quot;" in page


def _frame(values):
    from llmcombo.evaluate import frame, row

    return frame(row(p, t, "accuracy", v, 40, v, v) for p, tv in values.items() for t, v in tv.items())


def test_results_say_why_a_merge_lost_a_skill_and_what_to_change():
    from llmcombo_widgets.words import explain_results

    df = _frame({"domotica": {"domotica": 0.97, "tiempo": 0.0},
                 "tiempo": {"domotica": 0.0, "tiempo": 1.0},
                 "ties": {"domotica": 1.0, "tiempo": 0.025},
                 "moe": {"domotica": 0.0, "tiempo": 0.0},
                 "linear": {"domotica": 0.9, "tiempo": 0.85}})
    runs = {"ties": {"kind": "merge", "method": "ties", "configuration": {"merge": {
        "method": "ties", "models": [{"model": "zoo:domotica", "parameters": {"density": 0.5}}]}}},
            "moe": {"kind": "moe", "method": "moe", "configuration": {}}}
    said = dict(zip(["ties", "moe", "linear"], explain_results(df, runs)))
    assert "kept home automation but lost most of weather" in said["ties"]
    assert "Raise density (now 0.5) towards 1" in said["ties"]
    assert "kept little of any skill" in said["moe"] and "MLP layers" in said["moe"]
    assert said["linear"].startswith("linear kept every skill")


# ---- caches are keyed by content: a replaced folder is never served stale ---------------------


def test_caches_follow_the_content_of_a_folder_not_its_path(tmp_path, monkeypatch):
    from llmcombo_widgets import workbench as wb

    folder = _fake_run(tmp_path / "ties-demo", run_id="1" * 32)
    k1 = wb.content_key(str(folder))
    _fake_run(folder, run_id="2" * 32)  # a new run replaced the folder
    k2 = wb.content_key(str(folder))
    assert k1 != k2 and wb.content_key(str(folder)) == k2
    calls = []

    def fake_eval(ref, task, name=None, limit=None, progress=None):
        from llmcombo.evaluate import frame, row

        calls.append((ref, task))
        return frame([row(name, task, "accuracy", len(calls) / 10, limit, 0, 1)])

    monkeypatch.setattr("llmcombo.evaluate.evaluate_accuracy", fake_eval)
    model = wb.EvaluateModel(limit=5)
    model.add_product("ties-demo", str(folder))
    model.start(["ties-demo"], ["domotica"], background=False)
    first = model.frame["value"].tolist()
    model.start(["ties-demo"], ["domotica"], background=False)
    assert model.frame["value"].tolist() == first and len(calls) == 1  # same content: reused
    _fake_run(folder, run_id="3" * 32)
    model.start(["ties-demo"], ["domotica"], background=False)
    assert len(calls) == 2 and model.frame["value"].tolist() != first  # new content: evaluated
    # the Ensembles tab's products too
    loads = []
    monkeypatch.setattr("llmcombo.ensemble.load_product", lambda cfg: loads.append(cfg) or object())
    play = wb.PlaygroundModel()
    play.product(str(folder))
    play.product(str(folder))
    assert len(loads) == 1
    _fake_run(folder, run_id="4" * 32)
    play.product(str(folder))
    assert len(loads) == 2


@pytest.mark.slow  # loads the zoo's models and answers with them (about 10 s)
def test_built_in_examples_answer_their_own_questions(zoo):
    """The Ensembles tab's examples, asked their example questions one at a time as the page
    does, give the right commands (the vote used to tie three ways and settle on the first
    answer; the pipeline used to answer free text)."""
    from llmcombo.datasets import normalize_answer
    from llmcombo_widgets.workbench import PlaygroundModel, ensemble_examples

    play = PlaygroundModel()
    for name, ex in ensemble_examples().items():
        assert len(ex.questions) >= 3 and play.questions(name) == [q for q, _ in ex.questions]
        kind = next(iter(ex.config["ensemble"]))
        for question, expected in ex.questions:
            answer = play.ask(question, name)
            assert play.error is None, (name, play.error)
            assert answer.trace["kind"] == kind
            assert normalize_answer(answer.text) == normalize_answer(expected), (name, question,
                                                                                answer.trace)


def test_another_module_can_add_a_tab(tmp_path, monkeypatch):
    """Room for the Search tab: a module registers its panel; the App builds it when shown."""
    from llmcombo_widgets import dashboard as D

    monkeypatch.setattr(D, "_EXTRA_TABS", [])
    built = []

    class Panel:
        def __init__(self, app):
            built.append(app)
            self.widget = W.HTML("search here")
            self.refreshed = 0

        def refresh(self):
            self.refreshed += 1

    D.register_tab("Search", Panel, after="Evaluate", step="try many merges, keep the best")
    app = D.App(out_root=str(tmp_path), preload_after=None)
    titles = [app.tabs.get_title(i) for i in range(len(app.tabs.children))]
    assert titles == ["Configure", "Run", "Evaluate", "Search", "Ensembles", "Publish"]
    # the getting-started strip has a step per tab, numbered in the tabs' order
    strip = D.getting_started_html(app.tab_titles)
    assert strip.index("<b>3 Evaluate</b>") < strip.index("<b>4 Search</b><br>try many merges")
    assert "<b>6 Publish</b>" in strip
    assert built == []  # built when first shown, like the other panels
    app.tabs.selected_index = 3
    assert built == [app] and app.tabs.children[3].children == (app._panels["Search"].widget,)
    assert app.publish_panel is app._panels["Publish"]  # the built-in tabs keep their places


def test_the_hub_search_box_offers_ids_online_and_says_so_offline(monkeypatch):
    from llmcombo.preflight import models as pm
    from llmcombo_widgets import configurator as C

    c = Configurator()
    _ties(c)
    c.hub_query.value = "qwen"
    monkeypatch.setattr(pm, "hub_reachable", lambda *a, **k: False)
    c._hub_search(background=False)
    assert "llmcombo-info" in c.hub_out.value and "cannot be reached" in c.hub_out.value
    monkeypatch.setattr(C, "hub_search", lambda q: ["Qwen/Qwen2.5-0.5B", "someone/qwen-tiny"])
    c._hub_search(background=False)
    assert "Qwen/Qwen2.5-0.5B" in c._fields["merge.models[0].model"].input.options
    assert "zoo:domotica" in c._fields["merge.models[0].model"].input.options


def test_a_finished_run_is_offered_in_evaluate_beside_its_parents(tmp_path):
    """After a run the Evaluate picker holds the new folder and the models it was made from, so
    one click on Evaluate compares the merge with its parents."""
    from types import SimpleNamespace

    out = tmp_path / "outputs"
    app = App(out_root=str(out), preload_after=None)
    app.tabs.selected_index = 2  # Evaluate built before the run, as a user who looked first
    cfg = {"name": "mine", "merge": {"method": "ties", "base_model": "zoo:base", "models": [
        {"model": "zoo:domotica", "parameters": {"density": 0.5, "weight": 1.0}},
        {"model": "zoo:tiempo", "parameters": {"density": 0.5, "weight": 1.0}}]}}
    folder = _fake_run(out / "mine", configuration=cfg)
    app._on_run_done(SimpleNamespace(path=folder))
    assert app.evaluate_panel.products.value == ("mine", "base", "domotica", "tiempo")
    # a folder that is not a run the page knows selects nothing
    assert app.evaluate_model.with_parents(tmp_path / "nowhere") == []


def test_a_new_evaluation_forgets_the_last_saved_line(tmp_path, monkeypatch):
    """"Saved: ..." names the files of the result it saved; once another result is shown it
    would name the wrong thing, so it goes."""
    from llmcombo_widgets import workbench as wb
    from llmcombo_widgets.evaluate_panel import EvaluatePanel

    def fake_eval(ref, task, name=None, limit=None, progress=None):
        from llmcombo.evaluate import frame, row

        return frame([row(name, task, "accuracy", 0.5, limit, 0, 1)])

    monkeypatch.setattr("llmcombo.evaluate.evaluate_accuracy", fake_eval)
    panel = EvaluatePanel(wb.EvaluateModel(limit=5), save_folder=str(tmp_path / "saved"))
    panel.products.value = ("domotica",)
    panel.start()
    assert panel.model.job.wait(60) and panel.model.job.status == DONE
    panel.save.do()
    assert "Saved:" in panel.save.status.value and (tmp_path / "saved" / "results.csv").is_file()
    panel.products.value = ("tiempo",)
    panel.start()
    assert panel.model.job.wait(60) and panel.model.job.status == DONE
    assert panel.save.status.value == "" and not panel.save.button.disabled
