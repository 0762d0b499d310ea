"""Log text made fit for an LLM: secrets redacted, repeated lines folded into templates with counts.

`redact` removes what looks like a credential while keeping the surrounding text (and the key name) readable;
`compress` redacts every line and then mines templates with Drain3, so the model sees
`×128  Connection refused to <IP>:<NUM>` instead of 128 near-identical lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from drain3 import TemplateMiner  # type: ignore[import-untyped]
from drain3.masking import MaskingInstruction  # type: ignore[import-untyped]
from drain3.template_miner_config import TemplateMinerConfig  # type: ignore[import-untyped]

REDACTED = "«redacted»"

# --- redaction -------------------------------------------------------------------------------------------

_PEM = re.compile(
    r"(?P<begin>-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----)"
    r"(?:[\s\S]*?(?P<end>-----END (?P=kind)PRIVATE KEY-----)"
    # No END marker (a truncated key): the rest of the line and the base64-looking lines after it.
    r"|[^\n]*(?:\n(?:[A-Za-z0-9+/=]{8,}|Proc-Type:[^\n]*|DEK-Info:[^\n]*|[ \t]*)(?=\n|$))*)"
)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")

# scheme://user:password@host — the password is the part up to the last "@" of the authority.
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#]*):(?P<pw>[^\s/?#]+)@")

# "Cookie: a=1; b=2" as a header: the whole rest of the line is the secret.
_COOKIE_HEADER = re.compile(
    r"(?<![\w\"'-])(?P<key>(?i:(?:set-)?cookie))(?P<sep>[ \t]*:[ \t]*)(?![\"'\s])[^\n]+"
)

_KEYWORDS = (
    r"passwd|password|pwd|secret|token|api_key|apikey|access_key|secret_key|private_key"
    r"|authorization|auth|credentials?|session|cookie"
)
_SCHEMES = r"bearer|basic|digest|token|negotiate|ntlm"
# key=value, key: value, "key": "value", 'key': 'value', key => value. The key may carry a prefix
# (db_password, X-Auth-Token, clientSecret) but must end in a keyword, so prompt_tokens or author stay.
_KEY_VALUE = re.compile(
    r"(?<![A-Za-z0-9])(?P<kq>\\?[\"']?)"
    r"(?P<key>(?:[A-Za-z0-9]*[_.-]|[a-z0-9]+(?=[A-Z]))?(?i:" + _KEYWORDS + r"))"
    r"(?P=kq)(?P<sep>[ \t]*(?:=>|[:=])[ \t]*)"
    r"(?P<scheme>(?i:" + _SCHEMES + r")[ \t]+)?"
    r"(?:\\\"(?P<edq>(?:[^\"\\\n]|\\[^\"])*)\\\""
    r"|\"(?P<dq>(?:\\.|[^\"\\\n])*)\""
    r"|'(?P<sq>[^'\n]*)'"
    r"|(?P<bare>[^\s,;&\"'<>(){}\[\]]+))"
)
_QUOTED_SCHEME = re.compile(r"(?P<scheme>(?i:" + _SCHEMES + r")[ \t]+)(?P<rest>.+)")

_TOKEN_SHAPES = re.compile(
    "|".join(
        (
            r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
            r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub token
            r"\bgithub_pat_[A-Za-z0-9_]{22,}",  # GitHub fine-grained token
            r"\bxox[baprs]-[A-Za-z0-9-]{10,}",  # Slack token
            r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",  # JWT
            r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{17,}",  # OpenAI-style key: ≥ 20 chars with a digit
            r"\bBearer[ \t]+[A-Za-z0-9\-._~+/]{16,}=*",  # a bearer token outside an Authorization header
        )
    )
)


def redact(text: str) -> str:
    """Return `text` with passwords, tokens, keys and credentials replaced by `«redacted»`.

    Key names, URL user names and authorization schemes stay visible (`password=«redacted»`,
    `postgresql://app:«redacted»@db`, `Authorization: Bearer «redacted»`); ordinary log text is left alone.
    """
    text = _PEM.sub(_pem_replacement, text)
    text = _URL_USERINFO.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
    text = _COOKIE_HEADER.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    text = _KEY_VALUE.sub(_key_value_replacement, text)
    return _TOKEN_SHAPES.sub(_token_replacement, text)


def _pem_replacement(match: re.Match[str]) -> str:
    end = match["end"] or ""
    return f"{match['begin']}{REDACTED}{end}"


def _token_replacement(match: re.Match[str]) -> str:
    token = match[0]
    return f"Bearer {REDACTED}" if token.startswith("Bearer") else REDACTED


def _key_value_replacement(match: re.Match[str]) -> str:
    head = f"{match['kq']}{match['key']}{match['kq']}{match['sep']}{match['scheme'] or ''}"
    if match["bare"] is not None:
        return head + _redacted_bare(match["key"], match["bare"])
    for group, quote in (("edq", '\\"'), ("dq", '"'), ("sq", "'")):
        value = match[group]
        if value is not None:
            return f"{head}{quote}{_redacted_quoted(value)}{quote}"
    return match[0]  # pragma: no cover - one of the value groups always matches


def _redacted_bare(key: str, value: str) -> str:
    # PWD=/home/app is the working directory, not a password.
    if key.lower() == "pwd" and value.startswith(("/", "~")):
        return value
    return REDACTED


def _redacted_quoted(value: str) -> str:
    if not value:
        return value
    scheme = _QUOTED_SCHEME.fullmatch(value)
    return f"{scheme['scheme']}{REDACTED}" if scheme else REDACTED


# --- compression -----------------------------------------------------------------------------------------

_EDGE_L = r"((?<=[^A-Za-z0-9])|^)"
_EDGE_R = r"((?=[^A-Za-z0-9])|$)"
_MASKS = (
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "TS"),
    (
        _EDGE_L + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" + _EDGE_R,
        "UUID",
    ),
    (_EDGE_L + r"\d{1,3}(?:\.\d{1,3}){3}" + _EDGE_R, "IP"),
    (_EDGE_L + r"(?:0x[0-9a-fA-F]+|(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{8,})" + _EDGE_R, "HEX"),
    (_EDGE_L + r"[-+]?\d+(?:\.\d+)?" + _EDGE_R, "NUM"),
)
_EXAMPLE_CHARS = 200


@dataclass(frozen=True)
class LogTemplate:
    """One family of log lines: its Drain3 template, how many lines it covers, and the first of them."""

    template: str
    count: int
    example: str
    first_index: int

    def render(self) -> str:
        """One line: `×count  template  (e.g. "example")`, without the example when it adds nothing."""
        line = f"×{self.count}  {self.template}"
        if self.example != self.template:
            example = self.example.replace("\r", "\\r").replace("\n", "\\n")  # one template, one line
            if len(example) > _EXAMPLE_CHARS:
                example = example[: _EXAMPLE_CHARS - 1] + "…"
            line += f'  (e.g. "{example}")'
        return line


@dataclass(frozen=True)
class LogSummary:
    """The templates of a batch of log lines, most frequent first."""

    total_lines: int
    templates: tuple[LogTemplate, ...]
    omitted_templates: int

    def render(self, max_chars: int = 4000) -> str:
        """The templates one per line, cut to at most `max_chars` with a final `… N more templates` line."""
        lines, left = self.fitted(max_chars)
        if left:
            lines.append(_more_line(left))
        return "\n".join(lines)[:max_chars]

    def fitted(self, max_chars: int = 4000) -> tuple[list[str], int]:
        """The template lines that fit in `max_chars` with room for a `… N more templates` line, and that N."""
        total = len(self.templates) + self.omitted_templates
        reserve = len(_more_line(total)) + 1
        lines: list[str] = []
        used = 0
        for template in self.templates:
            line = template.render()
            if used + len(line) + 1 + reserve > max_chars:
                break
            lines.append(line)
            used += len(line) + 1
        return lines, total - len(lines)


def _more_line(count: int) -> str:
    return f"… {count} more templates"


def compress(lines: Iterable[str], *, max_templates: int = 50) -> LogSummary:
    """Redact `lines` and fold them into Drain3 templates with counts, keeping the `max_templates` largest.

    Blank lines are skipped; `total_lines` counts the lines that were summarised. Each call builds its own
    in-memory miner, so calls share no state.
    """
    miner = _new_miner()
    first_seen: dict[int, tuple[int, str]] = {}
    total = 0
    for index, line in enumerate(redact_lines(lines)):
        if not line.strip():
            continue
        total += 1
        cluster_id = int(miner.add_log_message(line)["cluster_id"])
        first_seen.setdefault(cluster_id, (index, line))
    templates = sorted(_templates(miner, first_seen), key=lambda t: (-t.count, t.first_index))
    kept = tuple(templates[: max(max_templates, 0)])
    return LogSummary(total_lines=total, templates=kept, omitted_templates=len(templates) - len(kept))


def _new_miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.drain_sim_th = 0.4
    config.drain_depth = 4
    config.profiling_enabled = False
    config.masking_instructions = [MaskingInstruction(pattern, name) for pattern, name in _MASKS]
    return TemplateMiner(persistence_handler=None, config=config)


def _templates(miner: TemplateMiner, first_seen: dict[int, tuple[int, str]]) -> Iterator[LogTemplate]:
    # A cluster's template keeps generalising as lines arrive, so read the final ones after mining.
    for cluster in miner.drain.clusters:
        index, example = first_seen[cluster.cluster_id]
        yield LogTemplate(
            template=str(cluster.get_template()), count=int(cluster.size), example=example, first_index=index
        )


def redact_lines(lines: Iterable[str]) -> Iterator[str]:
    """Redact line by line, also blanking the body lines of a private key split across lines.

    `redact` on each line alone would let the base64 body of such a key through; keep `lines` in order."""
    in_key = False
    for raw in lines:
        line = raw.rstrip("\r\n")
        if in_key:
            end = _PEM_END.search(line)
            if end is None:
                yield REDACTED
                continue
            line = REDACTED + line[end.start() :]
        in_key = _opens_key(line)
        yield redact(line)


def _opens_key(line: str) -> bool:
    begins = [m.start() for m in _PEM_BEGIN.finditer(line)]
    ends = [m.start() for m in _PEM_END.finditer(line)]
    return bool(begins) and (not ends or begins[-1] > ends[-1])
