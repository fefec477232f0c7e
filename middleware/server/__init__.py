"""The selfalign proxy: an OpenAI-compatible server that self-aligns every chat request.

    from middleware.server import ServerConfig, ServerThread
    with ServerThread(ServerConfig(model="openai/gpt-4o-mini", country="ro", port=0)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="-")

``selfalign serve`` is the command-line face of :func:`run`.
"""

from ._run import ServerThread, configure_logging, run
from .app import create_app
from .config import ServerConfig, Upstream, load_config
from ..errors import ConfigError
from .errors import ProxyError

__all__ = ["create_app", "run", "ServerThread", "configure_logging", "ServerConfig", "Upstream", "load_config",
           "ConfigError", "ProxyError"]
