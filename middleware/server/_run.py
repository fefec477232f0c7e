"""Running the app with uvicorn: in the foreground (the CLI) or in a background thread (tests, notebooks)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
from typing import Any

from .app import create_app
from .config import ServerConfig

__all__ = ["run", "ServerThread", "configure_logging"]

log = logging.getLogger("selfalign.server")


def _uvicorn_config(app: Any, config: ServerConfig, port: int | None = None) -> Any:
    import uvicorn

    from ._protocol import OpenAIShapedHTTP

    # Our own one line per request replaces the access log (which would also log query strings).
    return uvicorn.Config(app, host=config.host, port=config.port if port is None else port,
                          log_level=config.log_level, access_log=False, lifespan="on", server_header=False,
                          timeout_graceful_shutdown=5, backlog=2048, http=OpenAIShapedHTTP)


# The path of the settings file of the workers (a path, not the settings: those hold keys).
_CONFIG_ENV = "SELFALIGN_SERVER_CONFIG_FILE"


def configure_logging(level: str) -> None:
    """One line per record on stderr, for the CLI process and every worker."""
    from .._quiet import quiet_dependencies

    quiet_dependencies()  # each worker is an entry point of its own
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(config: ServerConfig) -> None:
    """Serve until interrupted. Raises SelfAlignError for bad settings before binding."""
    import uvicorn

    config.check_bind()
    app = create_app(config)  # also validates profiles and the default country before any worker starts
    # Keys are never logged, only whether one is required.
    log.info("upstream %s%s; default country %s; API key %s; %d worker(s)", config.default_model,
             f" at {config.api_base}" if config.api_base else "", config.country or "none (requests choose)",
             "required" if config.api_key else "not required", config.workers)
    if config.workers == 1:
        uvicorn.Server(_uvicorn_config(app, config)).run()
        return
    # uvicorn starts workers from an import string; they rebuild the settings from a file only this
    # user can read, removed on exit. (In an environment variable the keys would be readable by every
    # child process and in /proc/PID/environ; the file is reread when uvicorn restarts a worker.)
    fd, path = tempfile.mkstemp(prefix="selfalign-serve-", suffix=".json")  # mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(config.to_json())
    os.environ[_CONFIG_ENV] = path
    try:
        _run_workers(config)
    finally:
        os.environ.pop(_CONFIG_ENV, None)
        with contextlib.suppress(OSError):
            os.unlink(path)


def _run_workers(config: ServerConfig) -> None:
    from uvicorn.supervisors import Multiprocess

    settings = _uvicorn_config("middleware.server._run:app_from_env", config)
    settings.factory, settings.workers = True, config.workers
    sock = settings.bind_socket()
    # Workers get this socket without its protocol number, so asyncio does not switch Nagle off
    # on accepted connections, and h11's separate header/body writes then wait ~40 ms for a
    # delayed ACK. Linux copies TCP_NODELAY from the listening socket to accepted ones.
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(settings, sockets=[sock]).run()


def app_from_env() -> Any:
    """The app of one worker process (see :func:`run`)."""
    with open(os.environ[_CONFIG_ENV], encoding="utf-8") as f:
        config = ServerConfig.from_json(f.read())
    configure_logging(config.log_level)
    return create_app(config)


class ServerThread:
    """The proxy on a free loopback port in a daemon thread::

        with ServerThread(ServerConfig(model="openai/x", api_base=...)) as server:
            openai.OpenAI(base_url=server.url, api_key="-")
    """

    def __init__(self, config: ServerConfig | None = None):
        import uvicorn

        self.config = config or ServerConfig()
        self.config.check_bind()
        self.app = create_app(self.config)
        self._server = uvicorn.Server(_uvicorn_config(self.app, self.config, port=self.config.port))
        self._thread = threading.Thread(target=self._server.run, name="selfalign-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The base URL for OpenAI clients, ending in /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 60) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the selfalign proxy did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
