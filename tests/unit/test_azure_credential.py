"""Which azure-identity credential each combination of the Entra ID options builds, for the
feed and for the Service Bus sink. Nothing here asks for a token (that is the integration
tests' part, against local fakes): no Azure variable is set, so nothing could be reached."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import aio

from bridge.config import ConfigError, parse_config
from bridge.core.azure import CredentialError, EntraIdentity, azure_credential
from sinks.servicebus.config import Config
from sinks.servicebus.sink import ServiceBusSink

TENANT = "00000000-0000-0000-0000-000000000001"
CLIENT = "00000000-0000-0000-0000-000000000002"
FILE_SINK = {"name": "archive", "type": "file", "path": "events.jsonl"}
AZURE_VARIABLES = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
)

COMBINATIONS = {
    "none": ({}, aio.DefaultAzureCredential),
    "tenant only": ({"tenant_id": TENANT}, aio.DefaultAzureCredential),
    "client only": ({"client_id": CLIENT}, aio.DefaultAzureCredential),
    "tenant and client": ({"tenant_id": TENANT, "client_id": CLIENT}, aio.DefaultAzureCredential),
    "managed identity": ({"managed_identity_client_id": CLIENT}, aio.ManagedIdentityCredential),
    "client secret": (
        {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "s3cret"},
        aio.ClientSecretCredential,
    ),
}


@pytest.fixture(autouse=True)
def no_azure_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("combination", COMBINATIONS)
async def test_every_option_combination_builds_its_credential(combination: str) -> None:
    # Regression: tenant_id without client_secret raised TypeError ("'tenant_id' is not
    # supported in DefaultAzureCredential").
    options, expected = COMBINATIONS[combination]
    identity = azure_credential(**options)
    try:
        assert isinstance(identity.credential, expected)
    finally:
        await identity.close()


@pytest.mark.parametrize("combination", COMBINATIONS)
async def test_the_servicebus_sink_builds_its_client_with_every_combination(
    combination: str,
) -> None:
    options, _ = COMBINATIONS[combination]
    config = Config(
        type="servicebus",
        name="queue",
        fully_qualified_namespace="myns.servicebus.windows.net",
        queue="dicom-changes",
        **options,
    )
    sink = ServiceBusSink(config, name="queue")
    try:
        assert sink._new_client() is not None
    finally:
        await sink.close()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"client_id": CLIENT}, "cannot be combined with client_id"),
        ({"tenant_id": TENANT}, "cannot be combined with tenant_id"),
        ({"client_secret": "s3cret"}, "cannot be combined with client_secret"),
    ],
)
def test_a_managed_identity_with_options_it_would_ignore_is_refused(
    options: dict[str, str], expected: str
) -> None:
    # Each was silently ignored: ManagedIdentityCredential has no tenant, and only one
    # client ID.
    auth = {"type": "azure", "managed_identity_client_id": CLIENT, **options}
    config = {"feed": {"url": "http://h", "auth": auth}, "sinks": [FILE_SINK]}
    with pytest.raises(ConfigError) as refused:
        parse_config(json.dumps(config))
    assert f"feed.auth.managed_identity_client_id: {expected}" in str(refused.value)
    assert "s3cret" not in str(refused.value)


async def test_a_credential_that_finds_no_identity_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the environment's service principal is tried: nothing to reach, nothing found.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    identity = azure_credential(tenant_id=TENANT, client_id=CLIENT)
    try:
        with pytest.raises(CredentialError) as failed:
            await identity.get_token("https://dicom.healthcareapis.azure.com/.default")
    finally:
        await identity.close()
    assert str(failed.value) == (
        f"no Microsoft Entra ID token (DefaultAzureCredential, client_id {CLIENT}, tenant_id "
        f"{TENANT}): no credential available (EnvironmentCredential: authentication "
        "unavailable. Environment variables are not fully configured.)"
    )
    assert failed.value.refused


class Echoing:
    """A credential whose identity endpoint echoed the secret it was sent."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def get_token(self, *scopes: str, **options: object) -> None:
        raise self.error

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (ClientAuthenticationError("AADSTS7000215: Invalid client secret 's3cret'.\nmore"), True),
        (ServiceRequestError("Cannot connect to host: 's3cret'"), False),
    ],
)
async def test_a_failure_is_one_line_without_the_secret(error: Exception, refused: bool) -> None:
    identity = EntraIdentity(Echoing(error), "client secret of application c", "s3cret")
    with pytest.raises(CredentialError) as failed:
        await identity.get_token("scope")
    message = str(failed.value)
    assert message.startswith("no Microsoft Entra ID token (client secret of application c): ")
    assert "s3cret" not in message and "**********" in message and "\n" not in message
    assert failed.value.refused is refused
