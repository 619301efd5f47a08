"""The monitoring files in `deploy/`: the alert rules pass `promtool check rules` and their
unit tests (`promtool test rules`), and every metric the rules and the Grafana dashboard
name is one a running bridge exports."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import parse_config
from bridge.runtime.pipeline import Pipeline
from tests.integration.test_alerting_metrics import check_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
METRIC = re.compile(r"\b((?:dicom_bridge|process)_[a-z0-9_]+)\b")
ALERTS = {
    "DicomBridgeLagHigh",
    "DicomBridgeNoProgress",
    "DicomBridgeRouteFailed",
    "DicomBridgeDeadLettersGrowing",
    "DicomBridgeFeedDown",
}


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: `make tools` installs it (Debian's prometheus)")
    return subprocess.run(
        [tool, *arguments], capture_output=True, text=True, timeout=120, cwd=RULES.parent
    )


def test_the_alert_rules_pass_promtool_and_their_unit_tests():
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == ALERTS
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == ALERTS, "every alert has a test where it fires"


def queries() -> dict[str, str]:
    """Every PromQL expression of the rules and the dashboard, by where it is."""
    found = {
        f"alert {rule['alert']}": rule["expr"]
        for rule in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    }
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = variable["query"]
    return found


async def test_every_metric_of_the_rules_and_the_dashboard_is_exported(simulator, tmp_path):
    sim = simulator(entries=300, seed=81)
    config = parse_config(f"""
feed: {{url: "{sim.url}", poll_interval: 50ms}}
offsets: {{path: "{tmp_path / "offsets.db"}", commit_interval: 100ms}}
http: {{listen: "127.0.0.1:0"}}
sinks:
  - {{name: archive, type: file, path: "{tmp_path / "events.jsonl"}"}}
""")
    pipeline = Pipeline(config)
    running = asyncio.create_task(pipeline.run())
    try:
        while not (
            pipeline.listener and pipeline.listener.started and pipeline.routes[0].caught_up
        ):
            assert not running.done(), running.result()
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{pipeline.listener.port}/metrics")).text
    finally:
        pipeline.request_stop()
        assert await running == 0
    check_metrics(text)
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    missing = {
        where: sorted(set(METRIC.findall(expr)) - exported) for where, expr in queries().items()
    }
    assert not {where: names for where, names in missing.items() if names}, missing
    named = {name for expr in queries().values() for name in METRIC.findall(expr)}
    assert len(named) >= 15, named  # the regex did find the names
