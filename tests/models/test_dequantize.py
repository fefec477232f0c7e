"""De-quantised GGUF copies, on a small GGUF written here (the Gemma copy is covered by the
runtime-agreement test in test_embedded.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from middleware.models import dequantize  # noqa: E402
from middleware.models.dequantize import dequantized_gguf  # noqa: E402

Q = gguf.GGMLQuantizationType


def _write_gguf(path, quantised: bool = True):
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    matrix = rng.standard_normal((8, 64)).astype(np.float32)
    if quantised:
        w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(matrix, Q.Q8_0), raw_dtype=Q.Q8_0)
    else:
        w.add_tensor("blk.0.ffn_up.weight", matrix.astype(np.float16))
    w.add_tensor("blk.0.ffn_norm.weight", rng.standard_normal(64).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return matrix


@pytest.mark.parametrize("precision, dtype, ggml", [("f16", np.float16, Q.F16), ("f32", np.float32, Q.F32)])
def test_quantised_tensors_are_stored_dequantised(tmp_path, monkeypatch, precision, dtype, ggml):
    monkeypatch.setattr(dequantize._Dequantized, "_ROWS", 3)  # 8 rows: written in three slices
    src = tmp_path / "tiny.gguf"
    matrix = _write_gguf(src)
    out = dequantized_gguf(src, precision, tmp_path / "cache", progress=False)
    assert out != src and out.parent == tmp_path / "cache" / "models"

    before, after = gguf.GGUFReader(str(src)), gguf.GGUFReader(str(out))
    tensors = {t.name: t for t in after.tensors}
    up = tensors["blk.0.ffn_up.weight"]
    assert up.tensor_type == ggml and np.asarray(up.data).shape == (8, 64)
    # The copy holds the quantised values exactly (as far as the target precision goes),
    # and they are close to the matrix that was quantised.
    expected = gguf.quants.dequantize(before.tensors[0].data, Q.Q8_0).astype(dtype)
    assert np.array_equal(np.asarray(up.data), expected)
    assert np.abs(np.asarray(up.data, dtype=np.float32) - matrix).max() < 0.05
    norm = tensors["blk.0.ffn_norm.weight"]
    assert norm.tensor_type == Q.F32
    assert np.array_equal(np.asarray(norm.data), np.asarray(before.tensors[1].data))
    # Metadata survives; the file type says what the file now holds.
    assert after.fields["general.name"].contents() == "tiny"
    assert after.fields["tokenizer.ggml.tokens"].contents() == ["a", "b", "c"]
    file_type = gguf.LlamaFileType.ALL_F32 if precision == "f32" else gguf.LlamaFileType.MOSTLY_F16
    assert after.fields["general.file_type"].contents() == int(file_type)


def test_copy_is_made_once_and_follows_the_source(tmp_path):
    src = tmp_path / "tiny.gguf"
    _write_gguf(src)
    first = dequantized_gguf(src, "f16", tmp_path, progress=False)
    stamp = first.stat().st_mtime_ns
    assert dequantized_gguf(src, "f16", tmp_path, progress=False) == first
    assert first.stat().st_mtime_ns == stamp  # not rewritten
    # An edited source gets a new copy; f32 and f16 copies are distinct files.
    _write_gguf(src)
    os.utime(src, ns=(stamp + 10**9, stamp + 10**9))
    assert dequantized_gguf(src, "f16", tmp_path, progress=False) != first
    assert dequantized_gguf(src, "f32", tmp_path, progress=False) != first


def test_nothing_to_convert_returns_the_source(tmp_path):
    src = tmp_path / "tiny.gguf"
    _write_gguf(src, quantised=False)  # F16 and F32 tensors only
    assert dequantized_gguf(src, "f16", tmp_path, progress=False) == src
    assert dequantized_gguf(src, "f32", tmp_path, progress=False) != src


def test_a_failed_conversion_leaves_no_file(tmp_path, monkeypatch):
    src = tmp_path / "tiny.gguf"
    _write_gguf(src)

    def broken(reader, path, *args):
        with open(path, "wb") as f:
            f.write(b"GGUF half")
        raise OSError("disk full")

    monkeypatch.setattr(dequantize, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        dequantized_gguf(src, "f16", tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="f16, f32"):
        dequantized_gguf(tmp_path / "x.gguf", "q4", tmp_path)
