"""How the feed client authenticates: nothing, a bearer token, or Microsoft Entra ID.

A provider returns the `Authorization` header value for the next request and, after a 401,
says whether a fresh token might help (a rotated token file, an expired Entra token), so
the client retries once instead of failing the route.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from bridge.core.azure import CredentialError, EntraIdentity
from bridge.core.redact import register
from bridge.core.secret import Secret, clean
from bridge.feed._errors import FeedError, TokenUnavailable

AZURE_DICOM_SCOPE = "https://dicom.healthcareapis.azure.com/.default"
#: Entra tokens are renewed this long before they expire.
REFRESH_MARGIN = 300.0


class AuthProvider(Protocol):
    async def header(self) -> str | None: ...

    async def refresh(self) -> bool:
        """Called after a 401: True if a new credential was obtained and a retry may help."""
        ...

    async def close(self) -> None: ...


class NoAuth:
    async def header(self) -> str | None:
        return None

    async def refresh(self) -> bool:
        return False

    async def close(self) -> None:
        return None


class BearerToken:
    """A static token from the config, or one kept in a file by someone else (a sidecar, a
    mounted secret) and read again whenever the file changes, so rotation needs no restart
    (`bridge.core.secret.Secret` does the reading, stripping and checking)."""

    def __init__(self, token: str | Secret) -> None:
        self._token = token if isinstance(token, Secret) else Secret(clean(token))

    def __repr__(self) -> str:
        return "BearerToken(token=**********)"

    async def header(self) -> str | None:
        token = self._token.get_secret_value()
        return f"Bearer {token}" if token else None

    async def refresh(self) -> bool:
        return self._token.reload()

    async def close(self) -> None:
        return None


class AzureAuth:
    """Microsoft Entra ID tokens from an `EntraIdentity`, cached and renewed `REFRESH_MARGIN`
    seconds before expiry. A token that cannot be had is a `FeedError` of one line."""

    def __init__(self, credential: EntraIdentity, scope: str = AZURE_DICOM_SCOPE) -> None:
        self._credential = credential
        self._scope = scope
        self._value: str | None = None
        self._expires_on = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"AzureAuth(scope={self._scope!r})"

    async def header(self) -> str | None:
        if self._value is None or time.time() > self._expires_on - REFRESH_MARGIN:
            await self._renew(force=False)
        return self._value

    async def refresh(self) -> bool:
        await self._renew(force=True)
        return True

    async def close(self) -> None:
        await self._credential.close()

    async def _renew(self, *, force: bool) -> None:
        async with self._lock:
            if not force and self._value and time.time() <= self._expires_on - REFRESH_MARGIN:
                return
            try:
                token = await self._credential.get_token(self._scope)
            except CredentialError as exc:
                raise (FeedError if exc.refused else TokenUnavailable)(str(exc)) from None
            register(token.token, source=f"entra {self._scope}")
            self._value = f"Bearer {token.token}"
            self._expires_on = float(token.expires_on)
