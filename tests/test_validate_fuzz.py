"""Random YAML documents never make validation raise."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcombo.configuration import Documents, parse_yaml_text
from llmcombo.errors import UserError
from llmcombo.importer import as_configuration
from llmcombo.productline import feature_model, merge_methods
from llmcombo.validation import validate, validate_full

KEYS = ["merge", "moe", "ensemble", "method", "models", "slices", "sources", "model", "parameters",
        "weight", "density", "t", "base_model", "layer_range", "filter", "value", "experts",
        "source_model", "positive_prompts", "gate_mode", "experts_per_token", "tokenizer",
        "tokenizer_source", "dtype", "shared_experts", "architecture", "name", "epsilon",
        "stages", "modules", "merge_method", "pattern", "tol", "gamma"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(sorted(merge_methods())),
                    st.sampled_from(["hidden", "random", "org/a", "zoo:base", "{input}"]))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5),
                                                         st.integers(0, 3)),
                                               children, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_validate_never_raises_on_random_documents(doc):
    issues = validate(doc)
    assert isinstance(issues, list)
    for i in issues:
        assert i.severity in ("error", "warning") and isinstance(i.message, str) and i.message
        assert i.code != "internal", i.message  # a rule that crashed on this shape


@settings(max_examples=150, deadline=None)
@given(documents)
def test_random_documents_survive_yaml_text(doc):
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    data = parse_yaml_text(text)
    assert isinstance(validate(data), list)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_is_a_user_error_or_data(text):
    try:
        data = parse_yaml_text(text)
    except UserError as exc:
        assert "not valid YAML" in exc.message
        return
    assert isinstance(feature_model().validate(data), list)


_merge_docs = st.fixed_dictionaries(
    {"merge_method": st.sampled_from(["ties", "linear", "slerp", "tie", "della"])},
    optional={k: documents for k in ("models", "slices", "modules", "base_model", "parameters",
                                     "tokenizer", "name", "chat_template", "dtype")})
_moe_docs = st.fixed_dictionaries(
    {"base_model": documents, "experts": documents},
    optional={k: documents for k in ("shared_experts", "gate_mode", "architecture",
                                     "experts_per_token")})
_stages = st.fixed_dictionaries({"stages": st.lists(st.fixed_dictionaries(
    {}, optional={"name": documents, "merge": st.one_of(documents, _merge_docs)}), max_size=3)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_merge_docs, _moe_docs, _stages,
                 st.lists(_merge_docs, min_size=2, max_size=3).map(Documents)))
def test_mergekit_shaped_documents_never_break_a_rule(doc):
    """mergekit-shaped documents (merges, MoEs, multimerge files, stages) with random values:
    import, the rules, mergekit's schema and the stage checks never crash."""
    try:
        cfg = as_configuration(doc)
    except UserError as exc:
        assert exc.message
        return
    for i in validate_full(cfg, preflight=False):
        assert i.code != "internal", i.message
