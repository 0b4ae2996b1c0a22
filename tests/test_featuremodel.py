"""The metamodel on a small feature model that knows nothing about language models."""

import pytest

from llmcombo.featuremodel import export
from llmcombo.featuremodel import (
    Attribute, BoolType, Check, Constraint, CountCmp, EnumType, Eq, Feature, FeatureModel,
    FloatType, GradientType, IntType, RangeType, Sel, StringListType, StringType,
    alternative, error, or_group,
)


def pizza_model() -> FeatureModel:
    size = Feature("size", groups=[alternative(Feature("small"), Feature("large"))])
    toppings = Feature("toppings", card=(1, 3),
                       attributes=[Attribute("name", StringType(), required=True),
                                   Attribute("amount", FloatType(0, 1, min_open=True), default=0.5)])
    extras = Feature("extras", optional=True, groups=[or_group(Feature("cheese"), Feature("olives"))])
    crust = Feature("crust", groups=[alternative(
        Feature("thin", attributes=[Attribute("crisp", BoolType(), default=True)]),
        Feature("thick", attributes=[Attribute("height", IntType(1, 5))]),
    )])
    order = Feature(
        "order",
        attributes=[
            Attribute("note", StringType(must_contain="{input}")),
            Attribute("slices", RangeType()),
            Attribute("spice", GradientType(element=FloatType(0, 1))),
            Attribute("words", StringListType(min_items=1)),
            Attribute("box", EnumType(("paper", "wood")), when=Sel("order.size.large"),
                      ignored_hint="Only large pizzas come in a box."),
            Attribute("diameter", FloatType(), required_when=Sel("order.size.large")),
        ],
        children=[size, toppings, extras, crust],
    )
    root = Feature("Shop", abstract=True, groups=[alternative(order, Feature("drink"))])
    constraints = [
        Constraint.requires(Sel("order.size.small"), CountCmp("order.toppings", "<=", 2),
                            "A small pizza takes at most two toppings.", "order.toppings"),
        Constraint.excludes(Sel("order.crust.thin"), Eq("order.box", "wood"),
                            "Thin crusts do not travel in wood boxes.", "order.box"),
    ]

    def no_double(data, ctx):
        names = [t.get("name") for t in data.get("order", {}).get("toppings", []) if isinstance(t, dict)]
        return [error("order.toppings", "A topping appears twice.")] if len(set(names)) != len(names) else []

    return FeatureModel(root, constraints, [Check(no_double, "toppings are distinct")], name="Shop")


def paths(issues):
    return sorted((i.severity, i.path) for i in issues)


def test_valid_configuration_has_no_issues():
    fm = pizza_model()
    data = {"order": {"size": "small", "crust": {"thin": {"crisp": False}},
                      "toppings": [{"name": "ham"}, {"name": "egg", "amount": 1.0}],
                      "extras": {"cheese": True}}}
    assert fm.validate(data) == []


def test_alternative_group_needs_exactly_one():
    fm = pizza_model()
    issues = fm.validate({"order": {"size": "small", "crust": {"thin": {}, "thick": {}},
                                    "toppings": [{"name": "a"}]}})
    assert [(i.path, i.code) for i in issues] == [("order.crust", "group")]
    assert "only one of thin or thick" in issues[0].message


def test_root_alternative_and_mandatory_feature_missing():
    fm = pizza_model()
    issues = fm.validate({})
    assert issues and issues[0].path == "" and "needs one of order or drink" in issues[0].message
    issues = fm.validate({"order": {"crust": "thin", "toppings": [{"name": "x"}]}})
    assert ("error", "order.size") in paths(issues)


def test_shorthand_and_unknown_choice_with_suggestion():
    fm = pizza_model()
    issues = fm.validate({"order": {"size": "lage", "crust": "thin", "toppings": [{"name": "x"}],
                                    "diameter": 30.0}})
    assert len(issues) == 1
    assert issues[0].path == "order.size"
    assert issues[0].hint == "Did you mean large?"


def test_cardinality_bounds():
    fm = pizza_model()
    base = {"size": "large", "crust": "thin", "diameter": 30.0}
    too_few = fm.validate({"order": {**base, "toppings": []}})
    assert [(i.path, i.code) for i in too_few] == [("order.toppings", "count")]
    too_many = fm.validate({"order": {**base, "toppings": [{"name": str(i)} for i in range(4)]}})
    assert [(i.path, i.code) for i in too_many] == [("order.toppings", "count")]
    assert "at most 3" in too_many[0].message


def test_or_group_needs_at_least_one_when_selected():
    fm = pizza_model()
    issues = fm.validate({"order": {"size": "small", "crust": "thin", "toppings": [{"name": "x"}],
                                    "extras": {}}})
    assert [(i.path, i.code) for i in issues] == [("order.extras", "group")]


@pytest.mark.parametrize("value,fragment", [
    (0.0, "greater than 0"),
    (1.5, "at most 1"),
    ("much", "must be a number"),
    (True, "must be a number"),
    (float("nan"), "finite"),
])
def test_float_domain_open_and_closed_bounds(value, fragment):
    fm = pizza_model()
    issues = fm.validate({"order": {"size": "small", "crust": "thin",
                                    "toppings": [{"name": "x", "amount": value}]}})
    assert [i.path for i in issues] == ["order.toppings[0].amount"]
    assert fragment in issues[0].message


def test_upper_bound_closed_accepts_the_bound():
    fm = pizza_model()
    assert fm.validate({"order": {"size": "small", "crust": "thin",
                                  "toppings": [{"name": "x", "amount": 1}]}}) == []


def test_typed_attributes_report_paths():
    fm = pizza_model()
    data = {"order": {"size": "small", "crust": {"thick": {"height": 9}}, "toppings": [{"name": "x"}],
                      "note": "no placeholder", "slices": [3, 3], "spice": [0.1, 2.0],
                      "words": []}}
    got = {i.path: i.message for i in fm.validate(data)}
    assert set(got) == {"order.crust.thick.height", "order.note", "order.slices",
                        "order.spice[1]", "order.words"}
    assert "{input}" in got["order.note"]
    assert "start must be smaller than the end" in got["order.slices"]


def test_gradient_with_filters():
    fm = pizza_model()
    ok = {"order": {"size": "small", "crust": "thin", "toppings": [{"name": "x"}],
                    "spice": [{"filter": "self_attn", "value": [0, 0.5]}, {"value": 0.2}]}}
    assert fm.validate(ok) == []
    bad = {"order": {**ok["order"], "spice": [{"filter": "mlp", "value": 3}, {"vale": 1}]}}
    got = {i.path for i in fm.validate(bad)}
    assert got == {"order.spice[0].value", "order.spice[1]"}


def test_relevance_condition_warns_and_required_when():
    fm = pizza_model()
    small = {"order": {"size": "small", "crust": "thin", "toppings": [{"name": "x"}], "box": "paper"}}
    issues = fm.validate(small)
    assert [(i.severity, i.path) for i in issues] == [("warning", "order.box")]
    assert issues[0].hint == "Only large pizzas come in a box."
    large = {"order": {"size": "large", "crust": "thin", "toppings": [{"name": "x"}]}}
    assert [(i.severity, i.path, i.code) for i in fm.validate(large)] == [("error", "order.diameter", "required")]


def test_cross_tree_constraints_and_checks():
    fm = pizza_model()
    data = {"order": {"size": "small", "crust": "thin",
                      "toppings": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}}
    msgs = {i.message for i in fm.validate(data)}
    assert "A small pizza takes at most two toppings." in msgs
    assert "A topping appears twice." in msgs
    wood = {"order": {"size": "large", "diameter": 1.0, "crust": "thin", "toppings": [{"name": "a"}],
                      "box": "wood"}}
    assert [i.message for i in fm.validate(wood)] == ["Thin crusts do not travel in wood boxes."]


def test_unknown_keys_and_non_mapping_never_raise():
    fm = pizza_model()
    issues = fm.validate({"order": {"size": "small", "crust": "thin", "toppings": [{"name": "x"}],
                                    "topings": 1}})
    assert [(i.path, i.hint) for i in issues] == [("order.topings", "Did you mean toppings?")]
    for junk in (None, 3, "text", [1, 2], {"order": 5}, {"order": {"toppings": "x"}},
                 {"order": {"toppings": [7], "size": {"small": 3}}}):
        assert fm.validate(junk), junk


def test_selection_records_features_attributes_and_counts():
    fm = pizza_model()
    issues, sel = fm.analyse({"order": {"size": "small", "crust": "thin",
                                        "toppings": [{"name": "a"}, {"name": "b"}]}})
    assert issues == []
    assert sel.selected("order.size.small") and not sel.selected("order.size.large")
    assert sel.counts["order.toppings"] == 2
    assert sel.attributes["order.toppings.name"] == ["a", "b"]


def test_exports_cover_the_structure():
    fm = pizza_model()
    tree = export.to_tree(fm)
    assert "toppings [1..3]" in tree and "<alternative>" in tree and "<or>" in tree
    js = export.to_json(fm)
    order = js["root"]["groups"][0]["children"][0]
    assert order["name"] == "order"
    tops = next(c for c in order["children"] if c["name"] == "toppings")
    assert tops["cardinality"] == [1, 3]
    amount = next(a for a in tops["attributes"] if a["name"] == "amount")
    assert amount["type"] == {"kind": "float", "minimum": 0, "maximum": 1, "min_open": True,
                              "max_open": False, "nullable": False}
    uvl = export.to_uvl(fm)
    assert "order_toppings cardinality [1..3]" in uvl
    assert "order_crust_thin => " in uvl
    assert "// - A small pizza takes at most two toppings." in uvl
    assert "// - toppings are distinct" in uvl


def test_add_branch_extends_the_root():
    fm = pizza_model()
    fm.add_branch(Feature("dessert", attributes=[Attribute("kind", StringType(), required=True)]))
    assert fm.find("dessert") is not None
    issues = fm.validate({"dessert": {}})
    assert [(i.path, i.code) for i in issues] == [("dessert.kind", "required")]
