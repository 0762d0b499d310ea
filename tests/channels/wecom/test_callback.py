"""The two calls a WeCom callback route makes, fed what the fake WeCom sends: the URL check answered with the bare
plaintext, a click read from an encrypted POST, other events ignored, and refusals carrying their HTTP status."""

from __future__ import annotations

import pytest

from aiops.channels.wecom.callback import receive, verify_url
from aiops.channels.wecom.crypto import BadSignature, Malformed, MsgCrypt
from tests.fakes.wecom import AES_KEY, CALLBACK_TOKEN, CORP_ID, Callbacks

APP = MsgCrypt(CALLBACK_TOKEN, AES_KEY, CORP_ID)


def test_the_url_check_answers_the_bare_plaintext() -> None:
    query, echo = Callbacks().verification()
    assert verify_url(APP, query) == echo


def test_a_url_check_with_a_forged_signature_is_401() -> None:
    query, _ = Callbacks(token="another-token").verification()
    with pytest.raises(BadSignature) as refused:
        verify_url(APP, query)
    assert refused.value.status == 401


def test_a_click_comes_out_of_the_post() -> None:
    query, body = Callbacks().click("lisi", "reject:7", "inc3-1", "RC-9")
    click = receive(APP, query, body)
    assert click is not None and (click.user_id, click.key, click.response_code.value) == (
        "lisi",
        "reject:7",
        "RC-9",
    )


def test_other_events_are_not_clicks() -> None:
    query, body = Callbacks().post("<xml><MsgType>event</MsgType><Event>enter_agent</Event></xml>")
    assert receive(APP, query, body) is None


@pytest.mark.parametrize("drop", ["msg_signature", "timestamp", "nonce"])
def test_a_query_without_its_parameters_is_400_naming_them(drop: str) -> None:
    query, body = Callbacks().click("lisi", "reject:7", "inc3-1", "RC-9")
    del query[drop]
    with pytest.raises(Malformed, match=drop) as refused:
        receive(APP, query, body)
    assert refused.value.status == 400
