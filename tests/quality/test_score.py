"""``abtop score`` with the real engine on both bundled models: the bundled text, a sanity check
that the number means something (a text beats its own words shuffled), memory bounded."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import pytest

from backends.catalog import make_backend
from backends.quality.bpb import bits_per_byte, reference_text
from backends.quality.scoring import score_one

ABTOP = [sys.executable, "-m", "tui.cli.main"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~1,700 tokens with every logit: a minute alone, far more on a shared box
@pytest.mark.parametrize("spec", ["smollm2-135m", "gemma3-270m"])
async def test_the_bundled_text_is_scored_with_memory_under_twice_the_loaded_anon(spec):
    """Its first two windows: a window's logits (1024 rows × 262k floats, 1 GB for gemma3, kept
    whole) are what bounded chunks save, whatever the text's length beyond one window."""
    full = reference_text()
    text = full[: full.index("\n\n", 6500)]  # ~1,700 tokens: two windows of 1,024
    seen: list[tuple[int, int]] = []
    m = await score_one(0, spec, text, n_ctx=1024, stride=None, threads=None, progress=lambda _s, _l, d, t: seen.append((d, t)))
    assert m["reason"] is None and m["bpb"] is not None
    assert m["bytes"] == len(text.encode()) and m["window"] == 1024 and m["stride"] == 1023
    assert m["tokens"] > 1000 and math.isclose(m["bpb"], m["bits"] / m["bytes"])
    assert 0 < m["bpb"] < 8  # English prose: far below a byte's eight bits
    assert seen[-1] == (m["tokens"], m["tokens"])  # the progress reached the end
    # logits in bounded chunks: scoring adds well under one more loaded model's anonymous memory
    assert m["peak_anon_bytes"] < 2 * m["anon_before_bytes"]
    print(f"\n{spec}: bpb {m['bpb']:.4f}, {m['tokens']} tokens in {m['seconds']:.1f} s, "
          f"anon {m['anon_before_bytes'] / 1e6:.0f} -> peak {m['peak_anon_bytes'] / 1e6:.0f} MB")


@pytest.mark.parametrize("spec", ["smollm2-135m", "gemma3-270m"])
async def test_a_text_scores_better_than_its_words_shuffled(spec):
    text = " ".join(reference_text().split("\n\nThe Gettysburg Address\n\n")[1].split()[:270])  # ~1.5 KB
    words = text.split()
    random.Random(0).shuffle(words)
    shuffled = " ".join(words)
    assert len(shuffled.encode()) == len(text.encode())
    b = make_backend(spec, n_ctx=512)
    await b.load()
    try:
        real = await b.score(text)
        mixed = await b.score(shuffled)
    finally:
        await b.close()
    real_bpb, mixed_bpb = (bits_per_byte(r["nll_nats"], len(text.encode())) for r in (real, mixed))
    assert real_bpb < mixed_bpb, (real_bpb, mixed_bpb)


def test_abtop_score_writes_the_schema_and_a_table(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("It is for us the living, rather, to be dedicated here to the unfinished work.\n", encoding="utf-8")
    out = tmp_path / "s.json"
    p = subprocess.run([*ABTOP, "score", "--text", str(text), "--ctx", "256", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "abtop.score/1" and doc["text"]["bytes"] == len(text.read_bytes())
    assert [m["spec"] for m in doc["models"]] == ["smollm2-135m", "gemma3-270m"]
    for m in doc["models"]:
        assert {"spec", "bpb", "tokens", "bytes", "seconds"} <= m.keys()
        assert m["bpb"] > 0 and m["tokens"] > 0 and m["seconds"] > 0
        assert f"| {m['spec']} | {m['bpb']:.4f} |" in p.stdout


@pytest.mark.parametrize(
    "args, words",
    [(["--text", "/no/such.txt"], "no such file"), (["--stride", "0"], "--stride"), (["--ctx", "10"], "--ctx"),
     (["/no/model.gguf"], "model.gguf")],
)  # fmt: skip
def test_bad_input_is_one_sentence(args, words):
    p = subprocess.run([*ABTOP, "score", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and words in p.stderr
