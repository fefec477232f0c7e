"""``selfalign serve``: the OpenAI-compatible proxy (clients change only their base_url)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from ..options import DEFAULT_MIN_RELEVANCE


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Default upstream, a litellm provider "
                                            "string: openai/..., anthropic/..., ollama/..., hosted_vllm/..., "
                                            "local/smollm2-135m-instruct (the default: embedded, offline, English-only) or local/gemma-3-270m."),
        api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL of the default upstream."),
        country: Optional[str] = typer.Option(None, "--country", "-c", help="Default country (ISO code or name); "
                                              "requests can choose their own."),
        language: Optional[str] = typer.Option(None, "--language", "-l", help="Default demonstration language "
                                                  "(default: auto, each message's)."),
        min_relevance: Optional[float] = typer.Option(None, "--min-relevance", min=0.0, max=1.0,
                                                      help="Inject only into requests about values with at least "
                                                      f"this probability; 0: into every request \\[default: {DEFAULT_MIN_RELEVANCE:g}]."),
        host: Optional[str] = typer.Option(None, "--host", help="Address to listen on \\[default: 127.0.0.1]."),
        port: Optional[int] = typer.Option(None, "--port", "-p", min=0, max=65535, help="\\[default: 8000]"),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="SELFALIGN_API_KEY", show_envvar=True,
                                              help="Require 'Authorization: Bearer KEY' (needed beyond loopback)."),
        config_file: Optional[Path] = typer.Option(None, "--config", help="YAML: upstream models, aliases, "
                                                   "default country, profiles (name: file)."),
        max_body_bytes: Optional[int] = typer.Option(None, "--max-body-bytes", min=1024,
                                                     help="Largest request body \\[default: 1 MiB]."),
        timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001,
                                                help="Seconds for a whole upstream answer (a stream: until its "
                                                "first event) \\[default: 600]."),
        stream_idle_timeout: Optional[float] = typer.Option(None, "--stream-idle-timeout", min=0.001,
                                                            help="Seconds allowed between two stream events "
                                                            "\\[default: --timeout]."),
        body_timeout: Optional[float] = typer.Option(None, "--body-timeout", min=0.001,
                                                     help="Seconds a client may take to send its request body "
                                                     "(then 408) \\[default: 30]."),
        allowed_host: Optional[List[str]] = typer.Option(None, "--allowed-host", help="A Host name to answer "
                                                         "besides the listen address and localhost (repeatable; "
                                                         "'*': any). Others get 403 (DNS rebinding)."),
        cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin", help="An origin (scheme://host"
                                                        "\\[:port]) whose web pages may call the proxy, with CORS "
                                                        "(repeatable; '*': any). Other origins get 403."),
        forward: Optional[str] = typer.Option(None, "--forward", help="auto (relay OpenAI-compatible upstreams "
                                              "directly, litellm for the rest), litellm, or passthrough."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Server processes sharing the port "
                                              "\\[default: 1]; about one per free CPU core."),
        log_content: bool = typer.Option(False, "--log-content", help="Also log message text (off: only "
                                         "models, countries, counts and timings are logged)."),
        log_level: Optional[str] = typer.Option(None, "--log-level", help="debug, info, warning, error "
                                                "\\[default: info]."),
    ) -> None:
        """Run the OpenAI-compatible proxy that injects a country's WVS demonstrations into every chat request."""
        from ..server import ServerConfig, configure_logging, load_config, run
        from . import fail

        if config_file is not None and not config_file.is_file():
            raise fail(f"--config {config_file}: no such file")
        if api_key is not None and (not api_key.strip() or api_key != api_key.strip()):
            # Clients send the key stripped, so a blank or space-padded key could never authenticate.
            raise fail("--api-key (or $SELFALIGN_API_KEY) is blank or starts/ends with whitespace: "
                       "use a key without surrounding spaces")
        if log_level is not None and log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise fail(f"--log-level {log_level!r}: use debug, info, warning or error")
        base = load_config(config_file) if config_file is not None else ServerConfig()
        config = base.with_overrides(model=model, api_base=api_base, country=country, language=language,
                                     min_relevance=min_relevance, host=host,
                                     port=port, api_key=api_key or None, max_body_bytes=max_body_bytes,
                                     timeout=timeout, stream_idle_timeout=stream_idle_timeout,
                                     body_timeout=body_timeout, allowed_hosts=allowed_host or None,
                                     cors_origins=cors_origin or None, forward=forward, workers=workers,
                                     log_level=log_level and log_level.lower(),
                                     log_content=True if log_content else None)
        os.environ.pop("SELFALIGN_API_KEY", None)  # read; worker processes need not inherit it
        configure_logging(config.log_level)
        if config.country:
            import logging

            from ..data.coverage import coverage_warning_once

            if (warning := coverage_warning_once(config.country)):
                logging.getLogger("selfalign.server").warning(warning)
        run(config)
