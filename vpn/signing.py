"""Duo Auth API request signatures (API-01), as the ``duo_client`` package computes them.

Signature v5 (``duo_client`` 5.x, the default): HMAC-SHA512 over date, method, host, path, the canonical query
parameters, the SHA-512 of the body (POST parameters travel as canonical JSON), and the SHA-512 of the ``X-Duo-*``
headers. Signature v2 (older clients): HMAC-SHA512 over date, method, host, path and the canonical parameters
(query string or form body). The credentials travel as HTTP Basic ``integration_key:hex_signature``.
"""

import base64
import binascii
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers, taken from the HTTP request by the view."""

    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    content_type: str
    date: str
    duo_headers: dict[str, str]


def parse_basic(authorization: str) -> tuple[str, str] | None:
    """``(integration_key, signature)`` from an ``Authorization: Basic`` header, or None."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    ikey, sep, signature = decoded.partition(":")
    if not sep or not ikey or not signature:
        return None
    return ikey, signature.lower()


def canon_params(params: dict[str, list[str]]) -> str:
    """OAuth 1.0 style: keys and values percent-encoded (``~`` kept), sorted, joined with ``&``."""
    pairs = []
    for key, values in sorted((urllib.parse.quote(k, "~"), v) for k, v in params.items()):
        for value in sorted(urllib.parse.quote(v, "~") for v in values):
            pairs.append(f"{key}={value}")
    return "&".join(pairs)


def _canon_duo_headers(headers: dict[str, str]) -> str:
    parts: list[str] = []
    for name in sorted(headers):
        parts += [name, headers[name]]
    return hashlib.sha512("\x00".join(parts).encode()).hexdigest()


def form_params(request: SignedRequest) -> dict[str, list[str]]:
    """The request's parameters: query string, and a form-encoded body (v2 POST)."""
    params = {k: list(v) for k, v in request.query.items()}
    if request.content_type.startswith("application/x-www-form-urlencoded") and request.body:
        body = urllib.parse.parse_qs(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        for key, values in body.items():
            params.setdefault(key, []).extend(values)
    return params


def canonical_v2(request: SignedRequest, host: str) -> str:
    return "\n".join(
        [request.date, request.method.upper(), host.lower(), request.path, canon_params(form_params(request))]
    )


def canonical_v5(request: SignedRequest, host: str) -> str:
    return "\n".join(
        [
            request.date,
            request.method.upper(),
            host.lower(),
            request.path,
            canon_params(request.query),
            hashlib.sha512(request.body).hexdigest(),
            _canon_duo_headers(request.duo_headers),
        ]
    )


def signature_matches(request: SignedRequest, *, secret: str, signature: str) -> bool:
    """Whether ``signature`` is a v5 or v2 HMAC-SHA512 of the request under ``secret``.

    The client signs the host it was given; that is the Host header with or without its port. Every candidate is
    computed and compared in constant time, so the time taken says nothing about which one came close. A v2
    signature covers form parameters only, so a body of any other kind (JSON) can match v5 alone.
    """
    hosts = {request.host}
    if ":" in request.host and not request.host.endswith("]"):
        hosts.add(request.host.rsplit(":", 1)[0])
    key = secret.encode()
    matched = False
    v2_covers_body = not request.body or request.content_type.startswith("application/x-www-form-urlencoded")
    for host in sorted(hosts):
        candidates = [canonical_v5(request, host)] + ([canonical_v2(request, host)] if v2_covers_body else [])
        for canonical in candidates:
            expected = hmac.new(key, canonical.encode(), hashlib.sha512).hexdigest()
            matched |= hmac.compare_digest(expected, signature)
    return matched
