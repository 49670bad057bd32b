"""The hand-written GGUF header reader (backends/card/gguf.py) against the ``gguf`` package's own
``GGUFReader`` on both bundled files: every key with its type and value (arrays by item type and
count, which is all the card keeps of them), the tensor count, and each tensor's name, shape, type,
offset, element count and size, and where the tensor data starts."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType

from backends.card.gguf import ArrayField, read_header
from backends.specs import bundled_path

_PYTHON_TYPE = {
    GGUFValueType.STRING: str,
    GGUFValueType.BOOL: bool,
    GGUFValueType.FLOAT32: float,
    GGUFValueType.FLOAT64: float,
}


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma3-270m"])
def both(request):
    """(ours, the gguf package's) for one bundled model, once per model. GGUFReader slices its
    ``np.memmap`` a million times on Gemma's 262k-token vocabulary, and each slice of a memmap
    runs numpy's Python-level ``memmap.__array_finalize__``: 14 s. Its own parsing code reads
    the same mapping here as a plain ndarray (``np.asarray`` of that memmap): 5 s, the same fields
    and tensors."""
    path = bundled_path(request.param)
    memmap = np.memmap
    with mock.patch.object(np, "memmap", lambda *a, **k: np.asarray(memmap(*a, **k))):
        ref = GGUFReader(path)
    return read_header(path), ref


def test_every_key_has_the_same_type_and_value(both):
    ours, ref = both
    fields = {name: f for name, f in ref.fields.items() if not name.startswith("GGUF.")}
    assert ours.version == ref.fields["GGUF.version"].contents()
    assert list(ours.kv) == list(fields)  # the same keys, in file order
    for key, field in fields.items():
        mine, kind = ours.kv[key], field.types[0]
        if kind == GGUFValueType.ARRAY:
            assert isinstance(mine, ArrayField), key
            assert (mine.item_type, mine.count) == (field.types[-1], len(field.data)), key
            continue
        assert type(mine) is _PYTHON_TYPE.get(kind, int), (key, kind, mine)
        assert mine == field.contents(), key  # a float32 too: both give its exact value as a double


def test_the_keys_the_card_reads_are_there(both):
    """The card's own keys exist in both readings (so the comparison above covered them)."""
    ours, ref = both
    arch = ours.kv["general.architecture"]
    assert arch == ref.fields["general.architecture"].contents()
    for key in ("general.architecture", "general.name", "general.file_type", "tokenizer.ggml.tokens",
                f"{arch}.context_length", f"{arch}.block_count", f"{arch}.embedding_length",
                f"{arch}.attention.head_count"):  # fmt: skip
        assert key in ours.kv and key in ref.fields, key
    assert ours.kv["tokenizer.ggml.tokens"].count == len(ref.fields["tokenizer.ggml.tokens"].data)


def test_every_tensor_has_the_same_name_shape_type_offset_and_size(both):
    ours, ref = both
    assert len(ours.tensors) == len(ref.tensors) == ref.fields["GGUF.tensor_count"].contents()
    assert ours.data_offset == ref.data_offset
    for mine, theirs in zip(ours.tensors, ref.tensors, strict=True):
        assert mine.name == theirs.name
        assert mine.shape == tuple(int(d) for d in theirs.shape), mine.name
        assert mine.type == theirs.tensor_type, mine.name
        assert ours.data_offset + mine.offset == theirs.data_offset, mine.name
        assert (mine.n_elements, mine.n_bytes) == (theirs.n_elements, theirs.n_bytes), mine.name
