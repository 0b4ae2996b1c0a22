"""The short Python path: llmcombo.configure / llmcombo.merge."""

import pytest

import llmcombo
from llmcombo.errors import UserError
from llmcombo.generate import to_document


def test_configure_builds_the_same_configuration_as_the_yaml():
    cfg = llmcombo.configure("ties", ["org/a", {"model": "org/b", "density": 0.3}],
                             base="org/base", density=0.5, normalize=True)
    kind, doc = to_document(cfg, resolve=False)
    assert kind == "merge" and doc["merge_method"] == "ties"
    assert doc["parameters"] == {"density": 0.5, "normalize": True}
    assert doc["models"][1]["parameters"] == {"density": 0.3, "weight": 1.0}


def test_configure_refuses_bad_values_with_every_error():
    with pytest.raises(UserError) as exc:
        llmcombo.configure("ties", ["org/a", "org/b"], density="half")
    text = str(exc.value)
    assert "merge.parameters.density" in text and "merge.base_model" in text


def test_configure_slerp_base_is_one_of_the_two():
    cfg = llmcombo.configure("slerp", ["org/a", "org/b"], base="org/a", t=0.25)
    assert cfg["merge"]["parameters"] == {"t": 0.25}


def test_lazy_attributes():
    assert callable(llmcombo.merge) and callable(llmcombo.validate)
    with pytest.raises(AttributeError):
        llmcombo.nothing_here


@pytest.mark.slow
def test_three_lines_merge_and_compare_with_the_parents(zoo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    merged = llmcombo.merge("ties", ["zoo:domotica", "zoo:tiempo"], base="zoo:base", density=0.5)
    assert merged.path.parent.name == "llmcombo-out" and (merged.path / "config.json").is_file()
    result = llmcombo.compare([merged, "zoo:domotica", "zoo:tiempo"], limit=20)

    table = result.table()
    assert list(table.index) == [merged.path.name, "domotica", "tiempo"]
    assert list(table.columns) == ["domotica", "tiempo"]
    assert set(result.frame["n"]) == {20}
    assert table.loc["domotica", "domotica"] > 0.8 and table.loc["domotica", "tiempo"] < 0.2
    assert result.parents == ["domotica", "tiempo"]
    assert "%" in str(result)
    fig = result.plot()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(table.index)
    assert sum(bool(p.get_hatch()) for p in ax.patches) == 4  # parents hatched, 2 tasks each
    html = result._repr_html_()
    assert "<table" in html and "data:image/png;base64," in html


def test_compare_refuses_two_products_with_one_name():
    with pytest.raises(UserError, match="both called 'domotica'"):
        llmcombo.compare(["zoo:domotica", "/elsewhere/domotica"])
