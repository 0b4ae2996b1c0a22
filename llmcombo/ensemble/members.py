"""The three things ensembles ask of a model: generate (greedy or N samples in one batched
call), embed (pooled hidden states) and score (log-probability of a given continuation), and the
:class:`Member` of a product that asks them.

Two backends: ``transformers`` (this module) and ``llama_cpp``
(:mod:`llmcombo.ensemble.llama_backend`: a GGUF file, or a model folder converted once). The
functions below take either kind of loaded model and return the same objects.

Models are loaded once and cached (:mod:`llmcombo.ensemble.loading`: ``(resolved path, device,
dtype)``, the ``LLMCOMBO_MODEL_CACHE`` (default 8) most recently used models); its names
(:func:`load_model`, :func:`clear_cache`, :class:`LoadedModel`...) are importable from here too.
"""

from __future__ import annotations

from typing import Any, Sequence

from llmcombo.ensemble.formats import read_answer, render
from llmcombo.ensemble.generation import Generation, Scored
from llmcombo.ensemble.loading import (
    BACKENDS, DEFAULT_CACHE_SIZE, LoadedModel, backend_of, cache_size, cached_models, clear_cache,
    load_model, locate, pick_device,
)
from llmcombo.errors import UserError

# re-exported: loading lives in llmcombo.ensemble.loading, the answer types in .generation and the
# prompt/answer formats in .formats; callers use them as members.X
__all__ = [
    "BACKENDS", "BATCH_SIZE", "DEFAULT_CACHE_SIZE", "SHARED_CACHE_FROM", "Generation",
    "LoadedModel", "Member", "Scored", "backend_of", "cache_size", "cached_models", "clear_cache",
    "count_tokens", "embed", "generate", "load_model", "locate", "pick_device", "read_answer",
    "render", "score", "score_options", "score_rows",
]

BATCH_SIZE = 64


def count_tokens(lm: Any, text: str) -> int:
    """How many tokens ``text`` is (no special tokens added)."""
    if not isinstance(lm, LoadedModel):
        return lm.count_tokens(text)
    return len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])


# ---------------------------------------------------------------------------------------------
# prompting and reading answers
# ---------------------------------------------------------------------------------------------



# ---------------------------------------------------------------------------------------------
# generate / embed / score
# ---------------------------------------------------------------------------------------------


def generate(lm: LoadedModel, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 24,
             temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
             output: str = "text", batch_size: int = BATCH_SIZE) -> list[list[Generation]]:
    """``n`` answers per prompt. All ``n`` answers of a chunk of prompts come from ONE call of
    ``model.generate`` (``num_return_sequences=n``); temperature 0 is greedy. A llama.cpp model
    samples the ``n`` answers as ``n`` sequences of one decode loop."""
    if not isinstance(lm, LoadedModel):
        return lm.generate(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, seed=seed, output=output)
    import torch

    tok, model = lm.tokenizer, lm.model
    sample = temperature > 0
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sample,
                              "num_return_sequences": n, "eos_token_id": tok.eos_token_id,
                              "pad_token_id": tok.pad_token_id, "return_dict_in_generate": True,
                              "output_logits": True}
    if sample:
        kwargs.update(temperature=temperature, top_k=top_k or None, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_k=None, top_p=None)
    if n > 1 and not sample:
        # greedy answers are all equal: compute one, repeat it
        one = generate(lm, prompts, n=1, max_new_tokens=max_new_tokens, output=output,
                       batch_size=batch_size)
        return [g * n for g in one]
    stop = lm.stop_ids
    out: list[list[Generation]] = []
    step = max(1, batch_size // max(1, n))
    with lm.lock, torch.inference_mode(), _seeded(seed, lm.device):
        for start in range(0, len(prompts), step):
            chunk = list(prompts[start: start + step])
            enc = tok(chunk, return_tensors="pt", padding=True).to(lm.device)
            res = model.generate(**enc, **kwargs)
            new = res.sequences[:, enc["input_ids"].shape[1]:]
            lps = torch.stack([torch.log_softmax(step_logits.float(), dim=-1)
                               .gather(1, new[:, t: t + 1]).squeeze(1)
                               for t, step_logits in enumerate(res.logits)], dim=1) \
                if res.logits else torch.zeros(new.shape)
            rows = new.tolist()
            for i in range(len(chunk)):
                gens = []
                for j in range(n):
                    r = i * n + j
                    row = rows[r]
                    cut = next((k for k, t in enumerate(row) if t in stop), len(row))
                    text = tok.decode(row[:cut], skip_special_tokens=True)
                    gens.append(Generation(text, read_answer(text, output),
                                           float(lps[r, :cut].sum()), cut))
                out.append(gens)
    return out


class _seeded:
    """Seed torch's generator inside the block, leaving the global random state as it was."""

    def __init__(self, seed: int | None, device: str):
        self.seed, self.device, self.ctx = seed, device, None

    def __enter__(self):
        if self.seed is None:
            return self
        import torch

        devices = [self.device] if str(self.device).startswith("cuda") else []
        self.ctx = torch.random.fork_rng(devices=devices)
        self.ctx.__enter__()
        torch.manual_seed(self.seed)
        return self

    def __exit__(self, *exc):
        if self.ctx is not None:
            return self.ctx.__exit__(*exc)
        return False


def _positions(mask):
    """Position ids that ignore left padding (models with absolute positions need them)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class _StopForward(Exception):
    """Raised by a forward hook to end a forward pass once the wanted layer has run."""

    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden


def _decoder_layers(model):
    """The decoder layers of a transformers causal LM (Llama/Mistral/Qwen: ``layers``, GPT-2:
    ``h``), or None for a layout we do not know."""
    import torch

    base = model.base_model
    for name in ("layers", "h"):
        layers = getattr(base, name, None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    return None


def embed(lm: LoadedModel, texts: Sequence[str], layer: int = -1,
          batch_size: int = BATCH_SIZE):
    """Mean-pooled hidden states of ``layer``, L2-normalised: a float32 tensor
    ``(len(texts), hidden)`` on the CPU.

    ``layer`` counts like ``output_hidden_states``: 0 is the token embeddings (no transformer
    layer runs), ``k`` the output of the k-th decoder layer, -1 the last hidden state (after the
    final norm), -2 the layer before it... A forward pass stops right after layer ``k`` (a forward
    hook ends it), so a shallow layer costs a fraction of a full pass."""
    if not isinstance(lm, LoadedModel):
        return lm.embed(texts, layer)
    import torch

    tok, model = lm.tokenizer, lm.model
    layers = _decoder_layers(model)
    n_layers = len(layers) if layers is not None else model.config.num_hidden_layers
    k = layer if layer >= 0 else n_layers + 1 + layer
    if not 0 <= k <= n_layers:
        raise UserError(f"layer {layer} does not exist: the model has {n_layers} layers "
                        f"(0 to {n_layers}, or -1 to -{n_layers + 1} from the end).",
                        field="ensemble.router.selector.layer",
                        hint="Use -1 (the last hidden state) or a smaller layer.")
    outs = []
    with lm.lock, torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tok(list(texts[start: start + batch_size]), return_tensors="pt",
                      padding=True).to(lm.device)
            if k == 0:
                h = model.get_input_embeddings()(enc["input_ids"])
            else:
                base = model.base_model
                kwargs = dict(enc, position_ids=_positions(enc["attention_mask"]),
                              use_cache=False)
                if k == n_layers:  # the last hidden state, final norm included
                    h = base(**kwargs).last_hidden_state
                elif layers is not None:
                    def stop(_module, _inputs, output):
                        raise _StopForward(output[0] if isinstance(output, tuple) else output)

                    handle = layers[k - 1].register_forward_hook(stop)
                    try:
                        base(**kwargs)
                        raise RuntimeError("the forward pass did not reach the hooked layer")
                    except _StopForward as done:
                        h = done.hidden
                    finally:
                        handle.remove()
                else:  # unknown layout: full pass, pick the layer
                    h = base(**kwargs, output_hidden_states=True).hidden_states[k]
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
            outs.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
    return torch.cat(outs) if outs else torch.zeros((0, 0))


def score_rows(lm: LoadedModel, prompts: Sequence[str], continuations: Sequence[str],
               batch_size: int = BATCH_SIZE) -> list[Scored]:
    """Each continuation (followed by end of sequence) after its prompt, teacher-forced: one
    batched forward pass per chunk, no generation. Gives the token log-probabilities and whether
    the model's most likely token at every step is the continuation's (then greedy decoding would
    write exactly it)."""
    if not isinstance(lm, LoadedModel):
        return lm.score_rows(prompts, continuations)
    import torch

    tok, model = lm.tokenizer, lm.model
    eos = tok.eos_token_id
    rows = []
    for prompt, cont in zip(prompts, continuations):
        p_ids = list(tok(prompt)["input_ids"])
        sep = "" if not cont or prompt.endswith((" ", "\n")) else " "
        full = list(tok(prompt + sep + cont)["input_ids"])
        if full[: len(p_ids)] == p_ids:
            c_ids = full[len(p_ids):]
        else:  # the tokenizer merged across the boundary: tokenize the answer alone
            c_ids = list(tok(sep + cont, add_special_tokens=False)["input_ids"])
        rows.append((p_ids, c_ids + ([eos] if eos is not None else [])))
    out: list[Scored] = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    with lm.lock, torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start: start + batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (p, c) in enumerate(chunk):
                seq = p + c
                ids[i, width - len(seq):] = torch.tensor(seq)  # left padding
                mask[i, width - len(seq):] = 1
            logits = model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                           position_ids=_positions(mask).to(lm.device), use_cache=False).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for i, (p, c) in enumerate(chunk):
                n = len(c)
                pos = torch.arange(width - n - 1, width - 1, device=logp.device)
                target = ids[i, width - n:].to(logp.device)
                steps = logp[i, pos]
                out.append(Scored(steps.gather(1, target[:, None]).squeeze(1).tolist(),
                                  bool(n) and bool((steps.argmax(-1) == target).all())))
    return out


def score(lm: LoadedModel, prompts: Sequence[str], continuations: Sequence[str],
          batch_size: int = BATCH_SIZE, reduce: str = "mean") -> list[float]:
    """Log-probability of each continuation (followed by end of sequence) after its prompt: how
    likely the model finds that answer. ``reduce="mean"``: per token (compares answers of
    different lengths); ``"sum"``: of the whole continuation (its probability is ``exp``)."""
    return [r.reduce(reduce) for r in score_rows(lm, prompts, continuations, batch_size)]


SHARED_CACHE_FROM = 4  # prompts; measured on the zoo (bench/router_overhead.py)
# transformers 5.x renamed the key/value cache ``past_key_values`` -> ``cache`` (the old name is
# deprecated and goes away in 5.40): use whichever the installed version takes


def _cache_kwarg(model: Any) -> str:
    import inspect

    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def score_options(lm: LoadedModel, prompts: Sequence[str], options: Sequence[str],
                  batch_size: int = BATCH_SIZE) -> list[list[Scored]]:
    """Every one of ``options`` (followed by end of sequence) after every prompt: what
    :func:`score_rows` gives for each (prompt, option) pair, but each prompt runs through the model
    once; its key/value cache is repeated for the options, which then run on top of it. A router's
    labels after a batch of prompts cost one prompt pass plus a few label tokens. Fewer than
    ``SHARED_CACHE_FROM`` prompts are scored as pairs in one pass (two passes cost more there).
    A llama.cpp model puts the prompts and all options in one decode."""
    if not isinstance(lm, LoadedModel):
        return lm.score_options(prompts, options)
    import torch

    tok, model = lm.tokenizer, lm.model
    k = len(options)
    if k == 0:
        return [[] for _ in prompts]
    if len(prompts) < SHARED_CACHE_FROM:  # a few rows: one pass over the pairs is cheaper
        flat = score_rows(lm, [p for p in prompts for _ in options],
                          [o for _ in prompts for o in options], batch_size)
        return [flat[i * k: (i + 1) * k] for i in range(len(prompts))]
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    rows = []  # (prompt ids, [option ids + eos] * k)
    for prompt in prompts:
        p_ids = list(tok(prompt)["input_ids"])
        conts = []
        for option in options:
            sep = "" if not option or prompt.endswith((" ", "\n")) else " "
            full = list(tok(prompt + sep + option)["input_ids"])
            o_ids = full[len(p_ids):] if full[: len(p_ids)] == p_ids else \
                list(tok(sep + option, add_special_tokens=False)["input_ids"])
            conts.append(o_ids + ([eos] if eos is not None else []))
        rows.append((p_ids, conts))
    out: list[list[Scored]] = []
    step = max(1, batch_size // k)
    with lm.lock, torch.inference_mode():
        for start in range(0, len(rows), step):
            chunk = rows[start: start + step]
            b, width = len(chunk), max(len(p) for p, _ in chunk)
            ids = torch.full((b, width), pad, dtype=torch.long)
            mask = torch.zeros((b, width), dtype=torch.long)
            for i, (p, _) in enumerate(chunk):
                ids[i, width - len(p):] = torch.tensor(p)  # left padding
                mask[i, width - len(p):] = 1
            dev = lm.device
            first = model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                          position_ids=_positions(mask).to(dev), use_cache=True)
            cache = getattr(first, "cache", None) if _cache_kwarg(model) == "cache" else \
                getattr(first, "past_key_values", None)
            if cache is None or not hasattr(cache, "batch_repeat_interleave"):
                flat = score_rows(lm, [prompts[start + i] for i in range(b) for _ in range(k)],
                                  [c for _ in range(b) for c in options], batch_size)
                out += [flat[i * k: (i + 1) * k] for i in range(b)]
                continue
            cache.batch_repeat_interleave(k)
            conts = [c for _, cs in chunk for c in cs]  # b * k rows, prompt-major
            c_width = max(len(c) for c in conts)
            c_ids = torch.full((b * k, c_width), pad, dtype=torch.long)
            c_mask = torch.zeros((b * k, c_width), dtype=torch.long)
            for r, c in enumerate(conts):
                c_ids[r, : len(c)] = torch.tensor(c)  # right padding: it follows the prompt
                c_mask[r, : len(c)] = 1
            p_len = mask.sum(1).repeat_interleave(k)
            positions = p_len[:, None] + torch.arange(c_width)[None, :]
            second = model(input_ids=c_ids.to(dev),
                           attention_mask=torch.cat([mask.repeat_interleave(k, 0), c_mask],
                                                    1).to(dev),
                           position_ids=positions.to(dev), use_cache=True,
                           **{_cache_kwarg(model): cache})
            # token t of an option is predicted after the prompt (t=0) or after token t-1
            logits = torch.cat([first.logits[:, -1:].repeat_interleave(k, 0),
                                second.logits[:, :-1]], 1)
            logp = torch.log_softmax(logits.float(), dim=-1)
            for i in range(b):
                scored = []
                for j in range(k):
                    r = i * k + j
                    n = len(conts[r])
                    steps = logp[r, :n]
                    target = c_ids[r, :n].to(steps.device)
                    scored.append(Scored(steps.gather(1, target[:, None]).squeeze(1).tolist(),
                                         bool((steps.argmax(-1) == target).all())))
                out.append(scored)
    return out


# ---------------------------------------------------------------------------------------------
# members
# ---------------------------------------------------------------------------------------------


class Member:
    """A model slot of a product: the model (loaded lazily, shared through the cache) plus how it
    is prompted (``template``) and read (``output``)."""

    def __init__(self, spec: dict, device: str = "auto", dtype: str = "auto", base_dir=None):
        self.ref = spec.get("ref") or spec["model"]
        self.model_ref = spec["model"]
        from llmcombo.ensemble.spec import DEFAULT_TEMPLATE

        self.template = spec.get("template") or DEFAULT_TEMPLATE
        self.output = spec.get("output") or "command"
        self.max_new_tokens = int(spec.get("max_new_tokens") or 24)
        self.backend = backend_of(self.model_ref, spec.get("backend"))
        self.threads = spec.get("threads")
        self.quant = spec.get("quant")
        self.device, self.dtype, self.base_dir = device, dtype, base_dir
        self._lm: Any = None

    @property
    def lm(self) -> Any:
        """The loaded model: a :class:`LoadedModel` or a llama.cpp model."""
        if self._lm is None:
            self._lm = load_model(self.model_ref, self.base_dir, self.device, self.dtype,
                                  backend=self.backend, threads=self.threads, quant=self.quant)
        return self._lm

    def render(self, text: str, prompt: str | None = None) -> str:
        return render(self.template, text, prompt)

    def generate(self, prompts: Sequence[str], n: int = 1, **sampling) -> list[list[Generation]]:
        return generate(self.lm, prompts, n=n, max_new_tokens=self.max_new_tokens,
                          output=self.output, **sampling)

    def __repr__(self) -> str:
        return f"Member({self.ref!r}{'' if self.backend == 'transformers' else ', llama_cpp'})"
