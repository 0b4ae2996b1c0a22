"""The short Python path: llmcombo.configure / llmcombo.merge."""

import pytest

import llmcombo
from llmcombo.errors import UserError
from llmcombo.generate import to_mergekit


def test_configure_builds_the_same_configuration_as_the_yaml():
    cfg = llmcombo.configure("ties", ["org/a", {"model": "org/b", "density": 0.3}],
                             base="org/base", density=0.5, normalize=True)
    kind, doc = to_mergekit(cfg, resolve=False)
    assert kind == "merge" and doc["merge_method"] == "ties"
    assert doc["parameters"] == {"density": 0.5, "normalize": True}
    assert doc["models"][1]["parameters"] == {"density": 0.3, "weight": 1.0}


def test_configure_refuses_bad_values_with_every_error():
    with pytest.raises(UserError) as exc:
        llmcombo.configure("ties", ["org/a", "org/b"], density=1.5)
    text = str(exc.value)
    assert "merge.parameters.density" in text and "merge.base_model" in text


def test_configure_slerp_base_is_one_of_the_two():
    cfg = llmcombo.configure("slerp", ["org/a", "org/b"], base="org/a", t=0.25)
    assert cfg["merge"]["parameters"] == {"t": 0.25}


def test_lazy_attributes():
    assert callable(llmcombo.merge) and callable(llmcombo.validate)
    with pytest.raises(AttributeError):
        llmcombo.nothing_here
