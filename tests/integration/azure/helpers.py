"""The bridge CLI run with a Microsoft Entra ID identity, against local stand-ins only: the
simulator (the DICOM service, requiring the token the fake issues), the AMQP peer (Service
Bus, requiring it in CBS put-token) and the fakes of `tests.security.entra`.

The AMQP peer speaks plain AMQP, which azure-servicebus only allows for its emulator's
connection strings; `bridge` runs the CLI with TLS turned off for the namespace client (the
one thing patched: credentials, tokens and CBS are the SDK's own).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.helpers import write_config
from tests.integration.webhook.helpers import FAST_RETRY
from tests.peers.amqp_peer import AmqpPeer

TENANT = "00000000-0000-0000-0000-00000000000a"
CLIENT = "00000000-0000-0000-0000-00000000000b"
DICOM_RESOURCE = "https://dicom.healthcareapis.azure.com"
SERVICEBUS_RESOURCE = "https://servicebus.azure.net/"
#: Everything azure-identity reads from the environment: none may leak in from outside.
IDENTITY_VARIABLES = (
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_PASSWORD",
    "AZURE_TENANT_ID",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_USERNAME",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)
_PLAIN_AMQP = (
    "import functools, runpy\n"
    "from sinks.servicebus import sink\n"
    "sink.ServiceBusClient = functools.partial(sink.ServiceBusClient, use_tls=False)\n"
    "runpy.run_module('bridge', run_name='__main__', alter_sys=True)\n"
)


def bridge(*arguments: str, env: dict[str, str], timeout: float = 90.0):
    """Run the CLI in this process's environment less every identity variable, plus `env`."""
    base = {name: value for name, value in os.environ.items() if name not in IDENTITY_VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", _PLAIN_AMQP, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=base | env,
    )


def queue(peer: AmqpPeer, name: str, **identity: str) -> dict[str, Any]:
    """A Service Bus route to the peer's entity `name`, with Entra ID options `identity`."""
    return {
        "name": name,
        "type": "servicebus",
        "fully_qualified_namespace": peer.address,
        "queue": name,
        "send_timeout": "5s",
        "retry": FAST_RETRY,
        **identity,
    }


def config(tmp_path: Path, feed_url: str, feed_identity: dict[str, str], *queues: dict) -> str:
    archive = {"name": "archive", "type": "file", "path": str(tmp_path / "events.jsonl")}
    feed = {"auth": {"type": "azure", **feed_identity}}
    path = write_config(
        tmp_path / "config.yaml", feed_url, [archive, *queues], feed=feed, drain_timeout="2s"
    )
    return str(path)
