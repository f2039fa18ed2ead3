"""Record model flows, tokenized, to one mitmproxy flow file per session.

The `Recorder` addon runs after the gateway. For every flow that the gateway marked
with `flow.metadata["tokengate"]`, it writes a copy whose request body is what the
model received and whose response body is what the model returned, both tokenized,
with credential headers removed. Files are appended one flow at a time and synced,
so `mitmproxy -r SESSION.flows` opens them and a crash loses at most the flow being
written. Each recorded flow is also indexed in the vault's `sessions` and `flows`
tables.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http
from mitmproxy.io import FlowWriter
from mitmproxy.io import tnetstring
from mitmproxy.log import ALERT

from addons.errors import Rejection
from addons.errors import error_response
from addons.shapes import ApiShape
from vault import Vault
from vault.sessions import record_flow
from vault.settings import default_home

logger = logging.getLogger(__name__)

FLOW_FILE_SUFFIX = ".flows"
METADATA_KEY = "tokengate"
RECORDED_MARK = "tokengate_recorded"

# Header names removed from recordings, compared in lower case.
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
    }
)
# Any header or query parameter whose lower-case name contains one of these is
# removed as well (x-goog-api-key, x-amz-security-token, client-secret, ...).
CREDENTIAL_NAME_PARTS = ("token", "secret", "key", "password", "credential", "cookie")

# Fields of the gateway's metadata that the recording keeps. The recorded bodies
# become the flow bodies instead.
RECORDED_FIELDS = ("principal", "namespace", "session", "shape", "counts", "decisions")

SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RecordingError(Exception):
    """Failure to record a flow. The message names the session, never a value."""


def is_credential_name(name: str) -> bool:
    """Return True for header or query parameter names that carry credentials."""
    lowered = name.lower()
    if lowered in CREDENTIAL_HEADERS:
        return True
    return any(part in lowered for part in CREDENTIAL_NAME_PARTS)


def session_file_name(session: str) -> str:
    """Return the flow file name for a session id.

    Session ids may come from a client header, so an id that is not a plain file name
    (path separators, leading dot, over 128 characters) is replaced by its SHA-256
    digest instead of being used as a path.
    """
    if SAFE_FILE_NAME.fullmatch(session):
        return session + FLOW_FILE_SUFFIX
    digest = hashlib.sha256(session.encode("utf-8", "surrogatepass")).hexdigest()
    return f"session-{digest[:40]}{FLOW_FILE_SUFFIX}"


def _strip_credentials(headers: http.Headers) -> None:
    for name in {name.lower() for name in headers.keys()}:
        if is_credential_name(name):
            del headers[name]


def _replace_body(message: http.Message, body: bytes | None) -> None:
    """Set a body that is stored without content encoding, or no body at all."""
    message.trailers = None
    if "content-encoding" in message.headers:
        del message.headers["content-encoding"]
    if body is None:
        message.raw_content = None
        if "content-length" in message.headers:
            del message.headers["content-length"]
        return
    message.set_content(body)


def recorded_copy(flow: http.HTTPFlow) -> http.HTTPFlow:
    """Return the copy of `flow` that is written to a recording.

    The copy carries the gateway's tokenized bodies (`recorded_request` and
    `recorded_response`), never the bodies that the client sent or received. When the
    gateway has no tokenized response body, the copy has no response body. Credential
    headers, credential query parameters, trailers, the flow's backup and all other
    metadata (which may hold `proxyauth` passwords) are left out.
    """
    record = flow.metadata[METADATA_KEY]
    state = flow.get_state()
    state["metadata"] = {}
    state["backup"] = None
    state["intercepted"] = False
    copy = http.HTTPFlow.from_state(state)
    copy.live = False

    request = copy.request
    _strip_credentials(request.headers)
    credential_params = [name for name in request.query if is_credential_name(name)]
    for name in credential_params:
        del request.query[name]
    _replace_body(request, record.get("recorded_request"))

    if copy.response is not None:
        _strip_credentials(copy.response.headers)
        _replace_body(copy.response, record.get("recorded_response"))

    copy.metadata[METADATA_KEY] = {
        field: record[field] for field in RECORDED_FIELDS if field in record
    }
    return copy


def repair_tail(path: Path) -> int:
    """Cut an incomplete last record off a flow file and return the bytes removed.

    A process killed while appending leaves a partial record at the end of the file.
    Readers stop at the first broken record, so anything appended after it would be
    unreadable unless the broken record is cut off first.
    """
    good_end = 0
    with path.open("rb") as file:
        while True:
            try:
                tnetstring.load(file)
            # FlowReader treats these three as a broken record as well.
            except (ValueError, TypeError, IndexError) as exc:
                if str(exc) == "not a tnetstring: empty file":
                    return 0
                break
            good_end = file.tell()
        size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(good_end)
        file.flush()
        os.fsync(file.fileno())
    return size - good_end


class FlowFileAppender:
    """Appends flows to flow files, one synced record at a time.

    An exclusive `flock` on the file serializes appends from threads and processes.
    A file whose size differs from what this appender last left (first use in this
    process, or another writer) is checked for an incomplete last record first.
    """

    def __init__(self, max_tracked_files: int = 4096) -> None:
        self._guard = threading.Lock()
        self._sizes: OrderedDict[Path, int] = OrderedDict()
        self._max_tracked_files = max_tracked_files

    def append(self, path: Path, flow: http.HTTPFlow) -> None:
        """Append `flow` to `path`, creating the file with mode 0600 if needed."""
        created = not path.exists()
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "ab") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            size = os.fstat(file.fileno()).st_size
            with self._guard:
                expected = self._sizes.get(path)
            if size and size != expected:
                removed = repair_tail(path)
                if removed:
                    logger.warning(
                        "flow file %s ended in an incomplete record; "
                        "removed its last %d bytes",
                        path,
                        removed,
                    )
            FlowWriter(file).add(flow)
            file.flush()
            os.fsync(file.fileno())
            self._remember_size(path, os.fstat(file.fileno()).st_size)
        if created:
            _sync_directory(path.parent)

    def _remember_size(self, path: Path, size: int) -> None:
        with self._guard:
            self._sizes[path] = size
            self._sizes.move_to_end(path)
            while len(self._sizes) > self._max_tracked_files:
                self._sizes.popitem(last=False)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _describe_failure(exc: BaseException) -> str:
    """Describe an exception without its message, which could quote a value."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    if isinstance(exc, RecordingError):
        return str(exc)
    return type(exc).__name__


def _api_shape(name: str) -> ApiShape | None:
    """Return the API shape named by a shape value or member name, if any."""
    for candidate in (name, name.lower()):
        try:
            return ApiShape(candidate)
        except ValueError:
            pass
    return ApiShape.__members__.get(name.upper())


def recording_failed_response(shape: str) -> http.Response:
    """Build the 503 error that replaces a response whose flow was not recorded."""
    rejection = Rejection(
        503,
        "recording_failed",
        "The gateway could not record this exchange, so the response was withheld. "
        "Ask the gateway operator to check the recordings directory and the vault.",
    )
    return error_response(_api_shape(shape), rejection)


class Recorder:
    """mitmproxy addon that records the gateway's tokenized flows per session.

    `vault` returns the open vault that contains the session index, or None while
    none is open. The recordings directory is the `tokengate_recordings` option. The
    Recorder declares that option unless an addon loaded before it (the gateway,
    which also reads it from its config file) already has.
    """

    def __init__(self, vault: Callable[[], Vault | None]) -> None:
        self._vault = vault
        self._appender = FlowFileAppender()
        self.directory: Path | None = None
        self.require_recording = True
        self.recorded = 0
        self.failures = 0

    def load(self, loader) -> None:
        if "tokengate_recordings" not in loader.master.options:
            loader.add_option(
                "tokengate_recordings",
                Optional[str],
                None,
                """
                Directory for session recordings: one mitmproxy flow file per
                session (SESSION.flows, tokenized, readable with mitmproxy -r).
                Created with mode 0700 if missing. Default: $TOKENGATE_HOME/recordings.
                """,
            )
        loader.add_option(
            "tokengate_require_recording",
            bool,
            True,
            """
            Replace the model's response with a 503 error when a flow cannot be
            recorded (flow file or vault index). The model has already received the
            tokenized request by then, and a streamed response has already been
            delivered. When false, such responses pass unrecorded and each failure
            is logged and counted.
            """,
        )

    def configure(self, updated: set[str]) -> None:
        if "tokengate_recordings" in updated or self.directory is None:
            value = ctx.options.tokengate_recordings
            if value is None:
                value = str(default_home() / "recordings")
            self.directory = _prepare_directory(value)
        if "tokengate_require_recording" in updated:
            self.require_recording = ctx.options.tokengate_require_recording

    async def response(self, flow: http.HTTPFlow) -> None:
        await self._record(flow)

    async def error(self, flow: http.HTTPFlow) -> None:
        await self._record(flow)

    async def _record(self, flow: http.HTTPFlow) -> None:
        record = flow.metadata.get(METADATA_KEY)
        if not isinstance(record, Mapping) or flow.metadata.get(RECORDED_MARK):
            return
        flow.metadata[RECORDED_MARK] = True

        session = str(record.get("session", ""))
        try:
            # The copy is taken on the event loop, before later hooks change the flow.
            copy = recorded_copy(flow)
            await asyncio.to_thread(self._store, copy)
        # Any failure (disk, vault, a malformed record) must reach the operator as a
        # logged, counted failure and never as a crash of the proxy.
        except Exception as exc:
            self.failures += 1
            logger.error(
                "failed to record flow %s of session file %s (%d failures so far): %s",
                flow.id,
                session_file_name(session) if session else "(no session)",
                self.failures,
                _describe_failure(exc),
            )
            self._fail_closed(flow, str(record.get("shape", "")))
            return
        self.recorded += 1

    def _fail_closed(self, flow: http.HTTPFlow, shape: str) -> None:
        if not self.require_recording or flow.response is None:
            return
        if flow.response.stream:
            logger.log(
                ALERT,
                "flow %s was streamed to the client before its recording failed",
                flow.id,
            )
            return
        flow.response = recording_failed_response(shape)

    def _store(self, copy: http.HTTPFlow) -> None:
        if self.directory is None:
            raise RecordingError("recordings directory is not configured")
        record = copy.metadata[METADATA_KEY]
        session = record.get("session")
        if not isinstance(session, str) or not session:
            raise RecordingError("flow metadata has no session id")
        path = self.directory / session_file_name(session)
        self._appender.append(path, copy)

        vault = self._vault()
        if vault is None:
            raise RecordingError(f"vault is not open; {path.name} is not indexed")
        record_flow(
            vault,
            session_id=session,
            namespace=str(record.get("namespace", "")),
            principal=str(record.get("principal", "")),
            flow_id=copy.id,
            at=copy.request.timestamp_start,
            method=copy.request.method,
            url=copy.request.url,
            status=copy.response.status_code if copy.response else None,
            entity_counts=dict(record.get("counts", {})),
            decisions={
                "shape": str(record.get("shape", "")),
                "decisions": list(record.get("decisions", [])),
            },
            file=str(path),
        )


def _prepare_directory(value: str | Path) -> Path:
    """Create and check the recordings directory; raise OptionsError if unusable."""
    if not str(value):
        raise exceptions.OptionsError(
            "tokengate_recordings is empty; set it to a directory for recordings"
        )
    directory = Path(value).expanduser()
    if directory.exists() and not directory.is_dir():
        raise exceptions.OptionsError(
            f"tokengate_recordings: {directory} exists and is not a directory"
        )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise exceptions.OptionsError(
            f"tokengate_recordings: cannot create directory {directory}: "
            f"{exc.strerror}"
        ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise exceptions.OptionsError(
            f"tokengate_recordings: directory {directory} is not writable"
        )
    return directory.resolve()
