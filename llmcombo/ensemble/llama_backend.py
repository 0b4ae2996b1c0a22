"""The llama.cpp backend of ensemble members (``backend: llama_cpp``), through llama-cpp-python's
low-level C API, with the capabilities :mod:`llmcombo.ensemble.members` gives transformers models:
``generate`` (greedy, or N samples of a prompt), ``score_rows`` / ``score_options`` / ``score``
(log-probabilities of given continuations) and ``embed`` (pooled hidden states of a layer). They
return the same :class:`~llmcombo.ensemble.generation.Generation` /
:class:`~llmcombo.ensemble.generation.Scored` objects, so products and traces do not change.

How the work is batched (what llama.cpp's ``examples/batched``, the seed's ``batched`` command,
does): each prompt is decoded once, its tokens belonging to all of its N sequences (a unified KV
cache holds them once); then ONE ``llama_decode`` per step carries the next token of every live
sequence of every prompt, each with its own sampler chain and seed. A vote of N samples costs one
decode loop, not N (``decode_calls`` counts them). Scoring puts the prompt and every option in one
decode (the prompt shared by the options' sequences); embedding reads llama.cpp's mean pooling of
the last hidden state, or, for a shallower layer, the tensor ``l_out-{k-1}`` through an eval
callback that then stops the graph.

``threads`` defaults to 1 for models under 50M parameters (on a shared 2-core machine a second
thread makes such a model several times slower: OpenMP barriers wait for descheduled threads;
bench/llama_vs_transformers.py), else ``min(4, CPU cores)``.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import sys
import threading
from collections import OrderedDict
from typing import Any, Sequence

from llmcombo.ensemble.formats import read_answer
from llmcombo.ensemble.generation import Generation, Scored
from llmcombo.ensemble.llama_embed import EmbedMixin
from llmcombo.errors import UserError

log = logging.getLogger("llmcombo.llama_cpp")
SMALL_MODEL_PARAMS = 50_000_000
KV_BUDGET_BYTES = 1 << 30
DEFAULT_N_SEQ = 64
_INIT_LOCK = threading.Lock()
_READY = False
_LOG_CB = None  # the ctypes callback must outlive every llama.cpp call: keep it here


def _llama():
    """``llama_cpp``, initialised once, its log routed to the ``llmcombo.llama_cpp`` logger."""
    global _READY, _LOG_CB
    from llmcombo.gguf.export import require_llama_cpp

    require_llama_cpp("the llama_cpp backend")
    import llama_cpp as L

    with _INIT_LOCK:
        if not _READY:
            L.llama_backend_init()

            def route(level, text, _user):
                msg = text.decode("utf-8", errors="replace").rstrip() if text else ""
                if msg:
                    # ggml's levels: 1 debug, 2 info, 3 warn, 4 error; llama.cpp warns about
                    # harmless context choices (pooling, n_ctx): only errors are warnings here
                    log.log(logging.WARNING if level == 4 else logging.DEBUG, msg)

            _LOG_CB = L.llama_log_callback(route)
            L.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
            _READY = True
    return L


def default_threads(n_params: int) -> int:
    if n_params < SMALL_MODEL_PARAMS:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


class LlamaCppModel(EmbedMixin):
    """A GGUF model loaded once, with one llama.cpp context for generate / score / embed. Calls are
    serialised by ``lock`` (as :class:`~llmcombo.ensemble.members.LoadedModel`)."""

    backend = "llama_cpp"
    device = "cpu"

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None,
                 n_seq_max: int = DEFAULT_N_SEQ, n_batch: int = 2048, n_ctx: int | None = None,
                 content: str | None = None, source: str | None = None, quant: str | None = None):
        L = _llama()
        self.L = L
        self.path = os.fspath(path)
        self.source, self.content, self.dtype = source, content, quant or "gguf"
        self.lock = threading.RLock()
        self.decode_calls = 0
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(self.path.encode(), mp)
        if not self.model:
            raise UserError(f"llama.cpp cannot load {self.path}.",
                            hint="The file may be damaged, or written by a newer llama.cpp than "
                                 "the installed llama-cpp-python; export it again.")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_embd = L.llama_model_n_embd(self.model)
        self.n_layer = L.llama_model_n_layer(self.model)
        self.eos = L.llama_vocab_eos(self.vocab)
        self.parameters = int(L.llama_model_n_params(self.model))
        self.threads = int(threads) if threads else default_threads(self.parameters)
        from llmcombo.gguf.tokens import STRIP_KEY, StripRules

        self.strip = StripRules.from_json(self._meta(STRIP_KEY))
        self.n_seq_max = max(1, min(n_seq_max, L.llama_max_parallel_sequences()))
        self.n_batch = n_batch
        self.n_ctx = n_ctx or self._auto_ctx()
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = self.n_ctx, n_batch, n_batch
        cp.n_seq_max = self.n_seq_max
        cp.n_threads = cp.n_threads_batch = self.threads
        cp.kv_unified = True  # a prompt's tokens shared by its sequences
        if self.parameters < SMALL_MODEL_PARAMS:  # f32 keys/values: transformers' numbers on CPU
            cp.type_k = cp.type_v = L.GGML_TYPE_F32
        cp.pooling_type = L.LLAMA_POOLING_TYPE_MEAN  # when embeddings are switched on
        cp.embeddings = False
        cp.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            L.llama_model_free(self.model)
            self.model = None
            raise UserError(f"llama.cpp could not create a context for {self.path} "
                            f"(n_ctx {self.n_ctx}); not enough memory?")
        self.n_ctx = L.llama_n_ctx(self.ctx)
        self.mem = L.llama_get_memory(self.ctx)
        self._batch = L.llama_batch_init(n_batch, 0, self.n_seq_max)
        self._table = None
        self._tap_ctx = None

    # -- housekeeping ----------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.L.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    def _auto_ctx(self) -> int:
        """KV cells for the whole batch of sequences, within :data:`KV_BUDGET_BYTES`."""
        L = self.L
        heads = max(1, L.llama_model_n_head(self.model))
        kv_heads = max(1, L.llama_model_n_head_kv(self.model))
        width = 4 if self.parameters < SMALL_MODEL_PARAMS else 2  # f32 / f16 cells
        per_cell = 2 * self.n_layer * self.n_embd * kv_heads // heads * width  # K and V
        cells = KV_BUDGET_BYTES // max(1, per_cell)
        return int(max(512, min(4096, cells // 256 * 256)))

    def set_threads(self, n: int) -> None:
        with self.lock:
            self.L.llama_set_n_threads(self.ctx, n, n)
            if self._tap_ctx:
                self.L.llama_set_n_threads(self._tap_ctx, n, n)
            self.threads = n

    def close(self) -> None:
        L = self.L
        with self.lock:
            if getattr(self, "_tap_ctx", None):
                L.llama_batch_free(self._tap_batch)
                L.llama_free(self._tap_ctx)
                self._tap_ctx = None
            if getattr(self, "ctx", None):
                L.llama_batch_free(self._batch)
                L.llama_free(self.ctx)
                self.ctx = None
            if getattr(self, "model", None):
                L.llama_model_free(self.model)
                self.model = None

    def __del__(self):  # pragma: no cover - depends on the garbage collector
        if sys.is_finalizing():  # llama.cpp may be torn down already: the OS frees it
            return
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"LlamaCppModel({self.path!r}, threads={self.threads})"

    # -- tokens -----------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids as transformers gives them for the source model (special tokens parsed, the
        whitespace around lstrip/rstrip tokens removed: :mod:`llmcombo.gguf.tokens`)."""
        data = self.strip.apply(text).encode("utf-8")
        size = len(data) + 16
        buf = (self.L.llama_token * size)()
        n = self.L.llama_tokenize(self.vocab, data, len(data), buf, size, add_special, True)
        if n < 0:  # pragma: no cover - the buffer always fits (at most one token per byte + bos)
            raise RuntimeError(f"llama_tokenize needs {-n} tokens")
        return list(buf[:n])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, add_special=False))

    def detokenize(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        arr = (self.L.llama_token * len(ids))(*ids)
        size = 32 * len(ids) + 16
        buf = ctypes.create_string_buffer(size)
        n = self.L.llama_detokenize(self.vocab, arr, len(ids), buf, size, True, False)
        return buf.raw[:max(0, n)].decode("utf-8", errors="replace")

    def _is_stop(self, tok: int) -> bool:
        return tok == self.eos or bool(self.L.llama_vocab_is_eog(self.vocab, tok))

    # -- low level --------------------------------------------------------------------------

    def _decode(self, entries: Sequence[tuple[int, int, Sequence[int], bool]]) -> None:
        """One ``llama_decode`` of ``entries`` = (token, position, sequence ids, wants logits)."""
        b = self._batch
        for i, (tok, pos, seqs, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = len(seqs)
            for j, s in enumerate(seqs):
                b.seq_id[i][j] = s
            b.logits[i] = logits
        b.n_tokens = len(entries)
        rc = self.L.llama_decode(self.ctx, b)
        self.decode_calls += 1
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc}) with {len(entries)} tokens, "
                               f"n_ctx {self.n_ctx}")

    def _logits(self, i: int):
        import numpy as np

        return np.ctypeslib.as_array(self.L.llama_get_logits_ith(self.ctx, i),
                                     shape=(self.n_vocab,))

    def _clear(self) -> None:
        self.L.llama_memory_clear(self.mem, False)  # metadata only: cells are overwritten

    def _sampler(self, temperature: float, top_k: int, top_p: float, seed: int):
        L = self.L
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        # transformers' order: temperature, top-k, top-p, then the draw
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(temperature))
        if top_k and top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(top_k))
        if top_p < 1.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(top_p, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
        return chain

    def _check_fits(self, need: int, what: str) -> None:
        if need > min(self.n_ctx, self.n_batch):
            raise UserError(f"{what} needs {need} tokens, more than this llama.cpp context holds "
                            f"({min(self.n_ctx, self.n_batch)}).",
                            hint="Use a shorter prompt or fewer max_new_tokens.")

    # -- generate ---------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 24,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int | None = None, output: str = "text",
                 batch_size: int | None = None) -> list[list[Generation]]:
        """``n`` answers per prompt, as :func:`llmcombo.ensemble.members.generate`: every prompt x
        sample of a chunk runs in ONE decode loop (one ``llama_decode`` for the prompts, then one
        per step). Temperature 0 is greedy (one sequence, repeated ``n`` times)."""
        sample = temperature > 0
        if n > 1 and not sample:
            one = self.generate(prompts, n=1, max_new_tokens=max_new_tokens, output=output)
            return [g * n for g in one]
        toks = [self.tokenize(p) for p in prompts]
        longest = max((len(t) for t in toks), default=0)
        self._check_fits(longest + max_new_tokens, "a prompt with its answer")
        per_round = max(1, min(self.n_seq_max, (min(self.n_ctx, self.n_batch) - longest)
                               // max(1, max_new_tokens)))
        if n > per_round:  # more samples than sequences (or KV cells): in rounds
            parts, done = [], 0
            while done < n:
                k = min(per_round, n - done)
                parts.append(self.generate(prompts, n=k, max_new_tokens=max_new_tokens,
                                           temperature=temperature, top_k=top_k, top_p=top_p,
                                           seed=None if seed is None else _mix(seed, done),
                                           output=output))
                done += k
            return [sum((part[i] for part in parts), []) for i in range(len(prompts))]
        per_chunk = max(1, self.n_seq_max // n)
        # one independent 32-bit seed per sequence from (seed, prompt, sample): seeds seed+i
        # would make seed=1 and seed=2 share all but one random stream
        base = seed if seed is not None else int.from_bytes(os.urandom(8), "little")
        out: list[list[Generation]] = []
        with self.lock:
            start = 0
            while start < len(toks):
                end, used, cells = start, 0, 0
                while end < len(toks) and end - start < per_chunk:
                    need = len(toks[end]) + n * max_new_tokens
                    if end > start and (used + len(toks[end]) > self.n_batch
                                        or cells + need > self.n_ctx):
                        break
                    used += len(toks[end])
                    cells += need
                    end += 1
                out += self._generate_chunk(toks[start:end], n, max_new_tokens, sample,
                                            temperature, top_k, top_p, (base, start), output)
                start = end
        return out

    def _generate_chunk(self, toks, n, max_new, sample, temperature, top_k, top_p, seed,
                        output) -> list[list[Generation]]:
        self._clear()
        entries, last = [], []
        for p, ids in enumerate(toks):
            seqs = list(range(p * n, p * n + n))
            entries += [(t, i, seqs, i == len(ids) - 1) for i, t in enumerate(ids)]
            last.append(len(entries) - 1)
        n_seq = len(toks) * n
        gen: list[list[int]] = [[] for _ in range(n_seq)]
        lps = [0.0] * n_seq
        samplers = [self._sampler(temperature, top_k, top_p, _mix(*seed, s))
                    for s in range(n_seq)] if sample else []
        try:
            if max_new > 0:
                self._decode(entries)  # every prompt once, shared by its n sequences
            pos = [len(toks[s // n]) for s in range(n_seq)]
            row = [last[s // n] for s in range(n_seq)]  # where each sequence's logits are
            live = list(range(n_seq))
            for step in range(max_new):
                nxt = []
                for s in live:
                    logits = self._logits(row[s])
                    tok = (self.L.llama_sampler_sample(samplers[s], self.ctx, row[s]) if sample
                           else int(logits.argmax()))
                    if self._is_stop(tok):
                        continue
                    lps[s] += _log_softmax_at(logits, tok)  # unwarped, as members.generate
                    gen[s].append(tok)
                    nxt.append((s, tok))
                live = [s for s, _ in nxt]
                if not nxt or step == max_new - 1:
                    break
                for k, (s, tok) in enumerate(nxt):
                    row[s] = k
                self._decode([(tok, pos[s] + 0, [s], True) for s, tok in nxt])
                for s, _ in nxt:
                    pos[s] += 1
        finally:
            for smp in samplers:
                self.L.llama_sampler_free(smp)
            self._clear()
        out = []
        for p in range(len(toks)):
            gens = []
            for s in range(p * n, p * n + n):
                text = self.detokenize(gen[s])
                gens.append(Generation(text, read_answer(text, output), lps[s], len(gen[s])))
            out.append(gens)
        return out

    # -- score ------------------------------------------------------------------------------

    def _continuation(self, prompt: str, p_ids: list[int], cont: str) -> list[int]:
        """As members.score_rows: the continuation's tokens after the prompt, then eos."""
        sep = "" if not cont or prompt.endswith((" ", "\n")) else " "
        full = self.tokenize(prompt + sep + cont)
        c = full[len(p_ids):] if full[: len(p_ids)] == p_ids else \
            self.tokenize(sep + cont, add_special=False)
        return c + [self.eos]

    def score_options(self, prompts: Sequence[str], options: Sequence[str],
                      batch_size: int | None = None) -> list[list[Scored]]:
        """Every option (then end of sequence) after every prompt, teacher-forced, in ONE
        ``llama_decode`` per chunk: each prompt's tokens are shared by its options' sequences."""
        k = len(options)
        if k == 0:
            return [[] for _ in prompts]
        rows = []
        for p in prompts:
            p_ids = self.tokenize(p)
            rows.append((p_ids, [self._continuation(p, p_ids, o) for o in options]))
        out: list[list[Scored]] = []
        limit = min(self.n_batch, self.n_ctx)
        with self.lock:
            start = 0
            while start < len(rows):
                end, used = start, 0
                while end < len(rows) and (end - start + 1) * k <= self.n_seq_max:
                    size = len(rows[end][0]) + sum(len(c) for c in rows[end][1])
                    self._check_fits(size, "a prompt with its options")
                    if end > start and used + size > limit:
                        break
                    used += size
                    end += 1
                out += self._score_chunk(rows[start:end], k)
                start = end
        return out

    def _score_chunk(self, rows, k) -> list[list[Scored]]:
        self._clear()
        entries, plan = [], []
        for r, (p_ids, conts) in enumerate(rows):
            seqs = list(range(r * k, r * k + k))
            entries += [(t, i, seqs, i == len(p_ids) - 1) for i, t in enumerate(p_ids)]
            p_last = len(entries) - 1
            for j, c in enumerate(conts):
                idx = [p_last]  # token t is predicted at the previous token's row
                for i, t in enumerate(c[:-1]):
                    entries.append((t, len(p_ids) + i, [r * k + j], True))
                    idx.append(len(entries) - 1)
                plan.append((r, c, idx))
        try:
            self._decode(entries)
            out: list[list[Scored]] = [[] for _ in rows]
            for r, c, idx in plan:
                lp, greedy = [], True
                for t, i in zip(c, idx):
                    logits = self._logits(i)
                    lp.append(_log_softmax_at(logits, t))
                    greedy = greedy and int(logits.argmax()) == t
                out[r].append(Scored(lp, greedy and bool(c)))
        finally:
            self._clear()
        return out

    def score_rows(self, prompts: Sequence[str], continuations: Sequence[str],
                   batch_size: int | None = None) -> list[Scored]:
        """Each continuation after its own prompt (pairs sharing a prompt share its decode)."""
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p, []).append(i)
        out: list[Scored | None] = [None] * len(prompts)
        for p, idx in groups.items():
            row = self.score_options([p], [continuations[i] for i in idx])[0]
            for i, s in zip(idx, row):
                out[i] = s
        return out  # type: ignore[return-value]

    def score(self, prompts: Sequence[str], continuations: Sequence[str],
              batch_size: int | None = None, reduce: str = "mean") -> list[float]:
        return [r.reduce(reduce) for r in self.score_rows(prompts, continuations)]


def _log_softmax_at(logits, token: int) -> float:
    import numpy as np

    m = float(logits.max())
    return float(logits[token]) - m - math.log(float(np.exp(logits - m).sum()))


def _mix(*parts: int) -> int:
    """A 32-bit seed from integers, independent for neighbouring inputs."""
    data = b"".join(int(p).to_bytes(16, "little", signed=True) for p in parts)
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "little")


# ---------------------------------------------------------------------------------------------
# loading, cached like members.load_model
# ---------------------------------------------------------------------------------------------

_CACHE: "OrderedDict[tuple[str, str], LlamaCppModel]" = OrderedDict()
_CACHE_LOCK = threading.Lock()


def load_llama(ref: Any, base_dir=None, *, quant: str = "f16", threads: int | None = None,
               cache_size: int = 8, progress: Any = None) -> LlamaCppModel:
    """The model ``ref`` (a ``.gguf`` file, or a model folder / ``zoo:NAME`` / hub id converted
    once to a cached GGUF of type ``quant``: :func:`llmcombo.gguf.cached_gguf`) loaded once per
    (file, content); ``threads`` changes the loaded model's threads."""
    from llmcombo.gguf.cache import cached_gguf
    from llmcombo.gguf.export import normalize_quant, require_llama_cpp

    require_llama_cpp("the llama_cpp backend")  # before converting anything
    q = normalize_quant(quant)
    path = cached_gguf(ref, q, base_dir=base_dir, progress=progress)
    st = path.stat()
    content = f"{st.st_size}:{st.st_mtime_ns}"
    key = (str(path), q)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit.content == content and hit.ctx:
            _CACHE.move_to_end(key)
            if threads and hit.threads != int(threads):
                hit.set_threads(int(threads))
            return hit
        lm = LlamaCppModel(path, threads=threads, content=content, source=str(ref), quant=q)
        _CACHE[key] = lm
        while len(_CACHE) > max(1, cache_size):
            _CACHE.popitem(last=False)
        return lm


def cached_models() -> list[tuple[str, str]]:
    return list(_CACHE)


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
