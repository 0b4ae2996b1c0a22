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

# One plain sentence per parameter: what it DOES to the result (the form shows it beside the
# field; the interval is written in words next to it by the form).
PARAM_HELP: dict[str, str] = {
    "weight": "how much of this model goes into the result: a larger weight pulls the merge "
              "towards this model",
    "density": "the share of this model's changes (its difference from the base) that is kept: 1 "
               "keeps them all, 0.5 keeps the larger half and drops the rest",
    "gamma": "the share of the very largest changes that is dropped as outliers",
    "epsilon": "DELLA: how much the chance of keeping a change grows with its size; RAM: how "
               "small a change may be and still count as a change",
    "lambda": "multiplies the combined changes before they are added to the base: above 1 "
              "strengthens them, below 1 softens them",
    "normalize": "divide by the sum of the weights, so that weights 1 and 1 act like 0.5 and 0.5",
    "rescale": "after dropping changes, scale up the ones kept so their total effect stays the "
               "same",
    "int8_mask": "keep the drop masks as small integers to save memory (same result)",
    "t": "where the result lies between the two models: 0 is the base model, 1 the other model, "
         "0.5 halfway",
    "filter_wise": "model stock: work out the mixing ratio for each row of a tensor instead of "
                   "once per tensor",
    "select_topk": "SCE: the share of changes kept, those on which the models disagree most",
    "max_iter": "the most rounds the Karcher mean may take to settle",
    "tol": "how close two rounds of the Karcher mean must be to stop",
    "scale": "multiplies this tensor by a number",
    "nuslerp_row_wise": "NuSLERP: interpolate each row of a tensor instead of each column",
    "nuslerp_flatten": "NuSLERP: treat each tensor as one long list of numbers",
    "normalize_weights": "Multi-SLERP: make the weights add up to 1",
    "eps": "a tiny number that keeps the arithmetic stable (leave it as it is)",
    "r": "RAM+: how strongly overlapping changes are scaled back",
    "alpha": "RAM+: the most the overlap correction may scale a change",
}

BASE_REASON: dict[str, str] = {
    "task_arithmetic": "task vectors are measured as the difference from the base model",
    "ties": "task vectors are measured as the difference from the base model",
    "slerp": "SLERP interpolates from the base model towards the other model",
    "nearswap": "NearSwap moves the base model's weights towards the other model",
    "model_stock": "Model Stock interpolates towards the pretrained base model",
}

# One plain sentence per method: what the result is, for someone who has not read the paper.
METHOD_HELP: dict[str, str] = {
    "linear": "A weighted average of the models' weights: simple, and the usual first try.",
    "slerp": "Blends exactly two models along a curve instead of a straight line; t says where "
             "between them.",
    "nuslerp": "SLERP for two models, optionally blending their changes from a base model.",
    "multislerp": "SLERP for several models at once (optionally around a base model).",
    "task_arithmetic": "Adds each model's changes (what its fine-tuning taught it, measured from the "
                       "base model) to the base model.",
    "ties": "Task arithmetic that keeps only each model's largest changes (density) and, where "
            "models pull a weight in opposite directions, follows the stronger side.",
    "dare_ties": "Like TIES, but drops changes at random (density is the share kept) and scales up "
                 "the ones kept.",
    "dare_linear": "Drops changes at random and scales up the ones kept, then adds them without "
                   "settling conflicts.",
    "breadcrumbs": "Drops both the smallest and the very largest changes, then adds the rest.",
    "breadcrumbs_ties": "Breadcrumbs, settling conflicts between models like TIES.",
    "della": "Drops small changes more often than large ones (at random), settling conflicts like "
             "TIES.",
    "della_linear": "Drops small changes more often than large ones (at random), without settling "
                    "conflicts.",
    "model_stock": "Finds how far to move from the base towards the average of several "
                   "fine-tunes of it, from the angle between them.",
    "karcher": "An average of the models that respects the geometry of their weights.",
    "passthrough": "Copies layers unchanged: stack slices of models into a taller model "
                   "(a frankenmerge).",
    "sce": "Keeps the changes on which the models disagree most, then merges them.",
    "arcee_fusion": "Takes from the other model only the parts that differ most from the base.",
    "nearswap": "Moves the base model towards the other model where their weights are already "
                "close.",
    "ram": "Averages the models' changes, scaling back where several models change the same "
           "weights.",
    "ramplus_tl": "RAM with the scaling worked out tensor by tensor.",
}


def param_domain(method: str, name: str) -> NumberType | None:
    """The advised range of a parameter for a method (None: any value of its type)."""
    return PARAM_RANGES.get((method, name)) or PARAM_RANGES.get(("*", name))


def engine_limit(method: str, name: str) -> NumberType | None:
    """The range outside which mergekit fails for this method's parameter (None: none)."""
    return ENGINE_LIMITS.get((method, name)) or ENGINE_LIMITS.get(("*", name))
