"""Telemetry for models behind a server: the server's own process when it is on this machine, else
what the server reports about itself.

- Loopback URL: the process listening on that port (psutil) is the model's process; sample it
  with ``telemetry.ProcessSampler`` like a local worker. Its mapped ``.gguf`` file is the weights
  file. Ollama runs each model in a child ``runner`` process: that child is the one to sample.
- Elsewhere: ``RemoteSampler`` reads Prometheus ``/metrics`` (llama-server ``--metrics``, vLLM)
  or Ollama's ``/api/ps`` and answers ``Sample`` events whose process figures are ``None`` and
  whose ``server`` dict holds ``ServerMetrics``; ``note`` is "remote" when the server says nothing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import psutil

from backends.events import Sample, now
from backends.net import http_client, is_loopback

# -- this machine ---------------------------------------------------------------------------


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


FORWARDERS = frozenset({"ssh", "sshd", "autossh", "docker-proxy", "rootlessport", "gvproxy", "socat", "kubectl"})
"""Processes that listen for a server running elsewhere (an SSH tunnel, a container port): their CPU
and memory are not the model's, so such a server counts as remote."""


def server_pid(url: str) -> int | None:
    """The process serving ``url`` on this machine: None when the URL is not loopback, nothing
    listens, or the listener only forwards to another machine or a container."""
    if not is_loopback(url):
        return None
    pid = listening_pid(url_port(url))
    if pid is None:
        return None
    try:
        if psutil.Process(pid).name() in FORWARDERS:
            return None
    except psutil.Error:
        return None
    return pid


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine, or None (not found, not allowed)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        conns = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return c.pid
    # Not root on some systems: net_connections hides other processes' pids; ask each one we may.
    for proc in psutil.process_iter():
        try:
            getter = getattr(proc, "net_connections", None) or proc.connections
            for c in getter(kind="tcp"):
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
                    return proc.pid
        except (psutil.Error, OSError):
            continue
    return None


def mapped_files(pid: int) -> list[str]:
    """Files the process maps or holds open (where a GGUF loader keeps its weights)."""
    paths: list[str] = []
    try:
        proc = psutil.Process(pid)
        try:
            paths += [m.path for m in proc.memory_maps(grouped=True) if m.path.startswith("/")]
        except (psutil.Error, OSError, NotImplementedError):
            pass
        try:
            paths += [f.path for f in proc.open_files()]
        except (psutil.Error, OSError):
            pass
    except psutil.Error:
        return []
    return list(dict.fromkeys(paths))


def gguf_of(pid: int, hint: str | None = None) -> str | None:
    """The ``.gguf`` file a server process has mapped; with several, the one whose name has ``hint``."""
    ggufs = [p for p in mapped_files(pid) if p.endswith(".gguf") and os.path.isfile(p)]
    if hint:
        for p in ggufs:
            if hint in p or os.path.basename(p).startswith(os.path.basename(hint)):
                return p
    if len(ggufs) > 1:
        return max(ggufs, key=os.path.getsize)
    return ggufs[0] if ggufs else None


def child_with(pid: int, needle: str) -> int | None:
    """The descendant of ``pid`` whose command line or mapped files mention ``needle``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            if needle in " ".join(child.cmdline()) or needle in mapped_files(child.pid):
                return child.pid
        except (psutil.Error, OSError):
            continue
    return None


# -- what a server says about itself --------------------------------------------------------


@dataclass(slots=True)
class ServerMetrics:
    """A remote server's own figures; missing is None. Rates are over the last sampling interval."""

    source: str
    gen_tps: float | None = None
    prompt_tps: float | None = None
    kv_cache_used: float | None = None
    """Fraction 0–1 of the KV cache in use."""
    requests_running: int | None = None
    requests_waiting: int | None = None
    mem_bytes: int | None = None
    """Memory the server gives the model (Ollama ``size``)."""
    vram_bytes: int | None = None
    placement: str | None = None

    def line(self) -> str:
        """A short summary for a pane: "remote · 41.2 t/s · KV 12% · 1 running"."""
        bits = ["remote"]
        if self.gen_tps is not None:
            bits.append(f"{self.gen_tps:.1f} t/s")
        if self.kv_cache_used is not None:
            bits.append(f"KV {self.kv_cache_used * 100:.0f}%")
        if self.requests_running is not None:
            bits.append(f"{self.requests_running} running")
        if self.requests_waiting:
            bits.append(f"{self.requests_waiting} waiting")
        if self.placement:
            bits.append(self.placement)
        return " · ".join(bits)


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text format → {metric name: value summed over label sets}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            rest = rest.rpartition("}")[2]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        out[name.strip()] = out.get(name.strip(), 0.0) + value
    return out


# name → (generated-token counter, prompt-token counter, KV use (0-1) gauges, running, waiting)
_FAMILIES = {
    "llama-server /metrics": (
        "llamacpp:tokens_predicted_total",
        "llamacpp:prompt_tokens_total",
        ("llamacpp:kv_cache_usage_ratio",),
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
    ),
    "vLLM /metrics": (
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
    ),
}


def ollama_placement(size: int | None, size_vram: int | None) -> str | None:
    """The PROCESSOR column of ``ollama ps``: "100% GPU", "100% CPU" or "48%/52% CPU/GPU"."""
    if not size:
        return None
    vram = size_vram or 0
    if vram <= 0:
        return "100% CPU"
    if vram >= size:
        return "100% GPU"
    cpu = round((size - vram) * 100 / size)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def ollama_entry(models: list, name: str) -> dict | None:
    """The entry for ``name`` in an /api/tags or /api/ps list (":latest" is the default tag)."""
    want = {name, name if ":" in name else f"{name}:latest"}
    for m in models or []:
        if isinstance(m, dict) and (m.get("name") in want or m.get("model") in want):
            return m
    return None


class RemoteSampler:
    """Samples a server that runs elsewhere. Like ``telemetry.ProcessSampler`` its ``sample()`` is
    synchronous (``sample_every`` runs it in a thread) and never raises; a missing figure is None."""

    RETRY_S = 10.0
    """After a failed probe, ask again this much later (the server may be restarted with --metrics)."""

    def __init__(self, url: str, kind: str = "openai", model: str | None = None, *, timeout: float = 2.0) -> None:
        self.kind = kind
        self.model = model
        root = url.rstrip("/")
        if kind == "openai" and root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.root = root
        self.timeout = timeout
        self._client: httpx.Client | None = None
        self._prev: tuple[float, dict[str, float]] | None = None
        self._dead_until = 0.0

    def _get(self, path: str) -> httpx.Response | None:
        if time.monotonic() < self._dead_until:
            return None
        if self._client is None:
            self._client = http_client(self.root, timeout=self.timeout)
        try:
            r = self._client.get(self.root + path)
        except httpx.HTTPError:
            r = None
        if r is None or r.status_code >= 400:
            self._dead_until = time.monotonic() + self.RETRY_S
            return None
        return r

    def sample(self) -> Sample:
        t = now()
        m = self._ollama() if self.kind == "ollama" else self._prometheus(t)
        if m is None:
            return Sample(t=t, note="remote")
        return Sample(t=t, vram_bytes=m.vram_bytes, note=m.line(), server=dataclasses.asdict(m))

    def _prometheus(self, t: float) -> ServerMetrics | None:
        r = self._get("/metrics")
        if r is None:
            return None
        values = parse_prometheus(r.text)
        family = next((f for f in _FAMILIES.items() if f[1][0] in values or f[1][3] in values), None)
        if family is None:  # Prometheus, but not a server we know
            self._dead_until = time.monotonic() + self.RETRY_S
            return None
        source, (gen, prompt, kv_names, running, waiting) = family
        m = ServerMetrics(source=source)
        kv = next((values[k] for k in kv_names if k in values), None)
        m.kv_cache_used = kv
        m.requests_running = int(values[running]) if running in values else None
        m.requests_waiting = int(values[waiting]) if waiting in values else None
        if self._prev is not None:
            t0, v0 = self._prev
            dt = t - t0
            if dt > 0:
                if gen in values and gen in v0:
                    m.gen_tps = max(values[gen] - v0[gen], 0.0) / dt
                if prompt in values and prompt in v0:
                    m.prompt_tps = max(values[prompt] - v0[prompt], 0.0) / dt
        self._prev = (t, values)
        return m

    def _ollama(self) -> ServerMetrics | None:
        r = self._get("/api/ps")
        if r is None:
            return None
        try:
            entry = ollama_entry(r.json().get("models"), self.model or "")
        except (ValueError, AttributeError, RecursionError):
            return None
        if entry is None:
            return ServerMetrics(source="Ollama /api/ps", placement="not loaded")
        size, vram = entry.get("size"), entry.get("size_vram")
        return ServerMetrics(
            source="Ollama /api/ps",
            mem_bytes=size,
            vram_bytes=vram,
            placement=ollama_placement(size, vram),
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def remote_sampler(backend) -> RemoteSampler | None:
    """The sampler for a server backend without a local process; None when ``backend.pid`` is
    set (sample that process with ``telemetry.ProcessSampler``) or the backend is local."""
    if backend.pid is not None or backend.kind not in ("openai", "ollama"):
        return None
    return RemoteSampler(backend.base_url, backend.kind, backend.model)
