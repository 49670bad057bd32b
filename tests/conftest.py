"""Shared fixtures: the two bundled models, real files only."""

from __future__ import annotations

import os

import psutil
import pytest

from backends.catalog import bundled_path


@pytest.fixture(scope="session")
def smollm2_path():
    return bundled_path("smollm2-135m")


@pytest.fixture(scope="session")
def gemma3_path():
    return bundled_path("gemma3-270m")


def children() -> list[psutil.Process]:
    """Live descendants of this test process (workers, servers)."""
    return [p for p in psutil.Process(os.getpid()).children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def worker_children() -> list[psutil.Process]:
    out = []
    for p in children():
        try:
            if "backends.llamacpp_worker" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out
