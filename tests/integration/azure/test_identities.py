"""The three kinds of Microsoft Entra ID identity, with the real azure-identity code, for the
feed and for Service Bus: a service principal's client secret, a managed identity the App
Service / Container Apps way, and AKS workload identity. Each run reads the simulator with
the token the fake issued and sends every entry to the AMQP peer, which checks the same
token in CBS put-token; every token comes from a loopback fake (the test session's network
guard fails anything else, IMDS included). A refused identity is one line, without secrets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import read_events
from tests.integration.azure.helpers import (
    CLIENT,
    DICOM_RESOURCE,
    SERVICEBUS_RESOURCE,
    TENANT,
    bridge,
    config,
    queue,
)
from tests.peers.amqp_peer import AmqpPeer
from tests.security.entra import FakeEntra, FakeManagedIdentity

ENTRIES = 20
TOKEN = "eyJ0eXAiOiJKV1QifQ.entra-access-token.c2lnbmF0dXJl"
SECRET = "client-secret~value-1"
ASSERTION = "eyJhbGciOiJSUzI1NiJ9.service-account-token.c2ln"
IDENTITY_HEADER = "identity-header-value-7"
DICOM_SCOPE = f"{DICOM_RESOURCE}/.default"
SERVICEBUS_SCOPE = f"{SERVICEBUS_RESOURCE}/.default"


def delivered(tmp_path: Path, peer: AmqpPeer, *queues: str) -> None:
    """Every entry reached the file route and each Service Bus queue, sent with the token."""
    events, _ = read_events(tmp_path / "events.jsonl")
    assert len(events) == ENTRIES
    assert {name: peer.stats()["queues"].get(name) for name in queues} == dict.fromkeys(
        queues, ENTRIES
    )
    put_tokens = peer.put_tokens()
    assert {token["type"] for token in put_tokens} == {"jwt"}
    assert {token["audience"] for token in put_tokens} == {
        f"sb://{peer.address}/{name}" for name in queues
    }
    assert peer.counters()["tokens_refused"] == 0


def test_a_service_principal_with_a_client_secret(tmp_path, simulator, pki, peer: AmqpPeer):
    sim = simulator(entries=ENTRIES, token=TOKEN)
    peer.set(cbs_token=TOKEN)
    identity = {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET}
    path = config(tmp_path, sim.url, identity, queue(peer, "changes", **identity))

    with FakeEntra(pki, client_secret=SECRET, access_token=TOKEN) as entra:
        ran = bridge("run", "-c", path, "--exit-when-caught-up", env=entra.environment())

    assert ran.returncode == 0, ran.stderr
    delivered(tmp_path, peer, "changes")
    requested = {(r["tenant"], r["client_id"], r["scope"], r["grant"]) for r in entra.requests}
    assert requested == {
        (TENANT, CLIENT, DICOM_SCOPE, "client_credentials"),
        (TENANT, CLIENT, SERVICEBUS_SCOPE, "client_credentials"),
    }
    assert SECRET not in ran.stderr + ran.stdout


def test_a_managed_identity_of_app_service_or_container_apps(tmp_path, simulator, peer: AmqpPeer):
    sim = simulator(entries=ENTRIES, token=TOKEN)
    peer.set(cbs_token=TOKEN)
    path = config(
        tmp_path,
        sim.url,
        {"managed_identity_client_id": "feed-identity"},
        queue(peer, "chosen", client_id="sink-identity"),
        queue(peer, "default"),  # the identity AZURE_CLIENT_ID names, as azure-identity reads it
    )

    with FakeManagedIdentity(identity_header=IDENTITY_HEADER, access_token=TOKEN) as endpoint:
        env = endpoint.environment() | {"AZURE_CLIENT_ID": "environment-identity"}
        ran = bridge("run", "-c", path, "--exit-when-caught-up", env=env)

    assert ran.returncode == 0, ran.stderr
    delivered(tmp_path, peer, "chosen", "default")
    requested = {(r["client_id"], r["resource"]) for r in endpoint.requests}
    # Regression: with no client_id, the bridge passed None for it, which makes azure-identity
    # ignore AZURE_CLIENT_ID and ask for the system-assigned identity.
    assert requested == {
        ("feed-identity", DICOM_RESOURCE),
        ("sink-identity", SERVICEBUS_RESOURCE),
        ("environment-identity", SERVICEBUS_RESOURCE),
    }
    assert {r["api_version"] for r in endpoint.requests} == {"2019-08-01"}


def test_a_workload_identity_on_aks(tmp_path, simulator, pki, peer: AmqpPeer):
    sim = simulator(entries=ENTRIES, token=TOKEN)
    peer.set(cbs_token=TOKEN)
    token_file = tmp_path / "azure-identity-token"  # the service account token, projected
    token_file.write_text(ASSERTION)
    path = config(
        tmp_path,
        sim.url,
        {"tenant_id": "feed-tenant", "client_id": "feed-app"},
        # Regression: tenant_id without client_secret crashed (DefaultAzureCredential
        # takes no tenant_id).
        queue(peer, "tenant", tenant_id="sink-tenant"),
        queue(peer, "default"),  # as the workload identity webhook set it up
    )

    with FakeEntra(pki, client_assertion=ASSERTION, access_token=TOKEN) as entra:
        env = entra.environment() | {
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "AZURE_CLIENT_ID": CLIENT,
            "AZURE_TENANT_ID": TENANT,
        }
        ran = bridge("run", "-c", path, "--exit-when-caught-up", env=env)

    assert ran.returncode == 0, ran.stderr
    delivered(tmp_path, peer, "tenant", "default")
    requested = {(r["tenant"], r["client_id"], r["scope"], r["credential"]) for r in entra.requests}
    assert requested == {
        ("feed-tenant", "feed-app", DICOM_SCOPE, "client_assertion"),
        ("sink-tenant", CLIENT, SERVICEBUS_SCOPE, "client_assertion"),
        (TENANT, CLIENT, SERVICEBUS_SCOPE, "client_assertion"),
    }


REFUSALS = {
    "client secret": "client secret of application",
    "managed identity": "DefaultAzureCredential",
    "workload identity": "DefaultAzureCredential",
}


@pytest.mark.parametrize("kind", REFUSALS)
def test_a_refused_identity_is_one_line_without_secrets(
    tmp_path, simulator, pki, peer: AmqpPeer, kind
):
    sim = simulator(entries=ENTRIES, token=TOKEN)
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(ASSERTION)
    identity = {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET}
    if kind != "client secret":
        identity = {}  # DefaultAzureCredential, told what to use by the environment
    path = config(tmp_path, sim.url, identity, queue(peer, "changes", **identity))
    entra = FakeEntra(pki, client_secret="another-secret", access_token=TOKEN)
    managed = FakeManagedIdentity(identity_header="another-header", access_token=TOKEN)

    with entra, managed:
        env = entra.environment()
        if kind == "managed identity":
            env |= managed.environment() | {"IDENTITY_HEADER": IDENTITY_HEADER}
        elif kind == "workload identity":
            env |= {
                "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
                "AZURE_CLIENT_ID": CLIENT,
                "AZURE_TENANT_ID": TENANT,
            }
        ran = bridge("run", "-c", path, "--exit-when-caught-up", env=env)
        checked = bridge("check", "-c", path, env=env)

    assert entra.issued == managed.issued == 0
    assert entra.refused + managed.refused >= 3  # run (feed, sink) and check (feed, sink)
    assert ran.returncode == 1 and checked.returncode == 1
    expected = f"no Microsoft Entra ID token ({REFUSALS[kind]}"
    failed = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in failed] == ["FAIL feed", "FAIL sink changes"]
    assert all(expected in line for line in failed), checked.stdout
    stopped = [line for line in ran.stderr.splitlines() if expected in line]
    assert stopped, ran.stderr
    for output in (ran.stderr, checked.stdout, checked.stderr):
        assert "Traceback" not in output and "troubleshoot" not in output, output
        for secret in (SECRET, ASSERTION, IDENTITY_HEADER, TOKEN):
            assert secret not in output
