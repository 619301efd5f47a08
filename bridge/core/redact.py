"""One scrubber for every secret the bridge knows, applied wherever text leaves the process.

Peers quote what they received: a webhook receiver's 400 body holds our Authorization
header, a feed's error page the token, httpx's error the header value it refused. Such text
is logged, printed by `check`, served by `/readyz` and written to dead letters. Every secret
value is registered here when the config is validated (`bridge.core.secret.Secret`), when a
secret file changes and when an Entra ID token is issued, together with the spellings it
travels in (URL-encoded, JSON- or repr-escaped, base64 as in Basic authentication, the SAS
key of a connection string, the password of a URL, the key of a `whsec_` secret); `scrub`
masks all of them. Every output calls it: the log formatters (`bridge.runtime.logs`), the CLI's
printed lines, `/readyz`, dead-letter reasons and the excerpts of peers' answers.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import threading
from collections import deque
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import orjson

MASK = "**********"
#: Shorter values cannot be told apart from ordinary text: masking them would garble logs.
MIN_LENGTH = 4
#: A base64 spelling is looked for only for values this long: shorter ones give fragments
#: that occur in any base64 text.
BASE64_MIN_LENGTH = 12
#: Values of one source (a secret file, an Entra token) kept after it changed: a peer may
#: still quote an old one for a while; older ones are forgotten so memory stays bounded.
ROTATIONS_KEPT = 3
#: SAS tokens are signed anew for every connection: no value to register, a shape to mask.
_SAS_SIGNATURE = re.compile(r"(sig=)[^&;\s\"']+", re.IGNORECASE)
_CONNECTION_STRING_KEYS = frozenset(
    {"sharedaccesskey", "sharedaccesssignature", "password", "accountkey"}  # accountkey: storage
)
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@")
_WEBHOOK_SECRET = re.compile(r"whsec_([A-Za-z0-9+/]+={0,2})")
_SCHEME_CREDENTIAL = re.compile(r"(Bearer|Basic|Token|SharedAccessSignature)\s+(\S+)", re.I)
_KEY_LIST = re.compile(r"[A-Za-z0-9+/=_-]{16,}(?:\s+[A-Za-z0-9+/=_-]{16,})+")


class Redactor:
    """A set of secrets and the pattern masking all their spellings, rebuilt on change."""

    def __init__(self) -> None:
        self._fixed: set[str] = set()
        self._rotating: dict[str, deque[frozenset[str]]] = {}
        self._pattern: re.Pattern[str] | None = None
        self._stale = False
        self._lock = threading.Lock()

    def add(self, secret: str, *, source: str | None = None) -> None:
        """Mask `secret` from now on; a `source` keeps only its `ROTATIONS_KEPT` latest."""
        spellings = frozenset(s for value in _derived(secret) for s in _spellings(value))
        if not spellings:
            return
        with self._lock:
            if source is None:
                if spellings <= self._fixed:
                    return
                self._fixed |= spellings
            else:
                kept = self._rotating.setdefault(source, deque(maxlen=ROTATIONS_KEPT))
                if spellings in kept:
                    return
                kept.append(spellings)
            self._stale = True

    def add_url(self, url: str) -> None:
        """Mask the keys an endpoint URL carries: its password (and the Basic credentials
        built from it) and its query values (e.g. Azure Functions' `?code=`)."""
        parts = urlsplit(url)
        if parts.password:
            user, password = unquote(parts.username or ""), unquote(parts.password)
            self.add(password)
            self.add(base64.b64encode(f"{user}:{password}".encode()).decode())
        for _, value in parse_qsl(parts.query):
            self.add(value)

    def __call__(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        return _SAS_SIGNATURE.sub(rf"\g<1>{MASK}", text)

    def _compiled(self) -> re.Pattern[str] | None:
        if self._stale:
            with self._lock:
                spellings = set(self._fixed)
                for kept in self._rotating.values():
                    spellings.update(*kept)
                ordered = sorted(spellings, key=len, reverse=True)  # longest first
                self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
                self._stale = False
        return self._pattern


def _derived(secret: str) -> Iterator[str]:
    """`secret` and the secrets inside it, as peers may quote them separately."""
    yield secret
    for part in secret.split(";"):  # a connection string's key, signature or password
        key, _, value = part.partition("=")
        if value and key.strip().lower() in _CONNECTION_STRING_KEYS:
            yield value.strip()
    for match in _URL_PASSWORD.finditer(secret):
        yield unquote(match[1])
    for match in _WEBHOOK_SECRET.finditer(secret):
        yield match[1]
        decoded = _decoded(match[1])
        if decoded is not None:
            yield decoded
    for match in _SCHEME_CREDENTIAL.finditer(secret):  # a header value: `Basic <base64>`
        yield match[2]
        decoded = _decoded(match[2]) if match[1].lower() == "basic" else None
        if decoded is not None:
            yield decoded
            yield decoded.partition(":")[2]
    if _KEY_LIST.fullmatch(secret):  # several keys in one value (a webhook key rotation)
        for key in secret.split():
            yield from _derived(key)


def _decoded(text: str) -> str | None:
    """The text `text` encodes in base64, if it is printable text."""
    try:
        value = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return value if value.isprintable() else None


def _spellings(value: str) -> Iterator[str]:
    """`value` as it may appear in text: as is, URL-encoded, escaped, in base64."""
    if len(value) < MIN_LENGTH:
        return
    yield value
    yield quote(value, safe="")
    yield quote(value)
    yield quote_plus(value)
    yield html.escape(value)
    yield orjson.dumps(value).decode()[1:-1]
    yield repr(value)[1:-1]
    data = value.encode()
    yield repr(data)[2:-1]
    if len(data) < BASE64_MIN_LENGTH:
        return
    for offset in range(3):  # inside longer base64 text, at each alignment
        encoded = base64.b64encode(bytes(offset) + data).decode()
        middle = encoded[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6]
        yield middle
        yield middle.replace("+", "-").replace("/", "_")


_REGISTRY = Redactor()


def register(secret: str, *, source: str | None = None) -> None:
    """Mask `secret` (and what derives from it) in everything `scrub` sees from now on."""
    _REGISTRY.add(secret, source=source)


def register_url(url: str) -> None:
    """Mask the password and query values of an endpoint URL."""
    _REGISTRY.add_url(url)


def describe(exc: BaseException) -> str:
    """An exception on one line (its type when it has no message), secrets masked: what a
    sink puts in an outcome's reason or a log line."""
    return scrub(" ".join(str(exc).split()) or type(exc).__name__)


def scrub(text: str) -> str:
    """`text` with every registered secret masked."""
    return _REGISTRY(text)
