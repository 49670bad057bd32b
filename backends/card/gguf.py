"""A model card from a GGUF header alone: no weights are read.

``gguf.GGUFReader`` builds a numpy view per array element, which takes seconds on a 262k-token
vocabulary (19 s for gemma3-270m on a busy 2-core box), so this module walks the header itself
with ``struct`` and skips arrays, using the ``gguf`` package for the format's constants (value
types, quant block sizes, file-type names). Only header pages of the file are touched.

Layout (GGUF v2/v3): magic ``GGUF``, u32 version, u64 tensor count, u64 key count, the key/values,
the tensor infos (name, dims, type, offset), padding to ``general.alignment``, then tensor data.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, LlamaFileType

from backends.base import BackendError
from backends.events import ModelInfo

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 8

_SCALAR = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}

# Expert tensors: merged ("blk.N.ffn_up_exps.weight") or one per expert ("blk.N.ffn_up.3.weight",
# early Mixtral conversions). Shared experts ("_shexp") and the router are always active.
_EXPERT_RE = re.compile(r"_exps(\.|$)|\.ffn_(gate|up|down)\.\d+\.weight$")
PLE_TENSOR = "per_layer_token_embd.weight"
SYNTHETIC_KEY = "abtop.synthetic"
"""Set (True) in a shape twin's header by ``backends/twins``: random weights, noise for text."""


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: int
    offset: int
    """Offset of the data from the start of the tensor-data section."""
    n_elements: int
    n_bytes: int


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    version: int
    kv: dict[str, Any]
    """Scalars and strings by key; an array is ``ArrayField`` (its items are skipped)."""
    tensors: list[TensorInfo]
    data_offset: int
    file_bytes: int


@dataclass(frozen=True, slots=True)
class ArrayField:
    item_type: int
    count: int
    values: tuple | None = None
    """The items of a numeric array of at most ``KEEP_ITEMS`` (per-layer hyperparameters: a sliding
    window pattern, head counts per layer); None for strings and longer arrays (a vocabulary)."""


KEEP_ITEMS = 4096


class _Truncated(Exception):
    pass


class _Corrupt(ValueError):
    """The header claims what no GGUF holds (10^12 tensors): damaged, not merely cut short."""


MAX_COUNT = 1 << 24
"""Tensors or metadata keys a header may claim: real models have a few thousand at most."""


class _Cursor:
    """Reads little- or big-endian values from a buffer; running off the end raises ``_Truncated``."""

    def __init__(self, buf: mmap.mmap | bytes, endian: str) -> None:
        self.buf, self.pos, self.e = buf, 0, endian

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise _Truncated
        (value,) = struct.unpack_from(self.e + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("Q")
        if self.pos + n > len(self.buf):
            raise _Truncated
        s = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def skip_strings(self, count: int) -> None:
        unpack, buf, e = struct.unpack_from, self.buf, self.e + "Q"
        pos, end = self.pos, len(buf)
        for _ in range(count):
            if pos + 8 > end:
                raise _Truncated
            pos += 8 + unpack(e, buf, pos)[0]
        if pos > end:
            raise _Truncated
        self.pos = pos

    def value(self, vtype: int) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            item_type, count = self.take("I"), self.take("Q")
            if item_type == GGUFValueType.STRING:
                self.skip_strings(count)
            elif item_type in _SCALAR:
                fmt = _SCALAR[GGUFValueType(item_type)]
                size = count * struct.calcsize(fmt)
                if self.pos + size > len(self.buf):
                    raise _Truncated
                values = None
                if count <= KEEP_ITEMS:
                    values = struct.unpack_from(f"{self.e}{count}{fmt}", self.buf, self.pos)
                self.pos += size
                return ArrayField(item_type, count, values)
            else:  # nested arrays do not occur in practice; walk them anyway
                for _ in range(count):
                    self.value(item_type)
            return ArrayField(item_type, count)
        try:
            return self.take(_SCALAR[GGUFValueType(vtype)])
        except (ValueError, KeyError):
            raise ValueError(f"unknown value type {vtype}") from None


def _parse(buf: mmap.mmap | bytes, file_bytes: int) -> GGUFHeader:
    cur = _Cursor(buf, "<")
    cur.pos = 4
    version = cur.take("I")
    if version & 0xFFFF == 0:  # written on a big-endian machine
        cur.e, cur.pos = ">", 4
        version = cur.take("I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported (2 or 3 expected)")
    n_tensors, n_kv = cur.take("Q"), cur.take("Q")
    if n_tensors > MAX_COUNT or n_kv > MAX_COUNT:
        raise _Corrupt(f"its header claims {n_tensors:,} tensors and {n_kv:,} metadata keys, more than any model has")
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        kv[key] = cur.value(cur.take("I"))
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.take("I")
        if n_dims > MAX_DIMS:
            raise ValueError(f"tensor {name} claims {n_dims} dimensions")
        shape = tuple(cur.take("Q") for _ in range(n_dims))
        ttype, offset = cur.take("I"), cur.take("Q")
        n_el = 1
        for d in shape:
            n_el *= d
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
            n_bytes = n_el // block * type_size
        except (ValueError, KeyError):
            n_bytes = -1  # a type newer than the gguf package: measured from the offsets below
        tensors.append(TensorInfo(name, shape, ttype, offset, n_el, n_bytes))
    align = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or align <= 0:
        align = DEFAULT_ALIGNMENT
    data_offset = -(-cur.pos // align) * align
    if any(t.n_bytes < 0 for t in tensors):
        tensors = _sizes_from_offsets(tensors, file_bytes - data_offset)
    return GGUFHeader(version, kv, tensors, data_offset, file_bytes)


def _sizes_from_offsets(tensors: list[TensorInfo], data_bytes: int) -> list[TensorInfo]:
    """Sizes of tensors of unknown type: the gap to the next tensor's data (padding included)."""
    ends = sorted({t.offset for t in tensors} | {data_bytes})
    out = []
    for t in tensors:
        if t.n_bytes < 0:
            nxt = next((e for e in ends if e > t.offset), t.offset)
            t = TensorInfo(t.name, t.shape, t.type, t.offset, t.n_elements, nxt - t.offset)
        out.append(t)
    return out


def read_header(path: str | os.PathLike) -> GGUFHeader:
    """The parsed header; ``BackendError`` (one sentence) for a missing, foreign or damaged file."""
    p = Path(path)
    if not p.exists():
        raise BackendError(f"{p}: no such file.")
    if p.is_dir():
        raise BackendError(f"{p}: is a directory, not a GGUF file.")
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if f.read(4) != GGUF_MAGIC:
                raise BackendError(f"{p}: is not a GGUF file (it does not start with the GGUF magic bytes).")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                header = _parse(buf, size)
    except _Truncated:
        raise BackendError(f"{p}: truncated GGUF: the file ends inside its header; download it again.") from None
    except _Corrupt as exc:
        raise BackendError(f"{p}: corrupt GGUF: {exc}; get the file again.") from None
    except ValueError as exc:
        raise BackendError(f"{p}: unreadable GGUF header ({exc}).") from None
    except OSError as exc:
        raise BackendError(f"{p}: cannot be read ({exc.strerror or exc}).") from None
    need = header.data_offset + max((t.offset + t.n_bytes for t in header.tensors), default=0)
    if need > size:
        raise BackendError(
            f"{p}: truncated GGUF: its tensors need {need:,} bytes but the file has {size:,}; download it again."
        )
    return header


def quant_name(file_type: int | None) -> str | None:
    """llama.cpp's name for ``general.file_type``: 15 → ``Q4_K_M``, 0 → ``F32``."""
    if file_type is None:
        return None
    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return f"file type {file_type}"
    return {"ALL_F32": "F32"}.get(name, name.removeprefix("MOSTLY_"))


def card_from_header(h: GGUFHeader, path: str | os.PathLike) -> ModelInfo:
    kv = h.kv
    arch = kv.get("general.architecture")
    arch = arch if isinstance(arch, str) else None

    def arch_int(key: str) -> int | None:
        v = kv.get(f"{arch}.{key}") if arch else None
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    names = {t.name for t in h.tensors}
    params = sum(t.n_elements for t in h.tensors)
    # Looked-up tables: one row per token, never streamed whole. token_embd is also the output
    # matrix (read in full every token) when the model has no separate output.weight.
    lookup = {PLE_TENSOR}
    if "output.weight" in names:
        lookup.add("token_embd.weight")

    ple = None
    ple_tensors = [t for t in h.tensors if t.name == PLE_TENSOR]
    if ple_tensors or arch_int("embedding_length_per_layer_input") is not None:
        ple = {"params": sum(t.n_elements for t in ple_tensors), "bytes": sum(t.n_bytes for t in ple_tensors)}

    experts, used = arch_int("expert_count") or 0, arch_int("expert_used_count") or 0
    is_moe = experts > 0
    expert = [t for t in h.tensors if _EXPERT_RE.search(t.name)] if is_moe else []
    expert_names = {t.name for t in expert}
    exp_params = sum(t.n_elements for t in expert)
    exp_bytes = sum(t.n_bytes for t in expert if t.name not in lookup)
    dense_bytes = sum(t.n_bytes for t in h.tensors if t.name not in lookup and t.name not in expert_names)
    moe = None
    if is_moe:
        used = min(used or experts, experts)
        moe = {"experts": experts, "experts_used": used, "params_active": params - exp_params + exp_params * used // experts}
        bytes_per_token = dense_bytes + exp_bytes * used // experts
    else:
        bytes_per_token = dense_bytes

    name = kv.get("general.name")
    tokens = kv.get("tokenizer.ggml.tokens")
    return ModelInfo(
        name=name if isinstance(name, str) and name.strip() else Path(path).stem,
        arch=arch,
        params=params,
        quant=quant_name(kv.get("general.file_type")),
        file_bytes=h.file_bytes,
        n_ctx_train=arch_int("context_length"),
        chat_template=isinstance(kv.get("tokenizer.chat_template"), str),
        n_layers=arch_int("block_count"),
        n_embd=arch_int("embedding_length"),
        n_head=arch_int("attention.head_count"),
        n_head_kv=arch_int("attention.head_count_kv"),
        n_vocab=tokens.count if isinstance(tokens, ArrayField) else None,
        path=str(path),
        params_effective=params - (ple["params"] if ple else 0),
        ple=ple,
        moe=moe,
        bytes_per_token=bytes_per_token,
        synthetic=kv.get(SYNTHETIC_KEY) is True,
        twin=_twin_facts(kv) if kv.get(SYNTHETIC_KEY) is True else None,
    )


def _twin_facts(kv: dict) -> dict | None:
    """The published figures of the model a twin copies (``abtop.twin.preset``), for the card."""
    from backends.twins.presets import PRESETS  # only for twins; presets never imports the card

    preset = PRESETS.get(kv.get("abtop.twin.preset"))
    if preset is None:
        return None
    scale = kv.get("abtop.twin.scale")
    return {
        "preset": preset.name,
        "title": preset.title,
        "source": preset.source,
        "scale": round(float(scale), 4) if isinstance(scale, (int, float)) else 1.0,
        "published_total": preset.published_total,
        "published_other": preset.published_other,
        "other_label": preset.other_label,
        "not_in_gguf": preset.not_in_gguf,
        "not_in_gguf_what": preset.not_in_gguf_what,
    }


_SPLIT_NAME = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<of>\d{5})\.gguf$", re.I)


def split_parts(path: str | os.PathLike, kv: dict) -> list[Path]:
    """Every part of a split GGUF (llama.cpp's gguf-split: ``STEM-00001-of-0000N.gguf`` with a
    ``split.count`` key) from its first part, in order; ``[path]`` for a whole file."""
    p = Path(path)
    count = kv.get("split.count")
    m = _SPLIT_NAME.match(p.name)
    if not isinstance(count, int) or isinstance(count, bool) or count < 2 or m is None or int(m["of"]) != count:
        return [p]
    ext = p.suffix
    if int(m["no"]) != 1:  # llama.cpp loads a split model from its first part only
        first = f"{m['stem']}-00001-of-{m['of']}{ext}"
        raise BackendError(f"{p}: part {int(m['no'])} of a split GGUF in {count} parts; open its first part, {first}.")
    return [p.with_name(f"{m['stem']}-{i:05d}-of-{m['of']}{ext}") for i in range(1, count + 1)]


def read_card(path: str | os.PathLike) -> ModelInfo:
    """The model card of a GGUF file, from its header alone. Raises ``BackendError`` on bad input.
    A split GGUF's card counts every part's tensors and bytes (its first part holds the metadata
    and only some of the tensors)."""
    h = read_header(path)
    parts = split_parts(path, h.kv)
    if len(parts) > 1:
        missing = [q.name for q in parts if not q.exists()]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise BackendError(f"{path}: a split GGUF in {len(parts)} parts, but {', '.join(missing)} {verb} not beside it.")
        rest = [read_header(q) for q in parts[1:]]
        h = GGUFHeader(h.version, h.kv, h.tensors + [t for r in rest for t in r.tensors], h.data_offset,
                       h.file_bytes + sum(r.file_bytes for r in rest))  # fmt: skip
    return card_from_header(h, Path(path).resolve())
