"""The engine wing: the only part of llmcombo that imports mergekit.

* :mod:`~llmcombo.engine.registry` -- what mergekit declares (methods, parameters, MoE output
  architectures, chat templates), from a snapshot that does not import mergekit;
* :mod:`~llmcombo.engine.schema` -- mergekit's own models of its YAML documents (``parse``);
* :mod:`~llmcombo.engine.hooks` -- progress, cancel and log capture inside mergekit;
* :mod:`~llmcombo.engine.moe` -- which MoE output architecture mergekit would build;
* :mod:`~llmcombo.engine.execute` -- ``run_merge`` / the MoE builder with llmcombo's options.

Everything above this wing talks to mergekit through these functions, so a mergekit release that
moves things changes this folder only.
"""
