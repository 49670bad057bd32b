"""The one way abtop builds an HTTP client (engines, server telemetry, the model list, the hub check).

A server on this machine is reached directly: ``trust_env`` is off for a loopback URL, so an
``HTTP_PROXY`` meant for the outside never sits between us and a local llama-server (it would
add its latency to every token, or refuse the request).
"""

from __future__ import annotations

import ipaddress
from typing import Literal, overload
from urllib.parse import urlsplit

import httpx


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@overload
def http_client(url: str, *, timeout: float | httpx.Timeout, asynchronous: Literal[False] = False,
                **options) -> httpx.Client: ...  # fmt: skip
@overload
def http_client(url: str, *, timeout: float | httpx.Timeout, asynchronous: Literal[True], **options) -> httpx.AsyncClient: ...
def http_client(url: str, *, timeout: float | httpx.Timeout, asynchronous: bool = False, **options):
    """A client for requests to ``url`` (and below it); ``options`` go to httpx (``headers``,
    ``base_url``, ``follow_redirects``). Close it, or use it as a context manager."""
    cls = httpx.AsyncClient if asynchronous else httpx.Client
    return cls(timeout=timeout, trust_env=not is_loopback(url), **options)
