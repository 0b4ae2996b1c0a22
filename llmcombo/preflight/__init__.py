"""Pre-flight: model-aware checks and a resource estimate, before any weight is read.

Everything here reads ``config.json`` files and safetensors *headers* only, never tensors:

* :func:`check_models` (:mod:`~llmcombo.preflight.checks`) -- do the referenced models exist, are
  they of one architecture family, do their shapes agree, are slice layer ranges inside the
  models, can mergekit build a mixture of experts from them? Returns
  :class:`~llmcombo.featuremodel.issues.Issue` objects whose ``path`` names the offending field
  (``merge.models[1].model``).
* :func:`estimate` / :func:`check_resources` (:mod:`~llmcombo.preflight.resources`) -- disk
  needed for the output, a rough RAM figure, free space where the output goes; refuses (an error
  issue) when the output cannot fit.
* :func:`inspect_model` (:mod:`~llmcombo.preflight.models`) -- what one reference points to.

Hub ids are checked by fetching only their ``config.json`` (from the local Hugging Face cache
when it is there). When the Hub cannot be reached the check becomes a *warning* that says so;
nothing here fails because the machine is offline.
"""

from llmcombo.preflight.checks import check_models
from llmcombo.preflight.models import ModelInfo, hub_reachable, inspect_model, inspect_models
from llmcombo.preflight.resources import (DISK_FREE_ENV, RAM_AVAILABLE_ENV, Estimate, InputSize,
                                          available_ram, check_resources, estimate, fmt_bytes,
                                          free_disk, model_size, parse_size)
from llmcombo.productline import ModelSlot, model_slots

__all__ = [
    "DISK_FREE_ENV", "RAM_AVAILABLE_ENV", "Estimate", "InputSize", "ModelInfo", "ModelSlot",
    "available_ram", "check_models", "check_resources", "estimate", "fmt_bytes", "free_disk",
    "hub_reachable", "inspect_model", "inspect_models", "model_size", "model_slots", "parse_size",
]
