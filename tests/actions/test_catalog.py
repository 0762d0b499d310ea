"""The action catalog: strict validation naming the field at fault, and literal, pattern-checked rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.actions.catalog import (
    Action,
    ActionRefused,
    Catalog,
    CatalogError,
    Verify,
    load_catalog,
    parse_catalog,
    render_command,
)

CATALOG = """\
restart-service:
  description: Restart a systemd unit
  argv: [systemctl, restart, "{unit}"]
  params: {unit: {from: labels.service, pattern: '^[a-zA-Z0-9@._-]{1,64}$'}}
  target: labels.instance
  risk: high
  timeout: 60s
  output_cap: 16KiB
journal-errors:
  description: Recent error lines from the journal
  argv: [journalctl, --priority=err, --since=-1h, --no-pager, --lines=200]
  target: host:db-1
  risk: read
  timeout: 20s
grep-log:
  description: Lines of a log file matching what the model asks for
  argv: [grep, "--regexp={needle}", "/var/log/{app}/current.log", "{{literal}}"]
  params:
    needle: {from: proposal, pattern: '.{1,100}'}
    app: {from: annotations.app, pattern: '[a-z]+'}
  target: labels.instance
  risk: low
  timeout: 5s
"""
LABELS = {"alertname": "ServiceDown", "instance": "web-1:9100", "service": "nginx"}


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as raised:
        parse_catalog(text)
    assert str(raised.value) == "\n".join(raised.value.problems)
    return raised.value.problems


def action(**fields: object) -> str:
    """One action `a` as YAML flow mappings, with valid defaults for what `fields` leaves out."""
    values: dict[str, object] = {
        "description": "d",
        "argv": '["echo", "{x}"]',
        "params": "{x: {from: labels.x, pattern: '[a-z]+'}}",
        "target": "labels.instance",
        "risk": "read",
        "timeout": "5s",
        **fields,
    }
    return "a:\n" + "".join(f"  {key}: {value}\n" for key, value in values.items() if value is not None)


def test_a_good_catalog_loads(tmp_path: Path) -> None:
    path = tmp_path / "actions.yml"
    path.write_text(CATALOG)
    catalog = load_catalog(path)
    assert catalog.ids() == ["grep-log", "journal-errors", "restart-service"]
    restart = catalog.get("restart-service")
    assert restart is not None
    assert (restart.risk, restart.timeout, restart.output_cap) == ("high", 60.0, 16 * 1024)
    journal = catalog.get("journal-errors")
    assert journal is not None and journal.output_cap == 64 * 1024 and journal.params == {}
    assert catalog.get("reboot") is None
    assert len(Catalog.empty()) == 0 and len(parse_catalog("")) == 0


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"colour": "red"}, "actions.yml: a.colour: is not a known field"),
        ({"params": "{x: {from: labels.x}}"}, "actions.yml: a.params.x.pattern: is required"),
        (
            {"params": "{x: {from: labels.x, pattern: '[a-z'}}"},
            "actions.yml: a.params.x.pattern: '[a-z' is not a regular expression",
        ),
        (
            {"params": "{x: {from: labels.x, pattern: 'a', flags: i}}"},
            "actions.yml: a.params.x.flags: is not a known field",
        ),
        ({"params": "{x: {from: label.x, pattern: a}}"}, "actions.yml: a.params.x.from: 'label.x' must be"),
        (
            {"argv": '["echo", "{x}", "{y}"]'},
            "actions.yml: a.argv[2]: placeholder {y} is not declared under params",
        ),
        ({"argv": "[echo, hello]"}, "actions.yml: a.params.x: is not used in argv"),
        ({"argv": '["{x}"]'}, "actions.yml: a.argv[0]: the program must be written literally"),
        ({"argv": '["echo", "{x}", "a}b"]'}, "actions.yml: a.argv[2]: 'a}b' has a stray brace"),
        ({"argv": "[]", "params": None}, "actions.yml: a.argv: List should have at least 1 item"),
        ({"argv": "[sleep, 30]", "params": None}, "actions.yml: a.argv[1]: Input should be a valid string"),
        ({"risk": "medium"}, "actions.yml: a.risk: Input should be 'read', 'low' or 'high'"),
        ({"timeout": "0s"}, "actions.yml: a.timeout: Input should be greater than 0"),
        ({"timeout": "soon"}, "actions.yml: a.timeout: 'soon' is not a duration"),
        ({"target": "instance"}, "actions.yml: a.target: 'instance' must be labels.<name>"),
        ({"description": None}, "actions.yml: a.description: is required"),
        ({"output_cap": "lots"}, "actions.yml: a.output_cap: 'lots' is not a size"),
    ],
)
def test_each_problem_names_the_field(fields: dict[str, object], problem: str) -> None:
    problems = problems_of(action(**fields))
    assert any(found.startswith(problem) for found in problems), problems


def test_every_problem_of_every_action_is_reported() -> None:
    text = action(risk="medium", argv='["echo", "{y}"]') + "Bad_Id: {}\nb: systemctl restart nginx\n"
    assert problems_of(text) == [
        "actions.yml: a.argv[1]: placeholder {y} is not declared under params",
        "actions.yml: a.params.x: is not used in argv",
        "actions.yml: a.risk: Input should be 'read', 'low' or 'high'",
        "actions.yml: Bad_Id: is not an action id: use 1 to 64 of a-z, 0-9 and '-', starting with a-z or 0-9",
        "actions.yml: b: must be a mapping with description, argv, target, risk and timeout",
    ]


def test_broken_files(tmp_path: Path) -> None:
    assert problems_of("[restart-service]") == [
        "actions.yml: must be a mapping of action id to action, not list"
    ]
    assert problems_of("a: [\n")[0].startswith("actions.yml: is not valid YAML at line 2")
    twice = problems_of(CATALOG + CATALOG.split("journal-errors:")[0])
    assert (
        twice[0].startswith("actions.yml: is not valid YAML at line ")
        and "'restart-service' is defined twice" in (twice[0])
    )
    with pytest.raises(CatalogError, match=r"^actions\.yml: cannot be read \(No such file or directory\)$"):
        load_catalog(tmp_path / "actions.yml")


def test_declared_ids_survive_a_broken_catalog() -> None:
    with pytest.raises(CatalogError) as raised:
        parse_catalog(CATALOG + action(risk="medium"))
    assert raised.value.ids == {"restart-service", "journal-errors", "grep-log", "a"}


# --- rendering -------------------------------------------------------------------------------------------

GOOD = parse_catalog(CATALOG)


def get(action_id: str) -> Action:
    found = GOOD.get(action_id)
    assert found is not None, action_id
    return found


def test_render_fills_in_labels_and_keeps_the_rest() -> None:
    command = render_command(get("restart-service"), LABELS, {})
    assert command.argv == ("systemctl", "restart", "nginx")
    assert (command.action_id, command.target, command.risk, command.timeout, command.output_cap) == (
        "restart-service",
        "web-1:9100",
        "high",
        60.0,
        16 * 1024,
    )


def test_fixed_host_target_needs_no_label() -> None:
    command = render_command(get("journal-errors"), {"alertname": "X"}, {})
    assert command.target == "db-1" and command.argv[0] == "journalctl"


@pytest.mark.parametrize(
    "needle",
    [
        '"} or vector(1) #',
        "$(reboot)",
        "{0.__class__}",
        "}{",
        "{needle}",
        "{app}",
        "\\1 \\g<0>",
        "a b;rm -rf /",
    ],
)
def test_values_are_substituted_literally_as_one_item(needle: str) -> None:
    command = render_command(get("grep-log"), LABELS, {"app": "shop"}, {"needle": needle})
    assert command.argv == ("grep", f"--regexp={needle}", "/var/log/shop/current.log", "{literal}")


@pytest.mark.parametrize(
    "service", ['"} or vector(1) #', "$(reboot)", "{0.__class__}", "nginx; reboot", "nginx\n", "`id`", ""]
)
def test_values_failing_their_pattern_are_refused(service: str) -> None:
    with pytest.raises(ActionRefused) as raised:
        render_command(get("restart-service"), {**LABELS, "service": service}, {})
    assert str(raised.value.reason) == (
        f"restart-service: parameter 'unit' from labels.service is {service!r}, which does not match "
        "'^[a-zA-Z0-9@._-]{1,64}$'"
    )


def test_a_long_refused_value_is_shown_cut() -> None:
    with pytest.raises(ActionRefused) as raised:
        render_command(get("restart-service"), {**LABELS, "service": "x" * 500 + "!"}, {})
    shown = str(raised.value.reason).split(" is ", 1)[1].split(", which")[0]
    assert len(shown) == 80 and shown.startswith("'xxx") and shown.endswith("…")


def test_missing_values_are_refused() -> None:
    restart, grep = get("restart-service"), get("grep-log")
    cases = [
        (restart, {"instance": "web-1"}, {}, None, "parameter 'unit' needs labels.service, which is absent"),
        (restart, {"service": "nginx"}, {}, None, "target label 'instance' is absent from the alert"),
        (grep, LABELS, {"app": "shop"}, None, "parameter 'needle' comes from a proposal, and there is none"),
        (grep, LABELS, {"app": "shop"}, {}, "parameter 'needle' needs proposal, which is absent"),
        (grep, LABELS, {}, {"needle": "x"}, "parameter 'app' needs annotations.app, which is absent"),
    ]
    for chosen, labels, notes, proposal, reason in cases:
        with pytest.raises(ActionRefused, match=reason):
            render_command(chosen, labels, notes, proposal)


def test_verify_defaults_to_the_alerts_resolving_within_five_minutes() -> None:
    [plain] = [parse_catalog(action()).get("a")]
    assert plain is not None and plain.verify == Verify(None, 300.0)
    query = "{query: 'up{instance=\"{{ labels.instance }}\"} == 1', window: 90s}"
    declared = parse_catalog(action(verify=query)).get("a")
    assert declared is not None
    assert declared.verify == Verify('up{instance="{{ labels.instance }}"} == 1', 90.0)


@pytest.mark.parametrize(
    ("verify", "problem"),
    [
        ("{query: 'up{instance={{ labels.instance }}}'}", "actions.yml: a.verify.query: "),
        ("{window: 0s}", "actions.yml: a.verify.window: Input should be greater than 0"),
        ("{windows: 5m}", "actions.yml: a.verify.windows: is not a known field"),
    ],
)
def test_a_verify_section_that_cannot_be_used_names_its_field(verify: str, problem: str) -> None:
    problems = problems_of(action(verify=verify))
    assert any(found.startswith(problem) for found in problems), problems
