"""The UVL export parses with flamapy (optional extra `uvl`; CI installs it)."""

import pytest

from llmcombo.featuremodel import export
from llmcombo.productline import feature_model


def test_uvl_export_parses_with_flamapy(tmp_path):
    pytest.importorskip("flamapy.metamodels.fm_metamodel.transformations",
                        reason="install the 'uvl' extra to check the UVL export")
    from flamapy.metamodels.fm_metamodel.transformations import UVLReader

    fm = feature_model()
    path = tmp_path / "llmcombo.uvl"
    path.write_text(export.to_uvl(fm))
    parsed = UVLReader(str(path)).transform()
    names = {f.name for f in parsed.get_features()}
    # every feature and attribute of the model is a feature in UVL
    assert "merge_method_ties" in names and "moe_experts" in names
    assert "merge_models_parameters_density" in names
    assert len(names) == sum(1 + len(f.attributes) for f in fm.features() if f.path) + 1 \
        + len(fm.root.attributes)
    # the requires-constraints survive
    texts = [str(c.ast) for c in parsed.get_constraints()]
    assert any("merge_method_ties" in t and "merge_base_model" in t for t in texts)
    # clone cardinalities are kept as relations on the cloneable features
    models = parsed.get_feature_by_name("merge_models")
    assert models is not None
