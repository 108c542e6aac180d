"""Wire models: the contract of ``POST /v1/ingest`` (version 1).

Every event the SDK sends, and every event a collector accepts, is one of the
models below. ``Event`` is a discriminated union on ``kind``; ``Batch`` is the
request body. The JSON Schema in ``docs/schema/ingest-v1.json`` is generated
from these classes (``python -m agentpulse.schema``).

Example::

    from agentpulse.models import Batch
    batch = Batch.model_validate_json(body)
    for event in batch.events:
        print(event.kind, event.data)

Token fields mean the same for every provider: ``input_tokens`` is all input
the provider billed (cache reads and writes included), ``cache_read_tokens``
and ``cache_write_tokens`` are parts of it, ``output_tokens`` includes
``reasoning_tokens``. A count or cost that is not known is ``null``, never 0.
"""

from __future__ import annotations

from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_KINDS",
    "WIRE_VERSION",
    "AlertData",
    "AlertEvent",
    "Batch",
    "CronCheckinData",
    "CronCheckinEvent",
    "CustomEvent",
    "ErrorData",
    "ErrorEvent",
    "ErrorInfo",
    "Event",
    "EventData",
    "LLMCallData",
    "LLMCallEvent",
    "MemoryFile",
    "MemorySnapshotData",
    "MemorySnapshotEvent",
    "MetricData",
    "MetricEvent",
    "ProcessInfo",
    "ProcessStartData",
    "ProcessStartEvent",
    "ProcessStopData",
    "ProcessStopEvent",
    "SpanEndData",
    "SpanEndEvent",
    "SpanStartData",
    "SpanStartEvent",
]

WIRE_VERSION = 1

Status = Literal["success", "error", "cancelled"]


class _Data(BaseModel):
    # Collectors must accept fields added by newer SDKs, so data objects are open.
    model_config = ConfigDict(extra="allow")


class ErrorInfo(BaseModel):
    """An exception as it travels on the wire: its type name and message."""

    model_config = ConfigDict(extra="allow")

    type: str
    message: str = ""


class LLMCallData(_Data):
    """One call to a model provider: what was asked, what it cost, how it went."""

    provider: str
    operation: str = Field("chat", description="chat, completion, responses, embedding, ...")
    model: Optional[str] = Field(None, description="The model the caller asked for.")
    response_model: Optional[str] = Field(None, description="The model the provider says answered.")
    input_tokens: Optional[int] = Field(
        None, ge=0, description="All billed input, cache reads and writes included."
    )
    output_tokens: Optional[int] = Field(None, ge=0, description="All output, reasoning included.")
    cache_read_tokens: Optional[int] = Field(None, ge=0)
    cache_write_tokens: Optional[int] = Field(None, ge=0)
    reasoning_tokens: Optional[int] = Field(None, ge=0)
    usage_estimated: bool = Field(
        False, description="True when the provider reported no usage and tokens were estimated."
    )
    latency_ms: Optional[float] = Field(None, ge=0)
    time_to_first_token_ms: Optional[float] = Field(None, ge=0)
    cost_usd: Optional[float] = Field(None, ge=0)
    cost_source: Optional[Literal["table", "provider", "override"]] = None
    cost_reason: Optional[str] = Field(None, description="Why cost_usd is null, when it is.")
    status: Status = "success"
    streaming: bool = False
    finish_reason: Optional[str] = None
    error: Optional[ErrorInfo] = None
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    tools_count: Optional[int] = None
    tool_calls: Optional[List[str]] = Field(None, description="Names of the tools the model asked to call.")
    input: Optional[Any] = Field(None, description="Prompt / messages; only with capture_messages=True.")
    output: Optional[Any] = Field(None, description="Response text; only with capture_messages=True.")


class SpanStartData(_Data):
    """A span opened: a session, cron run, agent, task, trace or framework step."""

    name: str
    span_kind: str = Field(description="session, cron, agent, task, trace, chain, tool, node, ...")
    metadata: Dict[str, Any] = Field(default_factory=dict)


class SpanEndData(_Data):
    """A span closed, exactly once, with the status it ended in."""

    name: str
    span_kind: Optional[str] = None
    status: Status
    duration_ms: float = Field(ge=0)
    error: Optional[ErrorInfo] = None
    metadata: Dict[str, Any] = Field(default_factory=dict)


class EventData(_Data):
    """A named event the user recorded with ``ap.event(name, data)``."""

    name: str
    data: Dict[str, Any] = Field(default_factory=dict)


class MetricData(_Data):
    """A number the user recorded with ``ap.metric(name, value, tags)``."""

    name: str
    value: float
    tags: Dict[str, Any] = Field(default_factory=dict)


class AlertData(_Data):
    """Something that needs a human: raised by the user or by a guard of the SDK."""

    title: str
    severity: Literal["info", "warning", "error", "critical"] = "warning"
    details: Dict[str, Any] = Field(default_factory=dict)


class ErrorData(_Data):
    """An unhandled exception seen by the SDK's excepthooks."""

    type: str
    message: str = ""
    traceback: Optional[str] = None
    thread: Optional[str] = None


class CronCheckinData(_Data):
    """One check-in of a cron run: ``in_progress`` at start, then ``ok`` or ``error``."""

    monitor: str
    check_in_id: str
    status: Literal["in_progress", "ok", "error", "timeout"]
    schedule: Optional[str] = None
    timezone: Optional[str] = None
    duration_ms: Optional[float] = Field(None, ge=0)
    max_runtime: Optional[float] = Field(None, ge=0, description="Seconds a run may take.")
    grace: Optional[float] = Field(None, ge=0, description="Seconds a run may start late.")


class MemoryFile(BaseModel):
    """One file of an agent's memory at the time of a report."""

    model_config = ConfigDict(extra="allow")

    path: str
    size: Optional[int] = None
    lines: Optional[int] = None
    mtime: Optional[float] = None
    sha256: Optional[str] = None
    delta_bytes: Optional[int] = None
    exists: bool = True


class MemorySnapshotData(_Data):
    """What ``ap.memory_report(*paths)`` found."""

    files: List[MemoryFile]


class ProcessStartData(_Data):
    """The process started reporting."""

    fingerprint: Dict[str, Any] = Field(default_factory=dict)


class ProcessStopData(_Data):
    """The process stopped reporting, with the reporter's counters."""

    uptime_s: float = Field(ge=0)
    counters: Dict[str, int] = Field(default_factory=dict)


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique per event; a collector drops duplicates of a retried batch.")
    ts: float = Field(description="Unix time in seconds.")
    trace_id: Optional[str] = None
    span_id: Optional[str] = None
    parent_span_id: Optional[str] = None
    session: Optional[str] = Field(None, description="Name of the enclosing session, if any.")


class LLMCallEvent(_EventBase):
    kind: Literal["llm_call"]
    data: LLMCallData


class SpanStartEvent(_EventBase):
    kind: Literal["span_start"]
    data: SpanStartData


class SpanEndEvent(_EventBase):
    kind: Literal["span_end"]
    data: SpanEndData


class CustomEvent(_EventBase):
    kind: Literal["event"]
    data: EventData


class MetricEvent(_EventBase):
    kind: Literal["metric"]
    data: MetricData


class AlertEvent(_EventBase):
    kind: Literal["alert"]
    data: AlertData


class ErrorEvent(_EventBase):
    kind: Literal["error"]
    data: ErrorData


class CronCheckinEvent(_EventBase):
    kind: Literal["cron_checkin"]
    data: CronCheckinData


class MemorySnapshotEvent(_EventBase):
    kind: Literal["memory_snapshot"]
    data: MemorySnapshotData


class ProcessStartEvent(_EventBase):
    kind: Literal["process_start"]
    data: ProcessStartData


class ProcessStopEvent(_EventBase):
    kind: Literal["process_stop"]
    data: ProcessStopData


Event = Annotated[
    Union[
        LLMCallEvent,
        SpanStartEvent,
        SpanEndEvent,
        CustomEvent,
        MetricEvent,
        AlertEvent,
        ErrorEvent,
        CronCheckinEvent,
        MemorySnapshotEvent,
        ProcessStartEvent,
        ProcessStopEvent,
    ],
    Field(discriminator="kind"),
]

EVENT_KINDS = (
    "llm_call",
    "span_start",
    "span_end",
    "event",
    "metric",
    "alert",
    "error",
    "cron_checkin",
    "memory_snapshot",
    "process_start",
    "process_stop",
)


class ProcessInfo(BaseModel):
    """Who is sending: enough to tell two processes of one agent apart."""

    model_config = ConfigDict(extra="allow")

    pid: int
    host: str
    python: str
    os: str
    libraries: Dict[str, str] = Field(default_factory=dict)


class Batch(BaseModel):
    """The body of ``POST /v1/ingest``."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    sdk_version: str
    process: ProcessInfo
    events: List[Event]
