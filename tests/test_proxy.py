"""Outbound proxies: the `proxy` and `no_proxy` settings, the HTTP clients that follow them through a real SOCKS5
proxy (pproxy on loopback), and the service announcing through them, or despite one that is down."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from aiops import cli
from aiops.config import ConfigError, Settings, load_settings
from aiops.logs import REDACTED
from aiops.proxy import HttpClients, ProxyUrl, bypassed, http_client
from aiops.sources.prometheus import PrometheusConfig
from tests.conftest import DATA
from tests.fakes.dingtalk import CLIENT_ID, GROUP, FakeDingTalk
from tests.fakes.dingtalk import SECRET as DINGTALK_SECRET
from tests.fakes.feishu import SECRET as FEISHU_SECRET
from tests.fakes.feishu import FakeFeishu
from tests.fakes.grafana import TOKEN as GRAFANA_TOKEN
from tests.fakes.grafana import FakeGrafana
from tests.fakes.minimax import KEY, FakeMiniMax
from tests.fakes.prometheus import FakePrometheus
from tests.fakes.robots import Clock, FakeDingTalkRobot
from tests.support.binaries import free_port
from tests.support.proxy import Pproxy
from tests.support.service import AiopsProcess, wait_until

PASSWORD = "proxy-Qm71cXz4Rt9W"
USER = "aiops-gw-user"
ROBOT_SECRET = "SECb7c1f0d2e9a84f6c"


def load(tmp_path: Path, config: dict[str, object]) -> Settings:
    path = tmp_path / "aiops.yml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path, {})


def problems(tmp_path: Path, config: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, config)
    return raised.value.problems


FEISHU = {"app_id": "cli_x", "app_secret": "secret-0123456789", "chat_id": "oc_x"}
DINGTALK = {"client_id": "d", "client_secret": "s", "open_conversation_id": "cid", "card_template_id": "t"}
ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=robot-token-0123"


def every_section(proxy: str) -> dict[str, object]:
    return {
        "llm": {"api_key": "sk-0123456789abcdef", "proxy": proxy},
        "channels": {
            "feishu": {**FEISHU, "proxy": proxy, "callbacks": "long_connection"},
            "dingtalk": {**DINGTALK, "proxy": proxy},
            "feishu_webhook": [{"url": "https://open.feishu.cn/open-apis/bot/v2/hook/x", "proxy": proxy}],
            "dingtalk_webhook": [{"url": ROBOT, "proxy": proxy}],
        },
        "grafana": {"url": "http://grafana:3000", "proxy": proxy},
        "prometheus": {"url": "http://prometheus:9090", "proxy": proxy},
        "loki": {"url": "http://loki:3100", "proxy": proxy},
        "alertmanager": {"url": "http://alertmanager:9093", "proxy": proxy},
    }


def test_every_outbound_section_takes_a_proxy(tmp_path: Path) -> None:
    settings = load(tmp_path, every_section("socks5h://gw.example.com:1080"))
    channels = settings.channels
    sections = [settings.llm, settings.grafana, settings.prometheus, settings.loki, settings.alertmanager]
    sections += [channels.feishu, channels.dingtalk, *channels.feishu_webhook, *channels.dingtalk_webhook]
    assert {str(section.proxy) for section in sections if section is not None} == {
        "socks5h://gw.example.com:1080"
    }
    assert len(sections) == 9


def test_without_a_proxy_setting_nothing_is_proxied(tmp_path: Path) -> None:
    settings = load(
        tmp_path, {"llm": {"api_key": "sk-0123456789abcdef"}, "prometheus": {"url": "http://p:9090"}}
    )
    assert settings.llm.proxy is None and settings.prometheus.proxy_for("http://p:9090") is None


@pytest.mark.parametrize(
    ("proxy", "reason"),
    [
        ("ftp://gw:21", "scheme 'ftp' is not supported; use socks5://, socks5h:// or http://"),
        ("gw.example.com:1080", "is not a URL; use socks5://, socks5h:// or http://"),
        ("socks5h://gw.example.com", "names no port; write it, as in socks5h://gw.example.com:1080"),
        ("socks5h://gw.example.com:99999", "the port is not a number between 1 and 65535"),
        ("socks5h://:1080", "names no host"),
        ("http://gw.example.com:3128/proxy", "must be scheme://host:port only"),
        ({"host": "gw"}, "must be a URL such as socks5h://proxy.example.com:1080"),
    ],
)
def test_a_bad_proxy_is_refused_naming_the_setting(tmp_path: Path, proxy: object, reason: str) -> None:
    found = problems(tmp_path, {"llm": {"proxy": proxy}})
    assert len(found) == 1 and found[0].startswith(f"llm.proxy: {reason}"), found


def test_the_key_path_is_named_for_each_section(tmp_path: Path) -> None:
    found = problems(tmp_path, every_section("ftp://gw:21"))
    paths = sorted(problem.split(":", 1)[0] for problem in found)
    assert paths == sorted(
        [
            "llm.proxy",
            "channels.feishu.proxy",
            "channels.dingtalk.proxy",
            "channels.feishu_webhook[0].proxy",
            "channels.dingtalk_webhook[0].proxy",
            "grafana.proxy",
            "prometheus.proxy",
            "loki.proxy",
            "alertmanager.proxy",
        ]
    )


def test_a_refused_proxy_never_repeats_its_credentials(tmp_path: Path) -> None:
    found = problems(tmp_path, {"llm": {"proxy": f"ftp://{USER}:{PASSWORD}@gw:21"}})
    assert PASSWORD not in "\n".join(found) and USER not in "\n".join(found)


def test_no_proxy_is_a_list_or_a_comma_separated_string(tmp_path: Path) -> None:
    proxy = "socks5h://gw:1080"
    as_list = load(tmp_path, {"llm": {"proxy": proxy, "no_proxy": ["Models.Internal", "10.0.0.0/8"]}})
    as_text = load(tmp_path, {"llm": {"proxy": proxy, "no_proxy": "models.internal, 10.0.0.0/8"}})
    assert as_list.llm.no_proxy == as_text.llm.no_proxy == ("models.internal", "10.0.0.0/8")
    assert as_list.llm.proxy_for("https://models.internal/v1") is None
    assert str(as_list.llm.proxy_for("https://api.minimaxi.com/v1")) == proxy


@pytest.mark.parametrize("entry", ["http://models.internal", "models.internal:8000", "10.0.0.0/99", "a b"])
def test_a_bad_no_proxy_entry_is_refused(tmp_path: Path, entry: str) -> None:
    found = problems(tmp_path, {"llm": {"proxy": "socks5h://gw:1080", "no_proxy": [entry]}})
    assert len(found) == 1 and found[0].startswith("llm.no_proxy: "), found


def test_no_proxy_without_a_proxy_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, {"grafana": {"url": "http://g:3000", "no_proxy": ["g"]}})
    assert found == ["grafana: no_proxy is set but proxy is not: set proxy, or remove no_proxy"]


@pytest.mark.parametrize(
    ("host", "reached_directly"),
    [
        ("example.com", True),
        ("api.example.com", True),
        ("API.Example.com.", True),
        ("badexample.com", False),
        ("internal", True),
        ("10.1.2.3", True),
        ("11.1.2.3", False),
        ("192.168.0.7", True),
        ("::1", True),
        ("fd00::1", False),
    ],
)
def test_what_no_proxy_covers(host: str, reached_directly: bool) -> None:
    no_proxy = ("example.com", ".internal", "internal", "10.0.0.0/8", "192.168.0.7", "::1")
    assert bypassed(no_proxy, host) is reached_directly
    assert bypassed(("*",), host)


def test_a_proxy_is_shown_without_its_credentials_everywhere(tmp_path: Path) -> None:
    settings = load(tmp_path, {"llm": {"proxy": f"socks5h://{USER}:{PASSWORD}@gw.example.com:1080"}})
    proxy = settings.llm.proxy
    assert proxy is not None
    shown = [str(proxy), repr(proxy), repr(settings.llm), json.dumps(settings.model_dump(mode="json"))]
    shown.append(str(settings.model_dump()))
    for text in shown:
        assert PASSWORD not in text and USER not in text, text
    assert str(proxy) == f"socks5h://{REDACTED}@gw.example.com:1080"
    assert proxy.url() == f"socks5h://{USER}:{PASSWORD}@gw.example.com:1080"
    assert PASSWORD in settings.secrets()  # so that the log filter redacts it wherever it turns up


def test_credentials_with_reserved_characters_survive(tmp_path: Path) -> None:
    proxy = ProxyUrl.model_validate("socks5://a%40b:p%3Aw%2Fd@[::1]:1080")
    assert (proxy.username, proxy.password and proxy.password.get_secret_value()) == ("a@b", "p:w/d")
    assert (
        proxy.url() == "socks5://a%40b:p%3Aw%2Fd@[::1]:1080"
        and str(proxy) == f"socks5://{REDACTED}@[::1]:1080"
    )


def test_check_lists_each_destination_s_route_and_what_cannot_be_proxied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = every_section(f"socks5h://{USER}:{PASSWORD}@gw.example.com:1080")
    config["prometheus"] = {"url": f"http://reader:{PASSWORD}@prometheus:9090"}
    config["hosts"] = {"web-1": {"address": "10.0.0.1", "user": "ops", "key_file": "k", "known_hosts": "kh"}}
    (tmp_path / "aiops.yml").write_text(yaml.safe_dump(config))
    assert cli.main(["--config", str(tmp_path / "aiops.yml"), "check"]) == 0
    out = capsys.readouterr().out
    through = f"through socks5h://{REDACTED}@gw.example.com:1080"
    assert f"  llm: https://api.minimaxi.com {through} (llm.proxy)" in out
    assert f"  channels.feishu: https://open.feishu.cn {through} (channels.feishu.proxy)" in out
    assert "  channels.feishu long connection: https://open.feishu.cn direct: lark-oapi cannot open it" in out
    assert f"  channels.dingtalk Stream WebSocket: the host the gateway names {through}" in out
    assert f"  channels.dingtalk_webhook[0]: https://oapi.dingtalk.com {through}" in out
    assert "  prometheus: http://prometheus:9090 direct" in out
    assert "  hosts: ssh direct: SSH never goes through a proxy" in out
    assert PASSWORD not in out and USER not in out and "robot-token" not in out


# ---- the clients, through a real proxy


async def test_a_client_goes_through_the_proxy_except_to_no_proxy_hosts(
    proxy: Pproxy, fake_prometheus: FakePrometheus
) -> None:
    target = fake_prometheus.url.removeprefix("http://")
    section = PrometheusConfig(url=fake_prometheus.url, proxy=proxy.socks)
    async with http_client(section, "prometheus.proxy") as client:
        await client.get(fake_prometheus.url + "/-/ready")
    proxy.wait_for(target)
    bypassing = PrometheusConfig(url=fake_prometheus.url, proxy=proxy.socks, no_proxy=["127.0.0.1"])
    async with http_client(bypassing, "prometheus.proxy") as client:
        await client.get(fake_prometheus.url + "/-/ready")
    assert len(fake_prometheus.requests) == 2 and proxy.carried() == [target]


async def test_a_proxy_that_is_down_is_an_error_naming_the_setting() -> None:
    section = PrometheusConfig(proxy=f"socks5h://{USER}:{PASSWORD}@127.0.0.1:{free_port()}")
    async with http_client(section, "prometheus.proxy") as client:
        with pytest.raises(httpx.ConnectError) as raised:
            await client.get("http://prometheus.example.com:9090/-/ready")
    said = str(raised.value)
    assert said.endswith(
        f"through the proxy socks5h://{REDACTED}@127.0.0.1:{section.proxy.port} set in prometheus.proxy"
    )  # type: ignore[union-attr]
    assert PASSWORD not in said and USER not in said


async def test_the_service_s_clients_never_follow_the_environment_s_proxy(
    proxy: Pproxy, fake_prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.socks)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    clients = HttpClients()
    try:
        client = clients.for_section(PrometheusConfig(url=fake_prometheus.url), "prometheus.proxy")
        await client.get(fake_prometheus.url + "/-/ready")
    finally:
        await clients.aclose()
    assert client is clients.direct
    assert len(fake_prometheus.requests) == 1 and proxy.carried() == []


# ---- the service


def test_the_service_announces_through_its_proxies_and_despite_one_that_is_down(
    tmp_path: Path,
    proxy: Pproxy,
    fake_prometheus: FakePrometheus,
    fake_minimax: FakeMiniMax,
) -> None:
    """Feishu, DingTalk (Open API and Stream), Grafana and the model through a real SOCKS5 proxy; a DingTalk robot behind a
    proxy that is down fails with an error naming its `proxy` setting while the others announce the incident;
    Prometheus, not configured with a proxy, is reached directly although the environment names one."""
    feishu, dingtalk, grafana = FakeFeishu().start(), FakeDingTalk().start(), FakeGrafana().start()
    robot = FakeDingTalkRobot(ROBOT_SECRET, Clock()).start()
    down = f"socks5h://{USER}:{PASSWORD}@127.0.0.1:{free_port()}"
    proxied = [
        urlsplit(url).netloc for url in (feishu.url, dingtalk.url, dingtalk.ws_url, fake_minimax.base_url)
    ]
    config = {
        "database": {"url": f"sqlite:///{tmp_path}/aiops.db"},
        "queue": {"poll_interval": "100ms"},
        "prometheus": {"url": fake_prometheus.url},
        "grafana": {"url": grafana.url, "token": GRAFANA_TOKEN, "proxy": proxy.socks},
        "llm": {"proxy": proxy.socks, "call_timeout": "5s", "max_attempts": 1},
        "channels": {
            "feishu": {"app_id": feishu.app_id, "app_secret": FEISHU_SECRET, "chat_id": feishu.chat_id}
            | {"domain": feishu.url, "proxy": proxy.socks},
            "dingtalk": {
                "client_id": CLIENT_ID,
                "client_secret": DINGTALK_SECRET,
                "open_conversation_id": GROUP,
            }
            | {"card_template_id": "t.schema", "api": dingtalk.url, "timeout": "5s", "proxy": proxy.socks},
            "dingtalk_webhook": [
                {"name": "behind-down-proxy", "url": robot.url, "secret": ROBOT_SECRET, "proxy": down}
            ],
        },
    }
    environment = {name: proxy.socks for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")}
    environment |= {"MINIMAX_API_KEY": KEY, "MINIMAX_BASE_URL": fake_minimax.base_url, "NO_PROXY": ""}
    service = AiopsProcess(tmp_path, config, env=environment)
    try:
        service.start()
        body, headers = (DATA / "firing.json").read_bytes(), {"Content-Type": "application/json"}
        answer = httpx.post(f"{service.url}/webhook/alertmanager", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        wait_until(service, "the Feishu card", lambda: feishu.messages, 30)
        wait_until(service, "the DingTalk card", lambda: dingtalk.cards, 30)
        wait_until(service, "the Stream connection", lambda: dingtalk.connected.is_set(), 30)
        wait_until(service, "the Grafana annotation", lambda: grafana.annotations, 30)
        wait_until(
            service,
            "the robot's failure",
            lambda: "channels.dingtalk_webhook[0].proxy" in service.stderr(),
            30,
        )
    finally:
        service.terminate()
        for fake in (feishu, dingtalk, robot, grafana):
            fake.stop()
    logs = service.stderr()
    failure = next(line for line in logs.splitlines() if "to behind-down-proxy failed" in line)
    assert f"through the proxy socks5h://{REDACTED}@127.0.0.1:" in failure
    assert robot.messages == []
    for target in proxied:
        proxy.wait_for(target)
    assert fake_prometheus.requests and urlsplit(fake_prometheus.url).netloc not in proxy.carried()
    for text in (logs, service.stdout()):
        assert PASSWORD not in text and USER not in text
