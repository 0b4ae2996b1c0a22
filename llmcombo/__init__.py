"""llmcombo: a workbench for combining language models, built as a software product line."""

__version__ = "0.1.0"
