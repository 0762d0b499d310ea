"""What WeCom's answers mean for a retry, for the app's API and the group robot alike.

Both answer HTTP 200 with `{"errcode", "errmsg"}` for nearly every refusal; the HTTP status only changes when a
gateway in front of them fails. Codes are from WeCom's global error code table (全局错误码, 90313) unless marked.
"""

from __future__ import annotations

from aiops.channels import ChannelError

BUSY = -1  # 系统繁忙: "retry later, at most three times"
RATE_LIMITED = frozenset({45009, 45033})  # api freq out of limit; 接口并发调用超过限制
TOKEN_REJECTED = frozenset({40014, 41001, 42001})  # invalid, missing, expired access_token
_RETRY_AFTER = {BUSY: 2.0, 45009: 60.0, 45033: 1.0}  # seconds; WeCom's limits are counted per minute
# What an operator can do about the refusals a misconfiguration causes.
_HINTS = {
    40001: "the corp_secret is wrong: copy the app's Secret from 应用管理 → the app",
    40013: "the corp_id is wrong: copy it from 我的企业 → 企业信息 → 企业ID",
    40056: "the agent_id is wrong: copy the app's AgentId from 应用管理 → the app",
    40058: "a parameter was refused (see errmsg); if it names a length, the message is over the limit",
    60020: "add this server's egress IP (the proxy's, if one is used) to the app's 企业可信IP; WeCom refuses "
    "calls from other IPs for apps created since 2022-06-20",
    81013: "none of the recipients can see the app: add them to its 可见范围 or check the userids",
    93000: "the robot's webhook key is wrong, or the robot was removed from the group",
}


class WeComError(ChannelError):
    """A refusal from WeCom; `errcode` is its code (0 when the answer had none)."""

    def __init__(
        self, message: str, *, errcode: int, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.errcode = errcode


def refusal(where: str, errcode: int, errmsg: str) -> WeComError:
    """The error an `errcode` answer becomes: its code, WeCom's words, and what would fix it."""
    said = f"{where}: errcode {errcode}: {errmsg}"
    if errcode == BUSY or errcode in RATE_LIMITED:
        return WeComError(said, errcode=errcode, retryable=True, retry_after=_RETRY_AFTER.get(errcode))
    hint = _HINTS.get(errcode)
    return WeComError(f"{said}; {hint}" if hint else said, errcode=errcode, retryable=False)


def gateway_failure(where: str, status: int, retry_after: float | None = None) -> WeComError:
    """An answer that is not WeCom's (a gateway's or a proxy's page): 5xx and 429 are worth a retry, the rest
    are not."""
    retryable = status >= 500 or status == 429
    said = f"{where}: HTTP {status} instead of an errcode answer"
    if not retryable:
        said += "; check that the base URL points at qyapi.weixin.qq.com (or the proxy in front of it)"
    return WeComError(said, errcode=0, retryable=retryable, retry_after=retry_after)
