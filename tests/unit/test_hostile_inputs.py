"""Issue 18: hostile and malformed files end in one clear error (or a note), never a hang, a traceback or
a silent pass.  Each test names the issue's item it pins; each is time-boxed, because the failure it
guards against is a hang."""

from __future__ import annotations

import json
import re

import pytest

from res2net_validate.errors import FormatError, ValidateError

pytestmark = pytest.mark.timeout(60)

ONE_FLOOR = "accuracy:\n  fp16: {top1: 1, top5: 1}\n"


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and len(text) <= 600, text
    return text


# -- thresholds YAML -------------------------------------------------------------------------------


# Nine levels of nine aliases: 9**9 "lol"s once expanded.  The old reader accepted the anchors under
# `source` and hung formatting the expanded value into its accuracy.fp16 error.
BILLION_LAUGHS = "source:\n" + "\n".join(
    ["  - &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    + [f"  - &{name} [{', '.join(['*' + previous] * 9)}]" for previous, name in zip("abcdefgh", "bcdefghi")]
) + "\naccuracy: {fp16: {top1: *i}}\n"


@pytest.mark.timeout(10)
def test_item_1_a_billion_laughs_thresholds_file_is_refused_at_once(tmp_path):
    from res2net_validate.thresholds import load_thresholds

    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 600
    with pytest.raises(FormatError) as error:
        load_thresholds(path)
    assert re.fullmatch(rf"thresholds file {re.escape(str(path))}: line 3, column \d+: not valid YAML: aliases "
                        r"\(\*name\) are not allowed; write the value out", one_line(error))


def test_item_7_a_duplicate_key_in_the_thresholds_file_is_refused(tmp_path):
    from res2net_validate.thresholds import load_thresholds

    path = tmp_path / "twice.yaml"
    path.write_text("accuracy:\n  fp32: {top1: 78, top5: 93}\n  fp32: {top1: 1, top5: 1}\n")
    with pytest.raises(FormatError, match=re.escape(f"thresholds file {path}: line 3, column 3: not valid YAML: "
                                                    "duplicate key 'fp32'; keep one")):
        load_thresholds(path)


@pytest.mark.parametrize("floor", [".nan", ".inf", "-3", "0"])
def test_item_17_an_fps_floor_that_is_not_a_positive_finite_number_is_refused(tmp_path, floor):
    from res2net_validate.thresholds import load_thresholds

    path = tmp_path / "t.yaml"
    path.write_text(ONE_FLOOR + f"performance:\n  V100: {{fp16: {floor}}}\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}: performance.V100.fp16: expected a positive finite "
                                                    "FPS number, got")):
        load_thresholds(path)


@pytest.mark.parametrize("content, expected", [
    (b"accuracy:\n  fp16: {top1: 1, top5: 1}\nsource: caf\xe9\n", "line 3: byte 0xe9 is not UTF-8"),
    ("accuracy:\n  fp16: {top1: 1, top5: 1}\n".encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
])
def test_item_12_a_thresholds_file_in_another_encoding_is_one_error(tmp_path, content, expected):
    from res2net_validate.thresholds import load_thresholds

    path = tmp_path / "t.yaml"
    path.write_bytes(content)
    with pytest.raises(FormatError) as error:
        load_thresholds(path)
    assert one_line(error).startswith(f"thresholds file {path}: ") and expected in str(error.value)


def test_a_thresholds_file_with_a_bom_loads(tmp_path):
    from res2net_validate.thresholds import load_thresholds

    path = tmp_path / "t.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + ONE_FLOOR.encode())
    assert load_thresholds(path).accuracy["fp16"].top1 == 1.0


# -- baseline JSON ---------------------------------------------------------------------------------


def _baseline(**changes) -> dict:
    entry = {"graph_sha256": "g", "backend": "onnxruntime", "device": "CPU", "images": ["a.JPEG", "b.JPEG"],
             "labels": [1, 2], "top5": [[1, 0, 3, 4, 5], [2, 0, 3, 4, 5]]}
    document = {"format": "res2net_validate-baseline-v1", "created": "2025-01-01T00:00:00+00:00",
                "identity": {"dataset": {"fingerprint": "d"}}, "precisions": {"int8": entry}}
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = document
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return document


@pytest.mark.parametrize("changes, expected", [
    ({"precisions__int8__labels": KeyError}, "precisions.int8: 'labels' is missing; expected {graph_sha256, backend, "
                                             "device, images, labels, top5}"),
    ({"precisions__int8__top5": [[1, 0, 3, 4, 5], [2, 0]]}, "precisions.int8.top5[1]: expected a row of 5 class "
                                                            "indices, got [2, 0]"),
    ({"precisions__fp32": "string"}, "precisions.fp32: expected {graph_sha256, backend, device, images, labels, top5}, "
                                     "got 'string'"),
    ({"identity": [1, 2]}, "identity: expected a mapping (what identifies the run), got [1, 2]"),
    ({"precisions__int8__labels": [1]}, "precisions.int8: 'labels' has 1 entries but 'images' 2; one label per image"),
])
def test_item_13_a_malformed_baseline_is_one_error_at_load_time(tmp_path, changes, expected):
    from res2net_validate.predictions import read_baseline

    path = tmp_path / "base.json"
    path.write_text(json.dumps(_baseline(**changes)))
    with pytest.raises(FormatError) as error:
        read_baseline(path)
    assert one_line(error) == f"--compare-baseline {path}: {expected}"


def test_item_13_a_valid_baseline_still_loads_as_before(tmp_path):
    from res2net_validate.predictions import read_baseline

    path = tmp_path / "base.json"
    path.write_text(json.dumps(_baseline()))
    baseline = read_baseline(path)
    assert baseline.identity == {"dataset": {"fingerprint": "d"}}
    assert baseline.predictions("int8").correct("top1").tolist() == [True, True]


def test_item_13_a_malformed_baseline_stops_pytest_at_start_up(pytester, tmp_path):
    """Through the plugin's configure hook, in-process: the run ends before collection with the one line."""
    path = tmp_path / "base.json"
    path.write_text(json.dumps(_baseline(precisions__int8__labels=KeyError)))
    result = pytester.runpytest("--embedded", f"--compare-baseline={path}", "--co", "-p", "no:cacheprovider",
                                f"--checkpoints-dir={tmp_path / 'cache'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--compare-baseline {path}: precisions.int8: 'labels' is missing*"])


# -- results and benchmark JSON ------------------------------------------------------------------


def _results(row: dict | None = None, **top) -> dict:
    return {"model": "Res2Net50", "run": {"timestamp": "2025-01-01T00:00:00+00:00", "host": "ci"},
            "rows": [{"precision": "fp16", "backend": "onnxruntime", "device": "CPU", "fps": 10.0, "top1": 80.0,
                      "top5": 95.0, "images": 100, **(row or {})}], "notes": [], **top}


@pytest.mark.parametrize("document, expected", [
    (_results({"verdicts": ["passed"]}), "rows[0].verdicts[0]: expected a mapping, got 'passed'"),
    (_results({"verdicts": [{"measured": "77"}]}), "rows[0].verdicts[0].measured: expected a finite number, got '77'"),
    (_results(run={"thresholds": "t.yaml"}), "run.thresholds: expected an object {path, sha256, ...}, got 't.yaml'"),
    (_results({"fidelity_vs_fp32": {"top1_agreement": "99"}}),
     "rows[0].fidelity_vs_fp32.top1_agreement: expected a percentage between 0 and 100, got '99'"),
    (_results({"fidelity_vs_fp32": {"top1_agreement": 99.0, "classes_lost": [[1, 2]]}}),
     "rows[0].fidelity_vs_fp32.classes_lost[0]: expected {class, label, lost, gained}, got [1, 2]"),
    (_results({"top1": float("nan")}), "rows[0].top1: expected a percentage between 0 and 100, got nan"),
    (_results({"fps": -5.0}), "rows[0].fps: expected a positive finite FPS number, got -5.0"),
    (_results({"fps": 1e308}), "rows[0].fps: expected a positive finite FPS number, got 1e+308"),
    (_results({"images": -1}), "rows[0].images: expected a whole number >= 0, got -1"),
])
def test_items_11_14_a_results_file_with_wrong_nested_fields_is_one_error(tmp_path, document, expected):
    from res2net_validate.reports.load import load_result_file

    path = tmp_path / "r.json"
    path.write_text(json.dumps(document))
    with pytest.raises(FormatError) as error:
        load_result_file(path)
    assert one_line(error) == f"results file {path}: {expected}"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("reader", ["results", "benchmark", "baseline"])
def test_item_14_a_json_nested_10000_deep_is_one_error(tmp_path, reader):
    from res2net_validate.predictions import read_baseline
    from res2net_validate.reports.load import load_benchmark_file, load_result_file

    path = tmp_path / "deep.json"
    path.write_text('{"rows": ' + "[" * 10_000 + "]" * 10_000 + "}")
    read = {"results": load_result_file, "benchmark": load_benchmark_file, "baseline": read_baseline}[reader]
    with pytest.raises(FormatError, match=re.escape(f"{path}: nested too deeply (more than 64 levels)")):
        read(path)


def test_item_14_a_benchmark_entry_without_stats_is_one_error(tmp_path):
    from res2net_validate.reports.load import load_benchmark_file

    path = tmp_path / "b.json"
    path.write_text(json.dumps({"benchmarks": [{"name": "test_fps[fp16]", "stats": {},
                                                "extra_info": {"precision": "fp16", "fps": 5.0}}]}))
    with pytest.raises(FormatError) as error:
        load_benchmark_file(path)
    assert one_line(error) == (f"benchmark file {path}: benchmarks[0].stats: 'min' is missing; expected "
                               "pytest-benchmark's stats {min, median, max, rounds, data, ...}")


# -- datasets and image files --------------------------------------------------------------------


def _dataset(root, layout="imagefolder", count=4):
    from res2net_validate.data.sample import write_sample_dataset

    return write_sample_dataset(root, count, layout=layout, size=(40, 50))


@pytest.mark.timeout(20)
def test_item_2_a_fifo_named_like_an_image_is_refused_by_name(tmp_path):
    import os

    from res2net_validate.data.layouts import discover

    _dataset(tmp_path)
    fifo = next(tmp_path.glob("n*")) / "x.JPEG"
    os.mkfifo(fifo)
    with pytest.raises(ValidateError, match=re.escape(f"dataset file {fifo} is a FIFO (named pipe), not a regular "
                                                      "file; remove it")):
        discover(tmp_path)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("method", ["exact", "fast"])
def test_item_2_the_decoder_refuses_a_fifo_instead_of_waiting_on_it(tmp_path, method):
    import os

    from res2net_validate.data.preprocess import Preprocess
    from res2net_validate.errors import BadImageError

    fifo = tmp_path / "x.JPEG"
    os.mkfifo(fifo)
    with pytest.raises(BadImageError, match=re.escape(f"cannot decode image {fifo}: it is a FIFO (named pipe), not a "
                                                      "regular file. Replace or remove the file")):
        Preprocess(method=method).load_uint8(fifo)


def _jpeg_claiming(path, height: int, width: int):
    """A real 47-byte-scale JPEG whose frame header is rewritten to claim height x width."""
    from PIL import Image

    Image.new("RGB", (16, 16), (120, 30, 200)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.timeout(20)
@pytest.mark.parametrize("method", ["exact", "fast"])
@pytest.mark.parametrize("side", [30000, 60000])
def test_item_3_a_decompression_bomb_is_refused_on_both_paths_before_decoding(tmp_path, method, side):
    import resource

    from res2net_validate.data.preprocess import Preprocess
    from res2net_validate.errors import BadImageError

    bomb = _jpeg_claiming(tmp_path / "bomb.JPEG", side, side)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadImageError) as error:
        Preprocess(method=method).load_uint8(bomb)
    assert str(error.value).startswith(f"cannot decode image {bomb}: ")
    assert "decompression bomb" in str(error.value).lower()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500, f"peak RSS grew {grown_mib:.0f} MiB: the pixels were allocated"


@pytest.mark.parametrize("method", ["exact", "fast"])
def test_item_10_a_16_bit_png_is_refused_by_name_not_turned_white(tmp_path, method):
    import numpy as np
    from PIL import Image

    from res2net_validate.data.preprocess import Preprocess
    from res2net_validate.errors import BadImageError

    path = tmp_path / "deep.png"
    Image.fromarray(np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # really 16-bit, as PIL reads it
    with pytest.raises(BadImageError, match=re.escape(f"cannot decode image {path}: its pixels are ")
                       + r"I(;16)? \(16-bit or floating point\).*save it as 8-bit"):
        Preprocess(method=method).load_uint8(path)


def test_item_12_a_file_name_that_is_not_utf8_is_one_error(tmp_path):
    import os

    from res2net_validate.data.layouts import discover

    _dataset(tmp_path)
    folder = next(tmp_path.glob("n*"))
    bad = os.path.join(os.fsencode(folder), b"caf\xe9.JPEG")
    with open(bad, "wb") as f:
        f.write(next(folder.glob("*.JPEG")).read_bytes())
    with pytest.raises(ValidateError, match="its name is not valid UTF-8; rename it") as error:
        discover(tmp_path)
    assert "caf\\udce9.JPEG" in one_line(error)


@pytest.mark.parametrize("name", ["tab\there.JPEG", "new\nline.JPEG"])
def test_item_17_a_control_character_in_a_file_name_is_refused(tmp_path, name):
    from res2net_validate.data.layouts import discover

    _dataset(tmp_path)
    folder = next(tmp_path.glob("n*"))
    (folder / name).write_bytes(next(folder.glob("*.JPEG")).read_bytes())
    with pytest.raises(ValidateError, match="its name holds a control character"):
        discover(tmp_path)


def _card(tmp_path):
    pairs = _dataset(tmp_path, layout="card")
    return tmp_path / "val_map.txt", pairs


@pytest.mark.parametrize("encode, expected", [
    (lambda text: text.encode("utf-16"), "val_map.txt: is UTF-16 text; save it as UTF-8"),
    (lambda text: text.encode() + "# café\n".encode("latin-1"), "val_map.txt: line 5: byte 0xe9 is not UTF-8"),
])
def test_item_12_a_label_file_in_another_encoding_is_one_error(tmp_path, encode, expected):
    from res2net_validate.data.layouts import discover

    label_file, _ = _card(tmp_path)
    label_file.write_bytes(encode(label_file.read_text()))
    with pytest.raises(FormatError, match=re.escape(expected)):
        discover(tmp_path)


def test_item_17_a_label_file_with_a_bom_loads(tmp_path):
    from res2net_validate.data.layouts import discover

    label_file, pairs = _card(tmp_path)
    label_file.write_bytes(b"\xef\xbb\xbf" + label_file.read_bytes())
    assert [(image.name, image.label) for image in discover(tmp_path).images] == sorted(pairs)


def test_item_17_a_kaggle_csv_with_a_bom_loads(tmp_path):
    from res2net_validate.imagenet import canonical_wnids
    from res2net_validate.data.layouts import discover

    pairs = _dataset(tmp_path, layout="card-flat")
    (tmp_path / "val_map.txt").unlink()
    rows = "".join(f"{name.split('.')[0]},{canonical_wnids()[label]} 1 2 3 4\n" for name, label in pairs)
    (tmp_path / "LOC_val_solution.csv").write_bytes(b"\xef\xbb\xbf" + f"ImageId,PredictionString\n{rows}".encode())
    index = discover(tmp_path)
    assert index.layout.startswith("kaggle") and len(index.images) == len(pairs)


def test_item_11_a_label_with_an_underscore_is_not_read_as_a_number(tmp_path):
    from res2net_validate.data.layouts import discover

    label_file, _ = _card(tmp_path)
    lines = label_file.read_text().splitlines()
    name = lines[0].split("\t")[0]
    label_file.write_text("\n".join([f"{name}\t5_0", *lines[1:]]) + "\n")
    with pytest.raises(FormatError, match=re.escape("val_map.txt line 1: label '5_0' is not an integer written in "
                                                    "plain digits (0..999)")):
        discover(tmp_path)


def test_item_11_skipped_files_are_counted_in_a_note(tmp_path):
    from res2net_validate.data.layouts import discover

    _dataset(tmp_path)
    folder = next(tmp_path.glob("n*"))
    for name in ("a.gif", "b.gif", "readme.txt"):
        (folder / name).write_bytes(b"GIF89a")
    notes = discover(tmp_path).notes
    assert any(note.startswith("3 files skipped, not images by their suffix (2 .gif, 1 .txt)") for note in notes), notes


# -- calibration lists ---------------------------------------------------------------------------


@pytest.mark.parametrize("listed, expected", [
    ("../../x.JPEG", "line 2: '../../x.JPEG' leaves the image folder"),
    ("/etc/passwd", "line 2: '/etc/passwd' leaves the image folder"),
    ("a.JPEG", "line 2: 'a.JPEG' is already listed on line 1; list each image once"),
])
def test_items_4_11_a_calibration_list_stays_in_its_folder_and_names_each_image_once(tmp_path, listed, expected):
    from res2net_validate.data.selection import calibration_files

    images = tmp_path / "calib"
    images.mkdir()
    (images / "a.JPEG").write_bytes(b"x")
    (tmp_path / "x.JPEG").write_bytes(b"outside")
    listing = tmp_path / "list.txt"
    listing.write_text(f"a.JPEG\n{listed}\n")
    with pytest.raises(FormatError) as error:
        calibration_files(images, None, listing)
    assert one_line(error).startswith(f"--calib-list {listing}: {expected}")


def test_item_17_a_decode_error_outside_the_plugin_does_not_offer_its_option(tmp_path):
    from res2net_validate.data.preprocess import Preprocess
    from res2net_validate.errors import BadImageError

    bad = tmp_path / "bad.JPEG"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError) as error:
        Preprocess().load_uint8(bad)
    assert "skip" not in str(error.value) and str(error.value).endswith("Replace or remove the file")


# -- reports -----------------------------------------------------------------------------------------


HOSTILE = "CPU\n# ALL PASSED\n[click](javascript:alert(1)) <script>alert(1)</script> <img src=x onerror=alert(1)>"


def _write(path, document):
    path.write_text(json.dumps(document))
    return path


def test_item_5_free_text_in_report_md_cannot_open_markup(tmp_path):
    from res2net_validate.reports import write_report

    document = _results({"device": HOSTILE, "verdicts": [{"kind": "absolute", "metric": "top1", "passed": False,
                                                          "message": HOSTILE}]},
                        run={"timestamp": "2025-01-01T00:00:00+00:00", "host": HOSTILE, "source": HOSTILE})
    document["notes"] = [HOSTILE, "- a bullet\n1. and a list"]
    written = write_report([_write(tmp_path / "r.json", document)], [], tmp_path / "out")
    markdown = written.markdown.read_text()
    lines = markdown.splitlines()
    assert [line for line in lines if line.startswith("# ")] == ["# Res2Net50 validation report"]
    assert not any(line.startswith(("- - ", "- 1.")) for line in lines)
    for raw in (r"<script>", r"</script>", r"<img", r"\[click", r"\]\(javascript:"):  # none unescaped
        assert not re.search(r"(?<!\\)" + raw, markdown), raw
    assert "\\<script\\>" in markdown and "\\[click\\](javascript:alert(1))" in markdown
    if written.html is not None:  # the HTML shows the same text, escaped once, never as markup
        page = written.html.read_text()
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.timeout(120)
def test_item_6_a_device_name_with_dollars_is_drawn_as_text(tmp_path):
    pytest.importorskip("matplotlib")
    from res2net_validate.reports import write_report

    document = _results({"device": "GPU $\\frac{1}{$ x^ $$", "top1": None, "top5": None, "images": None})
    written = write_report([_write(tmp_path / "r.json", document)], [], tmp_path / "out")
    assert written.html is not None and written.html.is_file()
    assert "data:image/png;base64," in written.html.read_text()


def _night(tmp_path, name, when, top1):
    return _write(tmp_path / name, _results({"top1": top1, "verdicts": [{"kind": "absolute", "metric": "top1",
                                                                          "passed": True}]},
                                            run={"timestamp": when, "host": "ci"}))


@pytest.mark.parametrize("option", ["--fps-tolerance", "--accuracy-tolerance"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_item_8_a_tolerance_that_switches_detection_off_is_refused_at_parse_time(tmp_path, capsys, option, value):
    from res2net_validate.cli import main

    first = _night(tmp_path, "a.json", "2025-01-01T00:00:00+00:00", 100.0)
    second = _night(tmp_path, "b.json", "2025-01-02T00:00:00+00:00", 50.0)
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(first), str(second), "--out", str(tmp_path / "out"), f"{option}={value}"])
    assert exit_.value.code == 2
    assert f"{option}: '{value}': expected a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_item_8_write_report_itself_refuses_a_nan_tolerance(tmp_path):
    from res2net_validate.reports import write_report

    first = _night(tmp_path, "a.json", "2025-01-01T00:00:00+00:00", 100.0)
    with pytest.raises(ValidateError, match=r"--accuracy-tolerance=nan: expected a finite number >= 0"):
        write_report([first], [], tmp_path / "out", accuracy_tolerance=float("nan"))


def test_item_11_the_same_results_file_twice_is_one_run(tmp_path, capsys):
    from res2net_validate.cli import main

    first = _night(tmp_path, "a.json", "2025-01-01T00:00:00+00:00", 80.0)
    assert main(["report", str(first), str(first), "--out", str(tmp_path / "out")]) == 0
    assert f"report: {first} given more than once (same content): counted once" in capsys.readouterr().out
    assert "1 result file(s)" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_item_15_report_out_that_cannot_be_a_folder_is_refused_before_reading(tmp_path, capsys, where):
    from res2net_validate.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "reports"
    missing = tmp_path / "never-read.json"  # not even looked at: the --out check comes first
    assert main(["report", str(missing), "--out", str(out)]) == 2
    expected = (f"--out {out}: is a file, not a folder" if where == "file"
                else f"--out {out}: {blocker} is a file, so no folder can be created there")
    assert expected in capsys.readouterr().err


# -- options -----------------------------------------------------------------------------------------


def test_item_16_a_negative_warmup_is_refused_at_start_up(pytester):
    result = pytester.runpytest("--embedded", "--perf-warmup=-5", "--co", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perf-warmup='-5' (from --perf-warmup): expected an integer >= 0*"])


def test_item_11_an_expanded_path_option_says_so(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RES2NET_TEST_ROOT", str(tmp_path))
    result = pytester.runpytest("--dataset-dir=$RES2NET_TEST_ROOT/nowhere", "--co", "-p", "no:cacheprovider",
                                f"--checkpoints-dir={tmp_path / 'cache'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--dataset-dir {tmp_path}/nowhere (from --dataset-dir, expanded from "
                                 "'$RES2NET_TEST_ROOT/nowhere')*"])
