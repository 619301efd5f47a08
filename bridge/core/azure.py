"""Microsoft Entra ID identities for the feed and the Service Bus sink: the azure-identity
credential the config's options choose (`azure_credential`), wrapped so that a failure is
one line without secrets (`CredentialError`) instead of azure-identity's dozen.
"""

from __future__ import annotations

import re
from typing import Any

#: Characters kept of a credential's reason for failing.
MAX_CAUSE = 500
_UNAVAILABLE = "authentication unavailable"


class CredentialError(Exception):
    """No Microsoft Entra ID token: one line naming the identity and the cause. `refused`
    when the identity was turned down or is not available here (azure-identity's
    ClientAuthenticationError), not when its endpoint could not be reached."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


class EntraIdentity:
    """An azure-identity async credential (an `AsyncTokenCredential`, so the Service Bus SDK
    takes it too) whose failures are a `CredentialError` of one line without secrets:
    azure-identity's own messages run to a dozen lines for DefaultAzureCredential."""

    def __init__(self, credential: Any, kind: str, secret: str | None = None) -> None:
        self.credential = credential
        self.kind = kind
        self._secret = secret

    def __repr__(self) -> str:
        return f"EntraIdentity({self.kind})"

    async def get_token(self, *scopes: str, **options: Any) -> Any:
        try:
            return await self.credential.get_token(*scopes, **options)
        except Exception as exc:
            from azure.core.exceptions import ClientAuthenticationError

            cause = _one_line_cause(exc)
            if self._secret:
                cause = cause.replace(self._secret, "**********")
            raise CredentialError(
                f"no Microsoft Entra ID token ({self.kind}): {cause}",
                refused=isinstance(exc, ClientAuthenticationError),
            ) from None

    async def close(self) -> None:
        await self.credential.close()

    async def __aenter__(self) -> EntraIdentity:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def azure_credential(
    *,
    tenant_id: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    managed_identity_client_id: str | None = None,
) -> EntraIdentity:
    """The identity the options choose (azure-identity is imported here: it is heavy and
    only Azure users need it):
    - `client_secret` (with `tenant_id`, `client_id`): that service principal;
    - `managed_identity_client_id`: that user-assigned managed identity, wherever it is
      hosted (IMDS, App Service / Container Apps, AKS workload identity);
    - otherwise DefaultAzureCredential, `client_id` choosing its managed or workload
      identity and `tenant_id` the workload identity's tenant; unset, azure-identity reads
      AZURE_CLIENT_ID and AZURE_TENANT_ID (DefaultAzureCredential takes no `tenant_id`).
    """
    from azure.identity import aio

    if client_secret:
        if not (tenant_id and client_id):
            raise ValueError("an Azure client secret needs tenant_id and client_id")
        credential = aio.ClientSecretCredential(tenant_id, client_id, client_secret)
        kind = f"client secret of application {client_id} in tenant {tenant_id}"
        return EntraIdentity(credential, kind, client_secret)
    if managed_identity_client_id:
        managed = aio.ManagedIdentityCredential(client_id=managed_identity_client_id)
        return EntraIdentity(managed, f"managed identity {managed_identity_client_id}")
    options: dict[str, str] = {}
    if client_id:  # passing None would also override AZURE_CLIENT_ID: pass only what is set
        options["managed_identity_client_id"] = client_id  # the workload identity's too
    if tenant_id:
        options["workload_identity_tenant_id"] = tenant_id
    chosen = [
        f"{name} {value}"
        for name, value in (("client_id", client_id), ("tenant_id", tenant_id))
        if value
    ]
    kind = ", ".join(["DefaultAzureCredential", *chosen])
    return EntraIdentity(aio.DefaultAzureCredential(**options), kind)


def _one_line_cause(exc: BaseException) -> str:
    """The gist of an azure-identity error, on one line. DefaultAzureCredential's lists each
    credential it tried, with troubleshooting links: keep the one that failed, or, when none
    was available, each one's reason."""
    message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    attempts = [
        (name, _gist(text.removeprefix(name)))
        for name, text in re.findall(r"^\t(\w+): (.*)$", message, flags=re.MULTILINE)
    ]
    if not attempts:
        return _gist(message.strip().splitlines()[0])
    name, reason = attempts[-1]
    if _UNAVAILABLE not in reason:  # the chain stopped at a credential that failed
        return f"{name}: {reason}"
    return "no credential available (" + "; ".join(f"{n}: {r}" for n, r in attempts) + ")"


def _gist(text: str) -> str:
    """`text` on one line without its pointers to troubleshooting guides, bounded."""
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    gist = " ".join(s for s in sentences if "troubleshoot" not in s.lower()) or " ".join(sentences)
    return gist if len(gist) <= MAX_CAUSE else gist[: MAX_CAUSE - 3] + "..."
