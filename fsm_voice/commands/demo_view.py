"""How `fsm-voice demo` shows a conversation as it happens (with `rich`).

It reads the same events that go to the log (through `ObservedEventLog`) plus the
simulated caller's steps, and prints one line per thing a person would notice: who
said what, what the recogniser heard, which state the machine entered and why.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from fsm_voice.eventlog.records import EventRecord
from fsm_voice.simulator.caller import StepEvent
from fsm_voice.simulator.caller_script import Hangup, Press, Say, Silence

__all__ = ["ConversationView"]


class ConversationView:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.call_id: str | None = None

    def _line(self, t_ms: int, who: str, text: str, style: str = "") -> None:
        stamp = f"[dim]{t_ms / 1000:6.2f}s[/dim]"
        body = f"[{style}]{text}[/{style}]" if style else text
        self.console.print(f"{stamp}  {who:<7} {body}")

    def on_event(self, event: EventRecord) -> None:
        if self.call_id is None:
            self.call_id = event.call_id
        shown = _describe(event.source, event.kind, event.data)
        if shown is not None:
            who, text, style = shown
            self._line(event.t_ms, who, text, style)

    def on_step(self, step: StepEvent) -> None:
        if step.phase == "failed":
            self._line(step.t_ms, "caller", f"step failed: {escape(step.detail)}", "bold red")
        elif step.phase == "started":
            shown = _caller_step(step)
            if shown:
                self._line(step.t_ms, "caller", escape(shown), "cyan")


def _caller_step(event: StepEvent) -> str | None:
    step = event.step
    if isinstance(step, Say):
        late = f" ({step.barge_in_after_ms} ms into the prompt)" if step.barge_in_after_ms else ""
        return f"says “{step.text}”{late}"
    if isinstance(step, Press):
        return f"presses {step.digits}"
    if isinstance(step, Silence):
        return f"stays silent for {step.ms / 1000:.1f} s"
    if isinstance(step, Hangup):
        return "hangs up" + (f" {step.after_ms} ms into the prompt" if step.after_ms else "")
    return None


def _describe(source: str, kind: str, data: dict[str, Any]) -> tuple[str, str, str] | None:
    """(who, text, style) for an event worth showing, else None."""
    match (source, kind):
        case ("conversation", "state_entered"):
            return "machine", f"▸ {data['state']}  [dim](on {data['on']})[/dim]", "bold"
        case ("conversation", "say_started"):
            return "agent", f"“{escape(data['text'])}”", "green"
        case ("conversation", "prompt_finished") if data.get("interrupted"):
            heard = len(data.get("heard", ()))
            return "agent", f"(interrupted: the caller heard {heard} sentence(s))", "yellow"
        case ("stt", "transcript_committed"):
            confidence = data.get("confidence")
            extra = f" [dim](confidence {confidence:.2f})[/dim]" if confidence else ""
            return "heard", f"“{escape(data['text'])}”{extra}", "magenta"
        case ("conversation", "intent_matched"):
            return "machine", f"intent [bold]{data['intent']}[/bold]", ""
        case ("conversation", "intent_not_matched"):
            return "machine", "no intent matched", "yellow"
        case ("conversation", "counter_changed"):
            return "machine", f"{data['counter']} #{data['value']}", "yellow"
        case ("conversation", "digits_collected"):
            return "machine", f"digits {data['digits']}", ""
        case ("conversation", "prompt_stopped"):
            return "machine", "barge-in: prompt stopped", "yellow"
        case ("conversation", "sms_requested"):
            return "agent", f"sms to {data['to']}: “{escape(data['body'])}”", "blue"
        case ("conversation", "transfer_requested"):
            return "agent", f"transfer to {data['to']}", "blue"
        case ("conversation", "conversation_ended"):
            return "machine", f"■ ended in {data['state']} ({data['reason']})", "bold"
        case ("stt" | "tts", "provider_failed" | "synthesis_failed"):
            return source, escape(str(data)), "bold red"
    return None
