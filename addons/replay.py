"""Read recorded sessions back: transcripts, audited reveals, export and re-sending.

Everything here works on the flow files that `addons.recording.Recorder` writes and on
the vault's session index, without a running mitmproxy. Transcripts are tokenized.
Only `Revealer` turns tokens back into values, with one audited vault reveal per
token.
"""

from __future__ import annotations

import difflib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

from mitmproxy import exceptions
from mitmproxy import http
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.io import FlowReader
from mitmproxy.io import FlowWriter
from mitmproxy.net import encoding

from addons.conversation import Turn
from addons.conversation import answer_turns
from addons.conversation import flow_answer
from addons.conversation import request_turns
from addons.gateway import STREAM_RELEASE_CHARS
from addons.gateway import media_type
from addons.pipeline import Pipeline
from addons.recording import METADATA_KEY
from addons.shapes import ApiShape
from addons.shapes import BodyError
from addons.shapes import shape_for
from addons.streaming import rewriter_for
from vault import RevealDenied
from vault import Vault
from vault.tokens import TokenFormat

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("flows", "har")
# Request headers that belong to the recorded connection, not to the request itself.
RESEND_SKIPPED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "accept-encoding",
    }
)


class ReplayError(Exception):
    """Failure to read a session or recording. The message names it and the fix."""


# Reading recordings


@dataclass
class Recording:
    """The flows read from one session's flow file."""

    path: Path
    flows: list[http.HTTPFlow]
    incomplete_tail: bool = False


def read_recording(path: Path) -> Recording:
    """Read every complete flow of a flow file.

    A file whose last record is incomplete (the gateway stopped while writing it)
    still yields the flows before it, with `incomplete_tail` set.
    """
    flows: list[http.HTTPFlow] = []
    incomplete = False
    try:
        with path.open("rb") as file:
            try:
                for flow in FlowReader(file).stream():
                    if isinstance(flow, http.HTTPFlow):
                        flows.append(flow)
            except exceptions.FlowReadException:
                incomplete = True
    except FileNotFoundError as exc:
        raise ReplayError(
            f"recording {path} not found; pass --recordings with the directory "
            "that holds the session's flow files"
        ) from exc
    if incomplete:
        logger.warning(
            "recording %s ends in an incomplete flow; read the %d flows before it",
            path,
            len(flows),
        )
    return Recording(path, flows, incomplete)


def flow_record(flow: http.HTTPFlow) -> dict[str, Any]:
    """Return the tokengate metadata of a recorded flow (empty if it has none)."""
    record = flow.metadata.get(METADATA_KEY)
    return record if isinstance(record, dict) else {}


# Transcript


@dataclass
class TranscriptEntry:
    """One recorded flow as shown in a transcript."""

    number: int
    flow: http.HTTPFlow
    turns: list[Turn]
    omitted: int
    answer: list[Turn]


def transcript_entries(flows: Iterable[http.HTTPFlow]) -> list[TranscriptEntry]:
    """Build transcript entries, leaving out history that earlier flows already show.

    Chat clients send the whole conversation with every turn, so a flow whose messages
    begin with the previous flow's messages and answer shows only what is new.
    """
    entries: list[TranscriptEntry] = []
    previous_turns: list[Turn] = []
    previous_answer: list[Turn] = []
    for number, flow in enumerate(flows, start=1):
        turns = request_turns(flow.request.get_content(strict=False))
        answer = flow_answer(flow)
        omitted = 0
        for prefix in (previous_turns + previous_answer, previous_turns):
            if prefix and turns[: len(prefix)] == prefix:
                omitted = len(prefix)
                break
        entries.append(TranscriptEntry(number, flow, turns[omitted:], omitted, answer))
        previous_turns = turns
        previous_answer = [Turn("assistant", turn.text) for turn in answer]
    return entries


def format_time(timestamp: float | None) -> str:
    """Format a Unix time as UTC ISO 8601 with seconds."""
    if not timestamp:
        return "-"
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_counts(counts: dict[str, int] | None) -> str:
    """Format entity counts as `TYPE=N` pairs sorted by entity type."""
    if not counts:
        return "-"
    return " ".join(f"{entity_type}={counts[entity_type]}" for entity_type in sorted(counts))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines() or [""])


def format_entry(entry: TranscriptEntry, rewrite: Callable[[str], str]) -> str:
    """Format a transcript entry, applying `rewrite` to conversation text only."""
    flow = entry.flow
    record = flow_record(flow)
    status = str(flow.response.status_code) if flow.response else "no response"
    lines = [
        f"--- flow {entry.number}  {format_time(flow.request.timestamp_start)}  "
        f"{flow.request.method} {flow.request.url}  {status}",
        f"entities: {format_counts(record.get('counts'))}",
    ]
    decisions = record.get("decisions")
    if decisions:
        lines.append("decisions: " + ", ".join(str(d) for d in decisions))
    if flow.error:
        lines.append(f"error: {flow.error.msg}")
    if entry.omitted:
        lines.append(f"({entry.omitted} earlier messages shown above)")
    for turn in entry.turns:
        lines.append(f"  [{turn.role}]")
        lines.append(_indent(rewrite(turn.text)))
    if flow.response is not None and flow.response.raw_content is None:
        lines.append("  (response body not recorded)")
    for turn in entry.answer:
        lines.append(f"  => [{turn.role}]")
        lines.append(_indent(rewrite(turn.text)))
    return "\n".join(lines)


# Reveal


@dataclass
class Revealer:
    """Replaces tokens in text with their values, one audited vault reveal per token.

    A token that the vault does not reveal (other namespace, expired, unknown, or an
    origin that is not revealed) stays tokenized and is counted in `denied`. A token
    with an invalid check character is never looked up and is counted in `invalid`.
    Tokens are found with `token_format`, or with the vault's format when it is None.
    """

    vault: Vault
    namespace: str
    actor: str
    purpose: str
    token_format: TokenFormat | None = None
    revealed: int = 0
    denied: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    _values: dict[str, str | None] = field(default_factory=dict)

    def _value(self, token: str) -> str | None:
        if token not in self._values:
            try:
                self._values[token] = self.vault.reveal(
                    token, self.namespace, self.actor, self.purpose
                )
                self.revealed += 1
            except RevealDenied as exc:
                self._values[token] = None
                self.denied[exc.reason] += 1
        return self._values[token]

    def reveal_text(self, text: str) -> str:
        """Return `text` with each revealable token replaced by its value."""
        token_format = self.token_format or self.vault.token_format
        pieces: list[str] = []
        position = 0
        for match in token_format.find(text, lenient=True):
            if not match.valid:
                self.invalid += 1
                continue
            value = self._value(match.token)
            if value is None:
                continue
            pieces.append(text[position : match.start])
            pieces.append(value)
            position = match.end
        pieces.append(text[position:])
        return "".join(pieces)

    def summary(self) -> str:
        """Describe how many tokens were revealed and denied, without values."""
        denied = sum(self.denied.values())
        reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self.denied.items()))
        text = f"revealed {self.revealed} tokens, denied {denied}"
        if reasons:
            text += f" ({reasons})"
        if self.invalid:
            text += f", skipped {self.invalid} tokens with an invalid check character"
        return text


# Export


def export_recording(flows: list[http.HTTPFlow], path: Path, export_format: str) -> None:
    """Write flows to `path` as a mitmproxy flow file or as HAR 1.2.

    A path ending in `.zhar` gets a zlib-compressed HAR, as mitmproxy writes it.
    """
    if export_format == "flows":
        with path.open("wb") as file:
            writer = FlowWriter(file)
            for flow in flows:
                writer.add(flow)
    elif export_format == "har":
        document = json.dumps(SaveHar().make_har(flows), indent=4).encode()
        if path.suffix == ".zhar":
            document = zlib.compress(document, 9)
        path.write_bytes(document)
    else:
        raise ReplayError(
            f"unknown export format {export_format!r}; use one of "
            + ", ".join(EXPORT_FORMATS)
        )


# Re-sending


@dataclass
class ResendResult:
    """The outcome of re-sending one recorded request."""

    number: int
    method: str
    url: str
    recorded_status: int | None
    status: int | None
    recorded_text: str
    text: str
    failure: str | None = None

    @property
    def same(self) -> bool:
        return (
            self.failure is None
            and self.status == self.recorded_status
            and self.text == self.recorded_text
        )

    def diff(self, max_lines: int) -> list[str]:
        """Return a unified diff of the answer texts, cut to `max_lines` lines."""
        lines = list(
            difflib.unified_diff(
                self.recorded_text.splitlines(),
                self.text.splitlines(),
                "recorded",
                "resent",
                lineterm="",
                n=1,
            )
        )
        if len(lines) > max_lines:
            cut = len(lines) - max_lines
            lines = lines[:max_lines] + [f"... {cut} more diff lines"]
        return lines


def resend_url(base_url: str, flow: http.HTTPFlow) -> str:
    """Join `base_url` (scheme, host, port, optional path prefix) and the flow's path."""
    base = urllib.parse.urlsplit(base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ReplayError(
            f"--to {base_url!r} is not an http or https URL such as "
            "http://127.0.0.1:8000"
        )
    return base.scheme + "://" + base.netloc + base.path.rstrip("/") + flow.request.path


def answer_text(turns: list[Turn]) -> str:
    """Join answer turns into one text for comparison."""
    return "\n".join(f"[{turn.role}] {turn.text}" for turn in turns)


def flow_shape(flow: http.HTTPFlow) -> ApiShape:
    """Return the API shape recorded for a flow, or the one its request path implies.

    The gateway records the member name (`OPENAI_CHAT`), and the value (`openai_chat`)
    is accepted too.
    """
    name = flow_record(flow).get("shape")
    if isinstance(name, str):
        shape = ApiShape.__members__.get(name.upper())
        if shape is not None:
            return shape
    return shape_for(flow.request.path, flow.request.headers.get("content-type", ""))


class ResponseTokenizer:
    """Tokenizer of new response bodies, giving the body the gateway would record.

    A body goes through the gateway's own calls: `Pipeline.process_response` for a
    whole body and the stream rewriter of `rewriter_for` for SSE and NDJSON. Values
    the model produced become tokens of origin "model" in `namespace`, and no token is
    replaced by its value because the pipeline restores no origin. The pipeline still
    looks its tokens up in the vault, so each lookup writes one `reveal_many` audit
    entry with `actor` as the actor and every token denied.
    """

    def __init__(self, pipeline: Pipeline, namespace: str, actor: str) -> None:
        if pipeline.restore_origins:
            raise ValueError(
                "ResponseTokenizer needs a pipeline that restores no origin, but this "
                f"one restores {', '.join(pipeline.restore_origins)}. Create the "
                "pipeline with restore_origins=()."
            )
        self.pipeline = pipeline
        self.namespace = namespace
        self.actor = actor

    def recorded_body(self, shape: ApiShape, content_type: str, body: bytes) -> bytes:
        """Return `body` as the gateway would record it.

        Raises BodyError for a body that is neither of its shape nor UTF-8 text.
        """
        processor = self.pipeline.response_text_processor(self.namespace, self.actor)
        rewriter = rewriter_for(
            shape, content_type, processor, min_release_chars=STREAM_RELEASE_CHARS
        )
        if rewriter is not None:
            # The rewriters of `addons.streaming` do not raise for their input. A
            # failure becomes an error event in `recorded`, and held text is dropped.
            rewriter.feed(body)
            rewriter.finish()
            return bytes(rewriter.recorded)

        if "json" not in media_type(content_type):
            shape = ApiShape.PLAIN_TEXT
        try:
            result = self.pipeline.process_response(
                shape, body, self.namespace, self.actor
            )
        except BodyError:
            if shape is ApiShape.PLAIN_TEXT:
                raise
            # The gateway replaces such a body with a 502 error and records no body.
            # Here the body is still compared, tokenized as plain text.
            result = self.pipeline.process_response(
                ApiShape.PLAIN_TEXT, body, self.namespace, self.actor
            )
        return result.recorded_body


def _decoded_body(body: bytes, content_encoding: str) -> bytes:
    """Undo the content encoding of a response body, as the gateway does."""
    if content_encoding.strip().lower() in ("", "identity"):
        return body
    try:
        decoded = encoding.decode(body, content_encoding)
    except ValueError:
        raise BodyError(
            f"response body could not be decoded with content-encoding "
            f"{content_encoding!r}"
        ) from None
    assert isinstance(decoded, bytes)
    return decoded


def resend_flow(
    flow: http.HTTPFlow,
    number: int,
    base_url: str,
    tokenizer: ResponseTokenizer,
    *,
    extra_headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> ResendResult:
    """Send a recorded (tokenized) request again and compare the answers.

    The new response body goes through `tokenizer` before its answer is compared or
    shown, because the model may produce values that were never in the recording. A
    body that cannot be tokenized is not shown. The request goes directly to
    `base_url` because proxy environment variables are ignored.
    """
    url = resend_url(base_url, flow)
    headers = {
        name: value
        for name, value in flow.request.headers.items()
        if name.lower() not in RESEND_SKIPPED_HEADERS
        and not name.lower().startswith("proxy-")
    }
    headers["accept-encoding"] = "identity"
    headers.update(extra_headers or {})
    request = urllib.request.Request(
        url,
        data=flow.request.get_content(strict=False) or None,
        headers=headers,
        method=flow.request.method,
    )
    recorded_status = flow.response.status_code if flow.response else None
    recorded_text = answer_text(flow_answer(flow))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            status = response.status
            response_headers = response.headers
            body = response.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
        response_headers = exc.headers
        body = exc.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        return ResendResult(
            number,
            flow.request.method,
            url,
            recorded_status,
            None,
            recorded_text,
            "",
            failure=f"request to {url} failed: {reason}",
        )
    content_type = response_headers.get("content-type", "")
    try:
        body = _decoded_body(body, response_headers.get("content-encoding", ""))
        recorded_body = tokenizer.recorded_body(flow_shape(flow), content_type, body)
    except BodyError as exc:
        text = f"[body] (not shown: {exc})"
    else:
        text = answer_text(answer_turns(recorded_body, content_type))
    return ResendResult(
        number, flow.request.method, url, recorded_status, status, recorded_text, text
    )
