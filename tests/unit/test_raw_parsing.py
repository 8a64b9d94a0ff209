"""Raw datasets at the door: every accepted text and image layout, every refusal, and the reader.

Images, archives and bombs are made here, in memory, with Pillow, zipfile and tarfile; a bomb is a
member of zeros that deflates about 1000:1, and an oversized image is a PNG whose header claims the
size over a few bytes of data, so nothing big is ever allocated but the zeros being compressed.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from app.datasets.images import INDEX_MEMBER, parse_image_archive, verify_image
from app.datasets.parsing import Arrays, parse_inline, parse_npz, parse_upload
from app.datasets.reader import open_dataset
from app.datasets.schemas import DataRef
from app.datasets.service import _encode, check_fits, prepare_data
from app.datasets.text import Texts, parse_inline_texts
from app.errors import Invalid, ServiceError, TooLarge
from app.limits import UnpackLimits
from app.store import LocalBlobStore

LIMITS = UnpackLimits()


# --- makers (shared with tests/api/test_raw_datasets.py) -------------------------------------------


def image_bytes(shade: int = 0, size: tuple[int, int] = (6, 5), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (shade, 255 - shade, 7)).save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header says width × height over a tiny compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def corrupt_png() -> bytes:
    data = bytearray(image_bytes(size=(32, 32)))
    data[len(data) // 2: len(data) // 2 + 8] = b"\xff" * 8
    return bytes(data)


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_of(members: dict[str, bytes], mode: str = "w", links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def zeros_bomb(megabytes: int = 64) -> bytes:
    return zip_of({"cat/zeros.png": bytes(megabytes << 20)})


def npz_claiming(shape: tuple[int, ...]) -> bytes:
    """An .npz whose x.npy header declares `shape` (float32) over a few bytes of data."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
    member.write(bytes(64))
    return zip_of({"x.npy": member.getvalue()})


def refusal(error: type[ServiceError], data: bytes, filename: str, limits: UnpackLimits = LIMITS) -> str:
    with pytest.raises(error) as caught:
        parse_upload(data, filename, limits)
    return caught.value.detail


# --- texts ---------------------------------------------------------------------------------------


def test_jsonl_with_class_names_extra_fields_and_blank_lines() -> None:
    data = (b'{"text": "good", "label": "pos", "id": 1}\n\n{"text": "bad", "label": "neg"}\n'
            b'{"text": "ok", "label": "pos"}\n')
    texts, file_format = parse_upload(data, "reviews.JSONL")
    assert file_format == "jsonl" and isinstance(texts, Texts)
    assert texts.texts == ["good", "bad", "ok"] and texts.classes == ["neg", "pos"] and texts.y.tolist() == [1, 0, 1]


def test_jsonl_integer_labels_and_unlabeled() -> None:
    labelled, _ = parse_upload(b'{"text": "a", "label": 2}\n{"text": "b", "label": 0}\n', "a.jsonl")
    assert labelled.classes is None and labelled.y.tolist() == [2, 0] and labelled.max_label == 2
    unlabeled, _ = parse_upload('{"text": "é\\n"}\n{"text": ""}\n'.encode(), "a.jsonl")
    assert unlabeled.y is None and unlabeled.texts == ["é\n", ""]


def test_text_csv_is_text_and_numeric_csv_stays_arrays() -> None:
    texts, file_format = parse_upload(b'id,Text,label\n1,"hello, world",greeting\n2,"two\nlines",other\n', "t.csv")
    assert file_format == "csv" and texts.texts == ["hello, world", "two\nlines"]
    assert texts.classes == ["greeting", "other"]
    numbered, _ = parse_upload(b"text,label\nx,1\ny,0\n", "t.csv")
    assert numbered.classes is None and numbered.y.tolist() == [1, 0]
    unlabeled, _ = parse_upload(b"text\nonly\n", "t.csv")
    assert unlabeled.y is None
    arrays, _ = parse_upload(b"a,b,label\n1,2,0\n3,4,1\n", "rows.csv")
    assert isinstance(arrays, Arrays) and arrays.x.shape == (2, 2)


def test_inline_texts_and_inline_inputs_with_class_names() -> None:
    texts = parse_inline_texts(["a", "b", "c"], ["y", "x", "y"], LIMITS)
    assert texts.classes == ["x", "y"] and texts.y.tolist() == [1, 0, 1]
    arrays = parse_inline([[1.0], [2.0]], ["dog", "cat"])
    assert arrays.classes == ["cat", "dog"] and arrays.y.tolist() == [1, 0]
    assert parse_inline([[1.0]], [3]).classes is None


TEXT_REFUSALS = {
    "no text field": (b'{"text": "a"}\n{"title": "b"}\n', "a.jsonl", "line 2 has no 'text' field"),
    "text not a string": (b'{"text": 5}\n', "a.jsonl", "'text' must be a string"),
    "not an object": (b'["text"]\n', "a.jsonl", "not an object"),
    "not json": (b'{"text": \n', "a.jsonl", "not JSON"),
    "empty jsonl": (b"\n\n", "a.jsonl", "empty"),
    "some labelled": (b'{"text": "a", "label": 1}\n{"text": "b"}\n', "a.jsonl", "label every record"),
    "mixed label types": (b'{"text": "a", "label": 1}\n{"text": "b", "label": "x"}\n', "a.jsonl", "all class names"),
    "negative label": (b'{"text": "a", "label": -1}\n', "a.jsonl", "≥ 0"),
    "not utf-8": (b'\xff\xfe{"text"', "a.jsonl", "UTF-8"),
    "csv empty label": (b"text,label\na,x\nb,\n", "a.csv", "empty 'label'"),
    "csv no rows": (b"text,label\n", "a.csv", "empty"),
    "csv ragged": (b"text,label\na\n", "a.csv", "columns"),
    "unknown extension": (b"hello", "notes.txt", "unsupported file type .txt; send .npz, .csv, .jsonl, .zip or .tar"),
}


@pytest.mark.parametrize("case", sorted(TEXT_REFUSALS))
def test_text_refusals(case: str) -> None:
    data, filename, reason = TEXT_REFUSALS[case]
    assert reason in refusal(Invalid, data, filename)


def test_too_long_text_is_413_naming_the_setting() -> None:
    detail = refusal(TooLarge, b'{"text": "' + b"a" * 11 + b'"}\n', "a.jsonl", UnpackLimits(max_text_chars=10))
    assert "LIFELONG_MAX_TEXT_CHARS" in detail and "11 characters" in detail
    with pytest.raises(TooLarge):
        parse_inline_texts(["x" * 11], None, UnpackLimits(max_text_chars=10))


# --- images --------------------------------------------------------------------------------------


def test_image_folder_zip_wrapped_in_a_folder_skips_junk() -> None:
    data = zip_of({
        "export/dog/b.jpg": image_bytes(1, fmt="JPEG"), "export/cat/z.png": image_bytes(2),
        "export/cat/a.png": image_bytes(3), "export/README.md": b"hi", "__MACOSX/export/cat/._a.png": b"junk",
        "export/cat/.hidden.png": b"junk", "export/": b"",
    })
    images, file_format = parse_upload(data, "pets.zip")
    assert file_format == "zip" and images.n == 3 and images.classes == ["cat", "dog"]
    assert images.y.tolist() == [0, 0, 1]
    with zipfile.ZipFile(io.BytesIO(images.blob)) as stored:
        index = json.loads(stored.read(INDEX_MEMBER))
        assert index["files"] == ["export/cat/a.png", "export/cat/z.png", "export/dog/b.jpg"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in stored.infolist())


def test_one_class_folder_is_an_image_folder_and_flat_is_unlabeled() -> None:
    one, _ = parse_upload(zip_of({"cat/1.png": image_bytes(1), "cat/2.png": image_bytes(2)}), "a.zip")
    assert one.classes == ["cat"] and one.y.tolist() == [0, 0]
    flat, _ = parse_upload(zip_of({"b.png": image_bytes(1), "a.jpeg": image_bytes(2, fmt="JPEG")}), "a.zip")
    assert flat.n == 2 and flat.y is None and flat.classes is None


def test_tar_with_labels_csv_keeps_its_order_and_names() -> None:
    members = {"set/labels.csv": b"file,label\nb.png,dog\nsub/a.png,cat\n", "set/sub/a.png": image_bytes(1),
               "set/b.png": image_bytes(2)}
    for filename, mode in (("a.tar", "w"), ("a.tar.gz", "w:gz"), ("a.tgz", "w:gz")):
        images, file_format = parse_upload(tar_of(members, mode), filename)
        assert file_format == ("tar" if mode == "w" else "tar.gz")
        assert images.classes == ["cat", "dog"] and images.y.tolist() == [1, 0]


def test_labels_csv_with_integers_or_without_labels() -> None:
    numbered, _ = parse_upload(zip_of({"labels.csv": b"file,label\na.png,3\nb.png,0\n", "a.png": image_bytes(1),
                                       "b.png": image_bytes(2)}), "a.zip")
    assert numbered.classes is None and numbered.y.tolist() == [3, 0]
    listed, _ = parse_upload(zip_of({"labels.csv": b"file\nb.png\n", "b.png": image_bytes(2)}), "a.zip")
    assert listed.y is None and listed.n == 1


def _zip_with(name: str, data: bytes) -> bytes:
    return zip_of({"cat/ok.png": image_bytes(), name: data})


IMAGE_REFUSALS = {
    "corrupt png": (zip_of({"cat/bad.png": corrupt_png()}), "a.zip", "cat/bad.png is not a readable"),
    "truncated png": (zip_of({"cat/t.png": image_bytes(size=(40, 40))[:60]}), "a.zip", "not a readable"),
    "not an image": (_zip_with("cat/x.png", b"hello"), "a.zip", "cat/x.png is not a readable"),
    "gif": (_zip_with("cat/x.gif", b"GIF89a"), "a.zip", "only PNG and JPEG"),
    "no images": (zip_of({"notes.md": b"hi"}), "a.zip", "no PNG or JPEG images"),
    "npz named zip": (zip_of({"x.npy": b"\x93NUMPY"}), "a.zip", "with the .npz extension"),
    "nested zip": (_zip_with("cat/inner.zip", zip_of({"a.png": image_bytes()})), "a.zip", "nested archives"),
    "nested tar.gz": (_zip_with("more.tar.gz", b"x"), "a.zip", "nested archives"),
    "traversal": (_zip_with("../evil.png", image_bytes()), "a.zip", "path traversal"),
    "absolute": (tar_of({"/etc/evil.png": image_bytes()}), "a.tar", "absolute"),
    "symlink": (tar_of({"cat/a.png": image_bytes()}, links={"cat/b.png": "/etc/passwd"}), "a.tar", "link"),
    "mixed layout": (zip_of({"cat/a.png": image_bytes(), "b.png": image_bytes(1)}), "a.zip", "class folders"),
    "labels.csv names missing": (zip_of({"labels.csv": b"file,label\na.png,x\ngone.png,y\n", "a.png": image_bytes()}),
                                 "a.zip", "gone.png"),
    "labels.csv misses an image": (zip_of({"labels.csv": b"file,label\na.png,x\n", "a.png": image_bytes(),
                                           "b.png": image_bytes(1)}), "a.zip", "not in labels.csv"),
    "labels.csv twice": (zip_of({"labels.csv": b"file\na.png\na.png\n", "a.png": image_bytes()}), "a.zip",
                         "more than once"),
    "labels.csv no file column": (zip_of({"labels.csv": b"name,label\na.png,x\n", "a.png": image_bytes()}),
                                  "a.zip", "'file' column"),
    "labels.csv empty label": (zip_of({"labels.csv": b"file,label\na.png,\n", "a.png": image_bytes()}), "a.zip",
                               "empty label"),
    "not a zip": (b"PK\x03\x04 not really", "a.zip", "not a readable .zip"),
    "not a tar": (b"plain bytes" * 100, "a.tar", "not a readable .tar"),
}


@pytest.mark.parametrize("case", sorted(IMAGE_REFUSALS))
def test_image_refusals(case: str) -> None:
    data, filename, reason = IMAGE_REFUSALS[case]
    assert reason in refusal(Invalid, data, filename)


def test_image_over_the_pixel_limit_is_413_from_its_header() -> None:
    detail = refusal(TooLarge, zip_of({"cat/huge.png": png_claiming(10_000, 10_000)}), "a.zip")
    assert "LIFELONG_MAX_IMAGE_PIXELS" in detail and "10000×10000" in detail
    # Past Pillow's own bomb guard (2 × 89 M pixels) it refuses first; still a 413 naming the setting.
    assert "LIFELONG_MAX_IMAGE_PIXELS" in refusal(TooLarge, zip_of({"a.png": png_claiming(30_000, 30_000)}), "a.zip")
    small = UnpackLimits(max_image_pixels=20)
    assert "LIFELONG_MAX_IMAGE_PIXELS" in refusal(TooLarge, zip_of({"a.png": image_bytes(size=(5, 5))}), "a.zip", small)


def test_big_jpeg_is_checked_at_reduced_scale() -> None:
    assert verify_image("big.jpg", image_bytes(size=(2100, 2100), fmt="JPEG"), LIMITS) == "jpg"
    assert verify_image("named.png", image_bytes(fmt="JPEG"), LIMITS) == "jpg"  # the content decides


def test_zip_bomb_is_refused_by_its_declared_sizes() -> None:
    bomb = zeros_bomb()
    assert len(bomb) < (1 << 20)
    assert "compression ratio" in refusal(TooLarge, bomb, "a.zip")
    small = UnpackLimits(max_unpacked_bytes=1 << 20)
    assert "LIFELONG_MAX_UNPACKED_BYTES" in refusal(TooLarge, zip_of({"a.png": bytes(2 << 20)}, zipfile.ZIP_STORED),
                                                    "a.zip", small)


def test_tar_gz_bomb_is_refused_while_streaming() -> None:
    bomb = tar_of({"cat/zeros.png": bytes(64 << 20)}, "w:gz")
    assert len(bomb) < (1 << 20)
    assert "compression ratio" in refusal(TooLarge, bomb, "a.tar.gz")


def test_npz_bomb_is_refused_from_the_array_headers() -> None:
    detail = refusal(TooLarge, npz_claiming((1_000_000, 1000)), "a.npz")
    assert "LIFELONG_MAX_UNPACKED_BYTES" in detail and "[1000000, 1000]" in detail
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((512, 512)))
    with pytest.raises(TooLarge):
        parse_npz(buffer.getvalue(), UnpackLimits(max_unpacked_bytes=1 << 20))
    assert parse_npz(buffer.getvalue()).x.shape == (512, 512)


def test_duplicate_member_names_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("cat/a.png", image_bytes())
        archive.writestr("cat/a.png", image_bytes(1))
    with pytest.raises(Invalid, match="twice"):
        parse_image_archive(buffer.getvalue(), "zip", LIMITS)


def test_prepared_inline_data_describes_itself() -> None:
    arrays = prepare_data(session=None, ref=DataRef(inputs=[[1.0, 2.0]] * 3, labels=["b", "a", "b"]), purpose="train")
    described = (arrays.kind, arrays.n, arrays.input_shape, arrays.max_label, arrays.classes)
    assert described == ("array", 3, [2], 1, ["a", "b"])
    texts = prepare_data(session=None, ref=DataRef(texts=["x", "y"], labels=[0, 4]), purpose="eval")
    assert (texts.kind, texts.n, texts.input_shape, texts.max_label, texts.classes) == ("text", 2, [], 4, None)
    check_fits(prepared=texts, input_shape=[], labels=True, num_classes=5, kind="text")
    with pytest.raises(Invalid, match="eval: this is text data, and the model takes array data"):
        check_fits(prepared=texts, input_shape=[2], labels=False)
    with pytest.raises(TooLarge, match=r"train: texts\[0\].*LIFELONG_MAX_TEXT_CHARS"):
        prepare_data(session=None, ref=DataRef(texts=["long"]), purpose="train", limits=UnpackLimits(max_text_chars=2))


# --- the reader ----------------------------------------------------------------------------------


def _stored(store: LocalBlobStore, parsed: object, kind: str) -> SimpleNamespace:
    return SimpleNamespace(blob=store.put(_encode(parsed)), kind=kind, classes=getattr(parsed, "classes", None))


class _RemoteStore(LocalBlobStore):
    """A store without local paths, as an S3 one: the reader falls back to the blob's bytes."""

    def local_path(self, name: str) -> None:
        return None


@pytest.mark.parametrize("store_type", [LocalBlobStore, _RemoteStore])
def test_reader_gives_every_kind_back_in_chunks(tmp_path: Path, store_type: type[LocalBlobStore]) -> None:
    store = store_type(tmp_path)
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    arrays = open_dataset(store, _stored(store, Arrays(x, np.arange(10) % 2), "array"))
    chunks = list(arrays.chunks(4))
    assert arrays.kind == "array" and arrays.n == 10 and [len(items) for items, _ in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.stack([row for items, _ in chunks for row in items]), x)
    assert np.concatenate([y for _, y in chunks]).tolist() == (np.arange(10) % 2).tolist()

    texts = parse_inline_texts(["a", "b\nc", "d\u2028e"], ["x", "y", "x"], LIMITS)
    reader = open_dataset(store, _stored(store, texts, "text"))
    assert reader.n == 3 and reader.classes == ["x", "y"] and reader.labels.dtype == np.int64
    assert [(items, y.tolist()) for items, y in reader.chunks(2)] == [(["a", "b\nc"], [0, 1]), (["d\u2028e"], [0])]

    pictures = [image_bytes(1), image_bytes(2, fmt="JPEG"), image_bytes(3)]
    images, _ = parse_upload(zip_of({"dog/a.png": pictures[0], "cat/b.jpg": pictures[1], "dog/c.png": pictures[2]}),
                             "a.zip")
    reader = open_dataset(store, _stored(store, images, "image"))
    chunks = list(reader.chunks(2))
    assert reader.n == 3 and reader.classes == ["cat", "dog"] and reader.labels.tolist() == [0, 1, 1]
    assert [items for items, _ in chunks] == [[pictures[1], pictures[0]], [pictures[2]]]
    unlabeled = open_dataset(store, _stored(store, parse_inline_texts(["q"], None, LIMITS), "text"))
    assert unlabeled.labels is None and list(unlabeled.chunks(5)) == [(["q"], None)]
