"""WXBizMsgCrypt against WeCom's published vectors and an independent implementation (the fake's, on the
`cryptography` package), and what it refuses: a tampered signature (401), another corp's message, bad padding, not
base64, XML with a DTD (400)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from aiops.channels.wecom.callback import card_click, parse_event
from aiops.channels.wecom.crypto import (
    BadSignature,
    CallbackError,
    Malformed,
    MsgCrypt,
    WrongReceiver,
    encrypted_text,
)
from tests.fakes.wecom import AES_KEY, CALLBACK_TOKEN, CORP_ID, Callbacks

# WeCom's official Python sample (sbzhu/weworkapi_python, callback/Sample.py).
OFFICIAL = MsgCrypt(
    "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee"
)
ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
POSTED = (
    b"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDap"
    b"SCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8"
    b"SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J"
    b"6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/ox"
    b"waWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)
APP = MsgCrypt(CALLBACK_TOKEN, AES_KEY, CORP_ID)


def test_the_official_url_verification_vector() -> None:
    signature = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
    assert OFFICIAL.signature("1476416373", "47744683", ECHOSTR) == signature
    assert OFFICIAL.verify_url(signature, "1476416373", "47744683", ECHOSTR) == "1288432023552776189"


def test_the_official_posted_message_vector() -> None:
    xml = OFFICIAL.decrypt_callback(
        "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", POSTED
    )
    assert parse_event(xml)["Content"] == "你好"
    assert parse_event(xml)["FromUserName"] == "ChenJiaShun"


def test_wechatpys_vector() -> None:
    crypt = MsgCrypt("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
    echostr = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
    signature = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert crypt.verify_url(signature, "1411443780", "437374425", echostr) == "5927782489442352469"


def test_a_click_sealed_by_the_fake_opens_as_the_event() -> None:
    query, body = Callbacks().click("zhangsan", "approve:42", "inc7-1", "RC-1", created=1_700_000_000)
    event = parse_event(
        APP.decrypt_callback(query["msg_signature"], query["timestamp"], query["nonce"], body)
    )
    click = card_click(event)
    assert click is not None
    assert (click.user_id, click.key, click.task_id, click.agent_id) == (
        "zhangsan",
        "approve:42",
        "inc7-1",
        1000002,
    )
    assert click.response_code.value == "RC-1" and click.response_code.issued == 1_700_000_000


@pytest.mark.parametrize(
    "message", ["", "x", "a" * 11, "a" * 12, "企业微信" * 100, "<xml>" + "y" * 5000 + "</xml>"]
)
def test_what_aiops_seals_the_independent_implementation_opens(message: str) -> None:
    """Every pad length from 1 to 32 comes up across these sizes (the corp id is 18 bytes, the header 20)."""
    assert Callbacks().open(APP.encrypt(message)) == message
    assert APP.decrypt(Callbacks().seal(message)) == message


def test_a_pad_of_a_whole_block_is_taken_off() -> None:
    # 16 + 4 + 26 + 18 bytes = 64: a full 32-byte block of padding follows, which a 16-byte unpadder refuses.
    message = "m" * 26
    encrypted = APP.encrypt(message)
    assert len(base64.b64decode(encrypted)) == 96
    assert APP.decrypt(encrypted) == message


def test_a_passive_reply_is_sealed_and_signed() -> None:
    sealed = APP.seal("<xml><MsgType>text</MsgType></xml>", "1700000000", "42")
    assert sealed.signature == Callbacks().sign("1700000000", "42", sealed.encrypt)
    assert encrypted_text(sealed.xml().encode()) == sealed.encrypt
    assert Callbacks().open(sealed.encrypt) == "<xml><MsgType>text</MsgType></xml>"


def test_a_tampered_signature_is_refused_with_401() -> None:
    query, body = Callbacks().click("zhangsan", "approve:42", "inc7-1", "RC-1")
    forged = ("0" if query["msg_signature"][0] != "0" else "1") + query["msg_signature"][1:]
    with pytest.raises(BadSignature, match="token") as refused:
        APP.decrypt_callback(forged, query["timestamp"], query["nonce"], body)
    assert refused.value.status == 401


def test_a_body_swapped_under_a_good_signature_is_refused() -> None:
    query, _ = Callbacks().click("zhangsan", "reject:42", "inc7-1", "RC-1")
    _, other = Callbacks().click("zhangsan", "approve:42", "inc7-1", "RC-1")
    with pytest.raises(BadSignature):
        APP.decrypt_callback(query["msg_signature"], query["timestamp"], query["nonce"], other)


def test_a_signature_by_another_token_is_refused() -> None:
    query, body = Callbacks(token="someone-elses-token").click("zhangsan", "approve:42", "inc7-1", "RC-1")
    with pytest.raises(BadSignature):
        APP.decrypt_callback(query["msg_signature"], query["timestamp"], query["nonce"], body)


def test_a_message_for_another_corp_is_refused_naming_the_corp_id() -> None:
    query, body = Callbacks().post("<xml/>", receive_id="ww-another-corp")
    with pytest.raises(WrongReceiver, match="corp_id") as refused:
        APP.decrypt_callback(query["msg_signature"], query["timestamp"], query["nonce"], body)
    assert refused.value.status == 400


def _raw_encrypt(plain: bytes) -> str:
    key = base64.b64decode(AES_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


HEAD = b"\x00" * 16 + b"\x00\x00\x00\x02hi" + CORP_ID.encode()  # 40 bytes: 24 more make two blocks


@pytest.mark.parametrize(
    "plain",
    [
        HEAD + b"\x00" * 24,  # a pad byte of 0
        HEAD + b"\x21" * 24,  # a pad of 33, over a block
        HEAD + b"\x01\x02" * 12,  # pad bytes that differ
        HEAD.replace(b"\x00\x02hi", b"\x10\x00hi") + b"\x18" * 24,  # a length past the end
        b"\x05" * 32,  # shorter than the header once unpadded
    ],
)
def test_bad_padding_and_lengths_are_malformed(plain: bytes) -> None:
    with pytest.raises(Malformed):
        APP.decrypt(_raw_encrypt(plain))


@pytest.mark.parametrize("encrypted", ["not base64!", "", base64.b64encode(b"short").decode()])
def test_text_that_is_not_a_ciphertext_is_malformed(encrypted: str) -> None:
    with pytest.raises(Malformed):
        APP.decrypt(encrypted)


def test_a_key_that_is_not_the_apps_fails_as_bad_padding_not_as_a_crash() -> None:
    other = MsgCrypt(CALLBACK_TOKEN, "B" * 43, CORP_ID)
    with pytest.raises(CallbackError):
        other.decrypt(APP.encrypt("<xml/>"))


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<xml><ToUserName>x</ToUserName></xml>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>',
        b"<xml><Encrypt>" + b"A" * 70_000 + b"</Encrypt></xml>",
    ],
)
def test_bodies_that_are_not_a_callback_are_malformed(body: bytes) -> None:
    with pytest.raises(Malformed):
        encrypted_text(body)


@pytest.mark.parametrize("key", ["short", "!" * 43])
def test_a_bad_encoding_aes_key_is_refused_naming_the_setting(key: str) -> None:
    with pytest.raises(ValueError, match="encoding_aes_key"):
        MsgCrypt(CALLBACK_TOKEN, key, CORP_ID)


def test_events_other_than_a_card_click_are_not_clicks() -> None:
    event = parse_event("<xml><MsgType>event</MsgType><Event>enter_agent</Event></xml>")
    assert card_click(event) is None


def test_a_card_event_without_its_response_code_is_malformed() -> None:
    event = parse_event(
        "<xml><MsgType>event</MsgType><Event>template_card_event</Event><FromUserName>u</FromUserName>"
        "<EventKey>approve:1</EventKey><TaskId>t</TaskId></xml>"
    )
    with pytest.raises(Malformed, match="ResponseCode"):
        card_click(event)
