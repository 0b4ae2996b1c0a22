"""A small feature-model metamodel (features, groups, cardinalities, typed attributes,
cross-tree constraints, validation, UVL/JSON export). It knows nothing about language models."""

from llmcombo.featuremodel.expr import (And, CountCmp, Eq, Expr, Implies, IsSet, Not, Or, Sel,
                                        Selection, any_selected)
from llmcombo.featuremodel.issues import Issue, error, has_errors, warning
from llmcombo.featuremodel.elements import Attribute, Constraint
from llmcombo.featuremodel.model import (MANY, Check, Context, Feature, FeatureModel, Group, alternative,
                                         normalise_instance, or_group)
from llmcombo.featuremodel.types import (AttrType, BoolType, EnumType, FloatType, GradientType,
                                         IntType, MappingType, ModelRefType, NumberType, RangeType,
                                         StringListType, StringType, scalars_of)


__all__ = [
    "And", "CountCmp", "Eq", "Expr", "Implies", "IsSet", "Not", "Or", "Sel", "Selection",
    "any_selected", "Issue", "error", "warning", "has_errors", "MANY", "Attribute", "Check",
    "Constraint", "Context", "Feature", "FeatureModel", "Group", "alternative", "or_group",
    "normalise_instance", "AttrType", "BoolType", "EnumType", "FloatType", "GradientType",
    "IntType", "MappingType", "ModelRefType", "NumberType", "RangeType", "StringListType",
    "StringType", "scalars_of",
]
