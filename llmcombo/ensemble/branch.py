"""The ensemble branch of the feature model (:mod:`llmcombo.ensemble.spec` registers it): the
features and attributes of pipeline, vote and router, the constraints between them, and where a
configuration names its models (:func:`model_slots`).

Every place that names a model (a pipeline stage, a vote member, a route, a judge) carries the
member attributes (:func:`member_attributes`); the docstring of :mod:`llmcombo.ensemble.spec`
describes them.
"""

from __future__ import annotations

from llmcombo.featuremodel import (
    MANY, Attribute, Constraint, CountCmp, EnumType, Eq, Feature, FloatType, IntType,
    ModelRefType, Or, Sel, StringListType, StringType, alternative,
)
from llmcombo.ensemble import formats
from llmcombo.ensemble.backends import backend_attributes
from llmcombo.productline import ModelSlot
from llmcombo.shapes import as_list as _as_list

DEFAULT_TEMPLATE = "[ORDEN] {input} [COMANDO]"
SELECTOR_KINDS = {
    "label_model": "a selector model that answers a route label (LLM1 / LLM2)",
    "embedding": "similarity of the prompt's hidden states to each route's example prompts",
    "keywords": "keywords of each route found in the prompt",
    "classifier": "a classifier on hidden states (llmcombo.ensemble.train_selector)",
}
TIE_RULES = {
    "first": "the tied answer given first (members in order, then samples in order)",
    "random": "a random tied answer (seeded by sampling.seed)",
    "likelihood": "the tied answer the members found most likely (mean log-probability)",
    "judge": "the judge picks among the tied answers",
}
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")

E = "ensemble"
VOTE = "ensemble.vote"
ROUTER = "ensemble.router"
SEL_KIND = "ensemble.router.selector.kind"
JUDGE_KIND = "ensemble.vote.judge.kind"


# ---------------------------------------------------------------------------------------------
# the branch
# ---------------------------------------------------------------------------------------------


def member_attributes() -> list[Attribute]:
    """What every member (stage, vote member, route) says about its model."""
    outputs = {name: o.description for name, o in formats.outputs().items()}
    return [
        Attribute("model", ModelRefType(), required=True, label="model",
                  description="a model folder, a Hugging Face id (owner/name) or zoo:NAME"),
        Attribute("template", StringType(must_contain="{input}", multiline=True),
                  default=DEFAULT_TEMPLATE, label="prompt template",
                  description="the text the model receives; {input} is replaced by the input "
                              "({prompt}: the user's original prompt)"),
        Attribute("output", EnumType(tuple(outputs), labels=outputs), default="command",
                  label="read the answer as",
                  description="command (zoo task format), first line, or the whole text"),
        Attribute("max_new_tokens", IntType(1, 4096), default=24, label="max new tokens",
                  advanced=True, description="the most tokens this model may generate"),
    ] + backend_attributes()


def _pipeline() -> Feature:
    return Feature(
        "pipeline", label="Pipeline",
        description="The prompt goes to the first model; its answer, placed in the next "
                    "template, is the next model's prompt, and so on.",
        children=[Feature("stages", label="stages", card=(2, MANY), attributes=member_attributes(),
                          description="The models in the order they run.")],
    )


def _vote() -> Feature:
    judge_model = Eq(JUDGE_KIND, "model")
    judge_functions = formats.judges()
    sampling = Feature(
        "sampling", label="sampling", optional=True,
        description="How each answer is sampled (temperature 0: greedy, always the same answer).",
        attributes=[
            Attribute("temperature", FloatType(0.0, None), default=1.0, label="temperature",
                      description="randomness of each answer; 0 is greedy"),
            Attribute("top_k", IntType(0, None), default=0, label="top-k",
                      description="sample among the k most likely tokens (0: all)"),
            Attribute("top_p", FloatType(0.0, 1.0, min_open=True), default=1.0, label="top-p",
                      description="sample among the most likely tokens covering this probability"),
            Attribute("seed", IntType(0, None), label="seed",
                      description="makes the samples reproducible (empty: different every run)"),
        ],
    )
    judge = Feature(
        "judge", label="judge", optional=True,
        description="Picks the best answer: a model (the candidate it finds most likely) or a "
                    "scoring function.",
        attributes=[
            Attribute("kind", EnumType(("model", "function"), labels={
                "model": "a judge model scores each candidate answer",
                "function": "a scoring function scores each candidate answer"}),
                required=True, label="judge kind"),
            Attribute("model", ModelRefType(), label="judge model", required_when=judge_model,
                      when=judge_model, ignored_hint="Only a judge of kind model uses a model.",
                      description="scores each candidate by how likely it finds it"),
            Attribute("template", StringType(must_contain="{input}", multiline=True),
                      default=DEFAULT_TEMPLATE, label="judge prompt template", when=judge_model,
                      ignored_hint="Only a judge of kind model uses a template."),
            *backend_attributes(),
            Attribute("function", EnumType(tuple(judge_functions), labels=judge_functions,
                                           open=True, open_type=StringType()),
                      label="scoring function", required_when=Eq(JUDGE_KIND, "function"),
                      when=Eq(JUDGE_KIND, "function"),
                      ignored_hint="Only a judge of kind function uses a function.",
                      description="known_command, longest, shortest, or module:function "
                                  "called as fn(prompt, answer) -> number"),
        ],
    )
    return Feature(
        "vote", label="Vote",
        description="The same prompt goes to every member (or N samples of one model); the "
                    "answer most of them give wins, or a judge picks the best.",
        attributes=[
            Attribute("samples", IntType(1, 64), default=1,
                      defaults=[(CountCmp("ensemble.vote.members", "==", 1), 3)],
                      label="answers per member",
                      description="how many answers each member gives (sampled in one batch)"),
            Attribute("decide", EnumType(("majority", "judge"), labels={
                "majority": "the answer given most often wins",
                "judge": "the judge picks the best answer"}), default="majority",
                label="how the winner is decided"),
            Attribute("tie_break", EnumType(tuple(TIE_RULES), labels=TIE_RULES), label="tie rule",
                      description="how a tie between equally frequent answers is broken"),
        ],
        children=[Feature("members", label="members", card=(1, MANY),
                          attributes=member_attributes(),
                          description="The models that answer (one model sampled N times, or "
                                      "several models)."),
                  sampling, judge],
    )


def _router() -> Feature:
    kind_uses_model = Or((Eq(SEL_KIND, "label_model"), Eq(SEL_KIND, "embedding"),
                          Eq(SEL_KIND, "classifier")))
    kind_embeds = Or((Eq(SEL_KIND, "label_model"), Eq(SEL_KIND, "embedding")))
    selector = Feature(
        "selector", label="selector", description="Decides which route answers a prompt.",
        attributes=[
            Attribute("kind", EnumType(tuple(SELECTOR_KINDS), labels=SELECTOR_KINDS),
                      required=True, label="selector kind"),
            Attribute("model", ModelRefType(), label="selector model",
                      required_when=kind_uses_model, when=kind_uses_model,
                      ignored_hint="The keyword selector uses no model; remove it.",
                      description="label_model: the model that answers a label; embedding: the "
                                  "model whose hidden states are compared; classifier: the "
                                  "folder written by llmcombo.ensemble.train_selector"),
            Attribute("template", StringType(must_contain="{input}", multiline=True),
                      default=DEFAULT_TEMPLATE, label="selector prompt template", when=kind_embeds,
                      ignored_hint="Only the label_model and embedding selectors use a template."),
            Attribute("threshold", FloatType(0.0, 1.0), default=0.5, label="confidence threshold",
                      description="below this confidence the fallback route answers"),
            Attribute("layer", IntType(), default=-1, label="hidden layer",
                      when=Eq(SEL_KIND, "embedding"), advanced=True,
                      ignored_hint="Only the embedding selector reads a hidden layer.",
                      description="which hidden states are compared: -1 the last layer, 0 the "
                                  "token embeddings only (cheapest, like mergekit's cheap_embed), "
                                  "k the k-th layer (the forward pass stops there)"),
            Attribute("temperature", FloatType(0.0, None, min_open=True), default=0.05,
                      label="similarity temperature", when=Eq(SEL_KIND, "embedding"),
                      advanced=True, ignored_hint="Only the embedding selector uses it.",
                      description="confidence is a softmax of the cosine similarities divided "
                                  "by this; smaller is more decisive"),
            *backend_attributes(),
        ],
    )
    route_attrs = [Attribute("label", StringType(), required=True, label="label",
                             description="the route's name; a label model answers it")]
    route_attrs += member_attributes()
    route_attrs += [
        Attribute("examples", StringListType(min_items=1), label="example prompts",
                  required_when=Eq(SEL_KIND, "embedding"),
                  description="typical prompts of this route (the embedding selector compares "
                              "with them)"),
        Attribute("keywords", StringListType(min_items=1), label="keywords",
                  required_when=Eq(SEL_KIND, "keywords"),
                  description="words that send a prompt here (keyword selector; a keyword matches "
                              "words starting with it, ignoring case and accents)"),
    ]
    return Feature(
        "router", label="Router",
        description="A selector decides which model answers each prompt.",
        attributes=[Attribute("fallback", StringType(), label="fallback route",
                              description="the route that answers when the selector is unsure "
                                          "or answers something that is not a route (default: "
                                          "the first route)")],
        children=[selector,
                  Feature("routes", label="routes", card=(2, MANY), attributes=route_attrs,
                          description="A router needs at least two routes to choose between.")],
    )


def ensemble_branch() -> Feature:
    return Feature(
        "ensemble", label="Ensemble",
        description="Combine models at run time: a pipeline, a vote, or a router.",
        attributes=[
            Attribute("device", EnumType(DEVICES), default="auto", label="device",
                      description="auto: CUDA when available, else CPU"),
            Attribute("dtype", EnumType(DTYPES), default="auto", label="dtype", advanced=True,
                      description="auto: float32 on CPU, the model's own dtype on CUDA"),
        ],
        groups=[alternative(_pipeline(), _vote(), _router())],
    )


def ensemble_constraints() -> list[Constraint]:
    return [
        Constraint.requires(Eq("ensemble.vote.decide", "judge"), Sel("ensemble.vote.judge"),
                            "The vote is decided by a judge, but no judge is set.",
                            "ensemble.vote.judge", "Add a judge (a model or a scoring function), "
                                                   "or decide by majority."),
        Constraint.requires(Eq("ensemble.vote.tie_break", "judge"), Sel("ensemble.vote.judge"),
                            "Ties are broken by the judge, but no judge is set.",
                            "ensemble.vote.judge", "Add a judge, or choose another tie rule."),
    ]


def _kind_of(ens: dict) -> str | None:
    kinds = [k for k in ("pipeline", "vote", "router") if isinstance(ens.get(k), dict)]
    return kinds[0] if len(kinds) == 1 else None


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model an ensemble configuration names, with the path of its field."""
    ens = config.get(E) if isinstance(config, dict) else None
    if not isinstance(ens, dict):
        return []
    out: list[ModelSlot] = []
    kind = _kind_of(ens)
    if kind is None:
        return out
    body = ens[kind]  # a mapping: _kind_of says so
    key = {"pipeline": "stages", "vote": "members", "router": "routes"}[kind]
    for i, m in enumerate(_as_list(body.get(key))):
        if isinstance(m, dict) and isinstance(m.get("model"), str):
            out.append(ModelSlot(f"{E}.{kind}.{key}[{i}].model", m["model"], "member"))
    if kind == "vote" and isinstance(body.get("judge"), dict):
        j = body["judge"]
        if j.get("kind") == "model" and isinstance(j.get("model"), str):
            out.append(ModelSlot(f"{VOTE}.judge.model", j["model"], "judge"))
    if kind == "router" and isinstance(body.get("selector"), dict):
        s = body["selector"]
        if s.get("kind") != "keywords" and isinstance(s.get("model"), str):
            role = "classifier" if s.get("kind") == "classifier" else "selector"
            out.append(ModelSlot(f"{ROUTER}.selector.model", s["model"], role))
    return out
