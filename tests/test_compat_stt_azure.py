"""The Azure STT built by the compat factory: the seed's option names and its reconnect
limit (3, then `reconnect_exhausted_after_3_attempts`), against the fake SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from compat_stt_harness import Consumer, retry_until_error, states
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService
from fake_azure_types import CancellationErrorCode

from fsm_voice.clock import VirtualClock
from fsm_voice.stt import AzurePersistentStt, create_stt

pytestmark = pytest.mark.anyio


@pytest.fixture
def service() -> Iterator[FakeSpeechService]:
    service = FakeSpeechService(["yes please"])
    yield service
    service.close()
    assert not service.callback_errors


def compat_stt(service: FakeSpeechService, clock: VirtualClock, key: str) -> AzurePersistentStt:
    stt = create_stt(
        "azure",
        subscription_key=key,
        sdk=FakeSpeechSdk(service),
        clock=clock,
        jitter=lambda: 0.5,
        environ={},
    )
    assert isinstance(stt, AzurePersistentStt)
    return stt


async def test_the_third_failed_reconnect_reports_reconnecting_exhausted(
    service: FakeSpeechService,
) -> None:
    clock = VirtualClock()
    stt = compat_stt(service, clock, "test-key")
    consumer = Consumer(stt)
    await stt.start(asyncio.Queue())
    service.connect_failures = [CancellationErrorCode.ConnectionFailure] * 10
    service.drop_sessions()
    await retry_until_error(consumer, clock)
    assert consumer.errors == ["reconnect_exhausted_after_3_attempts"]
    assert states(consumer).count("reconnecting") == 3
    assert clock.next_due_ms() is None
    await stt.stop()


async def test_a_bad_subscription_key_is_reported_as_it_is(service: FakeSpeechService) -> None:
    clock = VirtualClock()
    stt = compat_stt(service, clock, "not-the-key")
    consumer = Consumer(stt)
    await stt.start(asyncio.Queue())
    await consumer.until(lambda: bool(consumer.errors))
    ((reason,),) = [consumer.errors]
    assert "AuthenticationFailure" in reason and "reconnect" not in reason
    assert states(consumer) == ["connecting", "error"]
    await stt.stop()
