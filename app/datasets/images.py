"""Image datasets: a `.zip` or `.tar` (`.tar.gz`, `.tgz`) of PNG and JPEG files, checked and re-packed.

Layouts, decided from the member names once the archive has been read:
- a `labels.csv` (columns `file` and optionally `label`; files relative to its folder) lists every
  image, in the dataset's order, labelled or not;
- otherwise images in folders are an ImageFolder (`cat/1.png`, `dog/x.jpg`: the first folder is
  the class; classes are the folder names, sorted) and images side by side are unlabeled. Folders
  wrapping everything (`export/cat/1.png`) are looked through, so `photos/1.png` alone is one class.

An upload is untrusted: names that climb out of the archive (`../x`, `/etc/x`), links, nested
archives, image types other than PNG and JPEG, corrupt images and images over
LIFELONG_MAX_IMAGE_PIXELS (read from the header, before decoding) are refused; archives expanding
past LIFELONG_MAX_UNPACKED_BYTES or at an absurd ratio are refused while they are read, before
they are expanded. `__MACOSX/`, hidden files and other files (a README) are skipped.

The stored form is a re-packed zip, not the upload: ZIP_STORED members `images/00000000.png`… (the
images are compressed already) and an `index.json` naming the members in the dataset's order with
their labels. Why re-pack: a worker then reads any image by name, with bounded memory, from one
format (a .tar.gz has no index and is read from its start), the skipped files are gone, the index
lives in the same blob as the images (the blob collector keeps exactly the blob a dataset row
names), and fixed member times make equal datasets equal bytes.
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, ImageChops, UnidentifiedImageError

from app.datasets.labels import Labels, labels_from_cells
from app.datasets.text import csv_records
from app.errors import Invalid, TooLarge
from app.limits import UnpackLimits

IMAGES_FORMAT = "lifelong-images/1"
INDEX_MEMBER = "index.json"
IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}
ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".npz", ".jar"}
OTHER_IMAGE_SUFFIXES = {".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".ico", ".svg",
                        ".ppm", ".pgm", ".pbm", ".jp2"}
# Images up to this many pixels are also decoded in full to find corrupt data; bigger ones are checked
# to their end in bounded memory: a PNG's data inflated a piece at a time, a JPEG decoded at a smaller scale.
FULL_DECODE_PIXELS = 1 << 22
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_TAR_HEADER_BYTES = 512


@dataclass(frozen=True)
class Images:
    blob: bytes  # the re-packed zip
    n: int
    y: np.ndarray | None  # int64 [n]
    classes: list[str] | None

    @property
    def max_label(self) -> int | None:
        return int(self.y.max()) if self.y is not None else None


@dataclass
class _Packing:
    """What reading the archive found: image paths with their member names, and a labels.csv."""

    out: zipfile.ZipFile
    members: dict[str, str] = field(default_factory=dict)  # image path in the upload → member in the blob
    labels_csv: tuple[str, bytes] | None = None  # (its folder, its bytes)
    saw_npy: bool = False


def parse_image_archive(data: bytes, file_format: str, limits: UnpackLimits) -> Images:
    """The checked, re-packed image dataset of a `zip` or `tar` (any compression) upload."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        packing = _Packing(out)
        for name, read in _archive_members(data, file_format, limits):
            _take_member(packing, name, read, limits)
        order, labels = _layout(packing)
        classes = labels.classes if labels is not None else None
        index = {"format": IMAGES_FORMAT, "n": len(order), "files": order,
                 "members": [packing.members[path] for path in order],
                 "labels": labels.y.tolist() if labels is not None else None, "classes": classes}
        out.writestr(zipfile.ZipInfo(INDEX_MEMBER, _FIXED_TIME), json.dumps(index))
    return Images(buffer.getvalue(), len(order), labels.y if labels is not None else None, classes)


def verify_image(name: str, data: bytes, limits: UnpackLimits) -> str:
    """`png` or `jpg`: the image's real type, once it is known to be whole and within the pixel limit.

    Every image is decoded to the end, in bounded memory: a PNG's image data is inflated a piece at a time
    and checked row by row (`_check_png_data`), and a JPEG is decoded at the scale that keeps it within
    FULL_DECODE_PIXELS, twice (`_check_jpeg_data`). Small images are also decoded in full, as a model will."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format, image.size
                if kind not in ("PNG", "JPEG"):
                    raise Invalid(f"{name} is a {kind} image; only PNG and JPEG images are taken")
                _check_pixels(name, width, height, limits)
                image.verify()
            if kind == "PNG":
                _check_png_data(name, data)
            else:
                _check_jpeg_data(name, data, width, height)
            if width * height <= FULL_DECODE_PIXELS:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
    except Image.DecompressionBombError as error:
        raise TooLarge(f"{name}: the image is larger than the limit of {limits.max_image_pixels} pixels"
                       f" (LIFELONG_MAX_IMAGE_PIXELS): {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, zlib.error) as error:
        raise Invalid(f"{name} is not a readable PNG or JPEG image (corrupt or truncated): {error}") from error
    return "png" if kind == "PNG" else "jpg"


# PNG color type → samples per pixel; Adam7's passes as (first column, first row, column step, row step).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_PIECE = 1 << 20


def _check_png_data(name: str, data: bytes) -> None:
    """What a decoder checks, without the decoded image: the IDAT chunks inflate (a piece at a time) as one
    whole zlib stream to at least the rows the header promises, each starting with a filter type 0–4.
    Chunk checksums were checked by `verify`; this catches what they cannot (a data chunk of garbage with a
    correct CRC, a stream that ends early), so memory stays one piece however large the image."""
    width, height, depth, color, interlace = struct.unpack(">IIBBxxB", data[16:29])
    if color not in _PNG_SAMPLES:
        raise Invalid(f"{name} is not a readable PNG image: unknown color type {color}")
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    rows = []  # (row count, bytes per row with its filter byte) per pass
    for x0, y0, dx, dy in passes:
        columns, count = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and count > 0:
            rows.append((count, -(-(columns * _PNG_SAMPLES[color] * depth) // 8) + 1))
    expected = sum(count * stride for count, stride in rows)
    inflate, produced = zlib.decompressobj(), 0
    for piece in _png_chunks(data, b"IDAT"):
        while piece and produced < expected:
            out = inflate.decompress(piece, _INFLATE_PIECE)
            _check_filters(name, out, produced, rows)
            produced += len(out)
            piece = inflate.unconsumed_tail
    if produced < expected:
        raise Invalid(f"{name} is not a readable PNG image (truncated): its image data holds {produced} of the"
                      f" {expected} bytes that {width}×{height} pixels need")


def _png_chunks(data: bytes, kind: bytes) -> Iterator[memoryview]:
    view, position = memoryview(data), 8
    while position + 8 <= len(data):
        length, = struct.unpack(">I", data[position:position + 4])
        if data[position + 4:position + 8] == kind:
            yield view[position + 8:position + 8 + length]
        position += 12 + length


def _check_filters(name: str, out: bytes, start: int, rows: list[tuple[int, int]]) -> None:
    """422 when a row of the inflated bytes `out` (at offset `start` of the image data) has no filter type 0–4."""
    if not out:
        return
    chunk, offset = np.frombuffer(out, dtype=np.uint8), 0
    for count, stride in rows:
        first = max(0, -(-(start - offset) // stride))
        last = min(count, (start + len(out) - offset + stride - 1) // stride)
        if first < last:
            positions = offset + np.arange(first, last, dtype=np.int64) * stride - start
            bad = chunk[positions] > 4
            if bad.any():
                raise Invalid(f"{name} is not a readable PNG image (corrupt data): a row has filter type"
                              f" {int(chunk[positions][bad][0])}, and PNG has types 0–4")
        offset += count * stride


# Bytes a truncated JPEG's decoder would read as image data in place of the data it lacks (never 0xFF:
# no marker); a whole JPEG's decoder has read all it needs before them and skips them.
_JPEG_PROBE = bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8))
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}


def _check_jpeg_data(name: str, data: bytes, width: int, height: int) -> None:
    """A JPEG cut short, with or without its end-of-image marker put back, is refused.

    libjpeg reads a scan that ends early as if the missing data were zeros, with a warning that Pillow does
    not pass on, so a truncated JPEG would decode "fine" (and train). So the image is decoded twice, the
    second time with `_JPEG_PROBE` inserted before its end-of-image marker: a whole image has decoded every
    block before reaching those bytes and gives the same pixels; a truncated one decodes them as its missing
    blocks and differs. Images over FULL_DECODE_PIXELS are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
    scaled IDCT, from the low-frequency coefficients), so memory stays within FULL_DECODE_PIXELS pixels."""
    end = _jpeg_end(data)
    if end is None:
        raise Invalid(f"{name} is not a readable JPEG image (truncated): it ends before its end-of-image marker")
    scale = next((s for s in (1, 2, 4) if width * height <= FULL_DECODE_PIXELS * s * s), 8)
    size = (max(1, -(-width // scale)), max(1, -(-height // scale)))
    whole = _decode_scaled(data, size)
    probed = _decode_scaled(data[:end] + _JPEG_PROBE + data[end:], size)
    if ImageChops.difference(whole, probed).getbbox() is not None:
        raise Invalid(f"{name} is not a readable JPEG image (truncated): its image data ends before its last"
                      " block, and the end-of-image marker follows early")


def _decode_scaled(data: bytes, size: tuple[int, int]) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.draft(image.mode, size)
        image.load()
        return image.copy() if image.mode in ("L", "RGB", "CMYK") else image.convert("RGB")


def _jpeg_end(data: bytes) -> int | None:
    """The offset of the end-of-image marker that ends the first image, walking the markers (segments by
    their lengths, scans up to the next marker); None when the file ends first."""
    position = 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:
            return None
        while position + 1 < len(data) and data[position + 1] == 0xFF:
            position += 1  # fill bytes before a marker
        if position + 2 > len(data):
            return None
        marker = data[position + 1]
        if marker == 0xD9:
            return position
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:
            found = _JPEG_MARKER.search(data, position)
            if found is None:
                return None
            position = found.start()
    return None


def _check_pixels(name: str, width: int, height: int, limits: UnpackLimits) -> None:
    if width * height > limits.max_image_pixels:
        raise TooLarge(f"{name}: the image is {width}×{height} = {width * height} pixels, more than the limit"
                       f" of {limits.max_image_pixels} (LIFELONG_MAX_IMAGE_PIXELS)")


def _take_member(packing: _Packing, name: str, read: Callable[[], bytes], limits: UnpackLimits) -> None:
    path = PurePosixPath(name)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        data = read()
        kind = verify_image(name, data, limits)
        member = f"images/{len(packing.members):08d}.{kind}"
        packing.out.writestr(zipfile.ZipInfo(member, _FIXED_TIME), data)
        packing.members[name] = member
    elif path.name.lower() == "labels.csv" and len(path.parts) <= 2:
        if packing.labels_csv is not None:
            raise Invalid(f"the archive has two labels.csv files: {packing.labels_csv[0] or '.'} and {name}")
        packing.labels_csv = (str(path.parent) if len(path.parts) == 2 else "", read())
    elif suffix in ARCHIVE_SUFFIXES or name.lower().endswith(".tar.gz"):
        raise Invalid(f"{name}: nested archives are refused; put the images themselves in the archive")
    elif suffix in OTHER_IMAGE_SUFFIXES:
        raise Invalid(f"{name}: {suffix} images are not taken; only PNG and JPEG images are")
    elif suffix == ".npy":
        packing.saw_npy = True


def _archive_members(data: bytes, file_format: str, limits: UnpackLimits) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(safe name, read) of each regular file worth looking at, with the expansion limits enforced."""
    if file_format == "zip":
        yield from _zip_members(data, limits)
    else:
        yield from _tar_members(data, limits)


def _zip_members(data: bytes, limits: UnpackLimits) -> Iterator[tuple[str, Callable[[], bytes]]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise Invalid(f"not a readable .zip archive: {error}") from error
    with archive:
        infos = archive.infolist()
        # Declared sizes first: a bomb is refused before a byte is inflated. zipfile stops a member
        # at its declared size (and fails its CRC), so the actual sizes cannot exceed these.
        limits.check_unpacked(sum(info.file_size for info in infos), len(data), "the archive")
        seen: set[str] = set()
        for info in infos:
            name = _safe_name(info.filename)
            if info.is_dir() or name is None:
                continue
            if name in seen:
                raise Invalid(f"the archive holds {name} twice")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise Invalid(f"{name} is encrypted; encrypted archives are refused")
            yield name, lambda info=info, name=name: _read_zip_member(archive, info, name)


def _read_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as error:
        raise Invalid(f"{name} cannot be read from the archive (corrupt, or an unsupported compression):"
                      f" {error}") from error


def _tar_members(data: bytes, limits: UnpackLimits) -> Iterator[tuple[str, Callable[[], bytes]]]:
    # A stream ("r|*"): members are read in order, one at a time, and the running total of what
    # has been expanded is checked member by member (a .tar.gz declares no total up front).
    unpacked = 0
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as archive:
            for member in archive:
                unpacked += _TAR_HEADER_BYTES + member.size
                limits.check_unpacked(unpacked, len(data), "the archive")
                name = _safe_name(member.name)
                if name is None or member.isdir():
                    continue
                if member.issym() or member.islnk():
                    raise Invalid(f"{name} is a link; links in archives are refused")
                if not member.isreg():
                    raise Invalid(f"{name} is not a regular file (a device or pipe) and is refused")
                if name in seen:
                    raise Invalid(f"the archive holds {name} twice")
                seen.add(name)
                yield name, lambda member=member: _read_tar_member(archive, member)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise Invalid(f"not a readable .tar archive (corrupt or truncated): {error}") from error


def _read_tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle is not None else b""


def _safe_name(raw: str) -> str | None:
    """The member's normalised path; None for what is skipped (folders, macOS extras, hidden files).
    A name that could land outside the archive's folder when extracted is refused."""
    if raw.startswith(("/", "\\")) or "\\" in raw or "\x00" in raw or (len(raw) > 1 and raw[1] == ":"):
        raise Invalid(f"unsafe member name {raw!r}: absolute paths and backslashes are refused")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Invalid(f"unsafe member name {raw!r}: '..' (path traversal) is refused")
    if not parts or parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
        return None
    return "/".join(parts)


def _layout(packing: _Packing) -> tuple[list[str], Labels | None]:
    """The images in the dataset's order, and their labels (None when unlabeled)."""
    paths = list(packing.members)
    if not paths:
        hint = " (an .npz of arrays must be uploaded with the .npz extension)" if packing.saw_npy else ""
        raise Invalid(f"the archive holds no PNG or JPEG images{hint}")
    if packing.labels_csv is not None:
        return _listed(packing.labels_csv, paths)
    parts = [path.split("/") for path in paths]
    while len({p[0] for p in parts}) == 1 and all(len(p) >= 3 for p in parts):
        parts = [p[1:] for p in parts]
    depths = {len(p) >= 2 for p in parts}
    if depths == {True, False}:
        flat = next(path for path, p in zip(paths, parts, strict=True) if len(p) == 1)
        nested = next(path for path, p in zip(paths, parts, strict=True) if len(p) >= 2)
        raise Invalid(f"some images are in class folders and some are not ({nested!r}, {flat!r}): put every"
                      " image in its class's folder, or list them in a labels.csv")
    if depths == {False}:
        return sorted(paths), None
    ordered = sorted(zip(paths, parts, strict=True), key=lambda item: (item[1][0], item[0]))
    return [path for path, _ in ordered], labels_from_folders([p[0] for _, p in ordered])


def labels_from_folders(folders: list[str]) -> Labels:
    classes = sorted(set(folders))
    index = {name: i for i, name in enumerate(classes)}
    return Labels(np.asarray([index[f] for f in folders], dtype=np.int64), classes)


def _listed(labels_csv: tuple[str, bytes], paths: list[str]) -> tuple[list[str], Labels | None]:
    folder, content = labels_csv
    try:
        records = csv_records(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, csv.Error) as error:
        raise Invalid(f"labels.csv is not a readable UTF-8 .csv file: {error}") from error
    header = [cell.strip().lower() for cell in records[0][1]] if records else []
    if "file" not in header:
        raise Invalid("labels.csv needs a header row with a 'file' column (and optionally 'label')")
    file_column, label_column = header.index("file"), header.index("label") if "label" in header else None
    prefix = f"{folder}/" if folder else ""
    order, cells = [], []
    for line, row in records[1:]:
        if len(row) != len(header):
            raise Invalid(f"labels.csv line {line} has {len(row)} columns, expected {len(header)}")
        order.append(prefix + "/".join(p for p in row[file_column].strip().split("/") if p not in ("", ".")))
        if label_column is not None:
            if not row[label_column].strip():
                raise Invalid(f"labels.csv line {line} has an empty label: label every file, or drop the column")
            cells.append(row[label_column])
    _check_listing(order, paths)
    labels = labels_from_cells(cells, source="labels.csv column 'label'") if label_column is not None else None
    return order, labels


def _check_listing(order: list[str], paths: list[str]) -> None:
    if not order:
        raise Invalid("labels.csv lists no files")
    known, listed = set(paths), set(order)
    missing = [name for name in order if name not in known]
    if missing:
        raise Invalid(f"labels.csv names {len(missing)} files that are not PNG or JPEG images in the archive:"
                      f" {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    if len(listed) != len(order):
        twice = next(name for name, count in Counter(order).items() if count > 1)
        raise Invalid(f"labels.csv lists {twice} more than once")
    unlisted = [name for name in paths if name not in listed]
    if unlisted:
        raise Invalid(f"{len(unlisted)} images are not in labels.csv: {', '.join(unlisted[:5])}"
                      f"{' …' if len(unlisted) > 5 else ''}; list every image")
