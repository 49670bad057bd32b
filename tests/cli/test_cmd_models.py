"""``abtop models``: bundled aliases, the Hugging Face cache, --dir, and an Ollama server (replayed
from Ollama's documented ``/api/tags`` answer, since Ollama cannot be installed here)."""

from __future__ import annotations

from tests.support.replay_server import ReplayServer, free_port, json_route
from tui.cli.main import main

TAGS = {
    "models": [
        {
            "name": "codellama:13b",
            "modified_at": "2023-11-04T14:56:49.277302595-07:00",
            "size": 7365960935,
            "digest": "9f438cb9cd581fc025612d27f7c1a6669ff83a8bb0ed86c94fcf4c5440555697",
            "details": {"format": "gguf", "family": "llama", "families": None, "parameter_size": "13B",
                        "quantization_level": "Q4_0"},
        }
    ]
}


def _hf_cache(root):
    """The layout huggingface_hub writes: snapshots hold symlinks into blobs."""
    repo = root / "hub" / "models--bartowski--Qwen2.5-0.5B-Instruct-GGUF"
    blob = repo / "blobs" / "abc123"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"GGUF" + b"\0" * 2044)
    for rev in ("rev1", "rev2"):  # two snapshots of one file: listed once
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf").symlink_to(blob)


def test_lists_everything(tmp_path, monkeypatch, capsys):
    _hf_cache(tmp_path / "hf")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    models = tmp_path / "models" / "sub"
    models.mkdir(parents=True)
    (models / "mine.gguf").write_bytes(b"GGUF" + b"\0" * 1000)
    (models / "notes.txt").write_text("not a model")
    with ReplayServer({("GET", "/api/tags"): json_route(200, TAGS)}) as srv:
        rc = main(["models", "--dir", str(tmp_path / "models"), "--ollama", srv.url])
    out = capsys.readouterr().out
    assert rc == 0
    assert "smollm2-135m" in out and "gemma3-270m" in out
    assert out.count("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf") == 1 and "bartowski/Qwen2.5-0.5B-Instruct-GGUF" in out
    # a cached file is named by the hf: spec that loads it from the cache (offline)
    assert "hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf" in out
    assert str(models / "mine.gguf") in out and "notes.txt" not in out
    assert f"ollama:codellama:13b@{srv.url}" in out and "13B" in out and "7.4 GB" in out


def test_unreachable_ollama_and_missing_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    url = f"http://127.0.0.1:{free_port()}"
    rc = main(["models", "--ollama", url])
    captured = capsys.readouterr()
    assert rc == 0 and f"Ollama at {url}: not reachable" in captured.out and not captured.err
    rc = main(["models", "--dir", str(tmp_path / "nope")])
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.count("\n") == 1 and "no such directory" in captured.err
    assert "smollm2-135m" in captured.out  # the rest is still listed


def test_openai_server_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    data = {"object": "list", "data": [{"id": "qwen", "owned_by": "llamacpp", "meta": {"n_params": 494032768, "size": 397808192}}]}
    with ReplayServer({("GET", "/v1/models"): json_route(200, data)}) as srv:
        rc = main(["models", "--ollama", f"http://127.0.0.1:{free_port()}", "--openai", srv.url + "/v1"])
    out = capsys.readouterr().out
    assert rc == 0 and f"openai:qwen@{srv.url}/v1" in out and "494.0M params" in out
