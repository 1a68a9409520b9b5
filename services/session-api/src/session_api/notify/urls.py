"""Apprise URLs: checked, encrypted at rest, and masked whenever they are shown.

The key is derived from the service secret (``GRIDPILOT_SECRET_KEY``) with HKDF; the box is
Fernet (AES-128-CBC with an HMAC). A changed secret makes stored URLs unreadable: they fail
with :class:`Unreadable` (the settings page says to add them again), never with a crash.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import apprise
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAIL_SCHEMES = frozenset({"mailto", "mailtos"})
KEPT_QUERY = frozenset({"to", "from", "cc", "bcc"})
"""Query fields a masked e-mail URL keeps (addresses say where mail goes; no secrets)."""
LONG = 8
"""Path parts longer than this are shown as their first and last character (tokens)."""


class Unreadable(Exception):
    """A stored URL cannot be decrypted with the present key."""


class UrlBox:
    """Encrypts and decrypts apprise URLs with a key derived from ``secret``."""

    def __init__(self, secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"gridpilot-notify", info=b"apprise-url"
        ).derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, url: str) -> str:
        return self._fernet.encrypt(url.encode()).decode()

    def open(self, box: str) -> str:
        try:
            return self._fernet.decrypt(box.encode()).decode()
        except (InvalidToken, ValueError) as exc:
            raise Unreadable(
                "the stored URL cannot be decrypted (was GRIDPILOT_SECRET_KEY changed?); "
                "remove this destination and add it again"
            ) from exc


@dataclass(frozen=True)
class Checked:
    service: str
    """What apprise calls the service (``E-Mail``, ``Slack``, ``JSON`` …)."""
    masked: str


def check(url: str) -> Checked:
    """What an apprise URL is, masked; ``ValueError`` (in words) when apprise cannot use it.

    The first call loads apprise's plugins (about half a second): call it off the event loop.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("the URL has a control character (a pasted line break?)")
    try:
        plugin = apprise.Apprise.instantiate(url.strip())
    except Exception as exc:  # apprise parses what users type: any failure is theirs to fix
        raise ValueError(f"apprise cannot use this URL ({type(exc).__name__})") from exc
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if not scheme:
            raise ValueError("not a URL: write it as scheme://…, e.g. mailto:// or jsons://")
        raise ValueError(
            f"apprise cannot use this {scheme}:// URL (unknown service, or a part is missing "
            "or malformed)"
        )
    private = str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
    return Checked(service=str(plugin.service_name), masked=mask(private))


def mask(private: str) -> str:
    """Apprise's privacy form of a URL (passwords as ``****``, known tokens shortened), with
    long path parts shortened as well and only the e-mail addresses of the query kept."""
    parts = urlsplit(private)
    scheme = parts.scheme.lower()
    path = parts.path
    if scheme not in MAIL_SCHEMES:
        path = "/".join(_short(p) for p in path.split("/"))
    query = "&".join(f"{k}={v}" for k, v in parse_qsl(parts.query) if k in KEPT_QUERY)
    # for reading, not for use: addresses as people write them (``@``, not ``%40``)
    return urlunsplit((parts.scheme, parts.netloc, unquote(path), query, ""))


def _short(part: str) -> str:
    return f"{part[0]}…{part[-1]}" if len(part) > LONG else part


class HideUnparsedUrls(logging.Filter):
    """apprise masks the secrets of the URLs it logs, except in a URL it could not parse at
    all (``Unsupported URL: mailto:/user:password@host``): that one is not logged whole."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Unsupported URL:"):
            record.msg, record.args = "Unsupported URL (not logged: it may hold a secret)", None
        return True


def hide_unparsed_urls() -> None:
    """Install :class:`HideUnparsedUrls` on apprise's logger (once)."""
    logger = logging.getLogger("apprise")
    if not any(isinstance(f, HideUnparsedUrls) for f in logger.filters):
        logger.addFilter(HideUnparsedUrls())
