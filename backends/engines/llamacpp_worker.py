"""The worker process that runs one GGUF model through llama-cpp-python.

Started as ``python -I path/to/llamacpp_worker.py`` (isolated: a ``backends/`` folder in the
current directory, PYTHONPATH or a user site cannot shadow abtop's); speaks JSON lines: commands on
stdin, events on stdout (the original stdout; fd 1 is pointed at stderr so no stray C print can corrupt the
protocol). One process per model isolates crashes, OOMs and hangs, and lets psutil attribute CPU
and memory to that model alone.

Generation drives llama.cpp's low-level API (decode, sampler chain, token_to_piece) rather than
``create_completion(stream=True)``: the high-level iterator's per-token Python work costs several
per cent on a small model, and timestamps here must be taken where the token is made.

Commands: ``load`` and ``place`` (each answered by one reply carrying the command's ``id``:
``loaded``/``error``, ``placed``), ``gen`` (carries a ``run`` id; every ``started``, ``tok``,
``finished`` and ``failed`` of that run carries it back, so the parent drops what an abandoned run
still sends), ``cancel`` (names the ``run`` it stops, or none for every run; read by a thread, so
it lands mid-generation, and never cleared: a cancel read before its ``gen`` is honoured when that
run starts, one for an earlier run leaves the next alone), ``score`` (a ``run`` too: the text's
log-likelihood, answered by ``score_progress`` lines and one ``scored``), ``eval`` (a ``run``:
standard-task items, answered by one ``eval_item`` line per item and one ``evaluated``), ``plan`` (what
llama.cpp would allocate at each of several contexts, nothing allocated: one ``planned`` or ``error``
reply; ``abtop fit`` asks it of a worker of its own), ``quit``.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import json
import os
import queue
import signal
import sys
import threading
import time

import numpy as np

if __name__ == "__main__":  # started by path under -I: the repo root is not on sys.path by itself
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

_OUT = os.fdopen(os.dup(1), "w", buffering=1 << 16, encoding="utf-8")
os.dup2(2, 1)

TOKEN_FLUSH_S = 0.1
"""Token lines are sent in batches at most this old (each keeps its own timestamp): one wake-up
of the parent per batch instead of per token, so the parent's work does not steal the cores the
model runs on. The UI draws a frame per batch (10 a second); a run's ``send_every_s`` overrides it."""
_last_flush = 0.0
_flush_s = TOKEN_FLUSH_S
ABORTABLE_FROM = 64
"""Prompt batches of at least this many tokens can be stopped mid-batch (Esc): llama.cpp's abort
callback, asked after every graph node (~400-500 per ubatch's graph, ~1 ms; a 2,048-token batch
is four of them), is set only for them and for context fills, never while generating (it would
cost that per token)."""


def emit(ev: str, **fields) -> None:
    fields["ev"] = ev
    _OUT.write(json.dumps(fields, separators=(",", ":")) + "\n")
    _OUT.flush()


def emit_token(text: str, t: float, first: bool, run: int) -> None:
    global _last_flush
    _OUT.write(json.dumps({"ev": "tok", "s": text, "t": t, "run": run}, separators=(",", ":")) + "\n")
    if first or t - _last_flush >= _flush_s:
        _OUT.flush()
        _last_flush = t


class Cancels:
    """Which runs are cancelled: every run up to ``upto``. Set by the reader thread, read between
    prompt batches and tokens, and mid-batch by llama.cpp's abort callback (an int read is atomic
    under the GIL)."""

    def __init__(self) -> None:
        self.upto: float = -1

    def cancel(self, run: float) -> None:
        self.upto = max(self.upto, run)

    def __call__(self, run: int) -> bool:
        return run <= self.upto


def place(threads: int | None, cpus: list[int] | None, llm=None) -> None:
    """Pin every thread of this process to ``cpus`` and set llama.cpp's thread counts."""
    if cpus and hasattr(os, "sched_setaffinity"):
        for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass  # a thread that just ended
    if threads and llm is not None:
        import llama_cpp

        llama_cpp.llama_set_n_threads(llm.ctx, threads, threads)


LAZY_MODES = {"off": 0, "auto": 1, "on": 2}
"""llama.cpp's ``llama_lazy_mode``: OFF reads every tensor up front; AUTO reads marked tensors
(gemma4's PLE table) on demand when larger than 4 GiB; ON always reads them on demand."""


@contextlib.contextmanager
def model_params(**fields):
    """Set fields of ``llama_model_params`` that the high-level ``Llama()`` never sets (``lazy_mode``,
    ``use_extra_bufts``): it builds its params from ``llama_model_default_params()``, so that is
    wrapped for the load. A field this build's struct lacks is an error, never silently dropped."""
    import llama_cpp.llama_cpp as lcc

    have = {name for name, _ in lcc.llama_model_params._fields_}
    missing = [k for k, v in fields.items() if v is not None and k not in have]
    if missing:
        raise RuntimeError(f"this llama-cpp-python's llama_model_params has no {', '.join(missing)}")
    orig = lcc.llama_model_default_params

    def patched():
        p = orig()
        for k, v in fields.items():
            if v is not None:
                setattr(p, k, v)
        return p

    lcc.llama_model_default_params = patched
    try:
        yield
    finally:
        lcc.llama_model_default_params = orig


FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
"""llama.cpp's ``llama_flash_attn_type``. Its own tools (llama-cli, llama-server, llama-bench)
default to AUTO, which a probe graph resolves (on for the CPU backend); ``Llama()`` forces OFF."""
N_BATCH, N_UBATCH = 2048, 512
"""llama.cpp's defaults (``common_params``, llama-bench); ``Llama()`` uses 512 for both."""


@contextlib.contextmanager
def context_params(**fields):
    """Set fields of ``llama_context_params`` that ``Llama()`` overrides or never sets
    (``flash_attn_type``): ``llama_init_from_model`` is wrapped for the load, so the context is
    built with them from the start. A field this build's struct lacks is an error."""
    import llama_cpp.llama_cpp as lcc

    have = {name for name, _ in lcc.llama_context_params._fields_}
    missing = [k for k, v in fields.items() if v is not None and k not in have]
    if missing:
        raise RuntimeError(f"this llama-cpp-python's llama_context_params has no {', '.join(missing)}")
    orig = lcc.llama_init_from_model

    def patched(model, params):
        for k, v in fields.items():
            if v is not None:
                setattr(params, k, v)
        return orig(model, params)

    lcc.llama_init_from_model = patched
    try:
        yield
    finally:
        lcc.llama_init_from_model = orig


KV_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}
"""ggml's type ids for the KV cache types llama.cpp's -ctk/-ctv take here (``GGML_TYPE_*``)."""
EXPS_PATTERN = r"blk\.{}\.ffn_(up|down|gate|gate_up)_(ch|)exps"
"""The tensors llama.cpp's ``--n-cpu-moe N`` keeps on the CPU, for each of the first N layers."""


class _Override(ctypes.Structure):
    """llama.cpp's ``llama_model_tensor_buft_override`` {pattern, buft}."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def cpu_moe_overrides(n: int):
    """The NULL-terminated override array that keeps the experts of layers 0..n-1 in CPU buffers,
    as ``--n-cpu-moe`` builds it (``ggml_backend_cpu_buffer_type`` from ggml-base)."""
    import llama_cpp

    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    lib.ggml_backend_cpu_buffer_type.restype = ctypes.c_void_p
    buft = lib.ggml_backend_cpu_buffer_type()
    arr = (_Override * (n + 1))()
    for i in range(n):
        arr[i].pattern, arr[i].buft = EXPS_PATTERN.format(i).encode(), buft
    return arr


class Model:
    """One GGUF loaded by llama.cpp: its context, vocabulary and the steps of a run."""

    def __init__(
        self,
        path: str,
        n_ctx: int,
        threads: int,
        cpus: list[int] | None,
        lazy_ple: str | None = None,
        repack: bool | None = None,
        flash_attn: str | None = None,
        type_k: str | None = None,
        type_v: str | None = None,
        n_gpu_layers: int | None = None,
        n_cpu_moe: int | None = None,
        use_mmap: bool | None = None,
        use_mlock: bool | None = None,
    ) -> None:
        import llama_cpp

        self.lc = llama_cpp
        self.path = path
        self.threads = threads
        place(None, cpus)  # before load, so every thread llama.cpp creates inherits the affinity
        t0 = time.monotonic()
        log = self._load_llama(n_ctx, lazy_ple, repack, flash_attn, type_k, type_v, n_gpu_layers, n_cpu_moe, use_mmap, use_mlock)
        self._read_load_log(log)
        self.load_s = time.monotonic() - t0
        self._read_vocab()
        self.settings = {
            "ctx": self.n_ctx,
            "flash-attn": flash_attn or "auto",
            "lazy-ple": self.lazy_ple,
            "repack": "on" if self.repack else "off",
            "kv-k": type_k or "f16",
            "kv-v": type_v or "f16",
            "ngl": self._ngl,
            "n-cpu-moe": n_cpu_moe or 0,
            "mmap": "off" if use_mmap is False else "on",
            "mlock": "on" if use_mlock else "off",
            "gpu_offload": self._gpu,
        }
        """The load settings as the engine took them (the ``Loaded`` event's ``settings``)."""
        self._set_up_abort()
        self._warm_up()
        self.load_s = time.monotonic() - t0

    def _load_llama(self, n_ctx: int, lazy_ple: str | None, repack: bool | None, flash_attn: str | None,
                    type_k: str | None, type_v: str | None, n_gpu_layers: int | None, n_cpu_moe: int | None,
                    use_mmap: bool | None, use_mlock: bool | None) -> list[str]:  # fmt: skip
        """``self.llm``, built with llama.cpp's own tools' settings where ``Llama()`` differs;
        llama.cpp's load log, captured (what it built is read from it)."""
        from backends.engines.llamalog import Capture

        fa = FLASH_ATTN[flash_attn or "auto"]
        ngl = self._ngl = int(os.environ.get("ABTOP_GPU_LAYERS", "-1")) if n_gpu_layers is None else n_gpu_layers
        gpu = self._gpu = bool(self.lc.llama_supports_gpu_offload())
        # Without a GPU every layer is on the CPU whatever ngl says; an override to the CPU's plain
        # buffers would only stop the experts' repacking, so it is set where there is a GPU alone.
        self._overrides = cpu_moe_overrides(n_cpu_moe) if gpu and n_cpu_moe else None
        with (
            Capture() as log,
            model_params(
                lazy_mode=LAZY_MODES.get(lazy_ple or ""),
                use_extra_bufts=repack,
                tensor_buft_overrides=ctypes.addressof(self._overrides) if self._overrides is not None else None,
            ),
            # swa_full off as in llama.cpp's own tools (common_params, llama-bench): a sliding-window
            # model's window cache holds the window plus a ubatch, not the whole context (Llama()
            # leaves llama_context_default_params' full size: gemma3-270m's 30 MiB at 2048 vs 15 MiB)
            context_params(flash_attn_type=fa, swa_full=False),
        ):
            self.llm = self.lc.Llama(
                model_path=self.path,
                n_ctx=n_ctx,
                n_batch=N_BATCH,
                n_ubatch=N_UBATCH,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                n_gpu_layers=ngl,
                use_mmap=True if use_mmap is None else use_mmap,
                use_mlock=bool(use_mlock),
                type_k=KV_TYPES[type_k] if type_k else None,
                type_v=KV_TYPES[type_v] if type_v else None,
                verbose=True,
            )
        return log.lines

    def _read_load_log(self, lines: list[str]) -> None:
        """What llama.cpp says it built: buffers, context, repacked and lazily read tensors."""
        from backends.engines.llamalog import lazy_tensors, parse_buffers, parse_context, repacked_tensors

        self.buffers = parse_buffers(lines)
        self.context = parse_context(lines)
        """What llama.cpp built (``llamalog.parse_context``): flash attention as set and as resolved,
        n_batch, n_ubatch, KV types, KV bytes per token and in all, the window cache's cells,
        mmap/mlock."""
        self.repacked = repacked_tensors(lines)
        self.lazy = lazy_tensors(lines)
        mp = self.llm.model_params
        self.lazy_ple = next((k for k, v in LAZY_MODES.items() if v == getattr(mp, "lazy_mode", -1)), None)
        self.repack = bool(getattr(mp, "use_extra_bufts", True))

    def _read_vocab(self) -> None:
        """The context, the vocabulary, the chat template, and a twin's banned end-of-text tokens."""
        llama_cpp = self.lc
        self.ctx = self.llm.ctx
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = self.llm.n_ctx()
        self.n_batch = max(1, min(self.llm.n_batch, self.n_ctx))
        meta = self.llm.metadata
        self.template = meta.get("tokenizer.chat_template")
        self._formatter = None
        self.synthetic = meta.get("abtop.synthetic") == "true"
        # A twin's random weights would end runs at random: its end-of-text tokens never win.
        self.banned = np.array(
            [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)] if self.synthetic else [],
            dtype=np.int64,
        )
        self._piece = ctypes.create_string_buffer(256)

    def _set_up_abort(self) -> None:
        """llama.cpp's abort callback, set only around abortable batches (``_abortable``)."""
        self._abort_when: list = [None]
        """[(cancels, run)] while an abortable batch runs, else [None]: the callback answers
        cancelled(run). A list the callback closes over, not ``self``: a bound method in the
        callback would tie the model (and its buffers) into a cycle only a full collection frees."""
        when = self._abort_when

        def should_abort(_data) -> bool:  # from llama.cpp's compute thread 0: the thread in llama_decode
            w = when[0]
            return w is not None and w[0](w[1])

        self._abort_cb = self.lc.ggml_abort_callback(should_abort)  # kept: llama.cpp holds the pointer
        self._no_abort = self.lc.ggml_abort_callback()  # NULL

    def _warm_up(self) -> None:
        """One short decode at load, as llama.cpp's own tools do (``common_init_from_params``): the
        weights are paged in and the buffers touched here, so the first counted run is not a cold
        one that pays for them (its TTFT was several times the next runs')."""
        lc = self.lc
        toks = [t for t in (lc.llama_vocab_bos(self.vocab), lc.llama_vocab_eos(self.vocab)) if t >= 0] or [0]
        arr = (lc.llama_token * len(toks))(*toks)
        lc.llama_decode(self.ctx, lc.llama_batch_get_one(arr, len(toks)))
        lc.llama_synchronize(self.ctx)  # llama.cpp counts a decode when it syncs: before the reset
        self._clear_cache()
        lc.llama_perf_context_reset(self.ctx)

    def format_prompt(self, prompt: str) -> tuple[list[int], bool]:
        """Tokens for ``prompt``: through the GGUF's chat template when it has one."""
        if self.template:
            llm = self.llm
            if self._formatter is None:  # compiling the template costs ~2 ms: once, not in every TTFT
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
                bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
                self._formatter = Jinja2ChatFormatter(template=self.template, eos_token=eos, bos_token=bos)
            text = self._formatter(messages=[{"role": "user", "content": prompt}]).prompt
            return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True), False
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False), True

    def _sampler(self, temperature: float, seed: int):
        lc = self.lc
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if temperature <= 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(40))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(0.95, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temperature))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
        return chain

    def _argmax(self, ctx) -> int:
        """Greedy sampling as numpy's argmax over the last logits: the same token as llama.cpp's
        greedy sampler, without building its candidates array (262k entries for Gemma 3, ~0.5 ms
        a token, several per cent of a small model's generation time)."""
        return int(self._logits(ctx).argmax())

    def _logits(self, ctx) -> np.ndarray:
        """The last logits, in place; a twin's end-of-text tokens set to -inf (the logit bias that
        makes its runs reach max tokens), which llama.cpp's samplers then read too."""
        logits = np.ctypeslib.as_array(self.lc.llama_get_logits_ith(ctx, -1), shape=(self.n_vocab,))
        if self.banned.size:
            logits[self.banned] = -np.inf
        return logits

    def _probe_start(self):
        """Evict the model file's pages for a working-set run: (probe, None), or (None, why not)."""
        from backends.base import BackendError
        from backends.card.workingset import Probe

        try:
            probe = Probe(self.path, self.repacked, self.lazy)
            why = probe.evict()
        except (OSError, BackendError) as exc:
            return None, f"the working-set probe failed ({exc})."
        return (None, why) if why else (probe, None)

    @contextlib.contextmanager
    def _abortable(self, cancelled: Cancels, run: int, on: bool = True):
        """Within: a cancel stops llama.cpp between two graph nodes (``llama_decode`` returns 2), so
        Esc on a prompt of thousands of tokens answers at once rather than after its batch."""
        if not on:
            yield
            return
        self._abort_when[0] = (cancelled, run)
        self.lc.llama_set_abort_callback(self.ctx, self._abort_cb, None)
        try:
            yield
        finally:
            self.lc.llama_set_abort_callback(self.ctx, self._no_abort, None)
            self._abort_when[0] = None

    def _clear_cache(self) -> None:
        lc = self.lc
        if hasattr(lc, "llama_memory_clear"):
            # data=False, as llama-bench and llama-server clear: the cells are emptied, their bytes
            # are not zeroed (empty cells are masked out). Zeroing the whole KV buffer cost every
            # run's TTFT 1-2 ms (SmolLM2 at --ctx 2048: 47 MB). The one case it would matter: a
            # run that overflowed f16 into inf leaves it in its cells, and without flash attention
            # a masked inf times 0 is NaN; such a run's output was garbage already.
            lc.llama_memory_clear(lc.llama_get_memory(self.ctx), False)
        else:  # older llama.cpp
            lc.llama_kv_self_clear(self.ctx)

    def _fill(self, depth: int, run: int, cancelled: Cancels) -> bool:
        """Put ``depth`` tokens of context in the KV cache, as llama-bench's ``-d`` does (random
        tokens, seeded: the same on every run), in n_batch pieces; False (and the run's end sent)
        when cancelled or a decode fails."""
        lc = self.lc
        toks = np.random.default_rng(depth).integers(0, self.n_vocab, depth, dtype=np.int32)
        for i in range(0, depth, self.n_batch):
            rc = 0
            if not cancelled(run):
                part = toks[i : i + self.n_batch]
                arr = (lc.llama_token * len(part))(*part.tolist())
                with self._abortable(cancelled, run):
                    rc = lc.llama_decode(self.ctx, lc.llama_batch_get_one(arr, len(part)))
            if cancelled(run):  # before this batch, or stopped in it (Esc)
                emit("started", t=time.monotonic(), prompt_tokens=0, run=run)
                emit("finished", run=run, t=time.monotonic(), stop="cancelled", gen_tokens=0, completion=False, engine=None)
                return False
            if rc != 0:
                emit("started", t=time.monotonic(), prompt_tokens=0, run=run)
                emit("failed", run=run, t=time.monotonic(), reason=f"llama.cpp could not fill {depth} tokens of context (decode failed).")
                return False
        lc.llama_synchronize(self.ctx)
        return True

    def generate(self, cmd: dict, cancelled: Cancels) -> None:
        """A ``gen`` command: ``started``, the tokens, then one ``finished`` (or ``failed``)."""
        global _flush_s
        run = int(cmd["run"])
        _flush_s = min(max(float(cmd.get("send_every_s") or TOKEN_FLUSH_S), 0.0), 1.0)
        depth = int(cmd.get("depth") or 0)
        t_start = time.monotonic()
        tokens, completion = self.format_prompt(cmd["prompt"])
        max_tokens = self._room(cmd, run, depth, len(tokens), t_start)
        if max_tokens is None:
            return
        self._clear_cache()  # no prompt cache between runs: every run pays its prompt
        if depth:  # context already in the KV cache, untimed (llama-bench -d); the run starts after it
            if not self._fill(depth, run, cancelled):
                return
            t_start = time.monotonic()
        emit("started", t=t_start, prompt_tokens=len(tokens), run=run)
        probe, ws_note = self._probe_start() if cmd.get("working_set") else (None, None)
        self.lc.llama_perf_context_reset(self.ctx)
        temperature = float(cmd.get("temperature", 0.0))
        chain = self._sampler(temperature, int(cmd.get("seed", 42)))
        try:
            stop = self._eval_prompt(tokens, run, cancelled)
            if stop is None:
                return
            stop, n_gen, curve = self._sample_tokens(chain, temperature <= 0, max_tokens, int(cmd["max_tokens"]),
                                                     stop, run, cancelled, probe)  # fmt: skip
        finally:
            self.lc.llama_sampler_free(chain)
        self._finish(run, stop, n_gen, completion, probe, curve, ws_note)

    def _room(self, cmd: dict, run: int, depth: int, n_prompt: int, t_start: float) -> int | None:
        """The tokens the run may generate (``max_tokens``, or what the context leaves); None, and
        the run's end sent, when the prompt (after ``depth``) does not fit the context at all."""
        if depth + n_prompt >= self.n_ctx:
            emit("started", t=t_start, prompt_tokens=n_prompt, run=run)
            reason = (
                f"--depth {depth} and the prompt's {n_prompt} tokens do not fit the context ({self.n_ctx} tokens); "
                f"raise --ctx to at least {depth + n_prompt + int(cmd['max_tokens'])}."
                if depth
                else f"the prompt is {n_prompt} tokens but the context holds {self.n_ctx}; shorten the prompt or raise --ctx."
            )
            emit("failed", run=run, t=time.monotonic(), reason=reason)
            return None
        return min(int(cmd["max_tokens"]), self.n_ctx - depth - n_prompt)

    def _eval_prompt(self, tokens: list[int], run: int, cancelled: Cancels) -> str | None:
        """Decode the prompt in n_batch pieces: "length" (go on generating), "cancelled", or None
        (and ``failed`` sent) when a decode fails."""
        lc, ctx, n_prompt = self.lc, self.ctx, len(tokens)
        arr = (lc.llama_token * n_prompt)(*tokens)
        step = self.n_batch  # llama.cpp aborts on a batch larger than n_batch
        for i in range(0, n_prompt, step):
            if cancelled(run):  # a long prompt stops between its batches
                return "cancelled"
            n = min(step, n_prompt - i)
            view = (lc.llama_token * n).from_buffer(arr, i * ctypes.sizeof(lc.llama_token))
            with self._abortable(cancelled, run, on=n >= ABORTABLE_FROM):
                rc = lc.llama_decode(ctx, lc.llama_batch_get_one(view, n))
            if rc != 0 and cancelled(run):  # stopped mid-batch (Esc): the run ends as cancelled
                return "cancelled"
            if rc != 0:
                emit("failed", run=run, t=time.monotonic(), reason="llama.cpp could not evaluate the prompt (decode failed).")
                return None
        return "length"

    def _sample_tokens(self, chain, greedy: bool, max_tokens: int, asked: int, stop: str, run: int,
                       cancelled: Cancels, probe) -> tuple[str, int, list[list[int]]]:  # fmt: skip
        """Sample, send and decode one token at a time until end of text, ``max_tokens``, a full
        context or a cancel: (stop, tokens generated, the working-set curve). ``asked``: the run's
        --max-tokens (less room than that means the context ended the run)."""
        from backends.card.workingset import curve_points

        lc = self.lc
        points = set(curve_points(max_tokens)) if probe else set()
        curve: list[list[int]] = []
        argmax = self._argmax
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        piece, vocab, ctx = self._piece, self.vocab, self.ctx
        n_gen = 0
        one = (lc.llama_token * 1)()
        while n_gen < max_tokens and stop != "cancelled":
            if greedy:
                tok = argmax(ctx)
            else:
                if self.banned.size:
                    self._logits(ctx)
                tok = lc.llama_sampler_sample(chain, ctx, -1)
            t = time.monotonic()
            if lc.llama_vocab_is_eog(vocab, tok):
                stop = "eos"
                break
            n = lc.llama_token_to_piece(vocab, tok, piece, 256, 0, False)
            text = decoder.decode(piece.raw[: max(n, 0)])
            n_gen += 1
            emit_token(text, t, n_gen == 1, run)
            if n_gen in points:
                curve.append([n_gen, sum(g["touched_bytes"] for g in probe.groups().values())])
            if cancelled(run):
                stop = "cancelled"
                break
            if n_gen >= max_tokens:
                if max_tokens < asked:  # the context, not --max-tokens, ended it
                    stop = "context full"
                break
            one[0] = tok
            if lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) != 0:
                stop = "context full"
                break
        # Bytes still held by the decoder are a character cut by the run's end (max tokens mid-way
        # through a multi-byte piece): dropped, never shown or exported as U+FFFD.
        return stop, n_gen, curve

    def _finish(self, run: int, stop: str, n_gen: int, completion: bool, probe, curve: list, ws_note) -> None:
        """The run's ``finished``: llama.cpp's own timings, and the working set when probed."""
        from backends.card.workingset import note as ws_notes

        perf = self.lc.llama_perf_context(self.ctx)
        working_set = None
        if probe is not None:
            groups = probe.groups()
            if n_gen and (not curve or curve[-1][0] != n_gen):
                curve.append([n_gen, sum(g["touched_bytes"] for g in groups.values())])
            working_set = {
                "groups": groups, "curve": curve, "note": ws_notes(groups, (self.buffers or {}).get("offloaded")),
                "resident_bytes": probe.touched_total(),  # whole pages of the file back in memory
            }  # fmt: skip
            probe.restore()
        emit(
            "finished",
            working_set=working_set,
            working_set_note=ws_note,
            run=run,
            t=time.monotonic(),
            stop=stop,
            gen_tokens=n_gen,
            completion=completion,
            engine={
                "source": "llama_perf_context",
                "prompt_tokens": int(perf.n_p_eval),
                "prompt_ms": float(perf.t_p_eval_ms),
                "gen_tokens": int(perf.n_eval),
                "gen_ms": float(perf.t_eval_ms),
                "load_ms": None,
            },
        )


def _own_memory() -> dict[str, int]:
    """This process's ``RssAnon`` and ``RssFile`` in bytes (``/proc/self/status``)."""
    out = {}
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith((b"RssAnon:", b"RssFile:")):
                key, value = line.split(b":", 1)
                out[key.decode()] = int(value.split()[0]) * 1024
    return out


def plan(cmd: dict) -> dict:
    """``plan``: what llama.cpp would allocate for the model at each context in ``ctxs``, with
    nothing allocated and no weight read (``no_alloc``, the GGUF read without mmap: its header only).

    Built as ``Model`` builds it (flash attention, batch sizes, window cache, repack and lazy
    settings), except ``n_outputs_max = 1``: the worker asks for the last token's logits only, so
    its compute buffer's touched pages are those of a graph with one output, not the reserve for a
    whole batch of logits (Gemma's 262k vocabulary makes that 512 MiB, never touched). The process's
    own memory after the first build is the runtime a worker adds: Python, llama.cpp, the vocabulary.
    ``type_k``/``type_v`` (``q8_0``, …) build the KV cache in other types (the worker's runs keep f16).
    """
    import llama_cpp
    from gguf import GGMLQuantizationType

    from backends.engines.llamalog import Capture, parse_buffers, parse_context

    fa = FLASH_ATTN[cmd.get("flash_attn") or "auto"]
    kv_types = {k: GGMLQuantizationType[cmd[k].upper()].value for k in ("type_k", "type_v") if cmd.get(k)}
    contexts, runtime = [], None
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    for n_ctx in cmd["ctxs"]:
        with (
            Capture() as log,
            model_params(no_alloc=True, lazy_mode=LAZY_MODES.get(cmd.get("lazy_ple") or ""), use_extra_bufts=cmd.get("repack")),
            context_params(flash_attn_type=fa, swa_full=False, n_outputs_max=1, **kv_types),
        ):
            llm = llama_cpp.Llama(
                model_path=cmd["path"], n_ctx=int(n_ctx), n_batch=N_BATCH, n_ubatch=N_UBATCH, n_threads=1,
                n_gpu_layers=int(os.environ.get("ABTOP_GPU_LAYERS", "-1")), use_mmap=False, verbose=True,
            )  # fmt: skip
        if runtime is None:
            runtime = _own_memory()
        buffers, context = parse_buffers(log.lines) or {}, parse_context(log.lines) or {}
        contexts.append({
            "n_ctx": int(llm.n_ctx()), "kv_bytes": context.get("kv_bytes"), "kv_layers": context.get("kv_layers"),
            "swa_cells": context.get("swa_cells"), "type_k": context.get("type_k"), "type_v": context.get("type_v"),
            "compute_bytes": buffers.get("compute"), "output_bytes": buffers.get("output"),
            "device_bytes": buffers.get("offloaded"), "flash_attn_on": context.get("flash_attn_on"),
        })  # fmt: skip
        llm.close()
    return {"contexts": contexts, "runtime_anon": runtime["RssAnon"], "runtime_file": runtime["RssFile"], "gpu_offload": gpu}


def _read_commands(cmds: queue.Queue, cancels: Cancels) -> None:
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
        except ValueError:
            continue
        if cmd.get("cmd") == "cancel":
            run = cmd.get("run")
            cancels.cancel(float("inf") if run is None else int(run))
        else:
            cmds.put(cmd)
    cancels.cancel(float("inf"))  # the parent went away (stdin closed): stop and quit
    cmds.put({"cmd": "quit"})


def _die_with_parent() -> None:
    """Ctrl+C belongs to the parent, which closes us; if the parent is killed, so are we (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def main() -> None:
    _die_with_parent()
    cmds: queue.Queue = queue.Queue()
    cancels = Cancels()
    threading.Thread(target=_read_commands, args=(cmds, cancels), daemon=True).start()
    model: Model | None = None
    while True:
        cmd = cmds.get()
        kind = cmd.get("cmd")
        if kind == "quit":
            break
        if kind == "load":
            try:
                model = Model(
                    cmd["path"],
                    int(cmd["n_ctx"]),
                    int(cmd["threads"]),
                    cmd.get("cpus"),
                    cmd.get("lazy_ple"),
                    cmd.get("repack"),
                    cmd.get("flash_attn"),
                    **{k: cmd.get(k) for k in ("type_k", "type_v", "n_gpu_layers", "n_cpu_moe", "use_mmap", "use_mlock")},
                )
            except Exception as exc:  # llama.cpp says only "Failed to load model from file"
                emit("error", id=cmd.get("id"), reason=f"llama.cpp could not load the model ({exc}).")
                continue
            emit(
                "loaded",
                id=cmd.get("id"),
                t=time.monotonic(),
                load_s=model.load_s,
                n_ctx=model.n_ctx,
                threads=model.threads,
                chat_template=bool(model.template),
                pid=os.getpid(),
                buffers=model.buffers,
                context=model.context,
                settings=dict(model.settings, threads=model.threads),
                lazy_ple=model.lazy_ple,
                repack=model.repack,
                lazy_tensors=sorted(model.lazy),
                repacked_tensors=sorted(model.repacked),
                synthetic=model.synthetic,
            )
        elif kind == "pages" and model is not None:  # another worker probes the same file
            try:
                from backends.card.workingset import Probe

                probe = Probe(model.path, model.repacked, model.lazy)
                if cmd.get("release"):
                    probe.release()
                else:
                    probe.restore()
            except Exception as exc:  # never fatal: the probe then says the pages stayed
                emit("pages", id=cmd.get("id"), error=str(exc))
                continue
            emit("pages", id=cmd.get("id"))
        elif kind == "plan":
            try:
                emit("planned", id=cmd.get("id"), **plan(cmd))
            except Exception as exc:  # a model this llama.cpp cannot read: one sentence
                emit("error", id=cmd.get("id"), reason=f"llama.cpp could not plan the model ({exc}).")
        elif kind == "place" and model is not None:
            place(cmd.get("threads"), cmd.get("cpus"), model.llm)
            if cmd.get("threads"):
                model.threads = int(cmd["threads"])
            emit("placed", id=cmd.get("id"), threads=model.threads)
        elif kind == "gen" and model is not None:
            try:
                model.generate(cmd, cancels)
            except Exception as exc:  # keep the worker alive for the next run
                emit("failed", run=cmd.get("run"), t=time.monotonic(), reason=f"generation failed: {exc}.")
        elif kind == "score" and model is not None:
            try:
                score(model, cmd, cancels)
            except Exception as exc:  # keep the worker alive for the next run
                emit("failed", run=cmd.get("run"), t=time.monotonic(), reason=f"scoring failed: {exc}.")
        elif kind == "eval" and model is not None:
            try:
                evaluate(model, cmd, cancels)
            except Exception as exc:  # keep the worker alive for the next run
                emit("failed", run=cmd.get("run"), t=time.monotonic(), reason=f"the eval failed: {exc}.")


def evaluate(model: Model, cmd: dict, cancelled: Cancels) -> None:
    """``eval``: options' log-likelihoods and greedy answers (``backends.quality.eval.llama_eval``),
    one ``eval_item`` line per item as it is read, one ``evaluated`` with the run's totals."""
    from backends.quality.eval.llama_eval import run_items

    run = int(cmd["run"])
    totals = run_items(model, cmd["items"], reuse=cmd.get("reuse", True), send=lambda r: emit("eval_item", run=run, **r),
                       cancelled=lambda: cancelled(run))  # fmt: skip
    emit("evaluated", run=run, t=time.monotonic(), **totals)


def score(model: Model, cmd: dict, cancelled: Cancels) -> None:
    """``score``: the text's log-likelihood in windows (``backends.quality.llama_score``), with
    ``score_progress`` lines at most every 0.2 s and one ``scored`` at the end."""
    from backends.quality.llama_score import score_text

    run = int(cmd["run"])
    last = [0.0]

    def progress(done: int, total: int) -> None:
        t = time.monotonic()
        if t - last[0] >= 0.2 or done == total:
            last[0] = t
            emit("score_progress", run=run, done=done, total=total)

    result = score_text(model, cmd["text"], window=cmd.get("window"), stride=cmd.get("stride"),
                        progress=progress, cancelled=lambda: cancelled(run))  # fmt: skip
    emit("scored", run=run, t=time.monotonic(), result=result)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
