"""deploy/kubernetes: the manifests parse, fit together, and the config they carry is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli.parser import build_parser
from bridge.config import PostgresOffsetsConfig, parse_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _documents() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def test_the_kustomization_names_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    manifests = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_the_config_in_the_configmap_is_valid(tmp_path: Path) -> None:
    documents = _documents()
    text = documents["ConfigMap"]["data"]["config.yaml"]
    secret_key = "postgres-password"
    assert secret_key in documents["Secret"]["stringData"]
    # The secret as the pod sees it, mounted where the config says.
    mounted = tmp_path / secret_key
    mounted.write_text(documents["Secret"]["stringData"][secret_key])
    config = parse_config(text.replace(f"/etc/dicom-bridge/secrets/{secret_key}", str(mounted)))
    assert isinstance(config.offsets, PostgresOffsetsConfig)
    assert config.ha is not None
    assert config.http is not None and config.http.port == 9464


def test_the_deployment_runs_two_replicas_with_probes() -> None:
    documents = _documents()
    deployment = documents["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 9464
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == documents["ConfigMap"]["metadata"]["name"]
    assert volumes["secrets"]["secret"]["secretName"] == documents["Secret"]["metadata"]["name"]
    assert not any("persistentVolumeClaim" in volume for volume in volumes.values())
    # The container's arguments are a valid command line (the image's entrypoint is the CLI).
    args = build_parser().parse_args(container["args"])
    assert str(args.config) == "/etc/dicom-bridge/config.yaml"
    grace = pod["terminationGracePeriodSeconds"]
    config = parse_config(
        documents["ConfigMap"]["data"]["config.yaml"].replace("password_file", "password")
    )
    assert grace > config.drain_timeout


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "Deployment"])
def test_every_manifest_is_labelled(kind: str) -> None:
    assert _documents()[kind]["metadata"]["labels"] == {"app.kubernetes.io/name": "dicom-bridge"}
