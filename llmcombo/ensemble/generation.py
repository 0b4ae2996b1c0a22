"""What a model backend returns (transformers: :mod:`llmcombo.ensemble.members`, llama.cpp:
:mod:`llmcombo.ensemble.llama_backend`): the same dataclasses, so products, votes, selectors and
traces do not know which backend answered."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generation:
    text: str  # generated text (new tokens only, cut at end of sequence)
    answer: str  # read from text according to the member's output mode
    logprob: float  # sum of the kept tokens' log-probabilities under the model (unwarped)
    tokens: int


@dataclass
class Scored:
    """A continuation scored after its prompt."""

    logprobs: list[float]  # of each continuation token, end of sequence included
    greedy: bool  # greedy decoding of the prompt writes exactly this continuation, then stops

    def reduce(self, how: str = "mean") -> float:
        if not self.logprobs:
            return float("-inf")
        total = sum(self.logprobs)
        return total if how == "sum" else total / len(self.logprobs)
