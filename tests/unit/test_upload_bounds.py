"""Uploads at the door, issue 25 items 6–8: memory per upload byte, 500s that became 422s, large corrupt images.

Memory is measured with tracemalloc around the parsing and encoding functions themselves (NumPy reports
its buffers to tracemalloc, so arrays count as well as Python objects): a peak, not a sample, so no
timing race; the HTTP test in tests/integration/test_upload_hardening.py measures the server's RSS.
Large images are made cheaply: a 6000×6000 image of one colour compresses to a few hundred KB.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.datasets.images import verify_image
from app.datasets.parsing import parse_upload
from app.datasets.service import _encode
from app.datasets.text import parse_inline_texts
from app.errors import Invalid
from app.limits import UnpackLimits
from tests.conftest import npz_bytes

LIMITS = UnpackLimits()
SIDE = 6000


def peak_per_byte(data: bytes, run: Callable[[bytes], object]) -> float:
    """The peak memory `run(data)` allocates, as a multiple of the upload's size (the upload itself excluded)."""
    tracemalloc.start()
    try:
        run(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / len(data)


def store(data: bytes, filename: str) -> bytes:
    parsed, _ = parse_upload(data, filename, LIMITS)
    return _encode(parsed)


def numeric_csv(rows: int, columns: int = 10, labels: bool = True) -> bytes:
    x = np.random.default_rng(0).random((rows, columns))
    body = "\n".join(",".join(f"{v:.6f}" for v in row) + (f",{i % 3}" if labels else "") for i, row in enumerate(x))
    header = ",".join(f"f{i}" for i in range(columns)) + (",label" if labels else "")
    return (header + "\n" + body + "\n").encode()


# --- item 6: memory per upload byte ---------------------------------------------------------------


def test_a_numeric_csv_is_parsed_and_stored_within_three_times_its_size() -> None:
    data = numeric_csv(60_000)  # 5 MB; parsed as lists of str it peaked at ~14× the file
    ratio = peak_per_byte(data, lambda d: store(d, "rows.csv"))
    assert ratio < 3, f"parsing and storing a {len(data)}-byte CSV peaked at {ratio:.1f}× its size"
    parsed, _ = parse_upload(data, "rows.csv", LIMITS)
    assert parsed.x.shape == (60_000, 10) and parsed.x.dtype == np.float32 and parsed.y.tolist()[:4] == [0, 1, 2, 0]


def test_csv_refusals_still_name_the_line_past_the_first_block() -> None:
    rows = numeric_csv(10_000, columns=2, labels=False).decode().split("\n")
    rows[9_000] = "1,nan"  # line 9001 of the file (after the header), in the third block of rows
    with pytest.raises(Invalid, match="csv line 9001 holds a non-finite value"):
        parse_upload("\n".join(rows).encode(), "a.csv", LIMITS)


def test_a_jsonl_upload_is_parsed_and_stored_within_two_and_a_half_times_its_size() -> None:
    lines = [json.dumps({"text": f"sentence {i} " + "wörds " * 30, "label": f"c{i % 4}"}) for i in range(20_000)]
    data = ("\n".join(lines) + "\n").encode()  # non-ASCII: decoded whole, the upload took 2 bytes per character
    ratio = peak_per_byte(data, lambda d: store(d, "t.jsonl"))
    assert ratio < 2.5, f"parsing and storing a {len(data)}-byte .jsonl peaked at {ratio:.1f}× its size"


def test_an_npz_upload_is_parsed_and_stored_within_three_times_its_size() -> None:
    data = npz_bytes(x=np.random.default_rng(0).random((100_000, 16)).astype(np.float32),
                     y=np.arange(100_000) % 5)
    ratio = peak_per_byte(data, lambda d: store(d, "a.npz"))
    assert ratio < 3, f"parsing and storing a {len(data)}-byte .npz peaked at {ratio:.1f}× its size"


# --- item 7: what raised a 500 ----------------------------------------------------------------------


def test_a_jsonl_text_with_a_lone_surrogate_is_refused_naming_its_line() -> None:
    data = b'{"text": "fine", "label": "a"}\n{"text": "a\\ud800", "label": "b"}\n'
    with pytest.raises(Invalid, match=r"jsonl line 2: the text holds a lone surrogate \(\\ud800"):
        parse_upload(data, "t.jsonl", LIMITS)
    with pytest.raises(Invalid, match="jsonl line 1: the label holds a lone surrogate"):
        parse_upload(b'{"text": "x", "label": "\\udfff"}\n', "t.jsonl", LIMITS)
    pair, _ = parse_upload(b'{"text": "\\ud83d\\ude00", "label": "b"}\n', "t.jsonl", LIMITS)  # a pair is a character
    assert pair.texts == ["\U0001F600"] and _encode(pair)


def test_inline_texts_and_class_names_with_a_lone_surrogate_are_refused() -> None:
    with pytest.raises(Invalid, match=r"texts\[1\]: the text holds a lone surrogate"):
        parse_inline_texts(["ok", "a\ud800"], None, LIMITS)
    with pytest.raises(Invalid, match="the class name .* holds a lone surrogate"):
        parse_inline_texts(["ok", "fine"], ["x", "y\udc00"], LIMITS)


def test_a_jsonl_label_nested_100000_deep_is_refused_naming_its_line() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    data = b'{"text": "a", "label": "x"}\n{"text": "b", "label": ' + deep + b"}\n"
    with pytest.raises(Invalid, match="jsonl line 2 is nested too deeply"):
        parse_upload(data, "t.jsonl", LIMITS)
    with pytest.raises(Invalid, match="jsonl line 1: 'label' must be a class name .* got a JSON array"):
        parse_upload(b'{"text": "b", "label": [[1]]}\n', "t.jsonl", LIMITS)


# --- item 8: large corrupt images -------------------------------------------------------------------


def flat(fmt: str, side: int = SIDE, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 30)).save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, position = [], 8
    while position < len(data):
        length, = struct.unpack(">I", data[position:position + 4])
        chunks.append((data[position + 4:position + 8], data[position + 8:position + 8 + length]))
        position += 12 + length
    return chunks


def png_of(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG of these chunks, each with a correct CRC: corruption that checksums cannot see."""
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(body)) + kind + body
                                           + struct.pack(">I", zlib.crc32(kind + body)) for kind, body in chunks)


def bogus_data_png(side: int = SIDE) -> bytes:
    """The image's first data chunk replaced by random bytes of the same length, its CRC recomputed."""
    chunks = png_chunks(flat("PNG", side))
    first = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    chunks[first] = (b"IDAT", np.random.default_rng(0).bytes(len(chunks[first][1])))
    return png_of(chunks)


def raw_png(side: int, rows: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    return png_of([(b"IHDR", header), (b"IDAT", zlib.compress(rows)), (b"IEND", b"")])


def truncated_jpeg(side: int = SIDE, keep: float = 0.6, end_marker: bool = True) -> bytes:
    """A JPEG cut inside its image data, with its end-of-image marker put back (libjpeg then only warns)."""
    data = flat("JPEG", side, quality=50)
    return data[:int(len(data) * keep)] + (b"\xff\xd9" if end_marker else b"")


def test_a_large_png_with_a_bogus_data_chunk_is_refused() -> None:
    data = bogus_data_png()
    assert len(data) < 200_000 and Image.open(io.BytesIO(data)).size == (SIDE, SIDE)
    with pytest.raises(Invalid, match="huge.png is not a readable PNG"):
        verify_image("huge.png", data, LIMITS)


def test_a_large_png_with_bad_filter_types_or_too_few_rows_is_refused() -> None:
    side = 2100  # 4.4 MP: over the full-decode size, so only the streamed check can see these
    rows = bytearray(b"".join(b"\0" + bytes(side) for _ in range(side)))
    rows[(side // 2) * (side + 1)] = 9
    with pytest.raises(Invalid, match="filter type 9"):
        verify_image("x.png", raw_png(side, bytes(rows)), LIMITS)
    with pytest.raises(Invalid, match=r"x.png is not a readable PNG image \(truncated\)"):
        verify_image("x.png", raw_png(side, bytes(side * (side + 1) - 1)), LIMITS)
    assert verify_image("x.png", raw_png(side, bytes(side * (side + 1))), LIMITS) == "png"


@pytest.mark.parametrize("keep", [0.1, 0.6, 0.95])
def test_a_large_jpeg_cut_short_is_refused_with_or_without_its_end_marker(keep: float) -> None:
    with pytest.raises(Invalid, match=r"big.jpg is not a readable JPEG image \(truncated\)"):
        verify_image("big.jpg", truncated_jpeg(keep=keep), LIMITS)
    with pytest.raises(Invalid, match=r"big.jpg is not a readable JPEG image \(truncated\)"):
        verify_image("big.jpg", truncated_jpeg(keep=keep, end_marker=False), LIMITS)


def test_small_truncated_and_progressive_jpegs_are_refused_and_whole_ones_taken() -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    for options in ({}, {"progressive": True}, {"subsampling": 0, "quality": 95}):
        buffer = io.BytesIO()
        noise.save(buffer, "JPEG", **options)
        whole = buffer.getvalue()
        assert verify_image("a.jpg", whole, LIMITS) == "jpg"
        assert verify_image("a.jpg", whole + b"trailing bytes", LIMITS) == "jpg"
        with pytest.raises(Invalid, match="truncated"):
            verify_image("a.jpg", whole[:len(whole) * 9 // 10] + b"\xff\xd9", LIMITS)


def test_whole_large_images_are_still_taken() -> None:
    assert verify_image("big.png", flat("PNG"), LIMITS) == "png"
    assert verify_image("big.jpg", flat("JPEG", quality=50), LIMITS) == "jpg"
    assert verify_image("big.jpg", flat("JPEG", quality=50, progressive=True), LIMITS) == "jpg"


def resident_peak_growth(run: Callable[[], object]) -> int:
    """Bytes by which this process's peak resident memory (VmHWM, reset first through /proc/self/clear_refs)
    rises over its resident memory before `run`: Pillow's image buffers are invisible to tracemalloc."""
    def status(key: str) -> int:
        return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) << 10

    Path("/proc/self/clear_refs").write_text("5")
    before = status("VmRSS")
    run()
    return status("VmHWM") - before


def test_checking_a_large_image_stays_within_bounded_memory() -> None:
    """A 6000×6000 RGB image is 108 MB decoded; the check holds a fraction of it."""
    for name, data in (("big.png", flat("PNG")), ("big.jpg", flat("JPEG", quality=50))):
        growth = resident_peak_growth(lambda name=name, data=data: verify_image(name, data, LIMITS))
        assert growth < 40 << 20, f"checking {name} raised the peak resident memory by {growth >> 20} MB"
