"""Shared fixtures: the two bundled models, real files only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import psutil
import pytest
from gguf import GGUFWriter, LlamaFileType

from backends.specs import bundled_path
from tests.support.replay_server import free_port


@pytest.fixture(scope="session")
def smollm2_path():
    return bundled_path("smollm2-135m")


@pytest.fixture(scope="session")
def gemma3_path():
    return bundled_path("gemma3-270m")


def children() -> list[psutil.Process]:
    """Live descendants of this test process (workers, servers)."""
    return [p for p in psutil.Process(os.getpid()).children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def kill_leftovers(proc: subprocess.Popen, workers: list[psutil.Process]) -> None:
    """A test's way out: the abtop it started (its process group) and the workers it saw, killed
    if a failed assertion left them running."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    for w in workers:
        if w.is_running():
            w.kill()


def worker_children(pid: int | None = None) -> list[psutil.Process]:
    """The llama.cpp workers below ``pid`` (default: this test process); none once ``pid`` is gone."""
    if pid is None:
        kids = children()
    else:
        try:
            kids = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
    out = []
    for p in kids:
        try:
            if "llamacpp_worker" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def write_tiny_gguf(path, arch: str, kv: dict[str, int], tensors: dict[str, tuple[int, ...]]) -> str:
    """A real GGUF file with the given uint32 metadata and zero F32 tensors (written by the
    ``gguf`` package's own writer), for cards whose every number can be worked out by hand."""
    w = GGUFWriter(str(path), arch)
    w.add_name(f"tiny {arch}")
    w.add_context_length(256)
    w.add_block_count(1)
    w.add_file_type(LlamaFileType.ALL_F32)
    for key, value in kv.items():
        w.add_uint32(key, value)
    for name, shape in tensors.items():
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


TINY_TWINS = {"gemma-4-e2b": 0.1, "qwen2.5-3b": 0.03, "olmoe-1b-7b": 0.0625}
"""Scales that keep each architecture's per-layer shapes but give one block of layers and a
vocabulary of a few thousand: gemma4 5 layers (4 sliding + 1 full) 150 MB, qwen2 1 layer 49 MB,
olmoe 1 layer with all 64 experts 244 MB, at Q4_K."""


@pytest.fixture(scope="session")
def tiny_twins(tmp_path_factory):
    """Small twins of the three architectures (PLE, dense, MoE), written once per session."""
    from backends import build_twin

    d = tmp_path_factory.mktemp("twins")
    return {name: build_twin(name, "Q4_K", scale, path=d / f"{name}.gguf") for name, scale in TINY_TWINS.items()}
def write_split_gguf(src, stem, max_tensors: int = 150) -> list[str]:
    """A real split GGUF (``STEM-00001-of-0000N.gguf``, llama.cpp's gguf-split layout with its
    ``split.*`` keys) rewritten from ``src`` by the ``gguf`` package's writer; tensors are copied
    raw. Returns the parts' paths, first part first."""
    from pathlib import Path

    from gguf import GGUFReader, GGUFValueType

    r = GGUFReader(src)
    w = GGUFWriter(str(stem) + ".gguf", r.fields["general.architecture"].contents(), split_max_tensors=max_tensors)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if f.types[0] == GGUFValueType.ARRAY:
            w.add_key_value(name, f.contents(), f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(name, f.contents(), f.types[0])
    for t in r.tensors:
        w.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sorted(str(p) for p in Path(stem).parent.glob(Path(stem).name + "-*-of-*.gguf"))


@pytest.fixture(scope="session")
def bench_json(tmp_path_factory):
    """``abtop bench`` on the bundled pair, once per session (bench's tests and ``abtop votes
    --bench`` read it): (the JSON document, the finished process, the CSV's path)."""
    out = tmp_path_factory.mktemp("bench") / "out.json"
    csv = out.with_suffix(".csv")
    p = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "bench", "smollm2-135m", "gemma3-270m", "-p", "The sky is blue because",
         "-n", "16", "--runs", "2", "--warmup", "1", "--ctx", "512", "--json", str(out), "--csv", str(csv)],
        capture_output=True, text=True, timeout=540,  # two models, three runs each: minutes on a busy box
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(out.read_text()), p, csv


@pytest.fixture(scope="session")
def llama_server(llama_server_and_log):
    """``python -m llama_cpp.server`` on a free loopback port: (url, process, model path)."""
    return llama_server_and_log[:3]


@pytest.fixture(scope="session")
def llama_server_and_log(tmp_path_factory):
    """The server of ``llama_server`` and the file its log goes to."""
    path = bundled_path("smollm2-135m")
    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "512"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer in 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)  # polling a child process that has no readiness signal but its port
        yield url, proc, str(path), log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
