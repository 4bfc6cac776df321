"""Secret masking, phone masking, per-call tokens and Twilio signature checks."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from fsm_voice.security import (
    Secret,
    StreamToken,
    call_token,
    call_token_valid,
    mask_phone,
    mask_phone_values,
    read_call_token,
)
from fsm_voice.twilio.signature import twilio_signature, twilio_signature_valid


def test_secret_never_prints_its_value() -> None:
    secret = Secret("hunter2-token")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>20}"]
    assert all("hunter2" not in s for s in shown)
    assert secret.reveal() == "hunter2-token"
    assert "hunter2" not in repr({"token": secret})


def test_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


def test_secret_from_env_treats_empty_as_unset() -> None:
    assert Secret.from_env("T", {"T": ""}) is None
    token = Secret.from_env("T", {"T": "abc"})
    assert token is not None and token.reveal() == "abc"


def test_mask_phone_keeps_only_the_last_four_digits() -> None:
    assert mask_phone("+358401234567") == "+********4567"
    assert mask_phone("+1 (415) 555-0100") == "+* (***) ***-0100"
    assert mask_phone("123") == "***"


def test_call_token_binds_the_call_its_time_and_its_call_sid() -> None:
    key = Secret("server-key")
    token = call_token(key, "FV123", issued_ms=1_767_225_600_000, call_sid="CA9")
    assert len(token) < 130  # Twilio takes 500 characters per <Parameter>
    assert read_call_token(key, "FV123", token) == StreamToken(
        "FV123", 1_767_225_600_000, "CA9", redirect=False, nonce=""
    )
    assert call_token_valid(key, "FV123", token)
    assert not call_token_valid(key, "FV124", token)
    assert not call_token_valid(Secret("other-key"), "FV123", token)
    assert not call_token_valid(key, "FV123", None)
    assert not call_token_valid(key, "FV123", token[:-1] + ("A" if token[-1] != "A" else "B"))


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace(".1767225600000.", ".1767225900000."),  # a later issue time
        lambda t: t.replace(".CA9.", ".CA8."),  # another call
        lambda t: t.replace(".CA9.", ".."),  # unbound
        lambda t: t.replace("v2.s.", "v2.r."),  # a redirect
        lambda t: t.replace(".1767225600000.", ".١٢."),  # digits, not ASCII ones
    ],
)
def test_no_field_of_a_call_token_can_be_changed(change: Callable[[str], str]) -> None:
    key = Secret("server-key")
    token = call_token(key, "FV123", issued_ms=1_767_225_600_000, call_sid="CA9")
    assert change(token) != token
    assert read_call_token(key, "FV123", change(token)) is None


def test_a_redirect_token_names_its_live_call() -> None:
    key = Secret("server-key")
    with pytest.raises(ValueError, match="CallSid"):
        call_token(key, "FV1", issued_ms=0, redirect=True, nonce="n1")
    with pytest.raises(ValueError, match="letters and digits"):
        call_token(key, "FV1", issued_ms=0, call_sid="CA.9")
    token = call_token(key, "FV1", issued_ms=5, call_sid="CA9", redirect=True, nonce="n1")
    read = read_call_token(key, "FV1", token)
    assert read is not None and read.redirect and read.use_key == "FV1/n1"


def test_twilio_signature_matches_twilio_published_example() -> None:
    # https://www.twilio.com/docs/usage/security#validating-requests
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    token = Secret("12345")
    assert twilio_signature_valid(token, url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not twilio_signature_valid(token, url, params, "1/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not twilio_signature_valid(
        token, url, {**params, "Digits": "1235"}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    assert not twilio_signature_valid(token, url, params, None)


def test_simulator_signature_is_accepted_for_a_websocket_upgrade() -> None:
    token = Secret("tok")
    url = "wss://voice.example.com/voice"
    assert twilio_signature_valid(token, url, None, twilio_signature("tok", url))
    assert not twilio_signature_valid(token, url, None, twilio_signature("other", url))


def test_mask_phone_values_masks_numbers_at_any_depth_and_nothing_else() -> None:
    data = {
        "variables": {"caller": "+15550123", "called": "(415) 555-0100", "slot": "tuesday"},
        "to": ["+358401234567", "12#"],
        "count": 15550123,
        "digits": "1234",
    }
    assert mask_phone_values(data) == {
        "variables": {"caller": "+****0123", "called": "(***) ***-0100", "slot": "tuesday"},
        "to": ["+********4567", "12#"],
        "count": 15550123,
        "digits": "1234",
    }
