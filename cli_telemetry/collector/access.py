"""Who may write to the collector, who may read it, and which Host names it answers.

Writing (``POST /v1/events``). A tool's *write token* (``TOOL=SECRET``, from
``CLI_TELEMETRY_COLLECTOR_TOKENS`` or ``--token-file``) ships inside the tool, so it filters
noise rather than keeps a secret. A request is authenticated from its headers alone,
before its body is read: one that carries ``Authorization`` must carry a write token (401
at once otherwise), and the token names its tool. A request is only known to be *for* a
tool once its body is parsed (each event names its tool), so the body then decides:
events of a tool that has a token need that token (the request's token names another
tool, or none: 401). Tools without a token stay open, as they were: a request without a
token is read, within the body's bounds (`body`), and refused if it holds an event of a
tool with one. ``--require-token`` closes the collector to requests without a token before
their body is read; then each request carries only its token's tool's events.

Reading (``GET /`` and ``/api/report``). The report tells how every tool is used, so a
token that ships inside a tool cannot open it: reading needs the *read token*
(``CLI_TELEMETRY_COLLECTOR_READ_TOKEN`` or ``--read-token-file``), as ``Authorization:
Bearer <token>`` or as the password of HTTP basic auth (any user name), which a browser
asks for after the 401's ``WWW-Authenticate: Basic``. Once the collector has any token,
write or read, reading needs the read token; with write tokens and no read token nobody
can read over HTTP (``click-telemetry report`` reads the database). A collector with no token
at all is open, for a collector on loopback; ``GET /healthz`` is always open.

Host names. A page on another site whose name its owner points at 127.0.0.1 (DNS
rebinding) is, to the browser, on the same origin as the collector: it could read the
dashboard and send events. Its requests carry its own name in ``Host``, so only the names
allowed answer: the loopback names, the address ``--host`` names, and each
``--allowed-host``; others get 421. ``/healthz`` answers any name, for load balancers and
probes that ask by address.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not binds


@dataclass(frozen=True)
class Access:
    """The collector's tokens and names; the app asks it about every request."""

    write_tokens: Mapping[str, str]
    """tool -> its write token."""
    read_token: str | None = None
    require_token: bool = False
    allowed_hosts: frozenset[str] = LOOPBACK_NAMES

    @classmethod
    def build(
        cls,
        write_tokens: Mapping[str, str] | None = None,
        read_token: str | None = None,
        *,
        require_token: bool = False,
        hosts: Iterable[str] = (),
    ) -> Access:
        """``hosts`` are allowed beside the loopback names (wildcard addresses are not
        names and are left out)."""
        names = {host_name(h) for h in hosts} - WILDCARD_ADDRESSES
        return cls(dict(write_tokens or {}), read_token or None, require_token,
                   LOOPBACK_NAMES | names)  # fmt: skip

    @property
    def guarded(self) -> bool:
        """Reading needs the read token: the collector has a token of some kind."""
        return bool(self.write_tokens) or self.read_token is not None

    def writer(self, authorization: str | None) -> frozenset[str] | None:
        """The tools a request's ``Authorization`` header speaks for (empty without one),
        or None when it must be refused before its body is read. Every token is compared,
        in constant time each, so the time taken tells nothing of which one matched."""
        if not self.write_tokens:
            return frozenset()  # a collector without tokens ignores the header, as it did
        if authorization is None:
            return None if self.require_token else frozenset()
        presented = _bearer(authorization)
        tools = frozenset(
            tool
            for tool, secret in self.write_tokens.items()
            if hmac.compare_digest(presented, secret.encode())
        )
        return tools or None

    def refused_tool(self, named: Iterable[object], writer: frozenset[str]) -> str | None:
        """The first tool (by name) among those a batch's events name that ``writer`` may
        not send: one with a token it does not hold, or any other tool under
        ``--require-token``."""
        tools = {tool for tool in named if isinstance(tool, str)} - writer
        if not self.require_token:
            tools &= self.write_tokens.keys()
        return min(tools, default=None)

    def may_read(self, authorization: str | None) -> bool:
        if not self.guarded:
            return True
        if self.read_token is None or authorization is None:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            presented = decoded.partition(b":")[2]
        else:
            presented = _bearer(authorization)
        return hmac.compare_digest(presented, self.read_token.encode())

    def host_allowed(self, host: str | None) -> bool:
        return host is not None and host_name(host) in self.allowed_hosts


def host_name(host: str) -> str:
    """A Host header's name: lower case, without its port, brackets or final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8787
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        host = host.partition(":")[0]
    return host.removesuffix(".")


def _bearer(authorization: str) -> bytes:
    """The token of ``Bearer <token>``, as bytes (empty for any other header)."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else b""
