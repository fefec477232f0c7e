"""De-quantised copies of GGUF files, for llama.cpp scores that match the transformers runtime.

llama.cpp multiplies quantised weights with activations quantised to 8 bits; the
transformers runtime de-quantises the same weights to float32.  On Gemma 3 270M that
difference moves an option's probability by 0.018 on average and up to 0.10, enough to
flip about one evaluator verdict in ten.  ``local/NAME?precision=f16`` (or ``f32``) runs
llama.cpp on a copy whose quantised tensors are de-quantised once, so its activations
stay 16 or 32-bit: the scores then agree with transformers almost exactly (see
docs/models.md for the measured figures).

The copy is written once into ``$SELFALIGN_CACHE_DIR/models/`` (atomically: a crash
leaves no half file) and named after the source file's path, size and mtime, so that an
edited source gets a new copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

from .._files import atomic_target
from .registry import PRECISIONS

__all__ = ["dequantized_gguf"]


def _target(source: Path, precision: str, cache: Path) -> Path:
    st = source.stat()
    tag = hashlib.sha256(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
    return cache / "models" / f"{source.stem}-{tag}-{precision}.gguf"


def dequantized_gguf(source: Path, precision: str, cache: Path, progress: bool = True) -> Path:
    """Path of ``source`` with every quantised tensor stored as ``precision`` (``f16`` or ``f32``).

    F32 tensors (norms) stay F32; in ``f32`` mode F16/BF16 tensors become F32 too.  A file
    with nothing to convert is returned as it is.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    import gguf

    target = _target(source, precision, cache)
    if target.is_file():
        return target
    reader = gguf.GGUFReader(source)
    Q = gguf.GGMLQuantizationType
    keep = {Q.F32} if precision == "f32" else {Q.F32, Q.F16}
    if all(t.tensor_type in keep for t in reader.tensors):
        return source

    with atomic_target(target) as tmp:
        _write(reader, str(tmp), precision, keep, progress)
    return target


def _write(reader, path: str, precision: str, keep: set, progress: bool) -> None:
    import gguf

    Q = gguf.GGMLQuantizationType
    out_type, out_dtype = (Q.F32, "float32") if precision == "f32" else (Q.F16, "float16")
    file_type = gguf.LlamaFileType.ALL_F32 if precision == "f32" else gguf.LlamaFileType.MOSTLY_F16
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(path, arch)
    for field in reader.fields.values():
        # The writer adds the architecture and the GGUF.* header fields itself.
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name == gguf.Keys.General.FILE_TYPE:
            writer.add_file_type(int(file_type))
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)

    # Tensor infos first, data after: one tensor in memory at a time.
    plan = []
    for t in reader.tensors:
        if t.tensor_type in keep:
            plan.append(t.data)
            writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        else:
            data = _Dequantized(t, out_dtype)
            plan.append(data)
            writer.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, out_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    with _bar(progress, f"De-quantising {Path(reader.data.filename).name} to {out_dtype} (once)",
              sum(t.n_bytes for t in reader.tensors)) as advance:
        for t, data in zip(reader.tensors, plan):
            writer.write_tensor_data(data, tensor_endianess=reader.endianess)
            advance(t.n_bytes)
    writer.close()


class _Dequantized:
    """A tensor de-quantised in slices of rows as the writer stores it.

    GGUFWriter.write_tensor_data needs only ``nbytes`` and ``tofile``; slicing keeps the
    peak memory of Gemma's 262,144-row embedding at a few tens of MB instead of GBs.
    """

    _ROWS = 8192

    def __init__(self, tensor, dtype: str):
        import numpy as np

        self._tensor = tensor
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in reversed(tensor.shape))  # GGUF lists dimensions innermost first
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize

    def tofile(self, f) -> None:
        import gguf

        data = self._tensor.data
        rows = self._ROWS if data.ndim > 1 else len(data)  # a 1-D tensor's blocks must stay whole
        for start in range(0, max(1, len(data)), rows):
            part = gguf.quants.dequantize(data[start:start + rows], self._tensor.tensor_type)
            part.astype(self.dtype).tofile(f)


@contextlib.contextmanager
def _bar(progress: bool, label: str, total: int):
    """A rich progress bar on a terminal's stderr; a no-op elsewhere."""
    if not (progress and sys.stderr.isatty()):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
