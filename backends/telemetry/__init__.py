"""What a model costs while it runs: per-process CPU and memory maps, NVML, RAPL, bandwidth, remote metrics."""
