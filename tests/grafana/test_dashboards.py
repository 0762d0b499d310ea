"""Links to the Grafana dashboard: the URL for an incident, and every place that shows it — the console, the
Feishu card, the DingTalk card's data, both group robots and the incident page."""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from aiops.channels import Announcement
from aiops.channels.dingtalk.card import Cards as DingTalkCards
from aiops.channels.dingtalk_webhook import DingTalkWebhookChannel, DingTalkWebhookConfig
from aiops.channels.feishu.card import Cards as FeishuCards
from aiops.channels.feishu_webhook import FeishuWebhookChannel, FeishuWebhookConfig
from aiops.grafana import GrafanaConfig
from aiops.grafana.dashboards import dashboard_url, epoch_ms
from aiops.models import Incident
from aiops.templating import build_environment
from tests.channels.announcements import NOW, announcement
from tests.conftest import DATA
from tests.support.app import AUTH

GRAFANA = "https://grafana.example.com"
CONFIG = GrafanaConfig(url=GRAFANA)
FROM = epoch_ms(NOW - timedelta(hours=1))
HOSTS = f"{GRAFANA}/d/aiops-hosts/hosts?var-instance=web-1%3A9100&from={FROM}&to=now"
OVERVIEW = f"{GRAFANA}/d/aiops-overview/aiops-overview?from={FROM}&to=now"


def incident(labels: dict[str, str], resolved: bool = False) -> Incident:
    ended = NOW + timedelta(minutes=20) if resolved else None
    return Incident(
        7, "group", "resolved" if resolved else "open", "Disk", "critical", labels, NOW, NOW, ended
    )


def test_an_incident_with_an_instance_links_to_the_hosts_dashboard_until_now() -> None:
    assert dashboard_url(CONFIG, incident({"instance": "web-1:9100"})) == HOSTS


def test_a_resolved_incident_links_to_a_quarter_hour_after_it_resolved() -> None:
    until = epoch_ms(NOW + timedelta(minutes=35))
    found = dashboard_url(CONFIG, incident({"instance": "web-1:9100"}, resolved=True))
    assert found == f"{GRAFANA}/d/aiops-hosts/hosts?var-instance=web-1%3A9100&from={FROM}&to={until}"


def test_an_incident_without_an_instance_links_to_the_overview() -> None:
    assert dashboard_url(CONFIG, incident({"alertname": "QueueBacklog", "job": "aiops"})) == OVERVIEW


def test_the_instance_is_encoded_and_the_uids_and_organisation_come_from_the_configuration() -> None:
    config = GrafanaConfig(url=GRAFANA + "/", org_id=3, dashboards={"hosts": "my-hosts", "overview": "ops"})
    found = dashboard_url(config, incident({"instance": 'a b&c="d"](x)#'}))
    assert (
        found
        == f"{GRAFANA}/d/my-hosts/hosts?var-instance=a%20b%26c%3D%22d%22%5D%28x%29%23&from={FROM}&to=now&orgId=3"
    )
    assert dashboard_url(config, incident({})) == f"{GRAFANA}/d/ops/aiops-overview?from={FROM}&to=now&orgId=3"


def test_links_use_the_public_url_when_people_reach_grafana_elsewhere() -> None:
    config = GrafanaConfig(url="http://grafana:3000", public_url=GRAFANA)
    assert dashboard_url(config, incident({"instance": "web-1:9100"})) == HOSTS


def test_without_a_url_there_is_no_link() -> None:
    assert dashboard_url(GrafanaConfig(), incident({"instance": "web-1:9100"})) is None


def linked(a: Announcement) -> Announcement:
    return dataclasses.replace(a, dashboard_url=dashboard_url(CONFIG, a.incident))


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document."""
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def shown(body: str, url: str) -> bool:
    return any(url in text for text in strings(json.loads(body)))


def hashed(a: Announcement) -> Announcement:
    return dataclasses.replace(
        a, proposals=tuple(dataclasses.replace(p, argv_hash="ab" * 32) for p in a.proposals)
    )


@pytest.mark.parametrize("purpose", ["opened", "resolved", "action"])
async def test_every_channel_shows_the_dashboard_link_next_to_the_incident_link(purpose: str) -> None:
    templates = build_environment("en")
    a = linked(hashed(announcement(purpose)))
    url = a.dashboard_url
    assert url is not None and url.startswith(
        f"{GRAFANA}/d/aiops-hosts/hosts?var-instance=web-1%3A9100&from="
    )
    feishu = json.loads(FeishuCards(templates).announcement(a))
    [first] = [e["content"] for e in feishu["body"]["elements"][:1]]
    assert (
        f"[Open the incident page](https://aiops.example.com/incidents/7) · [Grafana dashboard]({url})"
        in first
    )
    dingtalk = json.loads(DingTalkCards(templates).announcement(a))["cardData"]["cardParamMap"]
    assert (dingtalk["dashboard_url"], dingtalk["dashboard_link_text"]) == (url, "Grafana dashboard")
    async with httpx.AsyncClient() as http:
        robots = [
            FeishuWebhookChannel(
                FeishuWebhookConfig(url="https://open.feishu.cn/open-apis/bot/v2/hook/t"), templates, http
            ),
            DingTalkWebhookChannel(
                DingTalkWebhookConfig(url="https://oapi.dingtalk.com/robot/send?access_token=t"),
                templates,
                http,
            ),
        ]
        for robot in robots:
            assert shown(robot.render(a), f"[Grafana dashboard]({url})"), robot.name


def test_without_grafana_no_channel_shows_a_dashboard_link() -> None:
    templates = build_environment("en")
    a = hashed(announcement("opened"))
    assert "Grafana" not in FeishuCards(templates).announcement(a)
    dingtalk = json.loads(DingTalkCards(templates).announcement(a))["cardData"]["cardParamMap"]
    assert (dingtalk["dashboard_url"], dingtalk["dashboard_link_text"]) == ("", "")


async def test_the_console_and_the_incident_page_link_to_the_dashboard(
    app_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    firing = json.loads((DATA / "firing.json").read_text())
    without_instance = {**firing, "groupKey": "other", "commonLabels": {"alertname": "HostOutOfDiskSpace"}}
    async with app_for(grafana={"url": GRAFANA}, server={"language": "en"}) as (client, services):
        for body in (firing, without_instance):
            answer = await client.post("/webhook/alertmanager", content=json.dumps(body), headers=AUTH)
            await services.pipeline.run(answer.json()["delivery"])
        pages = [html.unescape((await client.get(f"/incidents/{n}")).text) for n in (1, 2)]
        api = (await client.get("/api/v1/incidents/1")).json()
    printed = capsys.readouterr().out
    opened = epoch_ms(datetime.fromisoformat(api["opened_at"]) - timedelta(hours=1))
    hosts = f"{GRAFANA}/d/aiops-hosts/hosts?var-instance=web-1%3A9100&from={opened}&to=now"
    overview_from = f"{GRAFANA}/d/aiops-overview/aiops-overview?from="
    assert f"Grafana dashboard: {hosts}" in printed
    assert f'<a href="{hosts}">Grafana dashboard</a>' in pages[0]
    assert f"Grafana dashboard: {overview_from}" in printed and f'<a href="{overview_from}' in pages[1]


async def test_without_grafana_the_page_has_no_dashboard_link(app_for: Any) -> None:
    async with app_for() as (client, services):
        body = (DATA / "firing.json").read_bytes()
        answer = await client.post("/webhook/alertmanager", content=body, headers=AUTH)
        await services.pipeline.run(answer.json()["delivery"])
        page = (await client.get("/incidents/1")).text
    assert "Grafana" not in page
