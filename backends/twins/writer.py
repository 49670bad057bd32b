"""Write a twin GGUF: the preset's keys and tensors, random weights, streamed to disk.

The header comes from the ``gguf`` package's ``GGUFWriter`` (keys, tensor infos, alignment); the
tensor data is then written here in chunks of whole rows, so a multi-GB twin never sits in memory.
Quantised tensors are random bytes in llama.cpp's block layout with fixed, sane f16 scales (a
random f16 scale can be NaN or inf): Q4_K blocks are ``d, dmin, 12 scale bytes, 128 nibble
bytes``, Q8_0 blocks ``d, 32 int8``. The file is written beside its final name, fsync'd (so its
pages are clean and can be evicted by the working-set probe) and renamed into place. How far it
has got goes out as ``Progress`` events (as a download's do); the caller draws them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, GGUFWriter, LlamaFileType

from backends.base import BackendError
from backends.card.gguf import (
    SYNTHETIC_KEY,
    ArrayField,
    GGUFHeader,
    TensorInfo,
    card_from_header,
    read_card,
    read_header,
)
from backends.events import Event, ModelInfo, Note
from backends.fetch.meter import Meter
from backends.twins.presets import PLAN_VERSION, PRESETS, Preset, TensorPlan
from backends.units import human_bytes

TWIN_QUANTS = QUANTS = {
    # Every matrix in one type; llama.cpp's Q4_K_S recipe is the closest named file type.
    "Q4_K": (GGMLQuantizationType.Q4_K, LlamaFileType.MOSTLY_Q4_K_S),
    "Q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
    "F16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
}
"""``--quant`` choices: (tensor type of every matrix, ``general.file_type``)."""
DEFAULT_QUANT = "Q4_K"
CHUNK_BYTES = 32 << 20
WEIGHT_STD = 0.02

# Fixed block scales giving weights of about WEIGHT_STD: Q4_K w = d*sc*q - dmin*m with 6-bit
# sc, m and 4-bit q (dmin = 7.5 d centres it); Q8_0 w = d*q with int8 q.
_Q4K_DM = np.array([1.2e-4, 9.0e-4], dtype=np.float16).view(np.uint8)
_Q80_D = np.array([WEIGHT_STD / 74], dtype=np.float16).view(np.uint8)


def twin_dir() -> Path:
    """``$XDG_CACHE_HOME/abtop/twins`` (``~/.cache/abtop/twins`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "abtop" / "twins"


def twin_path(name: str, quant: str = DEFAULT_QUANT, scale: float = 1.0) -> Path:
    tail = "" if scale == 1 else f"-s{scale:g}"
    return twin_dir() / f"{name}-{quant}{tail}.gguf"


def twin_label(name: str, quant: str = DEFAULT_QUANT, scale: float = 1.0) -> str:
    """What a twin being written is called in its ``Progress`` events: ``twin qwen2.5-3b Q4_K ×0.25``."""
    return f"twin {name} {quant}" + ("" if scale == 1 else f" ×{scale:g}")


def check(name: str, quant: str, scale: float) -> Preset:
    """The preset, or ``BackendError`` with the choices when ``name``, ``quant`` or ``scale`` is wrong."""
    if name not in PRESETS:
        raise BackendError(f"twin:{name}: no such twin (there are {', '.join(PRESETS)}).")
    if quant not in QUANTS:
        raise BackendError(f"twin:{name}: quant {quant} is not offered (use {', '.join(QUANTS)}).")
    if not 0 < scale <= 1:
        raise BackendError(f"twin:{name}: scale {scale:g} must be above 0 and at most 1.")
    return PRESETS[name]


def vocabulary(n: int) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types of a sentencepiece ("llama") vocabulary of ``n`` unique tokens:
    ``<unk> <s> </s>``, the 256 byte tokens, then made-up words (the twin's noise reads as words)."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    types = [2, 3, 3] + [6] * 256  # unknown, control, control, byte
    syll = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    i = 0
    while len(tokens) < n:
        word, k = "", i
        while True:
            word += syll[k % len(syll)]
            k //= len(syll)
            if k == 0:
                break
        tokens.append(("▁" if i % 3 else "") + word)
        types.append(1)
        i += 1
    tokens, types = tokens[:n], types[:n]
    scores = [0.0] * 3 + [-1000.0] * 256 + [-float(j) for j in range(n - 259)]
    return tokens, scores[:n], types


def _qtype(t: TensorPlan, quant: GGMLQuantizationType) -> GGMLQuantizationType:
    if t.kind != "matrix":
        return GGMLQuantizationType.F32
    block, _ = GGML_QUANT_SIZES[quant]
    return quant if t.ne[0] % block == 0 else GGMLQuantizationType.F16


def _nbytes(t: TensorPlan, qt: GGMLQuantizationType) -> int:
    block, size = GGML_QUANT_SIZES[qt]
    return t.n_elements // block * size


def _chunks(t: TensorPlan, qt: GGMLQuantizationType, rng: np.random.Generator):
    """The tensor's bytes, a chunk of whole rows at a time."""
    block, size = GGML_QUANT_SIZES[qt]
    row = t.ne[0] // block * size
    rows = t.n_elements // t.ne[0]
    step = max(1, CHUNK_BYTES // row)
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        if qt == GGMLQuantizationType.F32:
            if t.kind == "norm":
                yield np.ones(n * t.ne[0], dtype=np.float32).tobytes()
            else:
                yield (rng.standard_normal(n * t.ne[0], dtype=np.float32) * WEIGHT_STD).tobytes()
        elif qt == GGMLQuantizationType.F16:
            yield (
                (rng.standard_normal(n * t.ne[0], dtype=np.float32) * WEIGHT_STD).astype(np.float16).tobytes()
            )
        else:
            raw = rng.integers(0, 1 << 63, size=(n * row) // 8, dtype=np.int64).view(np.uint8)
            blocks = raw.reshape(-1, size)
            if qt == GGMLQuantizationType.Q4_K:
                blocks[:, 0:4] = (
                    _Q4K_DM if t.gain == 1 else (_Q4K_DM.view(np.float16) * t.gain).view(np.uint8)
                )
                # mins = scales (bytes 4-7 hold scales 0-3, 8-11 mins 0-3, 12-15 the low nibbles of
                # scales/mins 4-7), so w = d*sc*(q - 7.5): every sub-block is zero-mean. Random mins
                # give each row a random offset, a component common to every token's hidden state
                # that makes a random router send every token to the same few experts.
                blocks[:, 8:12] = blocks[:, 4:8]
                lo = blocks[:, 12:16] & 0x0F
                blocks[:, 12:16] = lo | (lo << 4)
            else:  # Q8_0
                blocks[:, 0:2] = _Q80_D if t.gain == 1 else (_Q80_D.view(np.float16) * t.gain).view(np.uint8)
            yield raw.tobytes()


def _add_kv(w: GGUFWriter, key: str, vtype: GGUFValueType, value) -> None:
    if vtype == GGUFValueType.ARRAY:
        item, values = value
        w.add_key_value(key, values, GGUFValueType.ARRAY, sub_type=item)
    else:
        w.add_key_value(key, value, vtype)


_TMP = re.compile(r"^\.(.+)\.(\d+)\.tmp$")
"""A twin being written: ``.NAME.PID.tmp`` beside its final name, PID the writer's."""


def clear_stale(folder: Path) -> tuple[int, int]:
    """Remove the temporary files of writers that died mid-write (``kill -9``, a power cut): no
    later run uses or removes them, and a twin's is gigabytes. A file whose PID is alive and was
    started before the file's last write may be a writer at work, and stays. Returns (files,
    bytes freed)."""
    import psutil

    files = freed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0, 0
    for entry in entries:
        m = _TMP.match(entry.name)
        if not m or not entry.is_file(follow_symlinks=False):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            try:
                writing = psutil.Process(int(m.group(2))).create_time() <= st.st_mtime + 1
            except psutil.Error:  # no such process (or not ours to ask): its writer is gone
                writing = False
            if writing:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        files += 1
        freed += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return files, freed


def _writer(path: Path, name: str, quant: str, scale: float, preset: Preset, plan, types) -> GGUFWriter:
    """A ``GGUFWriter`` holding the twin's keys, vocabulary and tensor infos (nothing written yet)."""
    qtype, ftype = QUANTS[quant]
    w = GGUFWriter(str(path), preset.arch)
    w.add_name(f"{preset.title} twin")
    w.add_description(f"abtop shape twin of {preset.title} ({preset.source}); synthetic random weights")
    w.add_file_type(ftype)
    w.add_quantization_version(2)
    w.add_bool(SYNTHETIC_KEY, True)
    w.add_string("abtop.twin.preset", name)
    w.add_string("abtop.twin.quant", quant)
    w.add_float32("abtop.twin.scale", float(scale))
    w.add_uint32("abtop.twin.version", PLAN_VERSION)
    for key, (vtype, value) in plan.kv.items():
        _add_kv(w, key, vtype, value)
    tokens, scores, ttypes = vocabulary(plan.n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(ttypes)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    for t, q in zip(plan.tensors, types, strict=True):
        w.add_tensor_info(t.name, tuple(reversed(t.ne)), np.float32, _nbytes(t, q), raw_dtype=q)
    return w


def build_twin(
    name: str,
    quant: str = DEFAULT_QUANT,
    scale: float = 1.0,
    *,
    path: Path | None = None,
    on_progress: Callable[[Event], None] | None = None,
) -> Path:
    """Write the twin (``Progress`` events of its tensor bytes to ``on_progress`` as it goes, a few
    a second and one at the end) and return its path. What a killed earlier write left beside it
    is removed first, and a ``Note`` says how much.

    Raises ``BackendError`` (one sentence) for a bad name/quant/scale or a disk that fails."""
    preset = check(name, quant, scale)
    qtype = QUANTS[quant][0]
    plan = preset.plan(scale)
    target = path or twin_path(name, quant, scale)
    target.parent.mkdir(parents=True, exist_ok=True)
    files, freed = clear_stale(target.parent)
    if files and on_progress is not None:
        what = "a write that was killed" if files == 1 else f"{files} writes that were killed"
        on_progress(Note(f"twin:{name}: removed {human_bytes(freed)} left in {target.parent} by {what}."))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    seed = int.from_bytes(hashlib.sha256(f"{name}/{quant}/{scale}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    types = [_qtype(t, qtype) for t in plan.tensors]
    meter = Meter(on_progress)
    meter.start(twin_label(name, quant, scale), sum(_nbytes(t, q) for t, q in zip(plan.tensors, types, strict=True)))
    try:
        w = _writer(tmp, name, quant, scale, preset, plan, types)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        f = w.fout[0]
        for t, q in zip(plan.tensors, types, strict=True):
            w.write_padding(f, f.tell())
            for chunk in _chunks(t, q, rng):
                f.write(chunk)
                meter.add(len(chunk))
            w.write_padding(f, _nbytes(t, q))
        f.flush()
        os.fsync(f.fileno())  # clean pages: the working-set probe can evict them
        w.close()
        os.replace(tmp, target)
        meter.finish()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BackendError(f"twin:{name}: could not write {target} ({exc.strerror or exc}).") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def twin_is_current(path: Path) -> bool:
    """Whether a cached twin was written by this plan (an older one is rewritten on use)."""
    return _version(path) == PLAN_VERSION


def _version(path: Path) -> int | None:
    """The plan version a cached twin was written with (None: older than versions, or unreadable)."""
    try:
        v = read_header(path).kv.get("abtop.twin.version")
    except BackendError:
        return None
    return int(v) if isinstance(v, int) else None


def ensure(
    name: str, quant: str = DEFAULT_QUANT, scale: float = 1.0, *, on_progress: Callable[[Event], None] | None = None
) -> Path:
    """The twin's file, built on first use (telling ``on_progress`` how far it has got)."""
    check(name, quant, scale)
    p = twin_path(name, quant, scale)
    if p.exists() and twin_is_current(p):
        return p
    return build_twin(name, quant, scale, path=p, on_progress=on_progress)


def write_plan_file(name: str, quant: str = DEFAULT_QUANT, scale: float = 1.0, *, path: Path) -> Path:
    """The twin's header with no weights: a sparse file of the full size (its data a hole, no disk
    used), which llama.cpp can open to plan the model's buffers without reading a weight
    (``no_alloc``). Never run: its weights would be zeros."""
    preset = check(name, quant, scale)
    plan = preset.plan(scale)
    types = [_qtype(t, QUANTS[quant][0]) for t in plan.tensors]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        w = _writer(path, name, quant, scale, preset, plan, types)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        f = w.fout[0]
        w.write_padding(f, f.tell())
        size = f.tell() + sum(-(-_nbytes(t, q) // w.data_alignment) * w.data_alignment
                              for t, q in zip(plan.tensors, types, strict=True))  # fmt: skip
        f.truncate(size)
        w.close()
    except OSError as exc:
        raise BackendError(f"twin:{name}: could not write a plan file at {path} ({exc.strerror or exc}).") from None
    return path


def plan_header(name: str, quant: str = DEFAULT_QUANT, scale: float = 1.0) -> GGUFHeader:
    """The header the twin's file will have, without writing it (what ``abtop info`` reads)."""
    preset = check(name, quant, scale)
    qtype, ftype = QUANTS[quant]
    plan = preset.plan(scale)
    kv: dict = {"general.architecture": preset.arch, "general.name": f"{preset.title} twin"}
    kv["general.file_type"] = int(ftype)
    kv[SYNTHETIC_KEY] = True
    kv |= {"abtop.twin.preset": name, "abtop.twin.quant": quant, "abtop.twin.scale": float(scale),
           "abtop.twin.version": PLAN_VERSION}  # fmt: skip
    for key, (vtype, value) in plan.kv.items():
        kv[key] = ArrayField(int(value[0]), len(value[1]), tuple(value[1])) if vtype == GGUFValueType.ARRAY else value
    kv["tokenizer.ggml.tokens"] = ArrayField(int(GGUFValueType.STRING), plan.n_vocab)
    tensors, off = [], 0
    for t in plan.tensors:
        q = _qtype(t, qtype)
        n = _nbytes(t, q)
        tensors.append(TensorInfo(t.name, t.ne, int(q), off, t.n_elements, n))
        off += -(-n // 32) * 32
    return GGUFHeader(3, kv, tensors, 0, off)


def twin_card(name: str, quant: str = DEFAULT_QUANT, scale: float = 1.0) -> ModelInfo:
    """The twin's card: from its file once written, else from the header it will have."""
    p = twin_path(name, quant, scale)
    if p.exists() and twin_is_current(p):
        return read_card(p)
    return card_from_header(plan_header(name, quant, scale), p)
