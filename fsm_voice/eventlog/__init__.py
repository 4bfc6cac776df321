"""The event log: every call, every event, both audio tracks."""

from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.query import (
    call_events,
    list_calls,
    open_log,
    track_pcm_mulaw,
    track_wav,
)
from fsm_voice.eventlog.records import (
    SOURCES,
    TRACKS,
    AudioChunk,
    CallRecord,
    EventRecord,
    Source,
    Track,
)
from fsm_voice.eventlog.sqlite import SCHEMA_VERSION, SqliteEventLog

__all__ = [
    "SCHEMA_VERSION",
    "SOURCES",
    "TRACKS",
    "AudioChunk",
    "CallRecord",
    "EventLog",
    "EventRecord",
    "MemoryEventLog",
    "Source",
    "SqliteEventLog",
    "Track",
    "call_events",
    "list_calls",
    "open_log",
    "track_pcm_mulaw",
    "track_wav",
]
