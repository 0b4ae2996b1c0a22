"""The dashboard's Search tab without a browser: the specification it builds, its messages, a run
(with the stand-in workers of test_search.py), the live plot, and "open the best in Configure"."""

from __future__ import annotations

import ipywidgets as W
from test_search import FakeWorkers, fake  # noqa: F401 - the fixture is used by name

from llmcombo_widgets.dashboard import App
from llmcombo_widgets.jobs import DONE
from llmcombo_widgets.search_panel import SearchModel, SearchPanel


def test_the_panel_builds_a_search_specification_the_feature_model_accepts(tmp_path):
    m = SearchModel(tmp_path)
    spec = m.spec()
    assert spec["search"]["models"] == [{"model": "zoo:domotica"}, {"model": "zoo:tiempo"}]
    assert [i for i in m.issues() if i.is_error] == []
    m.tasks = ["domotica", "orders.jsonl"]
    assert m.spec()["search"]["tasks"] == [{"task": "domotica"}, {"file": "orders.jsonl"}]


def test_mistakes_show_under_the_form_and_block_start(tmp_path):
    p = SearchPanel(SearchModel(tmp_path))
    assert not p.start_btn.disabled
    p.parents.value = "zoo:domotica"  # one parent
    assert p.start_btn.disabled and "search.models" in p.issues.value
    p.parents.value = "zoo:domotica\nzoo:tiempo"
    p.trials.value = 0
    assert p.start_btn.disabled and "at least 1" in p.issues.value
    p.trials.value = 3
    assert not p.start_btn.disabled and p.issues.value == ""


def test_a_search_runs_shows_its_plot_and_opens_the_best_in_configure(fake, tmp_path):  # noqa: F811
    app = App(out_root=str(tmp_path), preload_after=None)
    assert "Search" in app.tab_titles
    app.tabs.selected_index = app.tab_titles.index("Search")
    panel = app._panels["Search"]
    assert isinstance(panel.widget, W.VBox)
    panel.trials.value = 4
    panel.vote.value = True
    panel.model.start(background=False)
    assert panel.model.job.status == DONE, panel.model.job.error
    assert panel.plot.value[:4] == b"\x89PNG" and panel.plot.layout.display is None
    assert "best so far" in panel.best.value and "test split" in panel.table.value
    assert not panel.open_btn.disabled
    panel.open_btn.click()
    assert app.tabs.selected_index == 0
    assert app.form.family in ("merge", "ensemble") and not app.form.errors
    assert (tmp_path / "search" / "search" / "best.yaml").is_file()
