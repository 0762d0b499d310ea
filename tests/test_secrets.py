"""No secret from the configuration appears in logs, error answers, pages, the API or metrics."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from aiops.passwords import hash_password
from tests.conftest import DATA
from tests.fakes.discord import APPLICATION_ID, CHANNEL, FakeDiscord
from tests.fakes.minimax import FakeMiniMax
from tests.fakes.wecom import AGENT_ID, CORP_ID, FakeWeCom
from tests.support.service import AiopsProcess

TOKEN = "tok-Vq83hZ0pL1xY7mN2"
BASIC = "basic-Rt55kWq9aZ3eLm00"
PROMETHEUS = "prom-Jd82nBv0qXs7Ty11"
MINIMAX = "sk-api-Zx81mQ2wE4rT6yU8"
VIEWER = "viewer-Pw47cHs9Lk2Nq6"
URL_PASSWORD = "url-Hh30vBn8Wq1Zx5"
LOKI = "loki-Ut62bNm4Kq8Wz3"
GRAFANA = "glsa_Gx58rTq2Vn7Lw4Pz"
PROXY = "proxy-Ys47dKq0Mx3B"
WECOM_SECRET = "wecom-Cs93kLq1Vb6Nm2Xz"
WECOM_CALLBACK = "wecomcb-Tk58pQw3Zr7"
WECOM_AES = "wecomaesJh4Lm8Qp2Rt6Vx0Zb3Nd7Fg1Ks5Wy9Ec4Ua"  # 43 characters, as an EncodingAESKey
WECOM_ROBOT = "robot-Fd72hJk4Lz9Qx1Wc"
DISCORD = "MTAw.discord-Bq64nHs8Xe2Vt5"
SECRETS = (
    TOKEN,
    BASIC,
    PROMETHEUS,
    MINIMAX,
    VIEWER,
    URL_PASSWORD,
    LOKI,
    GRAFANA,
    PROXY,
    WECOM_SECRET,
    WECOM_CALLBACK,
    WECOM_AES,
    WECOM_ROBOT,
    DISCORD,
)
CHANNELS = ("wecom", "wecom_webhook", "discord")


def test_secrets_stay_secret(
    tmp_path: Path, fake_minimax: FakeMiniMax, fake_wecom: FakeWeCom, fake_discord: FakeDiscord
) -> None:
    config = {
        "server": {"viewers": [{"username": "oncall", "password_hash": hash_password(VIEWER)}]},
        "webhook": {"token": TOKEN, "basic_auth": {"username": "am", "password": BASIC}},
        "database": {"url": f"sqlite:///{tmp_path}/aiops.db"},
        # Nothing listens there: the evidence stage fails and logs why.
        "prometheus": {"url": f"http://reader:{URL_PASSWORD}@127.0.0.1:9", "bearer_token": PROMETHEUS},
        "loki": {"url": "http://127.0.0.1:9", "bearer_token": LOKI},
        # Annotations are tried there, through a proxy that is down too, and retried: the errors are logged.
        "grafana": {
            "url": "http://127.0.0.1:9",
            "token": GRAFANA,
            "proxy": f"socks5h://aiops:{PROXY}@127.0.0.1:9",
        },
        "runbooks": {"dir": str(tmp_path / "runbooks")},
        "queue": {"poll_interval": "100ms"},
        # The fakes refuse these credentials, as the platforms would; the WeCom app's secret and the robot's key
        # travel in query strings, which an error quoting the URL would show.
        "channels": {
            "wecom": {
                "corp_id": CORP_ID,
                "agent_id": AGENT_ID,
                "corp_secret": WECOM_SECRET,
                "touser": ["zhangsan"],
                "callback_token": WECOM_CALLBACK,
                "encoding_aes_key": WECOM_AES,
                "base_url": fake_wecom.url,
            },
            "wecom_webhook": [{"key": WECOM_ROBOT, "base_url": fake_wecom.url}],
            "discord": {
                "application_id": APPLICATION_ID,
                "public_key": fake_discord.public_key,
                "bot_token": DISCORD,
                "channel_id": CHANNEL,
                "api": fake_discord.api,
            },
        },
    }
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "HostOutOfDiskSpace.md").write_text(
        "---\nalerts: [HostOutOfDiskSpace]\nevidence:\n  logs:\n    - loki: '{job=\"node\"}'\n---\n# Disk\n"
    )
    # The fake endpoint refuses this key, as MiniMax would: the error must not echo it.
    env = {"MINIMAX_API_KEY": MINIMAX, "MINIMAX_BASE_URL": fake_minimax.base_url}
    service = AiopsProcess(tmp_path, config, env=env)
    service.start()
    seen: list[str] = []
    try:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            headers = {"Content-Type": "application/json"}
            body = (DATA / "firing.json").read_bytes()
            for authorization in (
                f"Bearer {TOKEN}x",
                f"Bearer {TOKEN}",
                "Basic " + base64.b64encode(f"am:{BASIC}".encode()).decode(),
                f"Bearer {MINIMAX}",
            ):
                seen.append(
                    client.post(
                        "/webhook/alertmanager",
                        content=body,
                        headers={**headers, "Authorization": authorization},
                    ).text
                )
            seen.append(client.post("/webhook/alertmanager", content=b"{", headers=headers).text)
            # Callbacks that are not the platforms': their refusals must not echo the keys they were checked with.
            query = {"msg_signature": "0" * 40, "timestamp": "1", "nonce": "2", "echostr": "x"}
            seen.append(client.get("/callbacks/wecom", params=query).text)
            seen.append(client.post("/callbacks/wecom", params=query, content=b"<xml/>").text)
            seen.append(client.post("/callbacks/discord", content=b"{}", headers=headers).text)
            _wait_for_triage(client)
            _wait_for(
                lambda: all(f"to {name} failed" in service.stderr() for name in CHANNELS), "failed sends"
            )
            for path in (
                "/",
                "/incidents/1",
                "/api/v1/incidents",
                "/api/v1/incidents/1",
                "/metrics",
                "/readyz",
                "/openapi.json",
                "/incidents/9",
            ):
                seen.append(client.get(path).text)
    finally:
        service.terminate()
    seen += [service.stdout(), service.stderr()]
    assert "evidence source" in service.stderr() or "is unreachable" in json.dumps(seen)
    assert "MiniMax error 1004" in json.dumps(seen)  # the model was asked, with the key, and refused it
    assert "grafana at http://127.0.0.1:9 is unreachable" in service.stderr()  # an annotation was tried
    assert "set in grafana.proxy" in service.stderr()  # through the proxy, whose URL the error shows
    assert fake_minimax.headers[0]["authorization"] == f"Bearer {MINIMAX}"
    # Each channel was tried, with its credential, and refused.
    assert fake_wecom.token_requests > 0 and "/cgi-bin/webhook/send" in fake_wecom.calls
    assert fake_discord.invalid_requests > 0
    for text in seen:
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into: {text[:300]}"


def _wait_for_triage(client: httpx.Client) -> None:
    def triaged() -> bool:
        answer = client.get("/api/v1/incidents/1")
        return answer.status_code == 200 and bool(answer.json()["triages"])

    _wait_for(triaged, "the incident triaged")


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within 30 s: {what}")
