"""The SSRF guard: nothing is sent to loopback, private, link-local, CGNAT or embedded-IPv4 targets."""

from __future__ import annotations

import pytest

from connectors.webhooks.targets import blocked_reason, resolve_target
from fusewatch.core.errors import BlockedTargetError

BLOCKED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.0.0.1/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://192.168.1.20/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://100.64.1.1/hook", "carrier-grade NAT"),
    ("http://[fd00::1]/hook", "private"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[::ffff:10.0.0.1]/hook", "private"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[2002:a9fe:a9fe::1]/hook", "link-local"),  # 6to4 around 169.254.169.254
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
]


@pytest.mark.parametrize(("url", "reason"), BLOCKED)
def test_internal_targets_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(BlockedTargetError, match=f"is a {reason} address"):
        resolve_target(url)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http://user:pw@8.8.8.8/", "http:///x",
                                 "http://8.8.8.8:99999/"])
def test_malformed_or_foreign_urls_are_refused(url: str) -> None:
    with pytest.raises(BlockedTargetError):
        resolve_target(url)


def test_public_addresses_pass_and_are_pinned() -> None:
    target = resolve_target("https://8.8.8.8/hooks?x=1")
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https", "8.8.8.8", 443, "/hooks?x=1", "8.8.8.8")
    assert blocked_reason("2001:4860:4860::8888") is None


def test_private_targets_can_be_allowed_explicitly() -> None:
    target = resolve_target("http://localhost:8080/hook", allow_private=True)
    assert target.address in ("127.0.0.1", "::1") and target.port == 8080
