"""``hf:`` specs: picking a quant, downloading into the Hugging Face cache, streaming, offline.

The real hub is not reachable from these machines: ``HF_ENDPOINT`` points at ``tests/support/hub_replay.py``,
a loopback server that replays the hub's documented file API (tree listing, HEAD/GET ``resolve``
with ``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``, ``Range``), serving copies of the
bundled SmolLM2 GGUF. ``huggingface_hub`` itself does the listing and the download.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from backends.base import BackendError, GenParams
from backends.catalog import make_backend
from backends.events import Finished, Loaded, Note, Progress, Token
from backends.fetch.hf import HFRef, gguf_models, parse_hf, pick, quant_of
from backends.session import RunPlan, Session
from backends.units import human_bytes
from tests.conftest import worker_children, write_split_gguf
from tests.support.hub_replay import HubReplay
from tests.support.replay_server import free_port
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp

REPO = "replay/SmolLM2-135M-Instruct-GGUF"
NAMES = ("SmolLM2-135M-Instruct-Q4_K_M.gguf", "SmolLM2-135M-Instruct-Q8_0.gguf")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh Hugging Face cache for each test (HF_HUB_CACHE), read when abtop looks."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "hub"


@pytest.fixture
def hub(smollm2_path, monkeypatch):
    with HubReplay({REPO: {n: smollm2_path for n in NAMES}}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        yield h


# -- specs and picking (no network) ----------------------------------------------------------
def test_specs_parse_as_llama_cpp_names_them():
    assert parse_hf("hf:Qwen/Qwen2.5-3B-Instruct-GGUF") == HFRef("hf:Qwen/Qwen2.5-3B-Instruct-GGUF", "Qwen/Qwen2.5-3B-Instruct-GGUF")
    assert parse_hf("hf:a/b:q8_0").quant == "q8_0"
    ref = parse_hf("hf:a/b/sub/x-Q4_0.gguf")
    assert (ref.repo, ref.file) == ("a/b", "sub/x-Q4_0.gguf")
    for bad in ("hf:", "hf:onlyname", "hf:a/b/c", "hf:a/../x.gguf", "hf:a/b:Q4 K"):
        with pytest.raises(BackendError) as e:
            parse_hf(bad)
        assert "write hf:OWNER/REPO[:QUANT]" in str(e.value) and "\n" not in str(e.value)


def test_quant_picking_is_case_insensitive_defaults_to_q4_k_m_and_names_the_rest():
    files = {
        "Qwen2.5-3B-Instruct-q4_k_m.gguf": 2_000,
        "Qwen2.5-3B-Instruct-IQ4_XS.gguf": 1_800,
        "Qwen2.5-3B-Instruct-q8_0.gguf": 3_000,
        "mmproj-F16.gguf": 500,  # a vision projector is no model of its own
        "README.md": 10,
    }
    ch = pick(HFRef("hf:x/y", "x/y"), files)
    assert ch.file == "Qwen2.5-3B-Instruct-q4_k_m.gguf" and ch.size == 2_000
    assert ch.others == ["IQ4_XS", "Q8_0"]
    assert pick(HFRef("hf:x/y:Q8_0", "x/y", quant="Q8_0"), files).file == "Qwen2.5-3B-Instruct-q8_0.gguf"
    # Q4_XS is not IQ4_XS: a quant matches as a whole word of the name
    with pytest.raises(BackendError) as e:
        pick(HFRef("hf:x/y:Q4_XS", "x/y", quant="Q4_XS"), files)
    assert str(e.value) == "hf:x/y:Q4_XS: x/y has no Q4_XS file; it has IQ4_XS, Q4_K_M, Q8_0 (write hf:x/y:QUANT)."
    # no Q4_K_M and none asked for: a near quant, and why
    ch = pick(HFRef("hf:x/y", "x/y"), {"m-Q8_0.gguf": 1, "m-Q4_0.gguf": 1})
    assert ch.file == "m-Q4_0.gguf" and "no Q4_K_M" in ch.why
    with pytest.raises(BackendError, match="holds no .gguf file"):
        pick(HFRef("hf:x/y", "x/y"), {"model.safetensors": 1})
    assert quant_of("gemma-3n-E2B-it-UD-Q4_K_XL.gguf") == "UD-Q4_K_XL"
    assert quant_of("x-BF16-00001-of-00002.gguf") == "BF16"


def test_split_parts_are_one_model_opened_from_the_first():
    files = {f"big-Q4_K_M-0000{i}-of-00003.gguf": 10 for i in (2, 1, 3)} | {"big-Q8_0.gguf": 50}
    assert gguf_models(files)["big-Q4_K_M-00001-of-00003.gguf"] == [f"big-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    ch = pick(HFRef("hf:x/y", "x/y"), files)
    assert (ch.file, len(ch.parts), ch.size, ch.others) == ("big-Q4_K_M-00001-of-00003.gguf", 3, 30, ["Q8_0"])


# -- the replay hub ----------------------------------------------------------------------------
async def _load(spec: str, *, run: bool = False) -> tuple[Session, list]:
    seen: list = []
    session = Session([make_backend(spec, n_ctx=512)], lambda i, ev: seen.append(ev), interval=0.5)
    await session.load()
    if run and session.alive[0]:
        await session.run(RunPlan("The sky is", GenParams(max_tokens=8)))
    return session, seen


async def test_download_with_progress_then_stream(cache, hub, smollm2_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_replaySecret123")
    session, seen = await _load(f"hf:{REPO}", run=True)
    try:
        assert session.alive == [True]
        size = os.path.getsize(smollm2_path)
        note = next(ev for ev in seen if isinstance(ev, Note))
        said = f"hf:{REPO}: SmolLM2-135M-Instruct-Q4_K_M.gguf (quant Q4_K_M), {human_bytes(size)}"
        assert note.text.startswith(f"{said}, downloading")
        assert note.text.endswith("also in the repo: Q8_0")
        bars = [ev for ev in seen if isinstance(ev, Progress) and ev.what == NAMES[0]]
        assert bars[0].total == size and bars[-1].done == size and bars[-1].finished
        assert any(isinstance(ev, Progress) and ev.what.startswith("checking sha256") for ev in seen)
        loaded = next(ev for ev in seen if isinstance(ev, Loaded))
        assert loaded.info.name == "SmolLM2-135M-Instruct-Q4_K_M"  # named by the file the spec chose
        notes = [ev.text for ev in seen if isinstance(ev, Note)]
        assert f"{said}, downloaded" in notes[-1]
        path = Path(loaded.weights_path)
        assert path.name == NAMES[0] and cache in path.parents and path.resolve().stat().st_size == size
        assert any(isinstance(ev, Token) for ev in seen)
        assert any(isinstance(ev, Finished) for ev in seen)
        # the token went to the hub as a bearer token (the library's doing) and nowhere else
        assert any(h.get("authorization") == "Bearer hf_replaySecret123" for _, _, h in hub.requests)
        assert not any("hf_replaySecret123" in getattr(ev, "text", "") for ev in seen)
    finally:
        await session.close()
    assert not worker_children()


async def test_cached_file_loads_with_the_hub_gone(cache, smollm2_path, monkeypatch):
    with HubReplay({REPO: {n: smollm2_path for n in NAMES}}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        session, _ = await _load(f"hf:{REPO}:q8_0")
        await session.close()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    session, seen = await _load(f"hf:{REPO}:Q8_0", run=True)
    try:
        assert session.alive == [True]
        assert not any(isinstance(ev, Progress) for ev in seen)
        note = next(ev for ev in seen if isinstance(ev, Note))
        size = human_bytes(os.path.getsize(smollm2_path))
        assert f"SmolLM2-135M-Instruct-Q8_0.gguf (quant Q8_0), {size}, in the cache" in note.text
        assert any(isinstance(ev, Token) for ev in seen)
    finally:
        await session.close()
    # the spec `abtop models` and the picker give a cached file works offline too
    session, seen = await _load(f"hf:{REPO}/{NAMES[1]}")
    await session.close()
    assert session.alive == [True] and not any(isinstance(ev, Progress) for ev in seen)


async def test_unreachable_hub_is_one_sentence(cache, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    session, seen = await _load(f"hf:{REPO}")
    await session.close()
    assert session.alive == [False]
    (reason,) = [ev.reason for ev in seen if hasattr(ev, "reason")]
    assert reason.startswith(f"hf:{REPO}: the Hugging Face hub at http://127.0.0.1:") and "not reachable" in reason
    assert "\n" not in reason and reason.endswith("check the network or HF_ENDPOINT.")


async def test_hub_mistakes_are_sentences_that_keep_the_token_secret(cache, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_replaySecret123")
    for spec, says in (
        ("hf:nobody/Nothing-GGUF", "no repository nobody/Nothing-GGUF on the hub (a private one needs HF_TOKEN)"),
        (f"hf:{REPO}:Q2_K", f"{REPO} has no Q2_K file; it has Q4_K_M, Q8_0"),
        (f"hf:{REPO}/missing.gguf", f"{REPO} has no file missing.gguf"),
    ):
        session, seen = await _load(spec)
        await session.close()
        (reason,) = [ev.reason for ev in seen if hasattr(ev, "reason")]
        assert reason.startswith(f"{spec}: ") and says in reason and "hf_replaySecret123" not in reason


async def test_a_wrong_sha256_is_caught_and_the_blob_removed(cache, smollm2_path, tmp_path, monkeypatch):
    bad = tmp_path / "bad-Q4_K_M.gguf"
    bad.write_bytes(Path(smollm2_path).read_bytes()[:1_000_000])
    with HubReplay({"x/y": {"bad-Q4_K_M.gguf": bad}}) as h:
        h.httpd._sha[bad] = "0" * 64  # the hub says one sha256, the bytes have another
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        session, seen = await _load("hf:x/y")
        await session.close()
    (reason,) = [ev.reason for ev in seen if hasattr(ev, "reason")]
    assert reason == "hf:x/y: bad-Q4_K_M.gguf arrived with the wrong sha256 (removed from the cache); try again."
    assert not list(cache.rglob("blobs/*0000000000"))


async def test_a_split_gguf_is_fetched_whole_and_loaded_from_its_first_part(cache, smollm2_path, tmp_path, monkeypatch):
    parts = write_split_gguf(smollm2_path, tmp_path / "SmolLM2-Q4_K_M")
    assert len(parts) == 2
    with HubReplay({"x/split": {Path(p).name: Path(p) for p in parts}}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        session, seen = await _load("hf:x/split", run=True)
        try:
            assert session.alive == [True]
            assert "in 2 parts" in next(ev for ev in seen if isinstance(ev, Note)).text
            assert Path(session.loaded[0].weights_path).name == "SmolLM2-Q4_K_M-00001-of-00002.gguf"
            assert session.loaded[0].info.name == "SmolLM2-Q4_K_M"
            assert {ev.what for ev in seen if isinstance(ev, Progress) and ev.finished} >= {Path(p).name for p in parts}
            assert any(isinstance(ev, Token) for ev in seen)
        finally:
            await session.close()


async def test_the_pane_draws_the_download_bar(cache, smollm2_path, monkeypatch):
    """While the file arrives the pane's stats line is a bar with bytes, rate and ETA."""
    with HubReplay({REPO: {n: smollm2_path for n in NAMES}}, rate=40e6) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        app = ABTopApp([f"hf:{REPO}", "smollm2-135m"], "The sky is", GenParams(max_tokens=8), n_ctx=512)
        shown: list[str] = []
        drawn = asyncio.Event()

        def watch(slot, ev):
            if slot == 0 and isinstance(ev, Progress) and ev.rate and not ev.finished:
                shown.append(str(app.panes[0].query_one(".stats").render()))
                drawn.set()

        app.hooks.append(watch)
        async with app.run_test(size=(160, 45)) as pilot:
            await wait_for(drawn, "the pane to draw the download bar", 120)
            await wait_for(app.models_loaded, "the models to load", 180)
            await pilot.pause()
            assert not app.panes[0].failed
            line = shown[0]
            assert line.startswith(f"{NAMES[0]}  ") and "█" in line and " MB / 98.4 MB · " in line and "MB/s · ETA 0:0" in line
    assert not worker_children()
