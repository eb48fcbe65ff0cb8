"""--report-dir and --junitxml through real pytest runs: the plugin's collector, pytest-benchmark's JSON, junitxml."""

from __future__ import annotations

import json
import os
import re
import stat
import xml.etree.ElementTree as ET

import pytest
from conftest import run_in_process

RECORDING_TESTS = '''
import pytest
from res2net_validate.plugin.fixtures import record_result

ACCURACY = {"fp32": (94.14, 100.0), "fp16": (93.75, 99.61)}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_accuracy(request, precision):
    top1, top5 = ACCURACY[precision]
    record_result(request, {
        "precision": precision, "backend": "onnxruntime", "batch_size": 4, "top1": top1, "top5": top5,
        "images": 256, "device": "CPU (test box)",
        "verdicts": [{"kind": "absolute", "precision": precision, "metric": "top1", "measured": top1,
                      "interval": [top1 - 2.5, top1 + 1.5], "threshold": 85.0, "passed": True, "message": "floor met"},
                     {"kind": "relative_to_fp32", "precision": precision, "metric": "top1", "measured": -0.39,
                      "interval": [-1.2, 0.4], "threshold": 1.0, "passed": True, "message": "drop within 1 point"}]})


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_fps(request, benchmark, precision):
    benchmark.extra_info.update({"precision": precision, "backend": "onnxruntime", "batch_size": 4,
                                 "device": "CPU (test box)"})
    benchmark.pedantic(sum, args=(range(20000),), rounds=7, iterations=1)
    fps = 4 / benchmark.stats.stats.median
    benchmark.extra_info["fps"] = round(fps, 2)
    record_result(request, {"precision": precision, "backend": "onnxruntime", "batch_size": 4, "fps": fps,
                            "device": "CPU (test box)"})
'''


@pytest.fixture
def recording(native_libraries, pytester, monkeypatch):
    for name in ("RES2NET_REPORT_DIR", "RES2NET_REPORT_JSON"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_recording=RECORDING_TESTS)
    return pytester


def test_report_dir_writes_the_merged_report_with_the_benchmark_rounds(recording):
    pytest.importorskip("matplotlib")
    result = run_in_process(recording, "-p", "no:cacheprovider", "--report-dir=out")
    result.assert_outcomes(passed=4)
    out = recording.path / "out"
    result.stdout.fnmatch_lines(["results JSON: out/benchmark.res2net.json", "report: out/report.md",
                                 "report: out/report.html"])
    benchmarks = json.loads((out / "benchmark.json").read_text())["benchmarks"]
    assert all(len(b["stats"]["data"]) == 7 for b in benchmarks)  # the rounds the latency plot draws
    fps = {r["precision"]: r["fps"] for r in json.loads((out / "benchmark.res2net.json").read_text())["rows"]}
    markdown = (out / "report.md").read_text()
    card = re.findall(r"^\| Res2Net50 \| 4 \| (FP\d+) \| onnxruntime \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| 256 \|",
                      markdown, re.M)
    assert card == [("FP32", f"{fps['fp32']:.2f}", "94.14", "100.00"), ("FP16", f"{fps['fp16']:.2f}", "93.75", "99.61")]
    latency = re.findall(r"^\| CPU \(test box\) \| (FP\d+) \| onnxruntime \| 4 \| 7 \| ([\d.]+) \| ([\d.]+) \|",
                         markdown, re.M)
    medians = {b["extra_info"]["precision"]: b["stats"]["median"] * 1000 for b in benchmarks}
    assert [(p, float(median)) for p, _, median in latency] == [
        (p, pytest.approx(medians[p.lower()], abs=0.0006)) for p in ("FP32", "FP16")]
    verdicts = re.findall(r"^\| pass \| (FP\d+) \| absolute \| top1 \| ([\d.]+) \| "
                          r"\[([\d.]+), ([\d.]+)\] \| 85.00 \|", markdown, re.M)
    assert verdicts == [("FP32", "94.14", "91.64", "95.64"), ("FP16", "93.75", "91.25", "95.25")]
    page = (out / "report.html").read_text()
    # FPS, latency, Top-1/Top-5: one run (no history), no FP32 agreement recorded
    assert page.count('src="data:image/png;base64,') == 3
    # every file readable alike (a merge or upload step may run as another user): 0666 less the umask
    umask = os.umask(0)
    os.umask(umask)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in out.iterdir()}
    assert modes == dict.fromkeys(["benchmark.json", "benchmark.res2net.json", "report.md", "report.html"],
                                  0o666 & ~umask)


def test_junitxml_carries_each_tests_numbers_as_properties(recording):
    result = run_in_process(recording, "-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=4)
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(recording.path / "junit.xml").iter("testcase")}
    assert {k: v for k, v in cases["test_accuracy[fp16]"].items() if k != "res2net_result"} == {
        "top1": "93.75", "top5": "99.61", "images": "256", "top1_interval": "[91.25, 95.25]",
        "top1_relative_to_fp32_interval": "[-1.20, 0.40]"}
    fps_properties = cases["test_fps[fp32]"]
    assert set(fps_properties) == {"res2net_result", "fps"} and float(fps_properties["fps"]) > 0


# The same results recorded as the typed records and as the dicts the fixtures built before them.
TYPED_OR_DICT_TESTS = '''
import os

from res2net_validate.plugin.fixtures import record_result
from res2net_validate.plugin.records import AccuracyRecord, PerformanceRecord, VerdictRecord
from res2net_validate.verdicts import Multiplicity, check_floor

RUN = {"model_name": "res2net50_14w_8s", "dataset": {"population": 50000}}
FIDELITY = {"images": 256, "top1_agreement": 99.22}


def test_records(request):
    verdict = check_floor("fp16", "top1", 240, 256, 50000, 85.0, Multiplicity(0.05))
    if os.environ["RECORDS"] == "typed":
        records = [
            AccuracyRecord("fp16", "onnxruntime", 4, 93.75, 99.61, 256, "CPU (test box)", RUN, seconds=1.234,
                           skipped_images=1, fidelity=FIDELITY, notes=("note a", "note b"), baseline={"top5": []}),
            VerdictRecord("fp16", "onnxruntime", (verdict,)),
            PerformanceRecord("fp16", "onnxruntime", 4, 1234.5678, "CPU (test box)", ("note a",)),
        ]
    else:
        records = [
            {"precision": "fp16", "backend": "onnxruntime", "batch_size": 4, "top1": 93.75, "top5": 99.61,
             "images": 256, "device": "CPU (test box)", "run": RUN,
             "extra": {"accuracy_seconds": 1.23, "skipped_images": 1, "fidelity_vs_fp32": FIDELITY},
             "notes": ["note a", "note b"], "baseline": {"top5": []}},
            {"precision": "fp16", "backend": "onnxruntime", "verdicts": [verdict.as_dict()]},
            {"precision": "fp16", "backend": "onnxruntime", "batch_size": 4, "fps": 1234.5678,
             "device": "CPU (test box)", "notes": ["note a"]},
        ]
    for record in records:
        record_result(request, record)
'''


@pytest.mark.usefixtures("native_libraries")
def test_typed_records_write_the_same_results_json_and_junit_properties_as_the_dicts(pytester, monkeypatch):
    for name in ("RES2NET_REPORT_DIR", "RES2NET_REPORT_JSON"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_records=TYPED_OR_DICT_TESTS)
    written = {}
    for kind in ("dict", "typed"):
        monkeypatch.setenv("RECORDS", kind)
        result = run_in_process(pytester, "-p", "no:cacheprovider", f"--junitxml={kind}.xml",
                                f"--report-json={kind}.json")
        result.assert_outcomes(passed=1)
        case = next(ET.parse(pytester.path / f"{kind}.xml").iter("testcase"))
        results = json.loads((pytester.path / f"{kind}.json").read_text())
        assert results["run"].pop("timestamp")  # the one thing that differs between the two runs
        written[kind] = ([(p.get("name"), p.get("value")) for p in case.iter("property")], results)
    assert written["typed"] == written["dict"]
    properties, results = written["typed"]
    assert [name for name, _ in properties] == ["res2net_result", "top1", "top5", "images",  # accuracy
                                                "res2net_result", "top1_interval",  # verdict
                                                "res2net_result", "fps"]  # performance
    assert properties[0][1].startswith("{'precision': 'fp16', 'backend': 'onnxruntime', 'batch_size': 4, "
                                       "'top1': 93.75, 'top5': 99.61, 'images': 256, 'device': 'CPU (test box)', "
                                       "'run': {")  # the record's text, in the dict's key order
    assert ("fps", "1234.57") in properties
    (row,) = results["rows"]
    assert row["accuracy_seconds"] == 1.23 and row["skipped_images"] == 1 and row["fps"] == 1234.5678
    assert row["verdicts"][0]["kind"] == "absolute" and results["notes"] == ["note a", "note b"]
