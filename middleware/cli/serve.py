"""``selfalign serve``: the OpenAI-compatible proxy (clients change only their base_url)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Default upstream, a litellm provider "
                                            "string: openai/..., anthropic/..., ollama/..., hosted_vllm/..., "
                                            "local/smollm2-135m-instruct (the default: embedded, offline, English-only) or local/gemma-3-270m."),
        api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL of the default upstream."),
        country: Optional[str] = typer.Option(None, "--country", "-c", help="Default country (ISO code or name); "
                                              "requests can choose their own."),
        language: Optional[str] = typer.Option(None, "--language", "-l", help="Default probe language."),
        host: Optional[str] = typer.Option(None, "--host", help="Address to listen on [default: 127.0.0.1]."),
        port: Optional[int] = typer.Option(None, "--port", "-p", min=0, max=65535, help="[default: 8000]"),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="SELFALIGN_API_KEY", show_envvar=True,
                                              help="Require 'Authorization: Bearer KEY' (needed beyond loopback)."),
        config_file: Optional[Path] = typer.Option(None, "--config", help="YAML: upstream models, aliases, "
                                                   "default country, profiles (name: file)."),
        max_body_bytes: Optional[int] = typer.Option(None, "--max-body-bytes", min=1024,
                                                     help="Largest request body [default: 1 MiB]."),
        timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001,
                                                help="Seconds to wait for the upstream [default: 600]."),
        forward: Optional[str] = typer.Option(None, "--forward", help="auto (relay OpenAI-compatible upstreams "
                                              "directly, litellm for the rest), litellm, or passthrough."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Server processes sharing the port "
                                              "[default: 1]; about one per free CPU core."),
        log_content: bool = typer.Option(False, "--log-content", help="Also log message text (off: only "
                                         "models, countries, counts and timings are logged)."),
        log_level: Optional[str] = typer.Option(None, "--log-level", help="debug, info, warning, error "
                                                "[default: info]."),
    ) -> None:
        """Run the OpenAI-compatible proxy that injects a country's WVS demonstrations into every chat request."""
        from ..server import ServerConfig, load_config, run
        from ..server._run import configure_logging
        from . import fail

        if config_file is not None and not config_file.is_file():
            raise fail(f"--config {config_file}: no such file")
        if log_level is not None and log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise fail(f"--log-level {log_level!r}: use debug, info, warning or error")
        base = load_config(config_file) if config_file is not None else ServerConfig()
        config = base.with_overrides(model=model, api_base=api_base, country=country, language=language, host=host,
                                     port=port, api_key=api_key or None, max_body_bytes=max_body_bytes,
                                     timeout=timeout, forward=forward, log_level=log_level and log_level.lower(),
                                     workers=workers, log_content=True if log_content else None)
        configure_logging(config.log_level)
        run(config)
