"""GGUF -> Hugging Face conversion for the transformers runtime: an embedded GGUF model de-quantised to a
float32 PyTorch model (about a minute), published once as a regular Hugging Face directory.

Several processes may convert at once (server workers): each writes a temporary sibling directory
and publishes it with one rename; the first wins, the others drop theirs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["load_from_gguf", "save_atomically"]

# A conversion takes about a minute; temp dirs much older than that are debris
# from a killed process, not a conversion still running elsewhere.
_STALE_TMP_SECONDS = 3600


def load_from_gguf(path: Path) -> tuple[Any, Any]:
    """De-quantise a GGUF file into a float32 model and its tokenizer (slow)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                 dtype=torch.float32)
    # The weights are now plain float32; a saved "gguf" quantization_config
    # would make the cached copy look quantised when reloaded.
    for obj in (model.config, model):
        for attr in ("quantization_config", "hf_quantizer"):
            if hasattr(obj, attr):
                with contextlib.suppress(AttributeError):
                    delattr(obj, attr)
    model.is_quantized = False
    return model, tokenizer


def save_atomically(model: Any, tokenizer: Any, target: Path) -> None:
    """Write model+tokenizer to ``target`` via a sibling temp dir and one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in target.parent.glob(f".{target.name}.tmp-*"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # mkdtemp creates 0700; publish with ordinary umask-based permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~umask)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process won the race and already published a full copy.
            if not (target / "config.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
