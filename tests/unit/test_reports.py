"""The merged report: Markdown tables with the right numbers, the HTML's inline plots, refusal to mix kinds."""

from __future__ import annotations

import base64
import json
import re

import pytest

from res2net_validate.cli import main
from res2net_validate.errors import ValidateError
from res2net_validate.plugin.records import Report
from res2net_validate.reports import write_report

CPU = "CPU (AMD EPYC, onnxruntime)"
GPU = "NVIDIA H100 80GB HBM3"


def verdict(precision, metric, measured, interval, threshold, kind="absolute"):
    return {"kind": kind, "precision": precision, "metric": metric, "measured": measured, "interval": interval,
            "threshold": threshold, "images": 256, "population": 50000, "alpha": 0.05, "p_value": 0.001,
            "passed": measured >= threshold, "message": f"{metric} {measured} vs {threshold}"}


def results(timestamp, device=CPU, fps=(10.0, 8.0), top1=(94.14, 93.75), sha="a" * 64, fingerprint="f" * 64,
            host="box1", weights="c" * 64):
    rows = []
    for precision, speed, accuracy in zip(("fp32", "fp16"), fps, top1):
        row = {"precision": precision, "backend": "onnxruntime", "batch_size": 32, "fps": speed, "top1": accuracy,
               "top5": 100.0, "images": 256, "device": device,
               "verdicts": [verdict(precision, "top1", accuracy, [accuracy - 3, accuracy + 2], 85.0),
                            verdict(precision, "top5", 100.0, [98.6, 100.0], 95.0)]}
        if precision == "fp16":
            row["verdicts"].append(verdict("fp16", "top1", 0.39, [-1.2, 2.0], 1.0, kind="relative_to_fp32"))
            row["verdicts"][-1]["passed"] = True  # a drop within the allowance
            row["fidelity_vs_fp32"] = {"images": 256, "top1_agreement": 96.1, "mean_cosine": 0.99991,
                                       "mean_kl": 1.2e-4,
                                       "classes_lost": [{"class": c, "label": f"n0{c:07d}", "lost": 12 - c,
                                                         "gained": c % 3} for c in range(12)]}
        rows.append(row)
    return {"model": "Res2Net50",
            "run": {"timestamp": timestamp, "host": host,
                    "thresholds": {"path": "thresholds/embedded.yaml", "sha256": sha, "model": "res2net50_14w_8s",
                                   "batch_size": 32},
                    "dataset": {"fingerprint": fingerprint, "images": 320, "population": 320},
                    "model_name": "res2net50_14w_8s", "weights_sha256": weights, "source": "embedded default"},
            "rows": rows, "notes": ["a note"]}


def write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def rendered(text: str) -> str:
    """Markdown's backslash escapes resolved, as a renderer shows them (report.md escapes free text)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Each Markdown table under its nearest heading: a list of {column: cell}, escapes resolved."""
    found, heading, lines = {}, None, rendered(markdown).splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("| ") and index + 1 < len(lines) and lines[index + 1].startswith("|---"):
            header = [c.strip() for c in line.strip("|").split(" | ")]
            body = []
            index += 2
            while index < len(lines) and lines[index].startswith("| "):
                body.append(dict(zip(header, (c.strip() for c in lines[index].strip("|").split(" | ")))))
                index += 1
            found[heading] = body
            continue
        index += 1
    return found


IMG = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def two_nights_and_a_gpu(tmp_path):
    return [write(tmp_path / "night1.json", results("2026-11-29T01:00:00+00:00", fps=(10.0, 8.0))),
            write(tmp_path / "night2.json", results("2026-11-30T01:00:00+00:00", fps=(10.2, 6.0), top1=(94.14, 84.0))),
            write(tmp_path / "gpu.json", results("2026-11-30T01:05:00+00:00", device=GPU, fps=(900.0, 1500.0),
                                                 host="box2"))]


def test_two_nights_and_a_second_device_give_one_card_table_per_device_with_the_latest_numbers(tmp_path):
    written = write_report(two_nights_and_a_gpu(tmp_path), [], tmp_path / "out")
    found = tables(written.markdown.read_text())
    cpu, gpu = found[f"Res2Net50 card table: {CPU}"], found[f"Res2Net50 card table: {GPU}"]
    assert [(r["Precision"], r["FPS"], r["Top-1(%)"], r["Run"]) for r in cpu] == [
        ("FP32", "10.20", "94.14", "2026-11-30 01:00 box1"), ("FP16", "6.00", "84.00", "2026-11-30 01:00 box1")]
    assert [(r["Precision"], r["FPS"], r["Run"]) for r in gpu] == [
        ("FP32", "900.00", "2026-11-30 01:05 box2"), ("FP16", "1500.00", "2026-11-30 01:05 box2")]
    assert all(r["Model"] == "Res2Net50" and r["BatchSize"] == "32" and r["Images"] == "256" for r in cpu + gpu)
    runs = found["Runs: res2net50_14w_8s · thresholds embedded.yaml (sha256 aaaaaaaaaaaa) · dataset ffffffffffff, "
                 "320 images"]
    assert [r["File"] for r in runs] == [f"`{tmp_path / name}`" for name in ("night1.json", "night2.json", "gpu.json")]
    history = found["History"]
    assert [(r["Run"], r["FPS"]) for r in history if r["Device"] == CPU and r["Precision"] == "FP16"] == [
        ("2026-11-29 01:00 box1", "8.00"), ("2026-11-30 01:00 box1", "6.00")]


def test_failures_come_first_with_measured_value_interval_and_threshold(tmp_path):
    markdown = write_report(two_nights_and_a_gpu(tmp_path), [], tmp_path / "out").markdown.read_text()
    found = tables(markdown)
    cpu, gpu = found[f"Verdicts: {CPU}"], found[f"Verdicts: {GPU}"]
    # 2 precisions x top1/top5 + FP16's drop vs FP32, per device, latest run of each
    assert len(cpu) == len(gpu) == 5
    assert [(r["Check"], r["Measured"], r["Bounds"], r["Threshold"]) for r in gpu if r["Check"] != "absolute"] == [
        ("relative_to_fp32", "0.39", "[-1.20, 2.00]", "1.00")]
    first = cpu[0]
    assert (first["Result"], first["Precision"], first["Metric"], first["Measured"], first["Bounds"],
            first["Threshold"], first["Message"]) == (
        "FAIL", "FP16", "top1", "84.00", "[81.00, 86.00]", "85.00", "top1 84.0 vs 85.0")
    assert all(r["Result"] == "pass" for r in cpu[1:] + gpu)
    problems = markdown.split("### Failures and regressions")[1].split("###")[0]
    bullets = [line for line in problems.splitlines() if line.startswith("- ")]
    assert bullets[0].startswith(f"- **FAIL** top1 FP16 on {CPU} (onnxruntime): measured 84.00, interval "
                                 "[81.00, 86.00], threshold 85.00")
    assert f"- **REGRESSION** fps FP16 on {CPU} (onnxruntime): 8.00 → 6.00 (-25.0%) since 2026-11-30 01:00 box1" \
        in problems
    assert f"- **REGRESSION** top1 FP16 on {CPU} (onnxruntime): 93.75 → 84.00 (-9.75 points)" in problems
    assert "fps FP32" not in problems  # 10.0 -> 10.2 is no regression
    assert markdown.index("Failures and regressions") < markdown.index("card table")


def test_a_regression_says_since_when_and_a_recovery_is_not_one(tmp_path):
    nights = [(1, 100.0), (2, 101.0), (3, 80.0), (4, 79.0), (5, 81.0)]
    paths = [write(tmp_path / f"n{day}.json", results(f"2026-11-0{day}T01:00:00+00:00", fps=(fps, fps)))
             for day, fps in nights]
    markdown = write_report(paths, [], tmp_path / "out").markdown.read_text()
    assert (f"fps FP32 on {CPU} (onnxruntime): 101.00 → 81.00 (-19.8%) since 2026-11-03 01:00 box1; best was "
            "2026-11-02 01:00 box1, latest 2026-11-05 01:00 box1") in markdown
    recovered = paths[:4] + [write(tmp_path / "n5.json", results("2026-11-05T01:00:00+00:00", fps=(99.0, 99.0)))]
    markdown = write_report(recovered, [], tmp_path / "out2").markdown.read_text()
    assert "REGRESSION" not in markdown  # 99 is within 5% of the best, 101


def test_the_html_is_one_file_with_every_plot_inline(tmp_path):
    pytest.importorskip("matplotlib")
    written = write_report(two_nights_and_a_gpu(tmp_path), [], tmp_path / "out")
    page = written.html.read_text()
    images = IMG.findall(page)
    # FPS per device, Top-1/Top-5 with intervals, agreement with FP32, over time (no benchmark JSON: no latency)
    assert len(images) == 4
    assert all(base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n") for data in images)
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []  # nothing fetched
    assert f"<h3>Res2Net50 card table: {GPU}</h3>" in page and '<td class="n">1500.00</td>' in page
    assert '<td class="fail">FAIL</td>' in page


def test_one_run_draws_only_what_it_holds(tmp_path):
    pytest.importorskip("matplotlib")
    doc = results("2026-11-29T01:00:00+00:00")
    for row in doc["rows"]:
        row.pop("fidelity_vs_fp32", None)
        row["fps"] = None
    written = write_report([write(tmp_path / "accuracy-only.json", doc)], [], tmp_path / "out")
    assert len(IMG.findall(written.html.read_text())) == 1  # Top-1/Top-5 only: no FPS, no FP32 agreement, no history
    assert "History" not in written.markdown.read_text()


def test_runs_of_another_thresholds_file_get_their_own_section_never_one_table(tmp_path):
    paths = two_nights_and_a_gpu(tmp_path)
    paths.append(write(tmp_path / "strict.json", results("2026-11-30T03:00:00+00:00", sha="b" * 64, fps=(5.0, 4.0))))
    markdown = write_report(paths, [], tmp_path / "out").markdown.read_text()
    assert "**These runs are of 2 different kinds**" in markdown
    sections = markdown.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "res2net50_14w_8s · thresholds embedded.yaml (sha256 aaaaaaaaaaaa) · dataset ffffffffffff, 320 images",
        "res2net50_14w_8s · thresholds embedded.yaml (sha256 bbbbbbbbbbbb) · dataset ffffffffffff, 320 images"]
    first, second = (tables("## " + s) for s in sections)
    assert [r["FPS"] for r in first[f"Res2Net50 card table: {CPU}"]] == ["10.20", "6.00"]
    assert [r["FPS"] for r in second[f"Res2Net50 card table: {CPU}"]] == ["5.00", "4.00"]
    assert "REGRESSION" not in sections[1]  # 5 FPS is not compared with the other kind's 10


def test_one_kind_refuses_to_mix_and_names_the_files(tmp_path):
    paths = two_nights_and_a_gpu(tmp_path)[:1]
    paths.append(write(tmp_path / "other-data.json", results("2026-11-30T03:00:00+00:00", fingerprint="e" * 64)))
    with pytest.raises(ValidateError, match=r"2 different kinds .*night1\.json.*other-data\.json.*--one-kind"):
        write_report(paths, [], tmp_path / "out", one_kind=True)
    assert not (tmp_path / "out").exists()


def test_a_results_json_from_before_run_metadata_still_reports(tmp_path):
    report = Report()
    report.add({"precision": "fp16", "backend": "onnxruntime", "batch_size": 32, "top1": 94.1, "top5": 100.0,
                "images": 256, "device": CPU})
    report.add({"precision": "fp16", "backend": "onnxruntime", "fps": 7.25})
    report.write_json(tmp_path / "old.json")
    markdown = write_report([tmp_path / "old.json"], [], tmp_path / "out").markdown.read_text()
    assert "Res2Net50 · thresholds not recorded · dataset not recorded" in markdown
    (row,) = tables(markdown)[f"Res2Net50 card table: {CPU}"]
    assert (row["FPS"], row["Top-1(%)"], row["Run"]) == ("7.25", "94.10", "old.json")
    assert "No verdicts recorded in these files" in markdown


@pytest.mark.parametrize("content, message", [
    ("{not json", r"results file .*broken\.json: line 1, column 2: not valid JSON"),
    ('{"benchmarks": []}', r"broken\.json: this is a pytest-benchmark JSON; pass it with --benchmark-json"),
    ('{"rows": [{"precision": "fp16", "fps": "fast"}]}', r"broken\.json: rows\[0\]\.fps: expected a positive finite FPS number, got 'fast'"),
    ('[1, 2]', r"broken\.json: not a res2net_validate results JSON"),
])
def test_a_bad_results_file_is_one_error_naming_it(tmp_path, content, message):
    (tmp_path / "broken.json").write_text(content)
    with pytest.raises(ValidateError, match=message):
        write_report([tmp_path / "broken.json"], [], tmp_path / "out")


def test_the_markdown_report_needs_no_matplotlib(tmp_path, monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    written = write_report(two_nights_and_a_gpu(tmp_path), [], tmp_path / "out")
    assert written.html is None and "pip install 'res2net_validate[report]'" in written.skipped
    assert len(tables(written.markdown.read_text())[f"Res2Net50 card table: {GPU}"]) == 2


def test_the_report_command_prints_where_and_fails_in_one_line(tmp_path, capsys):
    paths = [str(p) for p in two_nights_and_a_gpu(tmp_path)]
    assert main(["report", *paths, f"--out={tmp_path / 'out'}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"report: {tmp_path / 'out' / 'report.md'}"
    assert main(["report", str(tmp_path / "absent.json"), f"--out={tmp_path / 'out'}"]) == 2
    assert capsys.readouterr().err.strip() == (f"res2net-validate report: error: results file "
                                               f"{tmp_path / 'absent.json'}: not found.")


def gpu_benchmark(path, with_rounds: bool):
    stats = {"min": 0.0331, "q1": 0.0340, "median": 0.0345, "q3": 0.0350, "max": 0.0402, "rounds": 20}
    if with_rounds:
        stats["data"] = [0.0331, 0.0345, 0.0402]
    doc = {"machine_info": {"node": "box2"}, "datetime": "2026-11-30T01:05:00+00:00", "benchmarks": [
        {"name": "test_fps[fp16]", "stats": stats,
         "extra_info": {"precision": "fp16", "device": GPU, "backend": "tensorrt", "batch_size": 32, "fps": 927.5,
                        "trtexec_like": {"compute_ms": {"count": 900, "mean": 33.1, "median": 33.0, "p90": 33.6,
                                                        "p95": 33.9, "p99": 34.7, "min": 32.8, "max": 36.0}}}},
        {"name": "unrelated", "stats": {"min": 1.0}, "extra_info": {}},  # another project's benchmark: skipped
    ]}
    return write(path, doc)


@pytest.mark.parametrize("with_rounds", [True, False], ids=["rounds", "stored-without-rounds"])
def test_gpu_latency_comes_from_the_benchmark_json_with_its_percentiles(tmp_path, with_rounds):
    pytest.importorskip("matplotlib")
    (tmp_path / "gpu").mkdir()
    doc = results("2026-11-30T01:05:00+00:00", device=GPU, fps=(500.0, 927.5), host="box2")
    for row in doc["rows"]:
        row["backend"] = "tensorrt"
    result = write(tmp_path / "gpu" / "results.json", doc)
    bench = gpu_benchmark(tmp_path / "gpu" / "benchmark.json", with_rounds)
    written = write_report([result], [bench], tmp_path / "out")
    (row,) = tables(written.markdown.read_text())["Latency per batch (pytest-benchmark)"]
    assert row == {"Device": GPU, "Precision": "FP16", "Backend": "tensorrt", "Batch": "32",
                   "Rounds": "3" if with_rounds else "20", "Min (ms)": "33.100", "Median (ms)": "34.500",
                   "Max (ms)": "40.200", "GPU p99 (ms)": "34.700"}
    # FPS, latency, Top-1/Top-5, agreement with FP32
    assert len(IMG.findall(written.html.read_text())) == 4


def test_a_benchmark_file_that_is_not_one_is_named(tmp_path):
    result = write(tmp_path / "r.json", results("2026-11-30T01:05:00+00:00"))
    with pytest.raises(ValidateError, match=r"benchmark file .*r\.json: not a pytest-benchmark JSON"):
        write_report([result], [result], tmp_path / "out")


def test_fps_reference_marks_come_from_the_runs_thresholds_file_else_from_the_card(tmp_path):
    from pathlib import Path

    from res2net_validate.reports.card import reference_fps

    thresholds = Path(__file__).resolve().parents[2] / "thresholds"
    custom = tmp_path / "lab.yaml"
    custom.write_text("batch_size: 16\naccuracy:\n  fp16: {top1: 70, top5: 90}\nperformance:\n  A100: {fp16: 4000}\n")
    assert reference_fps({"path": str(custom)}) == ("lab.yaml, batch 16", {"A100": {"fp16": 4000.0}})
    assert reference_fps({"path": str(thresholds / "res2net50.yaml")})[1] == {"MR-V100": {"fp16": 921.37,
                                                                                           "int8": 1933.74}}
    # no floors (embedded), unreadable, or not recorded: the card's own figures
    embedded = tmp_path / "embedded.yaml"  # a thresholds file without FPS floors, as the embedded ones are
    embedded.write_text("accuracy:\n  fp32: {top1: 91, top5: 98}\n")
    for recorded in ({"path": str(embedded)}, {"path": str(tmp_path / "gone.yaml")}, {}):
        assert reference_fps(recorded) == ("card, batch 32", {"MR-V100": {"fp16": 921.37, "int8": 1933.74}})


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_the_results_json_is_as_readable_as_the_reports_beside_it(tmp_path, umask):
    """A merge or upload step run as another user must read it: 0666 less the umask, like report.md."""
    import os
    import stat

    report = Report()
    report.add({"precision": "fp16", "backend": "onnxruntime", "batch_size": 4, "fps": 7.25, "device": CPU})
    previous = os.umask(umask)
    try:
        report.write_json(tmp_path / "out" / "results.json")
        written = write_report([tmp_path / "out" / "results.json"], [], tmp_path / "out")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "out").iterdir()}
    assert modes["results.json"] == modes[written.markdown.name] == 0o666 & ~umask
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]["fps"] == 7.25
    assert sorted(modes) == sorted(["results.json", "report.md"] + (["report.html"] if written.html else []))


def fps_only(timestamp, fps=(12.0, 9.0), sha="a" * 64, weights="c" * 64, host="box3", identity=True):
    """What `pytest -m performance` writes (keys as in a real run: tests/plugin/test_report_dir.py checks them):
    the model identity without dataset or preprocess, rows with FPS and its verdict only."""
    run = {"source": "embedded default (generated images, stand-in checkpoint)",
           "thresholds": {"path": "thresholds/embedded.yaml", "sha256": sha, "model": "res2net50_14w_8s",
                          "batch_size": 32},
           "model_name": "res2net50_14w_8s", "weights_sha256": weights} if identity else {}
    run.update({"timestamp": timestamp, "host": host, "cpu": "AMD EPYC", "alpha": 0.05, "batch_size": 32,
                "backend": "onnxruntime", "precisions": ["fp32", "fp16"]})
    rows = [{"precision": precision, "backend": "onnxruntime", "batch_size": 32, "fps": speed, "top1": None,
             "top5": None, "images": None, "device": CPU,
             "verdicts": [{"kind": "fps", "precision": precision, "metric": "fps", "measured": speed,
                           "interval": None, "threshold": None, "passed": True,
                           "message": f"{speed:.2f} FPS at batch 32: no FPS floor"}]}
            for precision, speed in zip(("fp32", "fp16"), fps)]
    return {"model": "Res2Net50", "run": run, "rows": rows, "notes": []}


def test_an_fps_only_run_shares_the_card_table_of_the_accuracy_run_of_its_model(tmp_path):
    """Separate CI jobs (-m accuracy, -m performance) merge into one section: FPS beside Top-1."""
    accuracy = results("2026-11-30T01:00:00+00:00", fps=(None, None))
    paths = [write(tmp_path / "accuracy.json", accuracy),
             write(tmp_path / "perf.json", fps_only("2026-11-30T01:30:00+00:00"))]
    markdown = write_report(paths, [], tmp_path / "out", one_kind=True).markdown.read_text()
    assert "different kinds" not in markdown
    assert markdown.count("\n## ") == 1 and "2 result file(s)" in markdown
    found = tables(markdown)
    assert [(r["Precision"], r["FPS"], r["Top-1(%)"], r["Run"]) for r in found[f"Res2Net50 card table: {CPU}"]] == [
        ("FP32", "12.00", "94.14", "2026-11-30 01:00 box1 (FPS: 2026-11-30 01:30 box3)"),
        ("FP16", "9.00", "93.75", "2026-11-30 01:00 box1 (FPS: 2026-11-30 01:30 box3)")]
    # each verdict stays with its run: the accuracy floors and the FPS check side by side
    checks = [(r["Precision"], r["Check"], r["Metric"]) for r in found[f"Verdicts: {CPU}"]]
    assert ("FP32", "fps", "fps") in checks and ("FP32", "absolute", "top1") in checks and len(checks) == 7
    # a check both jobs made (the precision proof) is the newer run's, named by its run
    proof = {"kind": "precision", "metric": "precision", "passed": True, "message": "all layers proven"}
    for doc, passed in ((accuracy, True), (json.loads(paths[1].read_text()), False)):
        doc["rows"][0]["verdicts"].append({**proof, "precision": "fp32", "passed": passed})
        write(paths[0] if doc is accuracy else paths[1], doc)
    markdown = write_report(paths, [], tmp_path / "out").markdown.read_text()
    proofs = [r["Result"] for r in tables(markdown)[f"Verdicts: {CPU}"] if r["Check"] == "precision"]
    assert proofs == ["FAIL"] and "(precision; run 2026-11-30 01:30 box3): all layers proven" in markdown
    # the accuracy run's newer numbers still win when the FPS run is the older one
    paths[1] = write(tmp_path / "perf.json", fps_only("2026-11-29T01:30:00+00:00", fps=(11.0, 7.0)))
    card = tables(write_report(paths, [], tmp_path / "out").markdown.read_text())[f"Res2Net50 card table: {CPU}"]
    assert [(r["FPS"], r["Top-1(%)"]) for r in card] == [("11.00", "94.14"), ("7.00", "93.75")]


def test_an_fps_only_run_joins_every_dataset_of_its_model_but_datasets_never_share_a_table(tmp_path):
    paths = [write(tmp_path / "full.json", results("2026-11-30T01:00:00+00:00", fps=(None, None))),
             write(tmp_path / "subset.json", results("2026-11-30T02:00:00+00:00", fps=(None, None),
                                                     fingerprint="e" * 64, top1=(90.0, 89.0))),
             write(tmp_path / "perf.json", fps_only("2026-11-30T03:00:00+00:00"))]
    markdown = write_report(paths, [], tmp_path / "out").markdown.read_text()
    assert "**These runs are of 2 different kinds**" in markdown and "3 result file(s)" in markdown
    sections = [tables("## " + s) for s in markdown.split("\n## ")[1:]]
    assert [[(r["FPS"], r["Top-1(%)"]) for r in section[f"Res2Net50 card table: {CPU}"]] for section in sections] == [
        [("12.00", "94.14"), ("9.00", "93.75")], [("12.00", "90.00"), ("9.00", "89.00")]]
    with pytest.raises(ValidateError, match="2 different kinds"):
        write_report(paths, [], tmp_path / "out", one_kind=True)


@pytest.mark.parametrize("other", [dict(weights="d" * 64), dict(sha="b" * 64), dict(identity=False)],
                         ids=["other-weights", "other-thresholds", "no-identity"])
def test_an_fps_only_run_of_other_weights_or_thresholds_keeps_its_own_section(tmp_path, other):
    paths = [write(tmp_path / "accuracy.json", results("2026-11-30T01:00:00+00:00", fps=(None, None))),
             write(tmp_path / "perf.json", fps_only("2026-11-30T01:30:00+00:00", **other))]
    markdown = write_report(paths, [], tmp_path / "out").markdown.read_text()
    assert "**These runs are of 2 different kinds**" in markdown
    titles = [s.splitlines()[0] for s in markdown.split("\n## ")[1:]]
    assert titles[1].endswith("· no images scored (FPS only)")
    assert titles[1].startswith("Res2Net50 · thresholds not recorded" if other.get("identity") is False else
                                "res2net50_14w_8s · thresholds embedded.yaml")
    first, second = (tables("## " + s)[f"Res2Net50 card table: {CPU}"] for s in markdown.split("\n## ")[1:])
    assert [r["FPS"] for r in first] == ["-", "-"] and [r["FPS"] for r in second] == ["12.00", "9.00"]


def drawn_figures(monkeypatch) -> dict:
    """Every figure the report draws, by plot function, inspected before it becomes a PNG."""
    from res2net_validate.reports import plots

    drawn, to_png, current = {}, plots._png, {}
    monkeypatch.setattr(plots, "_png", lambda figure: drawn.setdefault(current["name"], figure) and to_png(figure))
    for name in ("fps_by_device", "latency", "accuracy", "fidelity", "over_time"):
        original = getattr(plots, name)
        monkeypatch.setattr(plots, name, lambda kind, _f=original, _n=name: current.update(name=_n) or _f(kind))
    return drawn


@pytest.mark.parametrize("measured", ["accuracy-only", "fps-only", "both", "separate-jobs"])
def test_every_drawn_panel_has_a_legend_entry_per_series_and_no_empty_panel(tmp_path, monkeypatch, measured):
    """The README's nightly flows: accuracy alone, FPS alone, or both, two nights each, so history is drawn
    too; or one night's accuracy and FPS jobs, one point each: no history to draw."""
    pytest.importorskip("matplotlib")
    import warnings

    nights = []
    for day in (29, 30):
        doc = results(f"2026-11-{day}T01:00:00+00:00", fps=(None, None) if measured == "accuracy-only" else (10, 8))
        if measured == "fps-only" or (measured == "separate-jobs" and day == 30):
            doc = fps_only(f"2026-11-{day}T01:00:00+00:00", fps=(10.0 + day, 8.0))
        elif measured == "separate-jobs":
            doc = results(f"2026-11-{day}T01:00:00+00:00", fps=(None, None))
        nights.append(write(tmp_path / f"n{day}.json", doc))
    drawn = drawn_figures(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "No artists with labels found to put in legend"
        written = write_report(nights, [], tmp_path / "out")
    panels = {name: [(axes.get_title().split(" ")[0], sorted(t.get_text() for t in axes.get_legend().texts)
                      if axes.get_legend() else None) for axes in figure.axes] for name, figure in drawn.items()}
    from res2net_validate.reports.plots import _short

    fp32, fp16 = (_short(f"{CPU} {p} onnxruntime", 40) for p in ("FP32", "FP16"))  # as the legend shortens them
    over_time = {"accuracy-only": [("Top-1", [fp16, fp32])], "fps-only": [("FPS", [fp16, fp32])],
                 "both": [("FPS", [fp16, fp32]), ("Top-1", [fp16, fp32])], "separate-jobs": None}[measured]
    assert panels.get("over_time") == over_time
    if measured == "fps-only":
        assert "accuracy" not in panels and "fidelity" not in panels
    else:
        assert panels["accuracy"] == [("Top-1", [f"{CPU} (onnxruntime)"]), ("Top-5", [f"{CPU} (onnxruntime)"])]
    if measured == "accuracy-only":
        assert "fps_by_device" not in panels
    else:
        assert panels["fps_by_device"] == [("FPS", [f"{CPU} (onnxruntime)"])]
    assert len(IMG.findall(written.html.read_text())) == len(drawn)


def test_over_time_draws_one_line_per_batch_size(tmp_path, monkeypatch):
    """Series that differ only in batch size share device, precision and backend: each keeps its own line."""
    pytest.importorskip("matplotlib")
    paths = []
    for day in (29, 30):
        for batch in (1, 32):
            doc = results(f"2026-11-{day}T0{batch % 9}:00:00+00:00", fps=(10.0 + batch, 8.0 + batch))
            for row in doc["rows"]:
                row["batch_size"] = batch
            paths.append(write(tmp_path / f"n{day}-b{batch}.json", doc))
    drawn = drawn_figures(monkeypatch)
    write_report(paths, [], tmp_path / "out")
    for axes in drawn["over_time"].axes:
        assert len(axes.get_lines()) == 4, axes.get_title()  # FP32 and FP16, at batch 1 and 32
        assert sorted(t.get_text() for t in axes.get_legend().texts)[0].endswith("batch 1")
