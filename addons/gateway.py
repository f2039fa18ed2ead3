"""The tokengate gateway: a mitmproxy addon between clients and model servers.

For each request to a configured model host it strips the client's credential, derives
the principal, namespace and session, tokenizes the body's content through the pipeline
and injects the upstream credential. Responses are restored for the principal, plain or
streamed. Anything it cannot process is rejected with an error in the API's own format
and never forwarded: that includes detection or vault failures and time-outs,
undecodable or oversized bodies, and hosts that are not model hosts.

Detection and vault work runs in a thread pool, never on mitmproxy's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mitmproxy import ctx, exceptions, http
from mitmproxy.log import ALERT

from addons import gateway_config
from addons.client_identity import (
    CREDENTIAL_HEADERS,
    SESSION_HEADER,
    IdentityDeriver,
    credential_from_headers,
    is_valid_session_header,
)
from addons.errors import Rejection, error_response
from addons.gateway_config import FailMode, GatewaySettings
from addons.gateway_engine import Engine, open_engine
from addons.shapes import ApiShape, BodyError, shape_for
from addons.stream_guard import GuardedStream, stream_decoder
from addons.streaming import rewriter_for

logger = logging.getLogger(__name__)

METADATA_KEY = "tokengate"
SUPPORTED_ENCODINGS = frozenset({"identity", "gzip", "deflate", "br", "zstd"})
# Headers never forwarded upstream: client credentials and gateway-only headers.
STRIPPED_REQUEST_HEADERS = (*CREDENTIAL_HEADERS, "cookie", SESSION_HEADER)
# mitmproxy options that must be checked whenever they change, besides tokengate_*.
WATCHED_OPTIONS = frozenset(
    {
        "mode",
        "stream_large_bodies",
        "save_stream_file",
        "hardump",
        "flow_detail",
        "proxy_debug",
        "connection_strategy",
    }
)

# Presidio's debug records quote the analyzed text ("Context list is: ...").
VERBOSE_LOGGERS = ("presidio-analyzer", "presidio-anonymizer")

# Streamed text after a channel's first release is processed in pieces of at least this
# many characters. Detection then runs about once per sentence fragment instead of once
# per event, which matters because the stream callable holds mitmproxy's global lock.
STREAM_RELEASE_CHARS = 32

T = TypeVar("T")



@dataclass
class FlowState:
    """Per-flow state that the gateway keeps between its hooks."""

    shape: ApiShape
    principal: str
    namespace: str
    session: str
    session_header: str | None
    counts: Counter[str] = field(default_factory=Counter)
    decisions: list[str] = field(default_factory=list)
    recorded_request: bytes = b""
    recorded_response: bytes | None = None
    upstream_header: str | None = None
    stream: GuardedStream | None = None
    buffered_rewriter: Any = None
    processor: Any = None
    rejected: bool = False


class Gateway:
    """mitmproxy addon that tokenizes model traffic and rejects everything else."""

    def __init__(self) -> None:
        self.settings: GatewaySettings | None = None
        self.engine: Engine | None = None
        self.flows: dict[str, FlowState] = {}
        workers = max(2, os.cpu_count() or 2)
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="tokengate")

    @property
    def vault(self) -> Any:
        return self.engine.vault if self.engine is not None else None

    # Lifecycle

    def load(self, loader: Any) -> None:
        gateway_config.declare_options(loader)
        quiet_verbose_loggers()

    def configure(self, updated: set[str]) -> None:
        if not (
            updated & WATCHED_OPTIONS
            or any(name.startswith("tokengate_") for name in updated)
        ):
            return
        check_conflicting_options(ctx.options)
        settings = gateway_config.settings_from_options(ctx.options)
        if not settings.model_hosts:
            raise exceptions.OptionsError(
                "No model host is configured. Set tokengate_upstream=URL or "
                "tokengate_model_hosts=HOST[:PORT], or run in --mode reverse:URL."
            )
        self.engine = open_engine(settings, self.engine)
        previous, self.settings = self.settings, settings

        fail_mode_changed = previous is None or previous.fail_mode is not settings.fail_mode
        if settings.fail_mode is FailMode.OPEN and fail_mode_changed:
            logger.log(
                ALERT,
                "tokengate_fail_mode is 'open': requests are forwarded untokenized "
                "when detection or the vault fails or times out.",
            )
        self._apply_recordings_dir(settings)
        if (
            "connection_strategy" in ctx.options
            and ctx.options.connection_strategy != "lazy"
        ):
            # With "eager", mitmproxy connects upstream before the addon has decided.
            ctx.options.update(connection_strategy="lazy")

    def _apply_recordings_dir(self, settings: GatewaySettings) -> None:
        if settings.recordings_dir is None or "tokengate_recordings" not in ctx.options:
            return
        option = "tokengate_recordings"
        if ctx.options.default(option) == getattr(ctx.options, option):
            ctx.options.update(**{option: str(settings.recordings_dir)})

    def running(self) -> None:
        if self.settings is None or self.engine is None:
            logger.error("tokengate is not configured; shutting down.")
            ctx.master.shutdown()
            return
        self.executor.submit(self._start_detection_workers, self.engine.detector)
        logger.info(
            "tokengate ready: model hosts %s, vault %s, fail mode %s",
            ", ".join(str(host) for host in self.settings.model_hosts),
            self.settings.vault_path,
            self.settings.fail_mode.value,
        )

    @staticmethod
    def _start_detection_workers(detector: Any) -> None:
        try:
            detector.start_workers()
        except Exception as e:  # noqa: BLE001 - a long text retries, and fails closed
            logger.warning(
                "detection worker processes did not start (%s); the first long text "
                "starts them again",
                type(e).__name__,
            )

    def done(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.engine is not None:
            self.engine.vault.close()

    # Non-HTTP traffic is never forwarded.

    def tcp_start(self, flow: Any) -> None:
        logger.warning("flow %s: raw TCP connection rejected", flow.id[:8])
        flow.kill()

    def udp_start(self, flow: Any) -> None:
        logger.warning("flow %s: UDP flow rejected", flow.id[:8])
        flow.kill()

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        flow.kill()

    # HTTP hooks

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        strip_client_headers(flow.request.headers)
        try:
            self._check_host(flow)
        except Rejection as rejection:
            logger.info("CONNECT %s rejected: %s", flow.request.pretty_host, rejection.code)
            flow.response = error_response(None, rejection)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        request = flow.request
        shape = shape_for(request.path, request.headers.get("content-type", ""))
        try:
            self._check_host(flow)
        except Rejection as rejection:
            # Not model traffic: rejected here, and neither tokenized nor recorded.
            strip_client_headers(request.headers)
            logger.info("%s rejected: %s", request.pretty_host, rejection.code)
            flow.response = error_response(shape, rejection)
            return
        state = self._begin(flow, shape)
        strip_client_headers(request.headers)
        try:
            self._check_request_headers(flow)
        except Rejection as rejection:
            self._reject(flow, state, rejection)

    async def request(self, flow: http.HTTPFlow) -> None:
        state = self.flows.get(flow.id)
        if state is None or flow.response or flow.error or not flow.live:
            return
        assert self.settings is not None and self.engine is not None
        try:
            body = self._read_body(flow.request, "request")
            if body:
                await self._tokenize_request(flow, state, body)
            else:
                state.decisions.append("empty")
        except Rejection as rejection:
            self._reject(flow, state, rejection)
            return
        flow.request.headers["accept-encoding"] = "identity"
        self._inject_upstream_credential(flow, state)
        self._publish(flow, state)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = self.flows.get(flow.id)
        if state is None or state.rejected or flow.error or not flow.live:
            return
        self._forget_upstream_credential(flow, state)
        response = flow.response
        assert response is not None and self.engine is not None

        content_type = response.headers.get("content-type", "")
        processor = self.engine.pipeline.response_text_processor(
            state.namespace, state.principal
        )
        rewriter = rewriter_for(
            state.shape, content_type, processor, min_release_chars=STREAM_RELEASE_CHARS
        )
        if rewriter is None:
            return

        state.processor = processor
        try:
            decoder = stream_decoder(response.headers.get("content-encoding", ""))
        except ValueError:
            # br or zstd: mitmproxy buffers the body and the response hook rewrites
            # the decoded stream in one piece.
            state.buffered_rewriter = rewriter
            logger.warning(
                "flow %s: stream with content-encoding %s is buffered, not streamed",
                flow.id[:8],
                response.headers.get("content-encoding"),
            )
            return

        response.headers.pop("content-encoding", None)
        response.headers.pop("content-length", None)
        state.stream = GuardedStream(rewriter, state.shape, content_type, flow.id[:8], decoder)
        response.stream = state.stream

    async def response(self, flow: http.HTTPFlow) -> None:
        state = self.flows.pop(flow.id, None)
        if state is None:
            return
        if state.rejected or flow.error or not flow.live:
            self._publish(flow, state)
            return
        assert flow.response is not None
        if state.stream is not None:
            self._finish_stream(state)
            self._publish(flow, state)
            return
        try:
            if state.buffered_rewriter is not None:
                await self._rewrite_buffered_stream(flow, state)
            else:
                await self._restore_response(flow, state)
        except Rejection as rejection:
            self._replace_response(flow, state, rejection)
        self._publish(flow, state)

    def error(self, flow: http.HTTPFlow) -> None:
        state = self.flows.pop(flow.id, None)
        if state is None:
            return
        self._forget_upstream_credential(flow, state)
        state.decisions.append("error")
        self._publish(flow, state)

    # Request side

    def _begin(self, flow: http.HTTPFlow, shape: ApiShape) -> FlowState:
        request = flow.request
        session_header = request.headers.get(SESSION_HEADER)
        if self.engine is not None:
            identity = self.engine.identities.identify(
                credential_from_headers(request.headers), flow.client_conn.peername[0]
            )
            principal, namespace = identity.principal, identity.namespace
        else:
            principal = namespace = "unknown"
        session = f"{namespace}.{shape.value}"
        if session_header is not None and is_valid_session_header(session_header):
            session = IdentityDeriver.explicit_session(namespace, session_header)
        state = FlowState(shape, principal, namespace, session, session_header)
        self.flows[flow.id] = state
        return state

    def _check_host(self, flow: http.HTTPFlow) -> None:
        if self.settings is None or self.engine is None:
            raise Rejection(
                503,
                "gateway_not_configured",
                "tokengate is not configured; the gateway log names the invalid setting.",
            )
        host, port = flow.request.host, flow.request.port
        if not self.settings.is_model_host(host, port):
            raise Rejection(
                403,
                "host_not_allowed",
                f"tokengate forwards only to model hosts; {host}:{port} is not one. "
                "Add it to tokengate_model_hosts to allow it.",
            )

    def _check_request_headers(self, flow: http.HTTPFlow) -> None:
        assert self.settings is not None
        request = flow.request
        if request.headers.get("upgrade"):
            raise Rejection(
                403,
                "upgrade_not_supported",
                "tokengate does not support WebSocket or other protocol upgrades to "
                "model hosts, because it cannot tokenize their messages.",
            )
        if request.stream:
            # Set by stream_large_bodies, which check_conflicting_options rejects.
            request.stream = False
            raise _not_buffered("request")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.settings.max_body:
            raise _too_large("request", int(declared), self.settings.max_body)
        check_content_encoding(request.headers.get("content-encoding", ""), "request")
        session_header = request.headers.get(SESSION_HEADER)
        if session_header is not None and not is_valid_session_header(session_header):
            raise Rejection(
                400,
                "invalid_session_header",
                f"Invalid {SESSION_HEADER} header: use 1 to 64 letters, digits or "
                "'.', '_', ':', '-'.",
            )

    def _inject_upstream_credential(self, flow: http.HTTPFlow, state: FlowState) -> None:
        # Injected last, so a flow rejected earlier never carries the upstream key.
        assert self.settings is not None
        headers = flow.request.headers
        key = self.settings.upstream_key
        if not key:
            return
        if state.shape is ApiShape.ANTHROPIC_MESSAGES:
            state.upstream_header = "x-api-key"
            headers["x-api-key"] = key
        else:
            state.upstream_header = "authorization"
            headers["authorization"] = f"Bearer {key}"

    def _forget_upstream_credential(self, flow: http.HTTPFlow, state: FlowState) -> None:
        # The request has been sent; later addons (dumper, savers) must not see the key.
        if state.upstream_header is not None:
            flow.request.headers.pop(state.upstream_header, None)
            state.upstream_header = None

    def _read_body(self, message: http.Message, side: str) -> bytes:
        assert self.settings is not None
        if message.raw_content is None:
            raise _not_buffered(side)
        if len(message.raw_content) > self.settings.max_body:
            raise _too_large(side, len(message.raw_content), self.settings.max_body)
        encoding = message.headers.get("content-encoding", "")
        check_content_encoding(encoding, side)
        # NOTE: a compressed body is decoded in full before its size is checked again,
        # so a small body that expands enormously still costs memory once.
        try:
            body = message.get_content(strict=True)
        except ValueError as e:
            raise Rejection(
                400 if side == "request" else 502,
                "undecodable_body",
                f"The {side} body could not be decoded with content-encoding "
                f"{encoding!r}.",
            ) from e
        assert body is not None
        if len(body) > self.settings.max_body:
            raise _too_large(side, len(body), self.settings.max_body)
        return body

    async def _tokenize_request(
        self, flow: http.HTTPFlow, state: FlowState, body: bytes
    ) -> None:
        assert self.engine is not None
        engine = self.engine

        def work() -> tuple[str, Any]:
            session = self._derive_session(state, body)
            return session, engine.pipeline.process_request(state.shape, body, state.namespace)

        started = time.perf_counter()
        try:
            session, result = await self._off_loop(work)
        except Rejection as rejection:
            if rejection.status < 500 or not self._fails_open(flow, state, rejection):
                raise
            return
        state.session = session
        state.counts.update(result.counts)
        state.decisions.append("tokenized")
        state.recorded_request = result.body
        flow.request.headers.pop("content-encoding", None)
        flow.request.content = result.body
        logger.info(
            "flow %s: %s request tokenized, %d values, %.0f ms",
            flow.id[:8],
            state.shape.value,
            sum(result.counts.values()),
            (time.perf_counter() - started) * 1000,
        )

    def _derive_session(self, state: FlowState, body: bytes) -> str:
        assert self.engine is not None
        if state.session_header is not None:
            return state.session
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        return self.engine.identities.session(
            state.namespace, None, document, state.shape.value
        )

    def _fails_open(self, flow: http.HTTPFlow, state: FlowState, rejection: Rejection) -> bool:
        assert self.settings is not None
        if self.settings.fail_mode is not FailMode.OPEN:
            return False
        logger.log(
            ALERT,
            "flow %s: %s; forwarding the request untokenized because "
            "tokengate_fail_mode is 'open'.",
            flow.id[:8],
            rejection.code,
        )
        state.decisions.append(f"fail_open:{rejection.code}")
        # The raw body must not reach a recording.
        state.recorded_request = b""
        return True

    # Response side

    async def _restore_response(self, flow: http.HTTPFlow, state: FlowState) -> None:
        assert self.engine is not None and flow.response is not None
        response = flow.response
        body = self._read_body(response, "response")
        if not body:
            state.recorded_response = b""
            return
        shape = state.shape
        if "json" not in media_type(response.headers.get("content-type", "")):
            shape = ApiShape.PLAIN_TEXT
        engine = self.engine

        def work() -> Any:
            return engine.pipeline.process_response(
                shape, body, state.namespace, state.principal
            )

        result = await self._off_loop(work, side="response")
        state.counts.update(result.counts)
        state.recorded_response = result.recorded_body
        state.decisions.append(f"restored:{result.restored}")
        if result.unrestored:
            state.decisions.append(f"unrestored:{result.unrestored}")
        response.headers.pop("content-encoding", None)
        response.content = result.client_body

    async def _rewrite_buffered_stream(self, flow: http.HTTPFlow, state: FlowState) -> None:
        assert flow.response is not None
        response = flow.response
        body = self._read_body(response, "response")
        rewriter = state.buffered_rewriter

        def work() -> bytes:
            return rewriter.feed(body) + rewriter.finish()

        client_body = await self._off_loop(work, side="response")
        state.recorded_response = bytes(rewriter.recorded)
        self._count_processor(state)
        response.headers.pop("content-encoding", None)
        response.content = client_body

    def _count_processor(self, state: FlowState) -> None:
        processor = state.processor
        state.counts.update(processor.counts)
        state.decisions.append(f"restored:{processor.restored}")
        if processor.unrestored:
            state.decisions.append(f"unrestored:{processor.unrestored}")

    def _finish_stream(self, state: FlowState) -> None:
        stream = state.stream
        assert stream is not None
        state.recorded_response = bytes(stream.rewriter.recorded)
        self._count_processor(state)
        if stream.failed is not None or getattr(stream.rewriter, "error", None):
            state.decisions.append("rejected:stream_processing_failed")
        logger.debug(
            "stream %s: %.1f ms in the rewriter", stream.flow_id, stream.busy_seconds * 1000
        )

    def _replace_response(
        self, flow: http.HTTPFlow, state: FlowState, rejection: Rejection
    ) -> None:
        logger.warning("flow %s: response rejected: %s", flow.id[:8], rejection.code)
        state.rejected = True
        state.recorded_response = None
        state.decisions.append(f"rejected:{rejection.code}")
        flow.response = error_response(state.shape, rejection)

    # Shared

    async def _off_loop(self, work: Callable[[], T], side: str = "request") -> T:
        """Run detection and vault work in the pool, within tokengate_timeout."""
        assert self.settings is not None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, work)
        if side == "request":
            withheld = "nothing was forwarded to the model"
        else:
            withheld = "the model's answer was withheld"
        try:
            return await asyncio.wait_for(future, self.settings.timeout)
        except BodyError as e:
            raise Rejection(
                400 if side == "request" else 502,
                "invalid_body",
                f"The {side} body could not be parsed: {e}",
            ) from e
        except TimeoutError:
            logger.error(
                "%s processing timed out after %g s (tokengate_timeout)",
                side,
                self.settings.timeout,
            )
            raise Rejection(
                504,
                "detection_timeout",
                f"tokengate could not finish checking the {side} within "
                f"{self.settings.timeout:g} s, so {withheld}. Retry, or ask the "
                "operator to raise tokengate_timeout.",
            ) from None
        except Exception as e:
            # The exception message may quote body text, so only its type is logged.
            logger.error(
                "%s processing failed with %s; %s",
                side,
                type(e).__name__,
                withheld,
            )
            raise Rejection(
                503,
                "detection_failed",
                f"tokengate could not check the {side} for sensitive values "
                f"({type(e).__name__}), so {withheld}. Retry; if it persists, the "
                "operator finds details in the gateway log.",
            ) from None

    def _reject(self, flow: http.HTTPFlow, state: FlowState, rejection: Rejection) -> None:
        logger.info(
            "flow %s: %s %s rejected with %d: %s",
            flow.id[:8],
            flow.request.method,
            flow.request.pretty_host,
            rejection.status,
            rejection.code,
        )
        state.rejected = True
        state.decisions.append(f"rejected:{rejection.code}")
        flow.response = error_response(state.shape, rejection)
        self._publish(flow, state)

    def _publish(self, flow: http.HTTPFlow, state: FlowState) -> None:
        flow.metadata[METADATA_KEY] = {
            "principal": state.principal,
            "namespace": state.namespace,
            "session": state.session,
            "shape": state.shape.name,
            "counts": dict(state.counts),
            "decisions": list(state.decisions),
            "recorded_request": state.recorded_request,
            "recorded_response": state.recorded_response,
        }


def check_conflicting_options(options: Any) -> None:
    """Reject mitmproxy options that would forward or store untokenized data."""

    def current(name: str) -> Any:
        # mitmweb and tests load only some of mitmproxy's addons and their options.
        return getattr(options, name) if name in options else None

    if current("stream_large_bodies"):
        raise exceptions.OptionsError(
            f"stream_large_bodies={options.stream_large_bodies} makes mitmproxy "
            "forward large request bodies before tokengate can tokenize them. Unset "
            "it; tokengate_max_body limits body sizes instead."
        )
    for name in ("save_stream_file", "hardump"):
        if current(name):
            raise exceptions.OptionsError(
                f"{name}={current(name)} would store restored response bodies with "
                "raw values. Unset it; tokengate records tokenized flows to "
                "tokengate_recordings."
            )
    if (current("flow_detail") or 0) >= 3:
        raise exceptions.OptionsError(
            f"flow_detail={options.flow_detail} would log response bodies with "
            "restored values. Use flow_detail 2 or lower."
        )
    if current("proxy_debug"):
        raise exceptions.OptionsError(
            "proxy_debug logs raw request and response bytes. Unset it while "
            "tokengate runs."
        )


def strip_client_headers(headers: http.Headers) -> None:
    """Remove client credentials and gateway-only headers before anything logs them."""
    for name in STRIPPED_REQUEST_HEADERS:
        headers.pop(name, None)


def quiet_verbose_loggers() -> None:
    """Keep third-party debug records that quote analyzed text out of the log."""
    for name in VERBOSE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def check_content_encoding(content_encoding: str, side: str) -> None:
    encodings = [part.strip().lower() for part in content_encoding.split(",")]
    unsupported = [name for name in encodings if name and name not in SUPPORTED_ENCODINGS]
    if unsupported:
        raise Rejection(
            415 if side == "request" else 502,
            "unsupported_content_encoding",
            f"The {side} uses content-encoding {', '.join(unsupported)!r}; tokengate "
            "decodes only gzip, deflate, br, zstd and identity.",
        )


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _too_large(side: str, size: int, limit: int) -> Rejection:
    return Rejection(
        413 if side == "request" else 502,
        "body_too_large",
        f"The {side} body has {size} bytes, more than the gateway limit of {limit} "
        "bytes (tokengate_max_body).",
    )


def _not_buffered(side: str) -> Rejection:
    return Rejection(
        413 if side == "request" else 502,
        "body_not_buffered",
        f"The {side} body was streamed by mitmproxy instead of buffered, so tokengate "
        "cannot check it. Unset stream_large_bodies.",
    )
