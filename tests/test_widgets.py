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
    assert c.last_render_ms < 1000


def test_method_switch_render_time_is_measured():
    c = Configurator()
    _ties(c)
    methods = c._boxes["choice:merge.method#0"]["input"]
    times = []
    for name in ["linear", "ties", "slerp", "dare_ties", "ties"] * 2:
        t = time.perf_counter()
        methods.value = name
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print("kernel-side method switch (ms): median", round(times[len(times) // 2], 1), "max",
          round(times[-1], 1))
    assert times[len(times) // 2] < 150


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


def test_accuracy_figure_from_a_tidy_frame():
    import pandas as pd

    frame = pd.DataFrame([{"product": "a", "task": "domotica", "accuracy": 0.5, "n": 10},
                          {"product": "a", "task": "tiempo", "accuracy": 0.25, "n": 10},
                          {"product": "b", "task": "domotica", "accuracy": 1.0, "n": 10},
                          {"product": "b", "task": "tiempo", "accuracy": 0.0, "n": 10}])
    png = figure_png(accuracy_figure(frame))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_app_has_the_five_tabs_in_order():
    app = App(out_root="outputs-test")
    assert [app.tabs.get_title(i) for i in range(5)] == list(App.TABS)
    assert app.run_panel.run_btn.disabled  # the new form has errors
    app.form.apply_preset("ties")
    assert not app.run_panel.run_btn.disabled
    assert app.run_panel.out.value.endswith("ties-specialists")
    assert "llmcombo-app" in app.widget._dom_classes
