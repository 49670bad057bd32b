"""Shape twins: the presets match the published models, the files are what llama.cpp expects."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from backends import build_twin
from backends.base import BackendError
from backends.card.gguf import card_from_header, read_card, read_header
from backends.events import Progress
from backends.specs import parse_spec
from backends.twins.presets import PLAN_VERSION, PRESETS
from backends.twins.writer import plan_header, twin_path
from backends.units import human_bytes
from tui.cli.main import main


def _near(x: float, published: float) -> bool:
    return abs(x - published) <= 0.02 * published


def test_full_size_cards_match_the_published_totals_within_2_percent():
    """What ``abtop info twin:NAME`` prints, from the header the full-size twin will have."""
    cards = {n: card_from_header(plan_header(n), twin_path(n)) for n in PRESETS}
    g, q, o = cards["gemma-4-e2b"], cards["qwen2.5-3b"], cards["olmoe-1b-7b"]
    gp, qp, op = PRESETS["gemma-4-e2b"], PRESETS["qwen2.5-3b"], PRESETS["olmoe-1b-7b"]
    # Gemma 4 E2B: 5.1B counts the vision + audio encoders (llama.cpp's mmproj file, not the text GGUF).
    assert _near(g.params + gp.not_in_gguf, gp.published_total), g.params
    assert _near(g.params_effective, gp.published_other), g.params_effective
    assert g.ple and g.ple["params"] > g.params / 2  # the PLE table is most of the file
    assert _near(q.params, qp.published_total) and q.moe is None and q.ple is None
    assert _near(o.params, op.published_total) and _near(o.moe["params_active"], op.published_other)
    assert o.params >= 5 * o.moe["params_active"]
    assert (g.n_layers, q.n_layers, o.n_layers) == (35, 36, 16)
    assert (g.n_vocab, q.n_vocab, o.n_vocab) == (262144, 151936, 50304)
    assert all(c.synthetic for c in cards.values())
    # At Q4_K the MoE twin (3.9 GB) fits a 24 GB box beside either other twin.
    assert o.file_bytes + max(g.file_bytes, q.file_bytes) < 8e9


def test_written_twin_is_the_planned_header_with_sane_quant_scales(tiny_twins):
    for name, path in tiny_twins.items():
        h = read_header(path)
        scale = float(h.kv["abtop.twin.scale"])
        planned = plan_header(name, "Q4_K", scale)
        assert [(t.name, t.shape, t.type, t.n_bytes) for t in h.tensors] == [
            (t.name, t.shape, t.type, t.n_bytes) for t in planned.tensors
        ]
        card = read_card(path)
        assert card.synthetic and card.quant == "Q4_K_S"
        emb = next(t for t in h.tensors if t.name == "token_embd.weight")
        with open(path, "rb") as f:  # each Q4_K block starts with f16 d, dmin: finite and positive
            f.seek(h.data_offset + emb.offset)
            blocks = np.frombuffer(f.read(144 * 64), dtype=np.uint8).reshape(64, 144)
        dm = blocks[:, :4].copy().view(np.float16)
        assert np.isfinite(dm).all() and (dm > 0).all()


def test_twin_spec_builds_on_first_use_into_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ms = parse_spec("twin:qwen2.5-3b:q8_0:0.03")
    assert ms.kind == "gguf" and ms.path == tmp_path / "abtop" / "twins" / "qwen2.5-3b-Q8_0-s0.03.gguf"
    first = ms.path.stat().st_mtime_ns
    assert parse_spec("twin:qwen2.5-3b:0.03:Q8_0").path.stat().st_mtime_ns == first  # not written again
    assert not list(ms.path.parent.glob(".*tmp"))  # written beside, renamed into place
    assert read_header(ms.path).kv["abtop.twin.version"] == PLAN_VERSION
    # A twin cached by an older plan (weights since changed) is rewritten on next use.
    monkeypatch.setattr("backends.twins.writer.PLAN_VERSION", PLAN_VERSION + 1)
    assert parse_spec("twin:qwen2.5-3b:q8_0:0.03").path.stat().st_mtime_ns != first
    for bad, words in (
        ("twin:llama-9", "no such twin"),
        ("twin:qwen2.5-3b:Q3", "neither a quant"),
        ("twin:qwen2.5-3b:2", "at most 1"),
    ):
        with pytest.raises(BackendError, match=words):
            parse_spec(bad)


def test_twin_command_writes_and_lists(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["twin", "olmoe-1b-7b", "--scale", "0.0625", "--quant", "q4_k"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "twin:olmoe-1b-7b:0.0625"
    assert (tmp_path / "abtop" / "twins" / "olmoe-1b-7b-Q4_K-s0.0625.gguf").exists()
    assert main(["twin", "olmoe-1b-7b", "--scale", "0.0625"]) == 0
    assert "exists" in capsys.readouterr().err
    assert main(["twin", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such twin" in err and "Traceback" not in err
    assert main(["twin"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in PRESETS) and "source:" in listing


def test_the_writer_tells_its_progress_as_events_and_the_command_draws_them(tmp_path, monkeypatch, capsys):
    """``backends/`` draws nothing: the writer hands ``Progress`` events (bytes of tensor data, a
    few a second, the last one finished) to a callback; ``abtop twin`` draws them on stderr (in a
    log, as here: a line at the start and one at the end), then says where the file went."""
    seen = []
    path = build_twin("qwen2.5-3b", "Q4_K", 0.03, path=tmp_path / "t.gguf", on_progress=seen.append)
    data = sum(t.n_bytes for t in read_header(path).tensors)
    assert seen and all(isinstance(ev, Progress) and ev.what == "twin qwen2.5-3b Q4_K ×0.03" for ev in seen)
    assert seen[0].done == 0 and seen[-1].finished and seen[-1].done == seen[-1].total == data
    assert [ev.done for ev in seen] == sorted(ev.done for ev in seen) and not any(ev.finished for ev in seen[:-1])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["twin", "qwen2.5-3b", "--scale", "0.03"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "abtop: twin qwen2.5-3b Q4_K ×0.03…",
        f"abtop: twin qwen2.5-3b Q4_K ×0.03: done ({human_bytes(data)}).",
        f"wrote {twin_path('qwen2.5-3b', 'Q4_K', 0.03)}",
    ]


def test_info_of_an_unbuilt_twin_reads_the_plan_without_writing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["info", "twin:gemma-4-e2b"]) == 0
    out = capsys.readouterr().out
    assert "4.63B" in out and "2.28B effective" in out and "synthetic" in out
    assert not (tmp_path / "abtop").exists()
    # The published figures beside this file's count: 5.1B total counts the encoders in mmproj.
    row = next(line for line in out.splitlines() if line.strip().startswith("twin of"))
    assert "Gemma 4 E2B: 5.10B total, 2.30B effective published" in row and "mmproj" in row
    off = float(re.search(r"\(([+-][0-9.]+) %\)", row).group(1))
    assert abs(off) <= 2.0, row


def test_every_twin_card_states_its_published_figures_within_2_percent(capsys):
    for name in PRESETS:
        assert main(["info", f"twin:{name}", "--json"]) == 0
        card = json.loads(capsys.readouterr().out)
        t = card["twin"]
        assert t["preset"] == name and t["scale"] == 1.0
        assert _near(card["params"] + t["not_in_gguf"], t["published_total"]), (name, card["params"])
    assert main(["info", "twin:qwen2.5-3b:q8_0:0.05"]) == 0
    assert "scaled ×0.05" in capsys.readouterr().out  # a small twin does not claim the model's counts


def test_scale_keeps_per_layer_shapes():
    full, small = PRESETS["gemma-4-e2b"].plan(1.0), PRESETS["gemma-4-e2b"].plan(0.3)
    shapes = {t.name: t.ne for t in full.tensors}
    assert small.n_layer < full.n_layer and small.n_vocab < full.n_vocab
    for t in small.tensors:
        if t.name.startswith("blk.0."):
            assert shapes[t.name] == t.ne
    with pytest.raises(ValueError):
        PRESETS["qwen2.5-3b"].plan(0.0)
