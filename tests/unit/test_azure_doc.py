"""docs/azure.md: every bridge config it shows loads with the config models, and every
other YAML block (Kubernetes manifests) is well-formed YAML."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bridge.config import parse_config

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "azure.md"
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text())


def test_every_bridge_config_in_the_azure_guide_is_valid():
    configs = [text for text in blocks() if "feed" in (yaml.safe_load_all(text).__next__() or {})]
    assert len(configs) == 4  # system-assigned, user-assigned, AKS, Container Apps
    for text in configs:
        config = parse_config(text)
        assert config.feed.auth.type == "azure"
        assert all(sink.fully_qualified_namespace for sink in config.sinks)


def test_the_user_assigned_configs_name_one_identity_in_both_places():
    for text in blocks():
        if "managed_identity_client_id" in text:
            config = parse_config(text)
            ids = {config.feed.auth.managed_identity_client_id}
            ids |= {sink.managed_identity_client_id for sink in config.sinks}
            assert len(ids) == 1 and None not in ids


def test_the_kubernetes_manifests_are_yaml():
    manifests = [
        document
        for text in blocks()
        for document in yaml.safe_load_all(text)
        if document and "kind" in document
    ]
    assert {m["kind"] for m in manifests} == {"ServiceAccount", "StatefulSet"}
    account = next(m for m in manifests if m["kind"] == "ServiceAccount")
    pod = next(m for m in manifests if m["kind"] == "StatefulSet")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_the_guide_names_the_roles():
    text = GUIDE.read_text()
    for role in (
        "DICOM Data Reader",
        "Azure Service Bus Data Sender",
        "Storage Blob Data Contributor",
    ):
        assert f"**{role}**" in text and f'--role "{role}"' in text
