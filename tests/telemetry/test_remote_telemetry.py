"""Telemetry for served models: the local server's own process, else the server's Prometheus
``/metrics`` (the text below is llama-server's and vLLM's format), else "remote"."""

from __future__ import annotations

import os

import psutil

from backends.telemetry import remote
from backends.telemetry.remote import RemoteSampler, parse_prometheus, server_pid
from tests.support.replay_server import Handler, ReplayServer, free_port, json_route

LLAMA_SERVER_METRICS = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt}
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total {gen}
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.25
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
"""

VLLM_METRICS = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="Qwen/Qwen2.5-3B"} 3.0
vllm:num_requests_waiting{model_name="Qwen/Qwen2.5-3B"} 0.0
vllm:gpu_cache_usage_perc{model_name="Qwen/Qwen2.5-3B"} 0.5
vllm:generation_tokens_total{model_name="Qwen/Qwen2.5-3B"} 1000.0
vllm:generation_tokens_total{model_name="other"} 24.0
"""


def test_parse_prometheus_sums_label_sets():
    v = parse_prometheus(VLLM_METRICS)
    assert v["vllm:generation_tokens_total"] == 1024.0
    assert v["vllm:num_requests_running"] == 3.0 and v["vllm:gpu_cache_usage_perc"] == 0.5


def test_llama_server_metrics_give_rates():
    counters = iter([(10, 100), (30, 150), (30, 150)])

    def metrics(h: Handler) -> None:
        prompt, gen = next(counters)
        h.reply(200, LLAMA_SERVER_METRICS.format(prompt=prompt, gen=gen).encode(), "text/plain; version=0.0.4")

    with ReplayServer({("GET", "/metrics"): metrics}) as srv:
        sampler = RemoteSampler(srv.url + "/v1", "openai")
        first, second = sampler.sample(), sampler.sample()
        sampler.close()
    assert first.server["gen_tps"] is None  # a rate needs two readings
    m = second.server
    assert m["source"] == "llama-server /metrics"
    assert m["gen_tps"] > 0 and m["prompt_tps"] > 0
    assert (m["kv_cache_used"], m["requests_running"], m["requests_waiting"]) == (0.25, 1, 2)
    assert second.note.startswith("remote · ") and "KV 25%" in second.note and "2 waiting" in second.note
    assert second.cpu_percent is None and second.rss_bytes is None


def test_vllm_metrics():
    with ReplayServer({("GET", "/metrics"): json_route(200, VLLM_METRICS.encode())}) as srv:
        sampler = RemoteSampler(srv.url + "/v1", "openai")
        s = sampler.sample()
        sampler.close()
    assert s.server["source"] == "vLLM /metrics" and s.server["kv_cache_used"] == 0.5
    assert s.server["requests_running"] == 3


def test_remote_when_server_says_nothing():
    with ReplayServer({("GET", "/metrics"): json_route(200, b"not prometheus at all")}) as srv:
        sampler = RemoteSampler(srv.url, "openai")
        assert sampler.sample().note == "remote"
        sampler.close()
    sampler = RemoteSampler(f"http://127.0.0.1:{free_port()}/v1", "openai")
    s = sampler.sample()
    sampler.close()
    assert s.note == "remote" and s.server is None


def test_server_pid_on_loopback_only(monkeypatch):
    with ReplayServer({}) as srv:
        assert server_pid(srv.url) == os.getpid()
        assert server_pid(srv.url.replace("127.0.0.1", "localhost")) == os.getpid()
        assert server_pid(f"http://192.0.2.1:{srv.port}") is None  # not this machine
        # An SSH tunnel or a container proxy listens locally for a server elsewhere: not the model.
        monkeypatch.setattr(remote, "FORWARDERS", frozenset({psutil.Process().name()}))
        assert server_pid(srv.url) is None
    assert server_pid(f"http://127.0.0.1:{free_port()}") is None
