"""The configuration: defaults, interpolation, overrides, and errors that name the key at fault."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiops.config import ConfigError, load_settings
from aiops.templating import build_environment

TOKEN = "s3cr3t-token-0123456789"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aiops.yml"
    path.write_text(text)
    return path


def problems(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    return caught.value.problems


def test_defaults_need_no_file() -> None:
    settings = load_settings(None, {})
    assert settings.server.listen == "127.0.0.1:18789"
    assert settings.database.url == "sqlite:///data/aiops.db"
    assert settings.webhook.max_body == 5 * 1024 * 1024
    assert settings.server.language == "zh-CN"
    assert settings.channels.console.enabled


def test_interpolation_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "webhook:\n  token: ${HOOK}\nprometheus:\n  url: ${PROM:-http://prom:9090}\n")
    settings = load_settings(path, {"HOOK": TOKEN})
    assert settings.webhook.token is not None and settings.webhook.token.get_secret_value() == TOKEN
    assert settings.prometheus.url == "http://prom:9090"


def test_missing_variable_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "webhook:\n  token: ${NOT_SET_ANYWHERE}\n")
    assert problems(path) == [
        "webhook.token: environment variable NOT_SET_ANYWHERE is not set (write ${NOT_SET_ANYWHERE:-default})"
    ]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  listen: 127.0.0.1:1\ndatabase:\n  url: sqlite:///a.db\n")
    environ = {
        "AIOPS_LISTEN": "127.0.0.1:2",
        "AIOPS_DATABASE_URL": "postgresql://u@h/db",
        "AIOPS_PROMETHEUS_URL": "http://p:9090/",
        "AIOPS_ALERTMANAGER_URL": "http://am:9093",
        "AIOPS_LOKI_URL": "http://loki:3100",
        "AIOPS_RUNBOOKS_DIR": "/srv/runbooks",
        "AIOPS_PUBLIC_URL": "https://aiops.example.com",
        "MINIMAX_API_KEY": "sk-api-0123456789abcdef",
        "MINIMAX_MODEL": "MiniMax-M2.5",
        "MINIMAX_BASE_URL": "https://api.minimax.io/v1",
        "AIOPS_WEBHOOK_TOKEN": TOKEN,
    }
    settings = load_settings(path, environ)
    assert settings.server.port == 2
    assert settings.database.url == "postgresql://u@h/db"
    assert settings.prometheus.url == "http://p:9090"
    assert settings.alertmanager.url == "http://am:9093"
    assert settings.loki.url == "http://loki:3100"
    assert str(settings.runbooks.dir) == "/srv/runbooks"
    assert settings.server.base_url == "https://aiops.example.com"
    assert settings.llm.model == "MiniMax-M2.5"
    assert settings.llm.base_url == "https://api.minimax.io/v1"
    assert TOKEN in settings.secrets() and "sk-api-0123456789abcdef" in settings.secrets()


def test_empty_environment_variable_counts_as_unset() -> None:
    assert load_settings(None, {"AIOPS_LISTEN": ""}).server.listen == "127.0.0.1:18789"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("webhook:\n  tokn: x\n", "webhook.tokn: is not a known setting"),
        ("queue:\n  lease: soon\n", "queue.lease: 'soon' is not a duration"),
        ("queue:\n  workers: 0\n", "queue.workers: Input should be greater than or equal to 1"),
        ("webhook:\n  max_body: lots\n", "webhook.max_body: 'lots' is not a size"),
        ("webhook:\n  token: short\n", "webhook.token: is shorter than 16 characters"),
        ("webhook:\n  token: undefined\n", "webhook.token: is a placeholder"),
        ("server:\n  listen: nowhere\n", "server.listen: 'nowhere' is not host:port"),
        ("database:\n  url: mysql://x/y\n", "database.url: unsupported database scheme 'mysql'"),
        ("prometheus:\n  url: prom:9090\n", "prometheus.url: 'prom:9090' is not an http(s) URL"),
        ("server:\n  language: fr\n", "server.language: Input should be 'zh-CN' or 'en'"),
        (
            "server:\n  viewers: [{username: a, password_hash: plain}]\n",
            "server.viewers[0].password_hash: is not a hash",
        ),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("server: [\n", "is not valid YAML at line 2"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(write(tmp_path, text))
    assert any(expected in problem for problem in found), found


def test_override_errors_name_the_variable() -> None:
    found = problems(None, {"AIOPS_WEBHOOK_TOKEN": "abc"})
    assert found == [
        "webhook.token (from AIOPS_WEBHOOK_TOKEN): is shorter than 16 characters; use a random secret (openssl rand -hex 24)"
    ]
    assert "abc" not in found[0].replace("(from", "")


def test_exposed_listen_needs_credentials() -> None:
    found = problems(None, {"AIOPS_LISTEN": "0.0.0.0:18789"})
    assert (
        "webhook: no token or basic_auth while server.listen 0.0.0.0:18789 is not a loopback address"
        in found[0]
    )
    assert load_settings(
        None, {"AIOPS_LISTEN": "0.0.0.0:18789", "AIOPS_WEBHOOK_TOKEN": TOKEN}
    ).webhook.has_credentials


def test_exposed_listen_can_be_opened_explicitly(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  listen: '[::]:18789'\nwebhook:\n  allow_unauthenticated: true\n")
    assert not load_settings(path, {}).server.is_loopback


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiops", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_check_exits_2_with_the_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, "queue:\n  lease: soon\nwebhook:\n  tokn: x\n")
    result = run_cli("--config", str(path), "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "queue.lease: 'soon' is not a duration" in result.stderr
    assert "webhook.tokn: is not a known setting" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_accepts_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"webhook:\n  token: {TOKEN}\n")
    result = run_cli("--config", str(path), "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout and TOKEN not in result.stdout


def test_serve_refuses_a_bad_configuration_without_a_traceback(tmp_path: Path) -> None:
    result = run_cli(
        "--config", str(write(tmp_path, "server:\n  listen: 0.0.0.0:0\n")), "serve", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "server.listen: '0.0.0.0:0' is not host:port" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_exposed_unauthenticated_listen(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiops", "serve"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AIOPS_LISTEN": "0.0.0.0:18799"},
    )
    assert result.returncode == 2
    assert "webhook: no token or basic_auth" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_reported(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.yml"), "check", cwd=tmp_path)
    assert result.returncode == 2 and "nope.yml: cannot be read" in result.stderr


def test_passwords_in_urls_are_secrets() -> None:
    settings = load_settings(
        None,
        {
            "AIOPS_DATABASE_URL": "postgresql://aiops:p%40ss-word@db/aiops",
            "AIOPS_PROMETHEUS_URL": "https://reader:prom-pass@prom:9090",
        },
    )
    assert {"p@ss-word", "p%40ss-word", "prom-pass"} <= set(settings.secrets())


def test_a_template_override_folder_replaces_a_message(tmp_path: Path) -> None:
    (tmp_path / "console").mkdir()
    (tmp_path / "console" / "digest.txt.j2").write_text("our own digest: {{ digest }}")
    environment = build_environment("en", tmp_path)
    assert environment.get_template("console/digest.txt.j2").render(digest="x") == "our own digest: x"
    opened = environment.get_template("console/opened.txt.j2").filename or ""
    assert opened.endswith("aiops/templates/console/opened.txt.j2")  # the others stay the package's
    missing = tmp_path / "nope"
    config = tmp_path / "aiops.yml"
    config.write_text(f"channels:\n  templates: {missing}\n")
    with pytest.raises(ConfigError, match=r"channels\.templates"):
        load_settings(config, {})


def test_escalation_names_configured_channels(tmp_path: Path) -> None:
    good = write(
        tmp_path, "remediation:\n  escalation: {critical: {console: [ops]}}\n  escalate_to: [console]\n"
    )
    settings = load_settings(good, {})
    assert settings.remediation.escalation_for("critical", "console") == ("ops",)
    assert settings.remediation.breaker.trips_at == 5  # half of the last ten
    bad = write(
        tmp_path, "remediation:\n  escalation: {critical: {feishu: [ou_1]}}\n  escalate_to: [pager]\n"
    )
    [problem] = problems(bad)
    assert (
        "remediation.escalation.critical.feishu, remediation.escalate_to[0]: not a configured channel"
        in problem
    )
