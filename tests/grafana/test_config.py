"""The `grafana:` section: off by default, set from the environment, its token a secret, its errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.config import ConfigError, load_settings

TOKEN = "glsa_0123456789abcdefghijklmnopqrstuv_0a1b2c3d"


def test_grafana_is_off_by_default() -> None:
    grafana = load_settings(None, {}).grafana
    assert grafana.url is None and grafana.token is None and not grafana.annotating
    assert (grafana.dashboards.hosts, grafana.dashboards.overview) == ("aiops-hosts", "aiops-overview")
    assert grafana.annotations and grafana.timeout == 5.0 and grafana.org_id is None


def test_the_environment_sets_url_and_token_and_the_token_is_a_secret() -> None:
    settings = load_settings(
        None, {"AIOPS_GRAFANA_URL": "https://grafana.example.com/", "AIOPS_GRAFANA_TOKEN": TOKEN}
    )
    assert settings.grafana.url == "https://grafana.example.com"
    assert settings.grafana.token is not None and settings.grafana.token.get_secret_value() == TOKEN
    assert settings.grafana.annotating
    assert TOKEN in settings.secrets() and TOKEN not in repr(settings)


def test_a_url_alone_links_without_annotating(tmp_path: Path) -> None:
    path = tmp_path / "aiops.yml"
    path.write_text(
        "grafana:\n  url: http://grafana:3000\n  org_id: 2\n  dashboards: {hosts: node-exporter}\n"
    )
    grafana = load_settings(path, {}).grafana
    assert grafana.url == "http://grafana:3000" and not grafana.annotating
    assert (grafana.org_id, grafana.dashboards.hosts, grafana.dashboards.overview) == (
        2,
        "node-exporter",
        "aiops-overview",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"grafana:\n  token: {TOKEN}\n",
            "grafana: token is set but url is not: set grafana.url (or AIOPS_GRAFANA_URL)",
        ),
        ("grafana:\n  url: grafana:3000\n", "grafana.url: 'grafana:3000' is not an http(s) URL"),
        (
            "grafana:\n  dashboards: {hosts: 'a/b'}\n",
            "grafana.dashboards.hosts: 'a/b' is not a dashboard uid",
        ),
        ("grafana:\n  url: http://g\n  token: ' '\n", "grafana.token: is empty; set a service account token"),
        ("grafana:\n  timeout: 0s\n", "grafana.timeout: Input should be greater than 0"),
        ("grafana:\n  org_id: 0\n", "grafana.org_id: Input should be greater than or equal to 1"),
        ("grafana:\n  annotation: false\n", "grafana.annotation: is not a known setting"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "aiops.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    [problem] = caught.value.problems
    assert problem.startswith(expected), problem
    assert TOKEN not in problem
