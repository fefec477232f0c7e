"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

It records every request it receives and can be told to misbehave on the next
requests (an HTTP error with Retry-After, a hang, a stream dropped half-way, a
slow stream). It is a bare asyncio HTTP/1.1 server rather than an ASGI app so
that it costs little CPU in benchmarks and can cut a connection at any byte.

In a test::

    with FakeUpstream() as up:                   # background thread, free port
        up.fail_next(Fault(status=429, retry_after=7))
        ...  # point a client at up.url ("http://127.0.0.1:PORT/v1")
        assert up.requests[-1].body["messages"][0]["role"] == "system"

As a process (benchmarks)::

    python tests/fake_upstream.py --latency 0.02   # prints "READY http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fault", "FakeUpstream", "Recorded", "DEFAULT_REPLY"]

DEFAULT_REPLY = "Hello from the fake upstream, one word at a time."
_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
            308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or while) answering one request.

    status: answer with this HTTP status and an OpenAI error body (retry_after adds the header).
    hang: wait this many seconds before doing anything (an upstream timeout).
    drop_after: stream this many chunks, then cut the connection (non-streaming: cut at once).
    chunk_delay: sleep between streamed chunks (a slow stream).
    location: a Location header for the status (a redirect).
    partial: with drop_after, send half of the next event before cutting (a stream cut mid-event).
    body: answer 200 with these bytes as they are (content_type: its Content-Type; None: no header).
    trickle: seconds per byte: the whole answer (non-streaming) or everything after the first event.
    """

    status: int | None = None
    retry_after: int | None = None
    hang: float = 0.0
    drop_after: int | None = None
    chunk_delay: float = 0.0
    location: str | None = None
    partial: bool = False
    body: bytes | None = None
    content_type: str | None = "text/plain"
    trickle: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Conf:
    latency: float = 0.0
    reply: str = DEFAULT_REPLY
    faults: collections.deque = field(default_factory=collections.deque)


class FakeUpstream:
    """The server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, latency: float = 0.0, reply: str = DEFAULT_REPLY, port: int = 0, record: bool = True):
        self._conf = _Conf(latency=latency, reply=reply)
        self._port = port
        self._record = record
        self.requests: list[Recorded] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open: set[asyncio.StreamWriter] = set()
        self.cancelled = 0
        """Responses abandoned because the client went away (e.g. a proxy cancelled its upstream call)."""

    # ------------------------------------------------------------------ control

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def fail_next(self, *faults: Fault) -> None:
        """Apply these faults to the next requests, one each, in order."""
        self._conf.faults.extend(faults)

    def set(self, latency: float | None = None, reply: str | None = None) -> None:
        if latency is not None:
            self._conf.latency = latency
        if reply is not None:
            self._conf.reply = reply

    def reset(self) -> None:
        self.requests.clear()
        self._conf.faults.clear()
        self.cancelled = 0

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "FakeUpstream":
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(5)

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.serve())
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    def _shutdown(self) -> None:
        assert self._loop is not None
        for w in list(self._open):
            w.transport.abort()
        if self._server is not None:
            self._server.close()
        self._loop.stop()

    async def serve(self) -> None:
        """Bind and start accepting (on the running loop); sets ``port``."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self._port, backlog=1024)
        self._port = self._server.sockets[0].getsockname()[1]
        self._ready.set()

    # ----------------------------------------------------------------- protocol

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                raw = await _read_body(reader, headers)
                keep = await self._handle(method, path, headers, raw, reader, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._open.discard(writer)
            writer.transport.abort() if writer.transport.is_closing() else writer.close()

    async def _wait(self, seconds: float, reader: asyncio.StreamReader) -> bool:
        """Sleep, but notice a client that hangs up meanwhile (False: it did)."""
        try:
            data = await asyncio.wait_for(reader.read(1), seconds)
        except asyncio.TimeoutError:
            return True
        if data:  # a pipelined request: not expected from the clients used here
            return True
        self.cancelled += 1
        return False

    async def _handle(self, method: str, path: str, headers: dict, raw: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if self._record:
            self.requests.append(Recorded(method, path, headers, body))
        path = path.split("?", 1)[0]
        if method == "GET" and path.endswith("/models"):
            return await _send_json(writer, 200, {"object": "list", "data": [
                {"id": "fake", "object": "model", "created": 0, "owned_by": "fake-upstream"}]})
        if method != "POST" or not path.endswith("/chat/completions") or not isinstance(body, dict):
            return await _send_json(writer, 404, _error(f"no route {method} {path}", "invalid_request_error"))

        conf = self._conf
        fault = conf.faults.popleft() if conf.faults else Fault()
        if fault.hang and not await self._wait(fault.hang, reader):
            return False
        if conf.latency:
            await asyncio.sleep(conf.latency)
        if fault.body is not None:
            ctype = f"Content-Type: {fault.content_type}\r\n" if fault.content_type else ""
            writer.write(f"HTTP/1.1 200 OK\r\n{ctype}Content-Length: {len(fault.body)}\r\n\r\n".encode() + fault.body)
            await writer.drain()
            return True
        if fault.status is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            if fault.location is not None:
                extra["Location"] = fault.location
            kind = "rate_limit_error" if fault.status == 429 else "server_error"
            return await _send_json(writer, fault.status, _error(f"scripted {fault.status}", kind), extra)
        problem = _invalid(body)
        if problem:
            return await _send_json(writer, 400, _error(problem, "invalid_request_error"))
        if body.get("stream"):
            return await self._stream(body, fault, writer)
        if fault.drop_after is not None:
            writer.transport.abort()
            return False
        if fault.trickle:
            return await self._trickle(_response(200, self._completion(body)), fault.trickle, writer)
        return await _send_json(writer, 200, self._completion(body))

    async def _trickle(self, data: bytes, delay: float, writer: asyncio.StreamWriter) -> bool:
        """Send ``data`` one byte every ``delay`` seconds (an upstream that never quite stalls)."""
        try:
            for i in range(len(data)):
                writer.write(data[i:i + 1])
                await writer.drain()
                await asyncio.sleep(delay)
        except ConnectionError:
            self.cancelled += 1
            return False
        return True

    def _completion(self, body: dict) -> dict:
        n = int(body.get("n") or 1)
        tool = _first_tool(body)
        choices = []
        for i in range(n):
            if tool:
                msg = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": f"call_fake_{i}", "type": "function",
                     "function": {"name": tool, "arguments": '{"city": "Bucharest"}'}}]}
                finish = "tool_calls"
            else:
                msg, finish = {"role": "assistant", "content": self._conf.reply}, "stop"
            choices.append({"index": i, "message": msg, "finish_reason": finish, "logprobs": None})
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"), "choices": choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}

    async def _stream(self, body: dict, fault: Fault, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model", "fake")}
        sent = 0
        try:
            for delta, finish in _deltas(body, self._conf.reply):
                chunk = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}])
                event = b"data: " + json.dumps(chunk).encode() + b"\n\n"
                if fault.drop_after is not None and sent >= fault.drop_after:
                    if fault.partial:
                        writer.write(_chunk(event[:len(event) // 2]))
                        await writer.drain()
                    await asyncio.sleep(0.05)  # let the chunks already sent arrive before the cut
                    writer.transport.abort()
                    return False
                if sent and fault.chunk_delay:
                    await asyncio.sleep(fault.chunk_delay)
                if sent and fault.trickle:
                    if not await self._trickle(_chunk(event), fault.trickle, writer):
                        return False
                else:
                    writer.write(_chunk(event))
                    await writer.drain()
                sent += 1
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = dict(base, choices=[], usage={"prompt_tokens": 10, "completion_tokens": sent,
                                                      "total_tokens": 10 + sent})
                writer.write(_chunk(b"data: " + json.dumps(usage).encode() + b"\n\n"))
            writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            self.cancelled += 1
            raise
        return True


def _invalid(body: dict) -> str | None:
    """What a real server would reject with 400 (the fake must never fail on odd input)."""
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 8):
        return "n must be an integer from 1 to 8"
    if not isinstance(body.get("messages"), list):
        return "messages must be a list"
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        return "tools must be a list of objects"
    if tools and not isinstance(tools[0].get("function"), dict):
        return "tools[0].function must be an object"
    if not isinstance(body.get("stream_options") or {}, dict):
        return "stream_options must be an object"
    return None


def _first_tool(body: dict) -> str | None:
    tools = body.get("tools") or []
    if body.get("tool_choice") == "none" or not tools:
        return None
    return ((tools[0] or {}).get("function") or {}).get("name")


def _deltas(body: dict, reply: str):
    tool = _first_tool(body)
    if tool:
        yield {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_fake_0", "type": "function", "function": {"name": tool, "arguments": ""}}]}, None
        for part in ('{"city"', ': "Buch', 'arest"}'):
            yield {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}, None
        yield {}, "tool_calls"
        return
    yield {"role": "assistant", "content": ""}, None
    words = reply.split(" ")
    for i, w in enumerate(words):
        yield {"content": w if i == 0 else " " + w}, None
    yield {}, "stop"


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: int, obj: Any, extra: dict | None = None) -> bytes:
    data = json.dumps(obj).encode()
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n" \
           f"Content-Length: {len(data)}\r\n"
    for k, v in (extra or {}).items():
        head += f"{k}: {v}\r\n"
    return head.encode() + b"\r\n" + data


async def _send_json(writer: asyncio.StreamWriter, status: int, obj: Any, extra: dict | None = None) -> bool:
    writer.write(_response(status, obj, extra))
    await writer.drain()
    return True


async def _read_body(reader: asyncio.StreamReader, headers: dict) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return out
            out += data[:-2]
    return b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each chat answer")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    args = parser.parse_args()
    up = FakeUpstream(latency=args.latency, reply=args.reply, port=args.port, record=False)

    async def run() -> None:
        await up.serve()
        print(f"READY {up.url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
