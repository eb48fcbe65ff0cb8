"""Issue 18's fuzz suite: every reader of a user-supplied file, fed any bytes and any YAML/JSON document,
either loads it or raises the project's own ValidateError with a one-line, bounded message -- never
another exception, never a hang.

The example budget is fixed and the search derandomized, so CI runs the same examples each time and
stays fast (100 examples per test, 11 tests: about 5 s on a 2-core Xeon).  Raise ``FUZZ_EXAMPLES`` locally to
search harder.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")  # the dev extra
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from res2net_validate.errors import ValidateError  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("RES2NET_FUZZ_EXAMPLES", "100"))
MAX_MESSAGE = 1000  # characters: the errors' own bound is 600, other ValidateErrors list a few names
FUZZ = settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=timedelta(seconds=5), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

pytestmark = pytest.mark.timeout(300)

SCRATCH = Path(tempfile.gettempdir())  # replaced by a fresh folder for this module's run


@pytest.fixture(scope="module", autouse=True)
def scratch_folder():
    """One folder for the examples' files (hypothesis runs many examples per test: no tmp_path per example)."""
    import shutil

    global SCRATCH
    SCRATCH = Path(tempfile.mkdtemp(prefix="res2net-fuzz-"))
    yield SCRATCH
    shutil.rmtree(SCRATCH, ignore_errors=True)


def loads_or_fails_cleanly(read, path: Path):
    """The property: ``read(path)`` returns, or raises ValidateError with one bounded line."""
    try:
        return read(path)
    except ValidateError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) <= MAX_MESSAGE, message
        return None


def write(name: str, content: bytes | str) -> Path:
    path = SCRATCH / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


# -- documents: anything JSON can hold, and documents shaped like ours with anything inside --------------

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=24)


def shaped(keys: dict) -> st.SearchStrategy:
    """Mappings with some of our keys, each holding either its usual kind of value or anything."""
    return st.fixed_dictionaries({}, optional={key: usual | values for key, usual in keys.items()})


precision = st.sampled_from(["fp32", "fp16", "int8", "bf16"])
verdict = shaped({"passed": st.booleans(), "kind": st.text(max_size=6), "metric": st.sampled_from(["top1", "fps"]),
                  "measured": st.floats(), "interval": st.lists(st.floats() | st.none(), max_size=3),
                  "threshold": st.floats(), "p_value": st.floats(), "images": st.integers(), "message": st.text()})
row = st.builds(lambda extra, p: {**extra, "precision": p}, shaped({
    "device": st.text(max_size=12), "backend": st.text(max_size=6), "batch_size": st.integers(-1, 64),
    "fps": st.floats(), "top1": st.floats(), "top5": st.floats(), "images": st.integers(-1, 10**6),
    "verdicts": st.lists(verdict, max_size=3),
    "fidelity_vs_fp32": shaped({"top1_agreement": st.floats(), "images": st.integers(),
                                "classes_lost": st.lists(shaped({"label": st.text(), "lost": st.integers(),
                                                                 "gained": st.integers()}), max_size=3)})}),
    precision)
results_documents = shaped({"model": st.text(max_size=8), "notes": st.lists(st.text(), max_size=3),
                            "run": shaped({"timestamp": st.text(max_size=25), "host": st.text(max_size=8),
                                           "thresholds": shaped({"path": st.text(), "sha256": st.text()}),
                                           "dataset": shaped({"fingerprint": st.text(), "images": st.integers()})}),
                            "rows": st.lists(row, max_size=3)})
benchmark_documents = shaped({"datetime": st.text(max_size=25), "machine_info": shaped({"node": st.text()}),
                              "benchmarks": st.lists(shaped({
                                  "stats": shaped({"min": st.floats(), "median": st.floats(), "max": st.floats(),
                                                   "data": st.lists(st.floats(), max_size=3)}),
                                  "extra_info": shaped({"precision": precision, "fps": st.floats(),
                                                        "device": st.text(max_size=8)})}), max_size=3)})
baseline_entry = shaped({"graph_sha256": st.text(max_size=4), "images": st.lists(st.text(max_size=4), max_size=3),
                         "labels": st.lists(st.integers(-2, 1001), max_size=3),
                         "top5": st.lists(st.lists(st.integers(-1, 1001), max_size=6), max_size=3)})
baseline_documents = st.builds(lambda extra: {"format": "res2net_validate-baseline-v1", **extra}, shaped({
    "created": st.text(max_size=8), "identity": values, "precisions": st.dictionaries(precision, baseline_entry,
                                                                                       max_size=2)}))
target = shaped({"top1": st.floats(), "top5": st.floats()})
thresholds_documents = shaped({"model": st.text(max_size=8), "batch_size": st.integers(-1, 64),
                               "accuracy": st.dictionaries(precision, target, max_size=3),
                               "max_drop_vs_fp32": st.dictionaries(precision, target, max_size=2),
                               "performance": st.dictionaries(st.text(max_size=6),
                                                              st.dictionaries(precision, st.floats(), max_size=2),
                                                              max_size=2)})


def json_text(document) -> str:
    return json.dumps(document)  # NaN and Infinity included, as Python writes them


# YAML made of YAML's own punctuation: anchors, aliases, tags, flow and block collections, keys twice.
yaml_text = st.lists(st.sampled_from(list("abc01.:-{}[],&*!?|>#'\"\n  \t%@`~")
                                     + ["fp16", "top1", "accuracy", "!!python/object", "<<", "&a ", "*a"]),
                     max_size=60).map("".join)


# -- the readers ---------------------------------------------------------------------------------------


def read_thresholds(path):
    from res2net_validate.thresholds import load_thresholds

    return load_thresholds(path)


def read_baseline(path):
    from res2net_validate.predictions import read_baseline as read

    baseline = read(path)
    for name in baseline.precisions:  # what the verdicts do with it later must not fail either
        baseline.predictions(name).correct("top5")
    return baseline


def read_results_and_render(path):
    """Load, merge and lay out report.md: a file the loader accepts must render."""
    from res2net_validate.reports import document, markdown
    from res2net_validate.reports.load import load_result_file
    from res2net_validate.reports.merge import merge

    return markdown.render(document.build(merge([load_result_file(path)]), 5.0, 0.5))


def read_benchmark(path):
    from res2net_validate.reports.load import load_benchmark_file

    return load_benchmark_file(path)


def read_calibration_list(path):
    from res2net_validate.data.selection import read_image_list

    return read_image_list(path)


JSON_READERS = {"baseline": (read_baseline, baseline_documents), "results": (read_results_and_render, results_documents),
                "benchmark": (read_benchmark, benchmark_documents)}


@pytest.mark.parametrize("reader", ["thresholds", "baseline", "results", "benchmark", "calibration-list"])
@FUZZ
@given(content=st.binary(max_size=300))
def test_any_bytes(reader, content):
    read = {"thresholds": read_thresholds, "calibration-list": read_calibration_list,
            **{name: pair[0] for name, pair in JSON_READERS.items()}}[reader]
    loads_or_fails_cleanly(read, write(f"bytes-{reader}", content))


@pytest.mark.parametrize("reader", sorted(JSON_READERS))
@FUZZ
@given(data=st.data())
def test_any_json_document_shaped_like_ours(reader, data):
    read, documents = JSON_READERS[reader]
    loads_or_fails_cleanly(read, write(f"doc-{reader}.json", json_text(data.draw(documents | values))))


@FUZZ
@given(document=thresholds_documents)
def test_any_thresholds_document(document):
    import yaml

    loads_or_fails_cleanly(read_thresholds, write("doc.yaml", yaml.safe_dump(document, allow_unicode=True)))


@FUZZ
@given(text=yaml_text)
def test_any_yaml_text(text):
    loads_or_fails_cleanly(read_thresholds, write("text.yaml", text))


@FUZZ
@given(text=st.text(max_size=200))
def test_any_label_file(text):
    """val_map.txt over a small real dataset: any text either labels it or is one clear error."""
    from res2net_validate.data.layouts import discover

    root = SCRATCH / "card"
    if not root.exists():
        from res2net_validate.data.sample import write_sample_dataset

        write_sample_dataset(root, 3, layout="card", size=(8, 8))
    (root / "val_map.txt").write_bytes(text.encode("utf-8", "surrogatepass"))
    loads_or_fails_cleanly(discover, root)
