"""The declared format of every file the suite reads or merges, checked at the edge, before any work.

* reading: only regular files (a FIFO would block forever, a device never ends), text as UTF-8 with or
  without a BOM, YAML without aliases (no "billion laughs") or duplicate keys (no silently lowered floor),
  JSON without duplicate keys and nested at most ``MAX_DEPTH`` deep;
* structure: one pydantic model per format -- thresholds YAML, baseline JSON, results JSON, benchmark
  JSON -- and one line grammar per text format (label files, calibration lists);
* errors: always :class:`FormatError`, one line naming the file, the field path and what was expected.

The readers (``thresholds.py``, ``predictions.py``, ``reports/load.py``, ``data/``) keep turning the
validated documents into their own objects; nothing here knows what the numbers mean.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .constants import PRECISIONS
from .errors import FormatError, NotRegularFile

MAX_DEPTH = 64  # nesting of a JSON/YAML document; ours need 6
MAX_YAML_BYTES = 1 << 20  # a thresholds/card file is a few hundred bytes
MAX_SHOWN = 60  # characters of an offending value quoted in a message


def shown(value: Any) -> str:
    """A value quoted in a message: repr, cut short (a hostile value may be huge)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


# ----------------------------------------------------------------------------------------------
# Files: regular files only, text as UTF-8


def file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def open_regular(path: str | os.PathLike):
    """``path`` opened for binary reading, only if it is a regular file, without blocking on it: opened
    non-blocking (a FIFO named x.JPEG would otherwise wait forever), then checked on the open
    descriptor (no window for a swap between check and read).  OSError as from open(), or
    NotRegularFile."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: str | os.PathLike, source: str, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``, refusing anything but a regular file (``open_regular``)."""
    try:
        f = open_regular(path)
    except NotRegularFile as exc:
        raise FormatError(source, "", f"is {exc}, not a regular file; pass a regular file") from None
    except FileNotFoundError:
        raise FormatError(source, "", "not found") from None
    except OSError as exc:
        raise FormatError(source, "", f"cannot be opened ({exc.strerror}); check the path and its permissions") \
            from None
    with f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise FormatError(source, "", f"is larger than {max_bytes:,} bytes; this format is never that large")
    return data


_OTHER_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
               (b"\xfe\xff", "UTF-16"))


def decode_text(data: bytes, source: str) -> str:
    """UTF-8, with or without a BOM (which is dropped); anything else is one error saying where."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise FormatError(source, "", f"is {encoding} text; save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(source, f"line {line}", f"byte 0x{data[exc.start]:02x} is not UTF-8 (Latin-1 or another "
                          "encoding?); save the file as UTF-8") from None


def read_text(path: str | os.PathLike, source: str, max_bytes: int | None = None) -> str:
    return decode_text(read_regular_file(path, source, max_bytes), source)


# ----------------------------------------------------------------------------------------------
# YAML: safe, no aliases, no duplicate keys


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (their expansion is how a 500-byte file becomes gigabytes) and
    duplicate keys (the last one would silently win)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, "aliases (*name) are not allowed; write the value "
                                                    "out", event.start_mark)
        if self.depth > MAX_DEPTH:  # counted by our override below
            raise yaml.constructor.ConstructorError(None, None, f"nested more than {MAX_DEPTH} deep",
                                                    self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key (a list): construct_mapping says so below
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {shown(key)}; keep one",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_StrictLoader.depth = 0


def load_yaml(path: str | os.PathLike, source: str) -> Any:
    text = read_text(path, source, MAX_YAML_BYTES)
    loader = None
    try:
        loader = _StrictLoader(text)  # its reader already refuses control characters
        loader.depth = 0
        return loader.get_single_data()
    except yaml.reader.ReaderError as exc:
        raise FormatError(source, f"character {exc.position + 1}", f"not valid YAML: character "
                          f"{exc.character!r} is not allowed in YAML text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FormatError(source, at, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise FormatError(source, "", f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    finally:
        if loader is not None:
            loader.dispose()


# ----------------------------------------------------------------------------------------------
# JSON: no duplicate keys, bounded depth


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    document = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {shown(key)}")
        document[key] = value
    return document


def _too_deep(document: Any) -> bool:
    """Whether anything sits more than MAX_DEPTH levels deep (the document itself is level 1).
    Iterative (a recursive walk is what a deep document would crash), and only containers are
    visited: a container at level MAX_DEPTH with anything in it is already too deep, so the
    scalars -- nearly all of a 50,000-image baseline -- need no visit of their own."""
    stack = [(document, 1)] if isinstance(document, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth >= MAX_DEPTH and value:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def load_json(path: str | os.PathLike, source: str) -> Any:
    text = read_text(path, source)
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise FormatError(source, "", f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        raise FormatError(source, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}") from None
    except ValueError as exc:  # a duplicate key
        raise FormatError(source, "", f"{exc}; keep one") from None
    if _too_deep(document):
        raise FormatError(source, "", f"nested too deeply (more than {MAX_DEPTH} levels)")
    return document


# ----------------------------------------------------------------------------------------------
# Structure: pydantic models; each field says what it expects (``described``)


def described(kind, expected: str):
    """``kind`` with the words an error uses for it."""
    return Annotated[kind, Field(description=expected)]


def optional(kind):
    """A ``described`` kind that may also be null, in the same words."""
    base, *constraints, words = get_args(kind)
    return described(Union[Annotated[(base, *constraints)] if constraints else base, None], words.description)


class _Strict(BaseModel):
    """A closed mapping: no unknown keys, no coercion ('77' is not 77), no NaN or infinities."""
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    EXPECTED: ClassVar[str] = "a mapping"


class _Open(BaseModel):
    """A mapping whose known keys are checked; others (newer writers) are kept as they are."""
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)
    EXPECTED: ClassVar[str] = "a mapping"


Precision = described(Literal[PRECISIONS], f"a precision: {', '.join(PRECISIONS)}")
Percent = described(Annotated[float, Field(ge=0, le=100)], "a percentage between 0 and 100")
Count = described(Annotated[int, Field(ge=0)], "a whole number >= 0")
PositiveCount = described(Annotated[int, Field(gt=0)], "a positive whole number")
Fps = described(Annotated[float, Field(gt=0, lt=1e9)], "a positive finite FPS number")
Text = described(str, "a string")
Time = described(str, "an ISO 8601 time")
Finite = described(float, "a finite number")
Object = described(dict[str, Any], "an object")


# -- thresholds YAML (the card YAML will add fields: extend ThresholdsSchema) --------------------------


class TopKTarget(_Strict):
    EXPECTED: ClassVar[str] = "exactly {top1: <number>, top5: <number>}"
    top1: Percent
    top5: Percent


class ThresholdsSchema(_Strict):
    EXPECTED: ClassVar[str] = "a mapping of model, source, batch_size, accuracy, max_drop_vs_fp32, performance"
    model: Text = ""
    source: Text = ""
    batch_size: described(Annotated[int, Field(gt=0)], "a positive integer") = 32
    accuracy: described(Annotated[dict[Precision, TopKTarget], Field(min_length=1)],
                        f"a mapping of precisions ({', '.join(PRECISIONS)}) to {{top1, top5}} percent floors")
    max_drop_vs_fp32: described(dict[described(Literal["fp16", "int8"],
                                               "fp16 or int8 (fp32 is the reference)"), TopKTarget],
                                "a mapping of fp16/int8 to {top1: <points>, top5: <points>}") = {}
    performance: described(dict[Text, described(Annotated[dict[Precision, Fps], Field(min_length=1)],
                                                "a mapping of precisions to FPS floors")],
                           "a mapping of device names to {precision: fps}") = {}

    @model_validator(mode="before")
    @classmethod
    def _device_names_as_text(cls, document):
        # `4090:` is a device name YAML reads as a number
        if isinstance(document, dict) and isinstance(document.get("performance"), dict):
            document = {**document, "performance": {
                str(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else k: v
                for k, v in document["performance"].items()}}
        return document


# -- baseline JSON (predictions.write_baseline) ------------------------------------------------------


Label = described(Annotated[int, Field(ge=-1)], "a class index (-1 for a skipped image)")
ClassIndex = described(Annotated[int, Field(ge=0)], "a class index >= 0")


class BaselineEntry(_Open):
    EXPECTED: ClassVar[str] = "{graph_sha256, backend, device, images, labels, top5}"
    graph_sha256: Text = ""
    backend: Text = ""
    device: Text = ""
    images: described(list[Text], "a list of image names")
    labels: described(list[Label], "a list of class indices, one per image")
    top5: described(list[described(Annotated[list[ClassIndex], Field(min_length=5, max_length=5)],
                                   "a row of 5 class indices")], "a list of rows of 5 class indices")

    @model_validator(mode="after")
    def _lengths_agree(self):
        if len(self.labels) != len(self.images):
            raise ValueError(f"'labels' has {len(self.labels)} entries but 'images' {len(self.images)}; "
                             "one label per image")
        if len(self.top5) > len(self.images):
            raise ValueError(f"'top5' has {len(self.top5)} rows but 'images' only {len(self.images)}")
        if len(set(self.images)) != len(self.images):
            raise ValueError("an image is listed twice in 'images'")
        return self


class BaselineSchema(_Open):
    EXPECTED: ClassVar[str] = "a res2net_validate baseline {format, created, identity, precisions}"
    format: described(Literal["res2net_validate-baseline-v1"], "'res2net_validate-baseline-v1'")
    created: Text = "?"
    identity: described(dict[Text, Any], "a mapping (what identifies the run)") = {}
    precisions: described(dict[Precision, BaselineEntry], "a mapping of precisions to their predictions") = {}


# -- results JSON (--report-json) --------------------------------------------------------------------


class VerdictSchema(_Open):
    passed: described(Union[bool, None], "true or false") = None
    kind: optional(Text) = None
    metric: optional(Text) = None
    precision: optional(Text) = None
    measured: optional(Finite) = None
    threshold: optional(Finite) = None
    interval: described(Union[Annotated[list[Union[float, None]], Field(min_length=2, max_length=2)], None],
                        "[low, high], two finite numbers") = None
    p_value: described(Union[Annotated[float, Field(ge=0, le=1)], None], "a probability between 0 and 1") = None
    images: optional(Count) = None
    message: optional(Text) = None


class ClassLossSchema(_Open):
    EXPECTED: ClassVar[str] = "{class, label, lost, gained}"
    label: described(Union[str, int, None], "a class name") = None
    lost: Count = 0
    gained: Count = 0


class FidelitySchema(_Open):
    images: optional(Count) = None
    top1_agreement: optional(Percent) = None
    mean_cosine: described(Union[Annotated[float, Field(ge=-1, le=1)], None], "a cosine between -1 and 1") = None
    mean_kl: described(Union[Annotated[float, Field(ge=0)], None], "a finite number >= 0") = None
    classes_lost: described(Union[list[ClassLossSchema], None], "a list of {class, label, lost, gained}") = None


class RowSchema(_Open):
    EXPECTED: ClassVar[str] = "an object with a 'precision' string"
    precision: Text
    backend: optional(Text) = None
    device: optional(Text) = None
    batch_size: optional(PositiveCount) = None
    fps: optional(Fps) = None
    top1: optional(Percent) = None
    top5: optional(Percent) = None
    images: optional(Count) = None
    verdicts: described(list[VerdictSchema], "a list of verdicts") = []
    fidelity_vs_fp32: described(Union[FidelitySchema, None], "an object") = None


class ThresholdsRef(_Open):
    path: optional(Text) = None
    sha256: optional(Text) = None


class DatasetRef(_Open):
    fingerprint: optional(Text) = None
    sha256: optional(Text) = None
    images: optional(Count) = None


class RunSchema(_Open):
    timestamp: optional(Time) = None
    host: optional(Text) = None
    model_name: optional(Text) = None
    source: optional(Text) = None
    weights_sha256: optional(Text) = None
    thresholds: described(Union[ThresholdsRef, None], "an object {path, sha256, ...}") = None
    dataset: described(Union[DatasetRef, None], "an object {fingerprint, images, ...}") = None


class ResultsSchema(_Open):
    EXPECTED: ClassVar[str] = "a res2net_validate results JSON (an object with a 'rows' list, as --report-json writes)"
    model: optional(Text) = None
    run: described(Union[RunSchema, None], "an object") = None
    rows: described(list[RowSchema], "a list of rows")
    notes: described(Union[list[str], None], "a list of strings") = None


# -- benchmark JSON (pytest-benchmark --benchmark-json; only our entries are checked) -----------------


Seconds = described(Annotated[float, Field(ge=0, lt=1e6)], "a finite number of seconds >= 0")


class BenchmarkStats(_Open):
    EXPECTED: ClassVar[str] = "pytest-benchmark's stats {min, median, max, rounds, data, ...}"
    min: Seconds
    median: Seconds
    max: Seconds
    rounds: optional(Count) = None
    data: described(list[Seconds], "a list of seconds") = []


class OurExtraInfo(_Open):
    precision: Text
    device: optional(Text) = None
    backend: optional(Text) = None
    batch_size: optional(PositiveCount) = None
    fps: optional(Fps) = None
    trtexec_like: optional(Object) = None


class OurBenchmark(_Open):
    stats: described(BenchmarkStats, BenchmarkStats.EXPECTED)
    extra_info: OurExtraInfo


class BenchmarkSchema(_Open):
    EXPECTED: ClassVar[str] = "a pytest-benchmark JSON (an object with a 'benchmarks' list)"
    benchmarks: described(list[dict[str, Any]], "a list of benchmarks")
    datetime: optional(Time) = None
    machine_info: optional(Object) = None


def is_our_benchmark(entry: dict) -> bool:
    """Ours carry a precision in extra_info; another project's benchmarks in the same file are not checked."""
    info = entry.get("extra_info")
    return isinstance(info, dict) and "precision" in info


# ----------------------------------------------------------------------------------------------
# Validation and its one-line errors


def validate(schema: type[BaseModel], document: Any, source: str, prefix: str = "") -> BaseModel:
    """``document`` checked against ``schema``; the first problem as a FormatError."""
    if not isinstance(document, dict):
        raise FormatError(source, prefix, f"expected {schema.EXPECTED}, got {type(document).__name__}")
    try:
        return schema.model_validate(document)
    except ValidationError as exc:
        raise _format_error(schema, exc.errors(include_url=False)[0], source, prefix) from None
    except RecursionError:
        raise FormatError(source, prefix, f"nested too deeply (more than {MAX_DEPTH} levels)") from None


def _unwrap(kind):
    """The type inside Annotated[...] and Optional[...], with the description found on the way."""
    description = None
    while True:
        if get_origin(kind) is Annotated:
            for meta in get_args(kind)[1:]:
                description = description or getattr(meta, "description", None)
            kind = get_args(kind)[0]
        elif get_origin(kind) is Union and type(None) in get_args(kind):
            rest = [a for a in get_args(kind) if a is not type(None)]
            if len(rest) != 1:
                return kind, description
            kind = rest[0]
        else:
            return kind, description


def _is_model(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _walk(schema, loc) -> tuple[list[str], list[str | None]]:
    """Display path segments and what each level expects, following ``loc`` through the types."""
    kind, segments, expected = schema, [], []
    for position, item in enumerate(loc):
        kind, description = _unwrap(kind)
        if loc[position + 1:position + 2] == ("[key]",) and get_origin(kind) is dict:  # the key itself is wrong
            _, key_description = _unwrap(get_args(kind)[0])
            return segments + [f".{item}", "[key]"], expected + [key_description]
        if isinstance(item, int):
            segments.append(f"[{item}]")
            kind = get_args(kind)[0] if get_origin(kind) in (list, tuple) and get_args(kind) else None
        elif _is_model(kind) and item in kind.model_fields:
            info = kind.model_fields[item]
            segments.append(f".{item}")
            kind = Annotated.__class_getitem__((info.annotation, *info.metadata)) if info.metadata else info.annotation
            if info.description:
                kind = Annotated[kind, Field(description=info.description)]
        elif get_origin(kind) is dict:
            segments.append(f".{item}")
            kind = get_args(kind)[1]
        else:
            segments.append(f".{item}")
            kind = None
        inner, description = _unwrap(kind)
        expected.append(description or (inner.EXPECTED if _is_model(inner) else None))
    return segments, expected


def _join(prefix: str, segments: list[str]) -> str:
    return (prefix + "".join(segments)).lstrip(".")


def _format_error(schema, error: dict, source: str, prefix: str) -> FormatError:
    loc, kind = tuple(error["loc"]), error["type"]
    segments, expected = _walk(schema, loc)
    if segments and segments[-1] == "[key]":
        return FormatError(source, _join(prefix, segments[:-1]), f"this key is not allowed here; "
                           f"expected {expected[-1] or 'another key'}")
    if kind in ("missing", "extra_forbidden"):
        parent = _join(prefix, segments[:-1]) or "top level"
        what = expected[-2] if len(expected) > 1 else schema.EXPECTED
        problem = f"'{loc[-1]}' is missing" if kind == "missing" else f"unknown key '{loc[-1]}'"
        return FormatError(source, parent, f"{problem}; expected {what}")
    path = _join(prefix, segments) or "top level"
    what = next((e for e in reversed(expected) if e), None) if expected else schema.EXPECTED
    if kind == "value_error":  # a model's own check: its message says it all
        return FormatError(source, path, str(error.get("ctx", {}).get("error") or error["msg"]))
    got = error.get("input")
    if isinstance(got, float) and not math.isfinite(got):
        got_text = str(got)
    elif isinstance(got, (dict, list)) and len(repr(got)) > MAX_SHOWN:
        got_text = f"a {type(got).__name__} of {len(got)}"
    else:
        got_text = shown(got)
    return FormatError(source, path, f"expected {what or error['msg']}, got {got_text}")


# ----------------------------------------------------------------------------------------------
# Line formats: label files and calibration lists


LABEL_TEXT = re.compile(r"[0-9]{1,4}")  # int() would also take '5_0', '+5', ' 5', '٥'


def parse_class_index(text: str, source: str, field: str, low: int, high: int, what: str) -> int:
    """A class index written as plain ASCII digits, in [low, high]."""
    if not LABEL_TEXT.fullmatch(text):
        raise FormatError(source, field, f"{what} {shown(text)} is not an integer written in plain digits "
                          f"({low}..{high})")
    value = int(text)
    if not low <= value <= high:
        raise FormatError(source, field, f"{what} {value} is outside {low}..{high}")
    return value


def image_list_names(text: str, source: str) -> list[str]:
    """A calibration list: one image name per line, ``#`` comments, blank lines ignored; each name once,
    relative (no absolute path, no ``..``), so it stays inside the folder it is looked up in."""
    names: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise FormatError(source, f"line {number}", f"{shown(name)} leaves the image folder (absolute path or "
                              "'..'); list names relative to --calib-dir, or point --calib-dir at a folder that "
                              "holds them")
        if name in first_line:
            raise FormatError(source, f"line {number}", f"{shown(name)} is already listed on line "
                              f"{first_line[name]}; list each image once")
        first_line[name] = number
        names.append(name)
    return names
