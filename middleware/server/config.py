"""Server settings: command-line options, an optional YAML file, and the upstream models.

A config file (``selfalign serve --config FILE``)::

    model: openai/gpt-4o-mini          # the default upstream (a litellm provider string)
    api_base: null                     # its base URL, when not the provider's default
    country: ro                        # default country (none: no injection unless a request asks)
    language: en
    timeout: 600                       # seconds for a whole upstream answer (streams: until the first event)
    stream_idle_timeout: 600           # seconds between two stream events (default: timeout)
    allowed_hosts: [proxy.internal]    # Host names accepted besides the listening address and localhost
    cors_origins: [https://app.example]  # web pages that may call the proxy from a browser
    ui: false                          # no web inspector at / (default: served)
    api_key_file: ./proxy.key          # the key clients must send (a file of its own, mode 0600)
    align_budget: 20                   # seconds one message's alignment may take (then 413)
    models:                            # with a list, requests must name one of these (or an alias)
      - name: gpt-4o-mini              # what clients send as "model"
        model: openai/gpt-4o-mini
        api_key: os.environ/OPENAI_API_KEY
      - name: gemma
        model: local/gemma-3-270m
    aliases: {fast: gemma}
    profiles:                          # name -> value-profile file, loaded at start-up
      me: ./my-values.yaml             # relative to this file

Command-line options win over the file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SelfAlignError
from ..options import AlignOptions

__all__ = ["ServerConfig", "Upstream", "load_config", "OPENAI_COMPATIBLE", "DEFAULT_MAX_BODY_BYTES"]

DEFAULT_MAX_BODY_BYTES = 1 << 20
# Providers that speak OpenAI's wire format: with forward "auto" the proxy relays
# their bytes directly, because litellm's per-call cost (~5 ms of CPU) is larger
# than the whole latency budget; everything else goes through litellm.acompletion.
OPENAI_COMPATIBLE = {"openai": ("OPENAI_API_BASE", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
                     "hosted_vllm": ("HOSTED_VLLM_API_BASE", None, None)}
_KEY_ENV = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY"}
FORWARD_MODES = ("auto", "litellm", "passthrough")


def _env_ref(value: Any) -> Any:
    """litellm's convention: ``os.environ/NAME`` reads the variable (so files need not hold secrets)."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        return os.environ.get(value.split("/", 1)[1])
    return value


@dataclass(frozen=True)
class Upstream:
    """One model the proxy can forward to."""

    name: str
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    forward: str = "auto"
    params: dict = field(default_factory=dict)
    """Extra litellm keyword arguments (e.g. api_version), never taken from requests."""

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0] if "/" in self.model else "openai"

    @property
    def passthrough(self) -> bool:
        if self.forward == "passthrough":
            return True
        return self.forward == "auto" and self.provider in OPENAI_COMPATIBLE and "/" in self.model

    @property
    def in_process(self) -> bool:
        """A ``local/`` model called directly, not through litellm (unless ``forward`` is litellm)."""
        return self.provider == "local" and self.forward != "litellm"

    @property
    def upstream_model(self) -> str:
        """The model name the upstream itself knows (the provider prefix removed)."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model

    def base_url(self) -> str:
        if self.api_base:
            return self.api_base.rstrip("/")
        env_a, env_b, default = OPENAI_COMPATIBLE.get(self.provider, (None, None, None))
        for var in (env_a, env_b):
            if var and os.environ.get(var):
                return os.environ[var].rstrip("/")
        if default is None:
            raise ConfigError(f"model {self.model!r} needs api_base (or ${env_a})", param="api_base")
        return default

    def key(self) -> str | None:
        return self.api_key or (os.environ.get(_KEY_ENV[self.provider]) if self.provider in _KEY_ENV else None)


@dataclass(frozen=True)
class ServerConfig(AlignOptions):
    """The proxy's settings. The alignment options (country, language, profile, k, strategy) are
    inherited from :class:`~middleware.options.AlignOptions`: they are the defaults of every request."""

    model: str = ""
    """Default upstream; empty means the embedded local model (middleware.models.provider.DEFAULT_MODEL)."""
    api_base: str | None = None
    upstream_api_key: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    """The key clients must send as ``Authorization: Bearer ...`` (None: open)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_content: bool = False
    timeout: float = 600.0
    forward: str = "auto"
    models: tuple[Upstream, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Path] = field(default_factory=dict)
    log_level: str = "info"
    workers: int = 1
    """Server processes sharing the port (one event loop each; use about one per free core)."""
    # Hardening (see docs/proxy.md, Security): deadlines and who may call from where.
    stream_idle_timeout: float | None = None
    """Seconds allowed between two stream events (None: the same as ``timeout``)."""
    body_timeout: float = 30.0
    """Seconds allowed for a client to send its request body (408 after that)."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header names accepted besides the listening address and the localhost names ('*': any)."""
    cors_origins: tuple[str, ...] = ()
    """Origins (scheme://host[:port]) whose web pages may call the proxy ('*': any); others get 403."""
    ui: bool = True
    """Serve the web inspector at ``/`` (False: 404 there)."""
    api_key_file: Path | None = None
    """A file whose content (stripped) is ``api_key``: keeps the key out of command lines and environments."""
    align_workers: int | None = None
    """Threads that align messages (language, retrieval, embeddings); None: 8 per core, at least 32."""
    align_budget: float = 20.0
    """Seconds one message's alignment may take once started; longer: 413 for that request only."""

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except SelfAlignError as e:
            raise ConfigError(str(e), param=e.param) from None
        self._check_hardening()
        self._read_key_file()
        if self.forward not in FORWARD_MODES:
            raise ConfigError(f"forward must be one of {', '.join(FORWARD_MODES)}, got {self.forward!r}",
                              param="forward")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise ConfigError("max_body_bytes must be an integer of at least 1024", param="max_body_bytes")
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ConfigError("timeout must be a positive number of seconds", param="timeout")
        if not isinstance(self.ui, bool):
            raise ConfigError("ui must be true or false", param="ui")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ConfigError("workers must be a positive integer", param="workers")
        names = {m.name for m in self.models}
        for alias, target in self.aliases.items():
            if target not in names:
                raise ConfigError(f"alias {alias!r} points to {target!r}, which is not in models "
                                  f"({', '.join(sorted(names)) or 'none configured'})", param="aliases")

    def _check_hardening(self) -> None:
        for name in ("allowed_hosts", "cors_origins"):
            value = getattr(self, name)
            value = (value,) if isinstance(value, str) else tuple(value or ())
            if not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"{name} must be a list of non-empty strings", param=name)
            object.__setattr__(self, name, tuple(v.strip() for v in value))  # lists from YAML/JSON
        workers = self.align_workers
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError("align_workers must be a positive integer", param="align_workers")
        for name in ("stream_idle_timeout", "body_timeout", "align_budget"):
            value = getattr(self, name)
            if value is None and name == "stream_idle_timeout":
                continue
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds", param=name)

    def _read_key_file(self) -> None:
        if self.api_key_file is None:
            return
        path = Path(self.api_key_file)
        if self.api_key is not None and self.api_key != _read_key(path):
            raise ConfigError("give the API key once: --api-key (or $SELFALIGN_API_KEY) or --api-key-file",
                              param="api_key_file")
        object.__setattr__(self, "api_key_file", path)
        object.__setattr__(self, "api_key", _read_key(path))

    @property
    def idle_timeout(self) -> float:
        """Seconds allowed between two stream events."""
        return self.stream_idle_timeout or self.timeout

    @property
    def default_model(self) -> str:
        if self.model:
            return self.model
        from ..models.provider import DEFAULT_MODEL

        return DEFAULT_MODEL

    def default_upstream(self) -> Upstream:
        return Upstream(name=self.default_model, model=self.default_model, api_base=self.api_base,
                        api_key=self.upstream_api_key, forward=self.forward)

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without a key: an open proxy spends the upstream's credits."""
        for name in ("allowed_hosts", "cors_origins"):
            if "*" in getattr(self, name) and not self.api_key:
                # Without a key, '*' hands the proxy (and the upstream's credits) to every web page.
                raise ConfigError(f"{name} '*' needs an API key (--api-key): without one any web page "
                                  f"could use this proxy", param=name)
        if self.api_key or _is_loopback(self.host):
            return
        raise ConfigError(f"refusing to listen on {self.host} without an API key: pass --api-key or set "
                          f"SELFALIGN_API_KEY (or use --host 127.0.0.1)", param="host")

    def to_json(self) -> str:
        """For handing the settings to worker processes (which rebuild them with :meth:`from_json`)."""
        import json

        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["models"] = [{f.name: getattr(m, f.name) for f in fields(Upstream)} for m in self.models]
        data["profiles"] = {name: str(path) for name, path in self.profiles.items()}
        data["api_key_file"] = None  # the key itself is in the file handed over (mode 0600)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "ServerConfig":
        import json

        data = json.loads(text)
        data["models"] = tuple(Upstream(**m) for m in data["models"])
        data["profiles"] = {name: Path(path) for name, path in data["profiles"].items()}
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> "ServerConfig":
        """A copy with the given (non-None) values replaced, e.g. command-line options over a file."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"api_key_file {path}: cannot read it: {getattr(e, 'strerror', None) or e}",
                          param="api_key_file") from None
    if not key or any(ch.isspace() for ch in key):
        raise ConfigError(f"api_key_file {path}: the file must hold one key (no spaces inside), not "
                          f"{'nothing' if not key else 'several words'}", param="api_key_file")
    return key


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# The proxy's own key is never written in the config file itself; api_key_file names a file holding it.
_TOP_KEYS = {f.name for f in fields(ServerConfig)} - {"api_key"}
_MODEL_KEYS = {"name", "model", "api_base", "api_key", "forward", "params"}


def load_config(path: str | Path) -> ServerConfig:
    """Read a YAML config file; errors name the file and the key."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}", param="config") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}", param="config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping", param="config")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid keys are "
                          f"{', '.join(sorted(_TOP_KEYS))}", param="config")
    kw: dict[str, Any] = {k: _env_ref(v) for k, v in data.items() if k not in ("models", "aliases", "profiles")}
    if kw.get("country") is not None:
        kw["country"] = str(kw["country"])
    models = []
    for i, entry in enumerate(data.get("models") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise ConfigError(f"{path}: models[{i}]: needs at least 'model' (a provider string)", param="models")
        bad = set(entry) - _MODEL_KEYS
        if bad:
            raise ConfigError(f"{path}: models[{i}]: unknown key(s) {', '.join(sorted(bad))}; valid keys are "
                              f"{', '.join(sorted(_MODEL_KEYS))}", param="models")
        forward = entry.get("forward", kw.get("forward", "auto"))
        if forward not in FORWARD_MODES:
            raise ConfigError(f"{path}: models[{i}].forward must be one of {', '.join(FORWARD_MODES)}",
                              param="models")
        models.append(Upstream(name=str(entry.get("name") or entry["model"]), model=entry["model"],
                               api_base=_env_ref(entry.get("api_base")), api_key=_env_ref(entry.get("api_key")),
                               forward=forward, params=dict(entry.get("params") or {})))
    aliases = data.get("aliases") or {}
    profiles = data.get("profiles") or {}
    if not isinstance(aliases, dict) or not isinstance(profiles, dict):
        raise ConfigError(f"{path}: aliases and profiles must be mappings (name: value)", param="config")
    kw["models"] = tuple(models)
    kw["aliases"] = {str(a): str(t) for a, t in aliases.items()}
    kw["profiles"] = {str(n): (path.parent / str(p)).resolve() for n, p in profiles.items()}
    if kw.get("api_key_file") is not None:
        kw["api_key_file"] = (path.parent / str(kw["api_key_file"])).resolve()
    try:
        return ServerConfig(**kw)
    except TypeError as e:
        raise ConfigError(f"{path}: {e}", param="config") from None
