"""Reading records out of files, each with the location an error message should name."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.errors import InputError, SourceLocation

MAX_RECORD_BYTES = 8 * 1024 * 1024
"""A single record larger than this is refused before it is parsed (a runaway line, not a problem)."""


@dataclass(frozen=True)
class RawRecord:
    """One record as found in its source, before any interpretation."""

    location: SourceLocation
    index: int
    data: dict[str, Any]


def _display(path: Path) -> str:
    return str(path)


def _no_records(source: str) -> InputError:
    # An empty file is almost always a mistake (a failed download, the wrong path); ingesting it
    # as "0 new" would hide that.
    return InputError(source, "the file holds no records")


def read_jsonl(path: Path) -> Iterator[RawRecord]:
    source = _display(path)
    index = 0
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            location = SourceLocation(source, line=line_number)
            if len(line) > MAX_RECORD_BYTES:
                raise InputError(location, f"record is {len(line):,} bytes; the limit is {MAX_RECORD_BYTES:,}")
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise InputError(location, f"malformed JSON: {error}") from None
            except (ValueError, RecursionError) as error:  # an integer of over 4,300 digits; nesting too deep
                raise InputError(location, f"unreadable JSON: {error}") from None
            if not isinstance(data, dict):
                raise InputError(location, f"expected a JSON object, found {type(data).__name__}")
            yield RawRecord(location, index, data)
            index += 1
    if index == 0:
        raise _no_records(source)


def read_json_records(path: Path, key: str | None = None) -> Iterator[RawRecord]:
    """Records from a JSON document: a top-level list, or the list under `key` (BIG-bench's "examples")."""
    source = _display(path)
    try:
        document = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise InputError(SourceLocation(source, line=error.lineno), f"malformed JSON: {error.msg}") from None
    except UnicodeDecodeError as error:
        raise InputError(source, f"not UTF-8 text: {error}") from None
    except (ValueError, RecursionError) as error:  # an integer of over 4,300 digits; nesting too deep
        raise InputError(source, f"unreadable JSON: {error}") from None
    records = document.get(key) if key is not None and isinstance(document, dict) else document
    if not isinstance(records, list):
        expected = f'an object with a list under "{key}"' if key else "a list of records"
        raise InputError(source, f"expected {expected}, found {type(document).__name__}")
    if not records:
        raise _no_records(source)
    for index, data in enumerate(records):
        location = SourceLocation(source, record=index)
        if not isinstance(data, dict):
            raise InputError(location, f"expected a JSON object, found {type(data).__name__}")
        yield RawRecord(location, index, data)


def read_csv(path: Path) -> Iterator[RawRecord]:
    source = _display(path)
    # utf-8-sig: a byte-order mark (Excel writes one) is dropped, not read into the first column's
    # name, as the JSON readers drop it.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            index = -1
            for index, row in enumerate(reader):
                location = SourceLocation(source, line=reader.line_num)
                if None in row:
                    raise InputError(location, f"more values than the {len(reader.fieldnames or [])} columns")
                yield RawRecord(location, index, {k: v for k, v in row.items() if v is not None})
            if index < 0:
                raise _no_records(source)
        except csv.Error as error:
            raise InputError(SourceLocation(source, line=reader.line_num), f"malformed CSV: {error}") from None
        except UnicodeDecodeError as error:
            raise InputError(source, f"not UTF-8 text: {error}") from None


def read_asdiv_xml(path: Path) -> Iterator[RawRecord]:
    """ASDiv's <Problem> elements as flat dicts (attributes and child texts)."""
    source = _display(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        line, _column = error.position
        raise InputError(SourceLocation(source, line=line), f"malformed XML: {error}") from None
    index = -1
    for index, element in enumerate(root.iter("Problem")):
        data: dict[str, Any] = dict(element.attrib)
        for child in element:
            data[child.tag] = (child.text or "").strip()
            data.update({f"{child.tag}.{k}": v for k, v in child.attrib.items()})
        location = SourceLocation(source, record=index, record_id=data.get("ID"))
        yield RawRecord(location, index, data)
    if index < 0:
        raise _no_records(source)
