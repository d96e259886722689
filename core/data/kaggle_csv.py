"""Kaggle's CSV layouts, one reader and one writer:

- training: the 30 keypoint columns then ``Image`` (9,216 space-separated integers 0-255);
  a missing keypoint is an empty field.
- test: ``ImageId,Image``.
"""
from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from facekp.core.data.dataset import PIXELS, Dataset
from facekp.core.data.keypoints import COLUMNS, IMAGE_SIZE
from facekp.core.errors import DataError
from facekp.core.fileio import atomic_path, check_input_file

_SEPARATORS = (ord(" "), ord("\t"), ord("\r"), ord('"'))
_CHUNK_ROWS = 256


def read_kaggle_csv(path: str | Path, progress: Callable[[int, int], None] | None = None
                    ) -> Dataset:
    """Read Kaggle's training.csv or test.csv layout.

    A fast, strict parser: the file is read once as bytes, keypoint fields go through pandas,
    and the 9,216 pixel values of each row are tokenised with vectorised numpy over blocks of
    rows. Every problem raises :class:`DataError` naming the file, the 1-based row (as a
    spreadsheet shows it, header = row 1) and the column.
    """
    path = check_input_file(path, "CSV file")
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise DataError(path, "not a CSV text file (it holds binary data)")
    nl = data.find(b"\n")
    header_bytes = data[: nl if nl >= 0 else len(data)]
    try:
        header = header_bytes.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise DataError(path, "not a CSV text file (header is not UTF-8 text)", row=1) from None
    if not header:
        raise DataError(path, "no header row; expected Kaggle's columns ending in 'Image'", row=1)
    columns = [c.strip().strip('"') for c in header.split(",")]
    kp_columns = _check_header(path, columns)
    test_layout = kp_columns == ["ImageId"]

    rows, prefixes, img_starts, img_ends = [], [], [], []
    n_fields = len(kp_columns)
    pos, lineno, size = (nl + 1 if nl >= 0 else len(data)), 1, len(data)
    while pos < size:
        lineno += 1
        end = data.find(b"\n", pos)
        if end < 0:
            end = size
        e = end - 1 if end > pos and data[end - 1] == 13 else end
        if e > pos and not data[pos:e].isspace():
            comma = data.rfind(b",", pos, e)
            prefix = data[pos:comma] if comma >= 0 else b""
            if comma < 0 or prefix.count(b",") != n_fields - 1:
                found = data.count(b",", pos, e) + 1
                raise DataError(path, f"has {found} fields, expected {n_fields + 1} "
                                      f"({', '.join(kp_columns[:2])}, ..., Image)", row=lineno)
            rows.append(lineno)
            prefixes.append(prefix)
            img_starts.append(comma + 1)
            img_ends.append(e)
        pos = end + 1
    if not rows:
        raise DataError(path, "has a header but no data rows")
    row_numbers = np.asarray(rows)

    if test_layout:
        names = np.array([p.decode("utf-8", "replace").strip().strip('"') for p in prefixes])
        keypoints = np.full((len(rows), 30), np.nan, np.float32)
    else:
        keypoints = _parse_keypoints(path, prefixes, kp_columns, row_numbers)
        names = np.array([str(r - 1) for r in rows])
    images = _parse_images(path, data, img_starts, img_ends, row_numbers, progress)
    return Dataset.from_arrays(images, keypoints, names=names,
                               meta={"source": str(path), "layout": "test" if test_layout
                                     else "training"})


def _check_header(path: Path, columns: list[str]) -> list[str]:
    if "Image" not in columns:
        close = difflib.get_close_matches("Image", columns, n=1)
        hint = f" (is {close[0]!r} misspelled?)" if close else ""
        raise DataError(path, f"missing column 'Image'{hint}; expected Kaggle's layout: the 30 "
                              "keypoint columns then Image, or ImageId,Image", row=1,
                        column="Image")
    if columns[-1] != "Image":
        raise DataError(path, "'Image' must be the last column, as in Kaggle's files", row=1,
                        column="Image")
    others = columns[:-1]
    if others == ["ImageId"]:
        return others
    missing = [c for c in COLUMNS if c not in others]
    unknown = [c for c in others if c not in COLUMNS]
    if missing:
        c = missing[0]
        close = difflib.get_close_matches(c, unknown, n=1)
        hint = f" (is {close[0]!r} misspelled?)" if close else ""
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(path, f"missing column {c!r}{more}{hint}; expected the 30 Kaggle keypoint "
                              "columns then Image (or ImageId,Image)", row=1, column=c)
    if unknown:
        raise DataError(path, f"unexpected column {unknown[0]!r}; expected the 30 Kaggle keypoint "
                              "columns then Image", row=1, column=unknown[0])
    if len(set(others)) != len(others):
        dup = next(c for c in others if others.count(c) > 1)
        raise DataError(path, f"column {dup!r} appears twice", row=1, column=dup)
    return others


def _parse_keypoints(path: Path, prefixes: list[bytes], columns: list[str],
                     row_numbers: np.ndarray) -> np.ndarray:
    frame = pd.read_csv(io.BytesIO(b"\n".join(prefixes) + b"\n"), header=None, names=columns,
                        dtype=str, keep_default_na=False, skip_blank_lines=False,
                        engine="c")
    values = np.empty((len(prefixes), 30), np.float32)
    for col in columns:
        raw = frame[col].str.strip()
        nums = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
        bad = nums.isna() & (raw != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(path, f"{raw.iloc[i]!r} is not a number; expected a pixel coordinate "
                                  "0-96 or an empty field", row=int(row_numbers[i]), column=col)
        arr = nums.to_numpy(dtype=np.float64)
        out = ~np.isnan(arr) & ((arr < 0) | (arr > IMAGE_SIZE))
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise DataError(path, f"keypoint {arr[i]:g} lies outside 0-96",
                            row=int(row_numbers[i]), column=col)
        values[:, COLUMNS.index(col)] = arr
    return values


def _parse_images(path: Path, data: bytes, starts: list[int], ends: list[int],
                  row_numbers: np.ndarray, progress: Callable[[int, int], None] | None
                  ) -> np.ndarray:
    """Tokenise the Image fields of blocks of rows with vectorised numpy.

    Once a block is known to hold only digits and separators, bit 0x10 of a byte tells a
    digit (0x30-0x39) from a separator (space, tab, CR, quote: all below 0x30 with that bit
    clear) and its low four bits are the digit's value. Each number is read from the four
    bytes ending at its last digit, gathered at once as one unaligned little-endian uint32.
    """
    n = len(starts)
    out = np.empty((n, PIXELS), np.uint8)
    raw = np.frombuffer(data, np.uint8)
    starts_a = np.asarray(starts, np.int64)
    ends_a = np.asarray(ends, np.int64)
    pad = 3  # room to look three bytes back from the first token
    for a in range(0, n, _CHUNK_ROWS):
        b = min(n, a + _CHUNK_ROWS)
        s0 = starts_a[a]
        chunk = np.empty(ends_a[b - 1] - s0 + pad, np.uint8)
        chunk[:pad] = 32
        chunk[pad:] = raw[s0:ends_a[b - 1]]
        rel_starts = starts_a[a:b] - s0 + pad
        rel_ends = ends_a[a:b] - s0 + pad
        for i in range(b - a - 1):  # blank the keypoint fields of the rows in between
            chunk[rel_ends[i]:rel_starts[i + 1]] = 32
        digit = np.subtract(chunk, 48, dtype=np.uint8) < 10  # wraps below '0'
        n_digits = np.count_nonzero(digit)
        if n_digits + np.count_nonzero(chunk == 32) != len(chunk):  # other than digits, spaces
            valid = digit | np.isin(chunk, _SEPARATORS)
            if not valid.all():
                p = int(np.flatnonzero(~valid)[0])
                _bad_image_token(path, chunk, digit, p, rel_starts, rel_ends,
                                 row_numbers[a:b])
        last = np.empty_like(digit)
        np.greater(digit[:-1], digit[1:], out=last[:-1])  # a digit followed by a non-digit
        last[-1] = digit[-1]
        bounds = np.append(rel_starts, len(chunk))
        counts = np.array([np.count_nonzero(last[s:t]) for s, t in zip(bounds[:-1], bounds[1:])])
        if (counts != PIXELS).any():
            r = int(np.flatnonzero(counts != PIXELS)[0])
            raise DataError(path, f"Image has {counts[r]} values, expected {PIXELS} (96 x 96)",
                            row=int(row_numbers[a + r]), column="Image")
        value = _decode_numbers(path, chunk, digit, last, row_numbers[a:b])
        out[a:b] = value.reshape(b - a, PIXELS)
        if progress is not None:
            progress(b, n)
    return out.reshape(n, IMAGE_SIZE, IMAGE_SIZE)


def _decode_numbers(path: Path, chunk: np.ndarray, digit: np.ndarray, last: np.ndarray,
                    rows: np.ndarray) -> np.ndarray:
    """The value of every number in ``chunk`` (``last`` marks each one's last digit) as a
    flat array; a DataError naming the row for a number above 255."""
    # Unaligned uint32 at every byte offset: word i = bytes i .. i+3, little-endian, so
    # the word ending at a number's last digit has that digit in byte 3.
    words = np.ndarray((len(chunk) - 3,), dtype="<u4", buffer=chunk, strides=(1,))
    w = words[last[3:]]
    value = w >> 24
    value &= 0xF
    d1 = w >> 20  # digit flag of the byte before the last digit
    d1 &= 1
    x = w >> 16
    x &= 0xF
    x *= 10
    x *= d1
    value += x
    d2 = w >> 12  # ... and of the one before that, if the number reaches it
    d2 &= d1
    x = w >> 8
    x &= 0xF
    x *= 100
    x *= d2
    value += x
    w >>= 4  # four digits in a row
    w &= d2
    too_big = value > 255
    np.logical_or(too_big, w, out=too_big)
    if too_big.any():
        k = int(np.flatnonzero(too_big)[0])
        r = k // PIXELS
        p = int(np.flatnonzero(last)[k])
        q = p
        while q > 0 and digit[q - 1]:
            q -= 1
        while p + 1 < len(chunk) and digit[p + 1]:
            p += 1
        token = bytes(chunk[q:p + 1]).decode()
        raise DataError(path, f"Image value {token} (pixel {k % PIXELS + 1}) lies outside "
                              "0-255", row=int(rows[r]), column="Image")
    return value


def _bad_image_token(path: Path, chunk: np.ndarray, digit: np.ndarray, p: int,
                     rel_starts: np.ndarray, rel_ends: np.ndarray, rows: np.ndarray) -> None:
    """Raise the DataError for a byte at ``p`` that is neither a digit nor a separator."""
    r = int(np.searchsorted(rel_starts, p, side="right") - 1)
    seps = np.isin(chunk, _SEPARATORS)
    q, t = p, p
    while q > rel_starts[r] and not seps[q - 1]:
        q -= 1
    while t < rel_ends[r] and not seps[t]:
        t += 1
    token = bytes(chunk[q:t]).decode("utf-8", "replace")
    row_start = rel_starts[r]
    before = ~seps[row_start:q]  # non-separators before the bad token
    pixel = int(np.count_nonzero(before[1:] & ~before[:-1])) + int(before[:1].sum()) + 1
    where = f" (pixel {pixel})"
    try:
        number = float(token)
    except ValueError:
        number = None
    if number is not None and (number < 0 or number > 255):  # NaN is neither
        message = f"Image value {token}{where} lies outside 0-255"
    else:
        message = (f"Image holds {token!r}{where}, which is not a whole number; expected "
                   "9,216 numbers 0-255 separated by spaces")
    raise DataError(path, message, row=int(rows[r]), column="Image")


def write_kaggle_csv(dataset: Dataset, path: str | Path, layout: str | None = None) -> Path:
    """Write Kaggle's training layout (30 keypoints + Image) or test layout (ImageId,Image).

    ``layout`` defaults to 'test' when the dataset has no keypoints at all, else 'training'.
    Written atomically.
    """
    if dataset.keypoint_set.columns != COLUMNS:
        raise DataError(path, f"Kaggle CSV holds Kaggle's 15 keypoints (kaggle15); this dataset's "
                              f"set is {dataset.keypoint_set.name!r}: write .npz, or export "
                              "COCO, dlib XML or .pts")
    path = Path(path)
    if layout is None:
        layout = "test" if np.isnan(dataset.keypoints).all() and len(dataset) else "training"
    if layout not in ("training", "test"):
        raise ValueError(f"layout must be 'training' or 'test', got {layout!r}")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if layout == "test":
            fh.write(b"ImageId,Image\n")
            ids = [str(i + 1) for i in range(len(dataset))]
            prefixes = [i.encode() + b"," for i in ids]
        else:
            fh.write((",".join(COLUMNS) + ",Image\n").encode())
            prefixes = [(",".join("" if np.isnan(v) else format(float(v), ".10g") for v in row)
                         + ",").encode() for row in dataset.keypoints]
        flat = dataset.images.reshape(len(dataset), PIXELS)
        for a in range(0, len(dataset), _CHUNK_ROWS):
            block = _format_pixels(flat[a:a + _CHUNK_ROWS])
            for prefix, line in zip(prefixes[a:a + _CHUNK_ROWS], block):
                fh.write(prefix)
                fh.write(line)
    return path


def _format_pixels(block: np.ndarray) -> list[bytes]:
    """Rows of uint8 pixels -> b'v v v ...\\n' per row, vectorised (no per-value Python)."""
    v = block.astype(np.int32)
    chars = np.zeros(v.shape + (4,), np.uint8)
    chars[..., 0] = np.where(v >= 100, v // 100 + 48, 0)
    chars[..., 1] = np.where(v >= 10, (v // 10) % 10 + 48, 0)
    chars[..., 2] = v % 10 + 48
    chars[..., 3] = 32
    chars[:, -1, 3] = 10  # newline instead of the last space
    out = []
    for row in chars.reshape(len(block), -1):
        out.append(row[row != 0].tobytes())
    return out
