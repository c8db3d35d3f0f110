"""Vectorised reading of JSON Lines written in one known compact layout (SageMaker's capture and
ground-truth records): a file's lines become an Arrow array over one buffer, a line layout is checked
with one RE2 pass over all lines, and its fields are cut out by position where the layout fixes it,
else by splitting the lines at quotes. Arrow does all of it without holding the GIL.

A layout is strict: a line that matches it is valid JSON of that shape, and its fields are plain JSON
strings (no escapes), so the text between the quotes is the value. Lines that do not match (other
key orders, whitespace, escapes, blank or broken lines) are left to the caller's full JSON parser,
which decides whether they are records or quarantined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelwatch.tasks.capture import decompressed
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import filesystem_for

PLAIN = r'[^"\\\x00-\x1f]'  # a character a JSON string holds without an escape
# A JSON string, escapes allowed. \u escapes of surrogates are left to the full parser, which refuses
# lone ones; everything this accepts, orjson accepts.
STRING = (r'"' + PLAIN + r'*(?:\\(?:["\\/bfnrt]|u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))'
          + PLAIN + r'*)*"')
ASCII = r"[ !#-\[\]-~]"  # a printable ASCII character other than a quote or a backslash
FIELD = re.compile(r"<(\w+)>")
_BLOCK = 1 << 20  # bytes read, or scanned for newlines, at a time
TAIL_BYTES = 256  # holds SageMaker's eventMetadata and eventVersion with ids of 64 characters


def read_file(fs: fsspec.AbstractFileSystem, path: str) -> pa.Buffer:
    """A whole file in Arrow-owned memory, read in blocks. No Python bytes object of the whole file:
    freed, such big transients stay in the C allocator's arenas and the process keeps growing."""
    with fs.open(path, "rb") as handle:
        size = handle.size if isinstance(getattr(handle, "size", None), int) else fs.size(path)
        buffer = pa.allocate_buffer(size)
        view = memoryview(buffer).cast("B")
        done = 0
        while done < size:
            got = handle.readinto(view[done:done + _BLOCK])
            if not got:
                break
            done += got
    return buffer if done == size else buffer.slice(0, done)


def read_uri(uri: str) -> pa.Buffer:
    """read_file for a URI or local path, gunzipped when it is gzip; a missing file is a user error
    naming it, a broken gzip stream an UnreadableFile."""
    fs, path = filesystem_for(uri)
    try:
        data = read_file(fs, path)
    except FileNotFoundError:
        raise UserError(f"{uri}: no such file") from None
    if data.size >= 2 and data.slice(0, 2).to_pybytes() == b"\x1f\x8b":
        plain = decompressed(data.to_pybytes(), uri)
        buffer = pa.allocate_buffer(len(plain))
        memoryview(buffer).cast("B")[:] = plain
        return buffer
    return data


def _terminated(data: bytes | pa.Buffer) -> pa.Buffer:
    """The data in Arrow-owned memory ending with a newline (added after an unterminated last line).

    Arrow-owned rather than wrapping Python bytes: Arrow may release a Python-owned buffer from one
    of its own threads, which aborts an exiting interpreter (apache/arrow#34314).
    """
    size = len(data)
    last = data[-1:] if isinstance(data, bytes) else (data.slice(size - 1).to_pybytes() if size else b"")
    if isinstance(data, pa.Buffer) and last == b"\n":
        return data
    buffer = pa.allocate_buffer(size + (1 if size and last != b"\n" else 0))
    view = memoryview(buffer).cast("B")
    view[:size] = memoryview(data).cast("B")
    if len(buffer) > size:
        view[-1] = ord("\n")
    return buffer


def _line_ends(buffer: pa.Buffer) -> np.ndarray | None:
    """Offsets just past each newline, or None when the data holds a carriage return (whose line
    numbering, bytes.splitlines', this does not reproduce). Scanned in blocks: small temporaries."""
    data = np.frombuffer(buffer, np.uint8)
    ends = []
    for i in range(0, len(data), _BLOCK):
        block = data[i:i + _BLOCK]
        if (block == ord("\r")).any():
            return None
        ends.append(np.flatnonzero(block == ord("\n")) + (i + 1))
    return np.concatenate(ends).astype(np.int64) if ends else np.zeros(0, np.int64)


def arrow_lines(data: bytes | pa.Buffer) -> pa.LargeBinaryArray | None:
    """The lines of the data, each ending with its newline, over one Arrow buffer; None when the
    data holds a carriage return."""
    buffer = _terminated(data)
    ends = _line_ends(buffer)
    if ends is None:
        return None
    offsets = pa.array(np.concatenate([np.zeros(1, np.int64), ends]))
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends),
                                            [None, offsets.buffers()[1], buffer])


def as_text(lines: pa.LargeBinaryArray) -> pa.LargeStringArray | None:
    """The lines as UTF-8 text (no copy), or None when some line is not valid UTF-8."""
    try:
        return lines.cast(pa.large_string())
    except pa.ArrowInvalid:
        return None


def _total(parts: list[tuple[str | None, int | None]]) -> int | None:
    """The byte size of the parts, or None when one of them varies."""
    sizes = [size for _, size in parts]
    return None if None in sizes else sum(size or 0 for size in sizes)


@dataclass(frozen=True)
class Layout:
    """One compact line shape: `head`, a regex for the line's variable start, then `tail`, the rest
    of the line written out with <name> for each field. `fields` maps a name to the regex of its
    characters (PLAIN-only: a field never holds a quote or an escape), or to a width for a field of
    exactly that many ASCII characters, which lets the fields be cut by position."""

    head: str
    tail: str
    fields: dict[str, str | int] = field(default_factory=dict)

    @cached_property
    def pattern(self) -> str:
        parts = FIELD.split(self.tail)
        regex = "".join(re.escape(p) if i % 2 == 0 else self._characters(p) for i, p in enumerate(parts))
        return f"^{self.head}{regex}\n$"

    def _characters(self, name: str) -> str:
        spec = self.fields[name]
        return f"{ASCII}{{{spec}}}" if isinstance(spec, int) else spec

    @cached_property
    def bounds(self) -> dict[str, tuple[int, int]]:
        """Byte bounds (start, stop; negative counts from the line's end) of the fields whose place
        the layout fixes: only fixed-width parts before them, or after them."""
        # The line's parts as (field name, or None for text; byte size, or None where it varies).
        parts: list[tuple[str | None, int | None]] = [(None, None)] if self.head else []
        for i, part in enumerate(FIELD.split(self.tail)):
            spec = self.fields[part] if i % 2 else len(part.encode())
            parts.append((part if i % 2 else None, spec if isinstance(spec, int) else None))
        parts.append((None, 1))  # the newline
        bounds = {}
        for k, (name, size) in enumerate(parts):
            ahead, behind = _total(parts[:k]), _total(parts[k + 1:])
            start = stop = None
            if ahead is not None:
                start = ahead
            elif behind is not None and size is not None:
                start = -(behind + size)
            if behind is not None:
                stop = -behind
            elif ahead is not None and size is not None:
                stop = ahead + size
            if name is not None and start is not None and stop is not None:
                bounds[name] = (start, stop)
        return bounds

    @cached_property
    def splits(self) -> int:
        return self.tail.count('"')

    @cached_property
    def pieces(self) -> dict[str, int]:
        """Each field's position among the line's pieces when split at its last `splits` quotes."""
        pieces = self.tail.rsplit('"', self.splits)
        return {name: pieces.index(f"<{name}>") for name in self.fields}

    def extract(self, text: pa.LargeStringArray) -> tuple[np.ndarray, dict[str, pa.Array]]:
        """Which lines have this layout (a boolean per line), and their fields (one value per
        matching line, in line order)."""
        matches = pc.match_substring_regex(text, self.pattern).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(matches)
        if len(rows) == 0:
            return matches, {name: pa.array([], pa.large_string()) for name in self.fields}
        chosen = text if len(rows) == len(text) else text.take(pa.array(rows))
        lines = chosen.cast(pa.large_binary())
        columns = {name: pc.binary_slice(lines, *place).cast(pa.large_string())
                   for name, place in self.bounds.items()}
        others = [name for name in self.fields if name not in columns]
        if others and self.head:  # a variable start: fields are counted from the end
            parts = self._tail_pieces(lines)
            columns |= {name: pc.list_element(parts, self.pieces[name]).cast(pa.large_string())
                        for name in others}
        elif others:
            columns |= {name: self._cut(chosen, self.pieces[name]) for name in others}
        return matches, {name: columns[name] for name in self.fields}

    def _tail_pieces(self, lines: pa.LargeBinaryArray) -> pa.ListArray:
        """The lines split at their last `splits` quotes. Only the lines' last TAIL_BYTES are split
        (a split copies what it splits); a line whose tail is longer leaves its window short of
        quotes, and then every line is split whole."""
        parts = pc.split_pattern(pc.binary_slice(lines, -TAIL_BYTES), '"', max_splits=self.splits,
                                 reverse=True)
        if pc.any(pc.less(pc.list_value_length(parts), self.splits + 1)).as_py():
            parts = pc.split_pattern(lines, '"', max_splits=self.splits, reverse=True)
        return parts

    def _cut(self, text: pa.LargeStringArray, index: int) -> pa.Array:
        """One field of a line without a variable start, split from whichever end is nearer (a
        split costs by the piece)."""
        if index + 1 <= self.splits - index + 1:
            return pc.list_element(pc.split_pattern(text, '"', max_splits=index + 1), index)
        return pc.list_element(pc.split_pattern(text, '"', max_splits=self.splits - index + 1,
                                                reverse=True), 1)


@dataclass
class LayoutMatch:
    """Lines of one file read by layout: `rows`, the 0-based indexes (ascending) of the lines a
    layout matched, with their fields; `rest`, the indexes of the lines left to the full parser."""

    rows: np.ndarray
    columns: dict[str, pa.Array]
    rest: np.ndarray


def match_layouts(text: pa.LargeStringArray, layouts: list[Layout]) -> LayoutMatch:
    """Try each layout on the lines the earlier ones did not match. Fields a layout lacks are null;
    rows come back in line order."""
    names = list(dict.fromkeys(name for layout in layouts for name in layout.fields))
    pending = np.arange(len(text))
    found_rows: list[np.ndarray] = []
    found: list[dict[str, pa.Array]] = []
    for layout in layouts:
        if len(pending) == 0:
            break
        subset = text if len(pending) == len(text) else text.take(pa.array(pending))
        matches, columns = layout.extract(subset)
        rows = pending[matches]
        if len(rows):
            found_rows.append(rows)
            found.append({n: columns.get(n, pa.nulls(len(rows), pa.large_string())) for n in names})
        pending = pending[~matches]
    if not found_rows:
        return LayoutMatch(np.zeros(0, np.int64), {n: pa.array([], pa.large_string()) for n in names},
                           pending)
    rows = np.concatenate(found_rows)
    columns = {n: pa.concat_arrays([f[n] for f in found]) for n in names}
    if len(found_rows) > 1:  # several layouts in one file: back to line order
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        columns = {n: c.take(pa.array(order)) for n, c in columns.items()}
    return LayoutMatch(rows, columns, pending)
