"""The Grafana dashboard in docs/ reads only metrics that the code defines."""

import json
import os
import re

from conftest import ROOT


def test_the_grafana_dashboard_reads_only_metrics_we_expose():
    with open(os.path.join(ROOT, "docs", "grafana", "mail-service.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    assert dashboard["uid"] and dashboard["panels"]
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    exposed = ""
    for module in ("metrics.py", "families.py", "worker.py"):
        with open(os.path.join(ROOT, "mailer", "telemetry", module), encoding="utf-8") as f:
            exposed += f.read()
    used = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\bmail_[a-z_]+", target["expr"]))
    bare = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}

    def defined(name):  # a counter family may be named without its _total
        return f'"{name}"' in exposed or f'"{name.removesuffix("_total")}"' in exposed

    assert bare and all(defined(name) for name in bare), sorted(
        name for name in bare if not defined(name)
    )
