"""What mergekit does not declare, llmcombo's own table: parameter ranges per method (advice) and
the few limits where mergekit fails, plain explanations of methods and parameters, why a method
needs a base model, the names mergekit reads for dtypes and gate modes."""

from __future__ import annotations

from llmcombo.featuremodel import FloatType, IntType, NumberType

# What mergekit's ``dtype_from_name`` reads (any other name stops the merge); "torch.float16" is
# read as "float16". The form offers the floating-point ones.
DTYPES = ("float32", "float16", "bfloat16", "float64")
ENGINE_DTYPES = DTYPES + ("int64",)
DTYPE_SPELLINGS = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32",
                   "float": "float32", "fp64": "float64", "double": "float64"}
# mergekit's gate modes ("hidden" takes the last token's hidden state, "hidden_avg" the average
# over the prompt; any other name fails while the gates are computed)
GATE_MODES = ("hidden", "cheap_embed", "random", "uniform_random", "hidden_avg", "hidden_last")
RANDOM_GATES = ("random", "uniform_random")  # gates that do not come from the prompts
PROMPTLESS_GATES = ("random",)  # mergekit checks no prompt at all for these

# Ranges by (method, parameter); "*" applies to every method with that parameter. These are
# advice: mergekit takes any number for them (a value outside is a warning), e.g. density 1.5
# keeps everything like 1, and a density of 0 drops the task vector (a per-layer gradient may
# use it on purpose).
PARAM_RANGES: dict[tuple[str, str], NumberType] = {
    ("*", "density"): FloatType(0.0, 1.0),
    ("*", "gamma"): FloatType(0.0, 1.0, max_open=True),
    ("della", "epsilon"): FloatType(0.0, 0.5, max_open=True),
    ("della_linear", "epsilon"): FloatType(0.0, 0.5, max_open=True),
    ("ram", "epsilon"): FloatType(0.0, None),
    ("ramplus_tl", "epsilon"): FloatType(0.0, None),
    ("ramplus_tl", "r"): FloatType(0.0, None),
    ("ramplus_tl", "alpha"): FloatType(0.0, None),
    ("slerp", "t"): FloatType(0.0, 1.0),
    ("nearswap", "t"): FloatType(0.0, None, min_open=True),
    ("sce", "select_topk"): FloatType(0.0, 1.0, min_open=True),
    ("karcher", "max_iter"): IntType(1, None),
    ("karcher", "tol"): FloatType(0.0, None, min_open=True),
    ("multislerp", "eps"): FloatType(0.0, None, min_open=True),
    ("*", "lambda"): FloatType(),
    ("*", "weight"): FloatType(),
}

# Where mergekit fails (an error): DARE drops entries with torch.bernoulli, which refuses a
# negative keep probability. tests/test_engine_truth.py runs each of these.
ENGINE_LIMITS: dict[tuple[str, str], NumberType] = {
    ("dare_ties", "density"): FloatType(0.0, None),
    ("dare_linear", "density"): FloatType(0.0, None),
}

PARAM_HELP: dict[str, str] = {
    "weight": "how much this model contributes",
    "density": "fraction of the task vector's weights kept, in [0, 1] (0 drops it)",
    "gamma": "fraction of the largest task-vector weights removed as outliers",
    "epsilon": "DELLA: spread of keep probabilities around density / RAM: threshold for 'changed'",
    "lambda": "scale applied to the merged task vector",
    "normalize": "divide by the sum of weights",
    "rescale": "rescale kept weights to preserve the norm",
    "int8_mask": "store masks as int8 to save memory",
    "t": "SLERP: interpolation factor from the base (0) to the other model (1)",
    "filter_wise": "model stock: compute the ratio per row instead of per tensor",
    "select_topk": "SCE: fraction of elements with the highest variance kept",
    "max_iter": "maximum iterations of the Karcher mean",
    "tol": "convergence tolerance of the Karcher mean",
    "scale": "multiply this tensor by a factor",
    "nuslerp_row_wise": "NuSLERP: interpolate row vectors instead of column vectors",
    "nuslerp_flatten": "NuSLERP: treat tensors as flattened vectors",
    "normalize_weights": "Multi-SLERP: make the weights sum to 1",
    "eps": "small constant for numerical stability",
    "r": "RAM+: rescale strength",
    "alpha": "RAM+: cap on the overlap ratio",
}

BASE_REASON: dict[str, str] = {
    "task_arithmetic": "task vectors are measured as the difference from the base model",
    "ties": "task vectors are measured as the difference from the base model",
    "slerp": "SLERP interpolates from the base model towards the other model",
    "nearswap": "NearSwap moves the base model's weights towards the other model",
    "model_stock": "Model Stock interpolates towards the pretrained base model",
}

METHOD_HELP: dict[str, str] = {
    "linear": "Weighted average of the models.",
    "slerp": "Spherical interpolation between exactly two models.",
    "nuslerp": "Spherical interpolation between two models, optionally using a base model's task vectors.",
    "multislerp": "Spherical interpolation of several models (optionally around a base).",
    "task_arithmetic": "Adds the models' task vectors (model minus base) to the base.",
    "ties": "Task arithmetic that trims small changes and resolves sign conflicts (TIES).",
    "dare_ties": "Randomly drops task-vector entries, rescales, then TIES sign consensus.",
    "dare_linear": "Randomly drops task-vector entries and rescales, without sign consensus.",
    "breadcrumbs": "Drops both the smallest and the largest task-vector entries.",
    "breadcrumbs_ties": "Breadcrumbs sparsification with TIES sign consensus.",
    "della": "Magnitude-ranked random dropping (DELLA) with sign consensus.",
    "della_linear": "Magnitude-ranked random dropping (DELLA) without sign consensus.",
    "model_stock": "Geometric interpolation using at least two fine-tunes of one base.",
    "karcher": "Riemannian (Karcher) mean of the models' weights.",
    "passthrough": "Copies tensors unchanged: stack layer slices into a frankenmerge.",
    "sce": "Select, Calculate, Erase: keeps high-variance task-vector entries.",
    "arcee_fusion": "Fuses the parts of one model that differ most from the base.",
    "nearswap": "Interpolates towards the other model where weights are already close.",
    "ram": "Reinforced Agent Merging: averages task vectors, rescaled by overlap.",
    "ramplus_tl": "RAM+ with tensor-local overlap rescaling.",
}


def param_domain(method: str, name: str) -> NumberType | None:
    """The advised range of a parameter for a method (None: any value of its type)."""
    return PARAM_RANGES.get((method, name)) or PARAM_RANGES.get(("*", name))


def engine_limit(method: str, name: str) -> NumberType | None:
    """The range outside which mergekit fails for this method's parameter (None: none)."""
    return ENGINE_LIMITS.get((method, name)) or ENGINE_LIMITS.get(("*", name))
