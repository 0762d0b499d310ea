"""The bundled Grafana provisioning and dashboards. Every panel's query runs on a real Prometheus scraping a real
`aiops serve` (which has triaged one alert) and a real node_exporter; every metric a panel names must exist there.

What reading the JSON cannot show: a PromQL typo, a metric renamed in aiops/metrics.py, a node_exporter metric
that does not exist, or a `$instance` filter that matches nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiops.config import ENV_OVERRIDES
from tests.bundled import dashboards as d
from tests.support import stack as s
from tests.support.binaries import free_port, require
from tests.support.service import AiopsProcess

ROOT = d.GRAFANA.parent
FIRING = ROOT / "tests" / "data" / "firing.json"
TOKEN = "dashboards-" + secrets.token_hex(16)
BOARDS = {"aiops-overview.json": ("aiops-overview", "aiops overview"), "hosts.json": ("aiops-hosts", "Hosts")}
# Where docker-compose mounts the two folders in the Grafana container.
MOUNTS = {
    "/etc/grafana/provisioning": d.GRAFANA / "provisioning",
    "/var/lib/grafana/dashboards": d.DASHBOARDS,
}
# node_* metrics whose collector cannot work in a test process; everything else must come from node_exporter.
WITHOUT_COLLECTOR = {
    "node_systemd_unit_state": "the systemd collector asks a running systemd over D-Bus "
    "(/run/systemd/private); test machines and containers usually have none",
}
DEADLINE = 30.0


@pytest.fixture(scope="module", params=sorted(BOARDS))
def board(request: pytest.FixtureRequest) -> dict[str, Any]:
    return d.load(request.param)


def all_boards() -> list[dict[str, Any]]:
    return [d.load(name) for name in sorted(BOARDS)]


# --- provisioning ---------------------------------------------------------------------------------------------


def in_container(path: str) -> Path:
    """The repository folder that docker-compose mounts at `path` in the Grafana container."""
    for mount, folder in MOUNTS.items():
        if path == mount or path.startswith(mount + "/"):
            return folder / path[len(mount) :].lstrip("/")
    raise AssertionError(f"{path} is not under a folder docker-compose mounts ({', '.join(MOUNTS)})")


def test_datasources_are_prometheus_by_default_and_loki() -> None:
    config = yaml.safe_load((d.GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    by_uid = {source["uid"]: source for source in config["datasources"]}
    assert config["apiVersion"] == 1
    assert by_uid.keys() == {"prometheus", "loki"}
    assert (by_uid["prometheus"]["type"], by_uid["prometheus"]["url"]) == (
        "prometheus",
        "http://prometheus:9090",
    )
    assert (by_uid["loki"]["type"], by_uid["loki"]["url"]) == ("loki", "http://loki:3100")
    assert [uid for uid, source in by_uid.items() if source.get("isDefault")] == ["prometheus"]


def test_dashboard_provider_reads_the_folder_the_dashboards_are_in() -> None:
    config = yaml.safe_load((d.GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    folder = in_container(provider["options"]["path"])
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(BOARDS), f"{folder} as mounted"


# --- the dashboards as Grafana reads them ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_uid_title_and_schema(name: str) -> None:
    board = d.load(name)
    assert (board["uid"], board["title"]) == BOARDS[name]
    assert 36 <= board["schemaVersion"] <= 41
    assert board["time"]["to"] == "now"


def test_every_panel_has_a_title_description_datasource_and_place(board: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in d.panels(board)]
    assert len(ids) == len(set(ids)), f"{board['title']}: panel ids repeat: {ids}"
    titles = [panel.get("title") for panel in d.panels(board)]
    assert len(titles) == len(set(titles)), (
        f"{board['title']}: titles repeat, a reader cannot tell them apart"
    )
    datasources = {"prometheus", "${datasource}"}
    for panel in d.panels(board):
        where = f"{board['title']} / {panel.get('title')!r}"
        assert panel.get("title"), f"{where}: no title"
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, f"{where}: {grid}"
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{where}: no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": panel["datasource"]["uid"]}, where
        assert panel["datasource"]["uid"] in datasources, where
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), f"{where}: refIds {refs}"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{where} / {target['refId']}: no expr"
            assert target["datasource"] == panel["datasource"], f"{where} / {target['refId']}"


def test_the_datasource_variable_picks_the_provisioned_prometheus(board: dict[str, Any]) -> None:
    variable = d.variables(board)["datasource"]
    assert (variable["type"], variable["query"], variable["current"]["value"]) == (
        "datasource",
        "prometheus",
        "prometheus",
    )


def test_annotations_show_what_aiops_writes(board: dict[str, Any]) -> None:
    tagged = [
        item
        for item in board["annotations"]["list"]
        if item["datasource"]["type"] == "grafana" and item.get("target", {}).get("type") == "tags"
    ]
    assert [(item["target"]["tags"], item["enable"]) for item in tagged] == [(["aiops"], True)]


def test_queries_use_only_variables_that_exist_and_hold_one_value(board: dict[str, Any]) -> None:
    defined = d.variables(board)
    known = defined.keys() | d.BUILTINS.keys()
    for target in d.targets(board):
        for name in d.used_variables(target.expr):
            assert name in known, (
                f"{target.where()}: ${name} is neither a variable nor one of {sorted(known)}"
            )
            if name in defined:  # d.substitute() inserts values the way Grafana does for one value
                assert not defined[name].get("multi") and not defined[name].get("includeAll"), name


def test_hosts_shows_one_instance_chosen_by_the_link() -> None:
    """aiops links to <grafana>/d/aiops-hosts/hosts?var-instance=<the alert's instance>&from=…&to=…"""
    hosts = d.load("hosts.json")
    assert (hosts["uid"], d.slug(hosts["title"])) == ("aiops-hosts", "hosts")
    variable = d.variables(hosts)["instance"]
    assert variable["type"] == "query"
    label, selector = d.label_values(d.variable_query(variable))
    assert label == "instance" and selector and selector.startswith("node_")
    for target in d.targets(hosts):
        assert 'instance="$instance"' in target.expr, f"{target.where()} shows every host: {target.expr}"


# --- against the real processes -------------------------------------------------------------------------------


@dataclass
class Running:
    workdir: Path
    aiops: AiopsProcess
    node: s.ManagedProcess
    prometheus: s.ManagedProcess
    node_target: str  # host:port, the instance label of node_exporter's series

    @property
    def values(self) -> dict[str, str]:
        """What Grafana substitutes for the dashboards' variables, pointing at the processes of this test."""
        return {**d.BUILTINS, "job": "aiops", "instance": self.node_target}

    def api(self, path: str, **params: str) -> Any:
        """Prometheus's answer; an error status is returned, not raised, so the caller can name the query."""
        return s.http().get(self.prometheus.ready_url.replace("/-/ready", path), params=params).json()

    def series(self, expr: str) -> list[dict[str, Any]]:
        answer = self.api("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def logs(self) -> str:
        return s.report(
            [
                ("aiops stderr", self.aiops.stderr()[-s.LOG_TAIL :]),
                ("node_exporter log", self.node.log()),
                ("prometheus.yml", (self.workdir / "prometheus" / "prometheus.yml").read_text()),
                ("prometheus log", self.prometheus.log()),
            ]
        )


def distinct_ports(count: int, taken: set[int]) -> list[int]:
    chosen: list[int] = []
    while len(chosen) < count:
        port = free_port()
        if port not in taken and port not in chosen:
            chosen.append(port)
    return chosen


def start_aiops(workdir: Path, prometheus_port: int) -> AiopsProcess:
    workdir.mkdir()
    config = {
        "webhook": {"token": TOKEN},
        "database": {"url": f"sqlite:///{workdir / 'aiops.db'}"},
        "prometheus": {"url": f"http://127.0.0.1:{prometheus_port}"},
        "queue": {"poll_interval": "200ms"},
    }
    env = dict.fromkeys(ENV_OVERRIDES, "")  # the file is the configuration, not the caller's environment
    aiops = AiopsProcess(workdir, config, env=env)
    while aiops.port == prometheus_port:
        aiops = AiopsProcess(workdir, config, env=env)
    return aiops


def node_exporter(workdir: Path, port: int) -> s.ManagedProcess:
    workdir.mkdir()
    argv = [require("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{port}"]
    return s.ManagedProcess("node_exporter", argv, workdir, f"http://127.0.0.1:{port}/")


def prometheus(workdir: Path, port: int, jobs: dict[str, str]) -> s.ManagedProcess:
    """Prometheus scraping each job's one target every second, with the bundled stack's job names."""
    workdir.mkdir()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in jobs.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [
        require("prometheus"),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return s.ManagedProcess("prometheus", argv, workdir, f"http://127.0.0.1:{port}/-/ready")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """aiops (after triaging tests/data/firing.json), node_exporter and Prometheus, with a few scrapes of each."""
    require("prometheus")
    require("prometheus-node-exporter")
    workdir = tmp_path_factory.mktemp("dashboards")
    with ExitStack() as cleanup:
        [prometheus_port] = distinct_ports(1, set())
        aiops = start_aiops(workdir / "aiops", prometheus_port)
        [node_port] = distinct_ports(1, {prometheus_port, aiops.port})
        cleanup.callback(aiops.stop)
        aiops.start()
        node = node_exporter(workdir / "node", node_port)
        cleanup.callback(node.stop)
        node.start()
        jobs = {"aiops": aiops.url.removeprefix("http://"), "node": f"127.0.0.1:{node_port}"}
        server = prometheus(workdir / "prometheus", prometheus_port, jobs)
        cleanup.callback(server.stop)
        server.start()
        stack = Running(workdir, aiops, node, server, jobs["node"])
        post_alert(stack)
        wait_for_samples(stack)
        yield stack


def post_alert(stack: Running) -> None:
    response = s.http().post(
        f"{stack.aiops.url}/webhook/alertmanager",
        content=FIRING.read_bytes(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{stack.logs()}"


def wait_for_samples(stack: Running) -> None:
    """Until the alert is triaged and Prometheus holds three samples of each target and of the triage's metrics:
    enough for rate() over $__rate_interval to have an answer."""

    def triaged() -> bool:
        exposition = s.http().get(f"{stack.aiops.url}/metrics").text
        return s.metric(exposition, "aiops_stage_duration_seconds_count", stage="notify") >= 1

    s.eventually(triaged, timeout=DEADLINE, what="aiops to triage the alert", logs=stack.logs)
    enough = [
        'count_over_time(up{job="aiops"}[1m]) >= 3 and up{job="aiops"} == 1',
        'count_over_time(up{job="node"}[1m]) >= 3 and up{job="node"} == 1',
        'count_over_time(aiops_stage_duration_seconds_count{stage="notify"}[1m]) >= 3',
    ]
    for expr in enough:
        s.eventually(lambda e=expr: stack.series(e), timeout=DEADLINE, what=expr, logs=stack.logs)


def executed(stack: Running, target: d.Target) -> list[str]:
    """Problems with one target, both as a graph (query_range) and as a stat or table (query) asks for it."""
    expr = d.substitute(target.expr, stack.values)
    now = time.time()
    answers = {
        "query_range": stack.api(
            "/api/v1/query_range", query=expr, start=f"{now - 300:.3f}", end=f"{now:.3f}", step="15"
        ),
        "query": stack.api("/api/v1/query", query=expr, time=f"{now:.3f}"),
    }
    return [
        f"{target.where()}: {endpoint} of {expr!r} → {answer.get('errorType')}: {answer.get('error')}"
        for endpoint, answer in answers.items()
        if answer.get("status") != "success"
    ]


@pytest.mark.e2e
def test_every_panel_query_runs_on_prometheus(running: Running) -> None:
    problems = [
        problem for board in all_boards() for t in d.targets(board) for problem in executed(running, t)
    ]
    assert not problems, "\n".join(problems) + "\n" + running.logs()


@pytest.mark.e2e
def test_variable_queries_offer_the_running_targets(running: Running) -> None:
    expected = {"job": "aiops", "instance": running.node_target}
    for board in all_boards():
        for name, variable in d.variables(board).items():
            if variable["type"] != "query":
                continue
            label, selector = d.label_values(d.substitute(d.variable_query(variable), running.values))
            params = {"match[]": selector} if selector else {}
            answer = running.api(f"/api/v1/label/{label}/values", **params)
            assert answer["status"] == "success", f"{board['title']} ${name}: {answer}\n{running.logs()}"
            assert expected[name] in answer["data"], f"{board['title']} ${name}: {answer['data']}"


@pytest.mark.e2e
def test_panels_show_data_once_their_metrics_have_samples(running: Running) -> None:
    """A query over metrics that Prometheus holds must return something; an empty answer means a filter (a
    label value, `$instance`) matches nothing."""
    sampled: dict[str, bool] = {}

    def has_samples(name: str) -> bool:
        if name not in sampled:
            sampled[name] = bool(running.series(f"count_over_time({name}[1m]) >= 2"))
        return sampled[name]

    empty = [
        f"{t.where()}: {t.expr}"
        for board in all_boards()
        for t in d.targets(board)
        if all(has_samples(name) for name in d.metric_names(t.expr))
        and not running.series(d.substitute(t.expr, running.values))
    ]
    assert not empty, "no data from:\n" + "\n".join(empty) + "\n" + running.logs()


@pytest.mark.e2e
def test_every_aiops_metric_in_a_panel_is_exposed_by_aiops(running: Running) -> None:
    exposed = d.exposed_names(s.http().get(f"{running.aiops.url}/metrics").text)
    used = {
        (name, t.where())
        for board in all_boards()
        for t in d.targets(board)
        for name in d.metric_names(t.expr)
    }
    missing = sorted(
        f"{name} in {where}" for name, where in used if name.startswith("aiops_") and name not in exposed
    )
    assert not missing, "not in aiops's /metrics:\n" + "\n".join(missing)


@pytest.mark.e2e
def test_every_node_metric_comes_from_node_exporter(running: Running) -> None:
    used = {name for t in d.targets(d.load("hosts.json")) for name in d.metric_names(t.expr)}
    assert set(WITHOUT_COLLECTOR) <= used, "WITHOUT_COLLECTOR lists a metric no panel uses"
    absent = sorted(
        name
        for name in used - set(WITHOUT_COLLECTOR)
        if name.startswith("node_") and not running.series(f'{name}{{job="node"}}')
    )
    assert not absent, f"node_exporter has no series for {absent}\n{running.logs()}"
