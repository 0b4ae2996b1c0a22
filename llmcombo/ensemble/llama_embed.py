"""Hidden states of a llama.cpp model for the router's embedding and classifier selectors: the
``embed`` part of :class:`llmcombo.ensemble.llama_backend.LlamaCppModel`.

The last hidden state (``layer=-1``) is llama.cpp's own mean pooling after the final norm
(transformers' ``last_hidden_state``). A shallower layer ``k`` is read by a second context whose
eval callback (``cb_eval``) copies the tensor ``l_out-{k-1}`` and returns False, which stops the
graph there, like the forward hook of :func:`llmcombo.ensemble.members.embed`; layer 0 (the token
embeddings) reads the embedding table once and averages rows in numpy.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from llmcombo.errors import UserError


class EmbedHost(Protocol):
    """What :class:`EmbedMixin` uses of the class it is mixed into
    (:class:`~llmcombo.ensemble.llama_backend.LlamaCppModel`)."""

    L: Any  # the llama_cpp module
    model: Any  # the llama_model pointer
    ctx: Any  # the main llama_context pointer
    lock: threading.RLock
    n_layer: int
    n_embd: int
    n_vocab: int
    n_batch: int
    n_ctx: int
    n_seq_max: int
    threads: int
    decode_calls: int

    def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...

    def _decode(self, entries: Sequence[tuple[int, int, Sequence[int], bool]]) -> None: ...

    def _clear(self) -> None: ...

    def _check_fits(self, need: int, what: str) -> None: ...


if TYPE_CHECKING:  # type-checked as an implementation of EmbedHost; a plain class at run time
    _Host = EmbedHost
else:
    _Host = object


class EmbedMixin(_Host):
    """Needs from its host what :class:`EmbedHost` declares; the host sets ``_table`` and
    ``_tap_ctx`` to None and frees the tap's context and batch in its ``close()``."""

    _table: Any  # the token-embedding matrix (numpy), None until read
    _tap_ctx: Any  # the tap: a second llama_context, None until made
    _tap_cb: Any  # its eval callback (kept alive here)
    _tap_state: dict[str, Any]
    _tap_batch: Any

    def embed(self, texts: Sequence[str], layer: int = -1, batch_size: int | None = None):
        """As :func:`llmcombo.ensemble.members.embed`: mean-pooled hidden states of ``layer`` (0
        the token embeddings, k the k-th layer's output, -1 the last hidden state after the final
        norm), L2-normalised, a float32 torch tensor ``(len(texts), hidden)``."""
        import numpy as np
        import torch

        n_layer = self.n_layer
        k = layer if layer >= 0 else n_layer + 1 + layer
        if not 0 <= k <= n_layer:
            raise UserError(f"layer {layer} does not exist: the model has {n_layer} layers "
                            f"(0 to {n_layer}, or -1 to -{n_layer + 1} from the end).",
                            field="ensemble.router.selector.layer",
                            hint="Use -1 (the last hidden state) or a smaller layer.")
        toks = [self.tokenize(t) for t in texts]
        out = np.zeros((len(texts), self.n_embd), dtype=np.float32)
        with self.lock:
            if k == 0:
                table = self._embd_table()
                for i, ids in enumerate(toks):
                    out[i] = table[ids].mean(0)
            elif k == n_layer:
                self.L.llama_set_embeddings(self.ctx, True)
                try:
                    for start, end in self._chunks(toks):
                        self._clear()
                        self._decode([(t, i, [s], True) for s, ids in enumerate(toks[start:end])
                                      for i, t in enumerate(ids)])
                        for s in range(end - start):
                            ptr = self.L.llama_get_embeddings_seq(self.ctx, s)
                            out[start + s] = np.ctypeslib.as_array(ptr, shape=(self.n_embd,))
                finally:
                    self.L.llama_set_embeddings(self.ctx, False)
                    self._clear()
            else:
                for start, end in self._chunks(toks):
                    rows = self._tap([(t, i, [s]) for s, ids in enumerate(toks[start:end])
                                      for i, t in enumerate(ids)], f"l_out-{k - 1}")
                    at = 0
                    for s, ids in enumerate(toks[start:end]):
                        out[start + s] = rows[at: at + len(ids)].mean(0)
                        at += len(ids)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return torch.from_numpy(out)

    def _chunks(self, toks):
        start = 0
        while start < len(toks):
            end, used = start, 0
            while end < len(toks) and end - start < self.n_seq_max:
                self._check_fits(len(toks[end]), "a text to embed")
                if end > start and used + len(toks[end]) > min(self.n_batch, self.n_ctx):
                    break
                used += len(toks[end])
                end += 1
            yield start, end
            start = end

    def _embd_table(self):
        """The token-embedding matrix ``(n_vocab, n_embd)``, read once through the tap."""
        import numpy as np

        if self._table is None:
            rows = []
            for start in range(0, self.n_vocab, self.n_batch):
                ids = range(start, min(self.n_vocab, start + self.n_batch))
                rows.append(self._tap([(t, i, [0]) for i, t in enumerate(ids)], "embd"))
            self._table = np.concatenate(rows)
        return self._table

    def _tap(self, entries, name: str):
        """Decode ``entries`` (token, position, sequences) in a second context whose eval
        callback copies the tensor ``name`` ``(n_tokens, n_embd)`` and then stops the graph."""
        import numpy as np

        L = self.L
        if self._tap_ctx is None:
            from llama_cpp._ggml import libggml

            libggml.ggml_get_name.restype = ctypes.c_char_p
            libggml.ggml_get_name.argtypes = [ctypes.c_void_p]
            libggml.ggml_nelements.restype = ctypes.c_int64
            libggml.ggml_nelements.argtypes = [ctypes.c_void_p]
            libggml.ggml_get_data_f32.restype = ctypes.POINTER(ctypes.c_float)
            libggml.ggml_get_data_f32.argtypes = [ctypes.c_void_p]
            state: dict[str, Any] = {"want": b"", "data": None}

            def cb(t, ask, _user):
                hit = libggml.ggml_get_name(t) == state["want"]
                if ask:
                    return hit
                if hit:
                    n = libggml.ggml_nelements(t)
                    state["data"] = np.ctypeslib.as_array(libggml.ggml_get_data_f32(t),
                                                          shape=(n,)).copy()
                    return False  # later layers are not needed
                return True

            self._tap_cb = L.ggml_backend_sched_eval_callback(cb)  # keep it alive
            self._tap_state = state
            cp = L.llama_context_default_params()
            size = min(self.n_batch, self.n_ctx)
            cp.n_ctx, cp.n_batch, cp.n_ubatch = size, size, size
            cp.n_seq_max = self.n_seq_max
            cp.n_threads = cp.n_threads_batch = self.threads
            cp.kv_unified = True
            cp.no_perf = True
            cp.cb_eval = self._tap_cb
            cp.cb_eval_user_data = None
            self._tap_ctx = L.llama_init_from_model(self.model, cp)
            self._tap_batch = L.llama_batch_init(size, 0, self.n_seq_max)
        state = self._tap_state
        state["want"], state["data"] = name.encode(), None
        b = self._tap_batch
        for i, (tok, pos, seqs) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, len(seqs), False
            for j, s in enumerate(seqs):
                b.seq_id[i][j] = s
        b.logits[len(entries) - 1] = True
        b.n_tokens = len(entries)
        L.llama_memory_clear(L.llama_get_memory(self._tap_ctx), False)
        rc = L.llama_decode(self._tap_ctx, b)  # 2 = aborted by the callback: expected
        self.decode_calls += 1
        if state["data"] is None:
            raise RuntimeError(f"llama.cpp computed no tensor {name} (llama_decode {rc})")
        return state["data"].reshape(len(entries), self.n_embd)
