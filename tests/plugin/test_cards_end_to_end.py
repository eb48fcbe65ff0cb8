"""Another card of the zoo runs the same way, with no code of its own: the embedded default of a torchvision
classifier (MobileNetV2: its stand-in checkpoint, its published transform, its card's embedded thresholds)
passes every gate, and its results, table and JSON are the card's."""

import json


def test_the_mobilenet_v2_card_passes_on_its_embedded_default(suite):
    (suite.path / "out").mkdir()
    result = suite.run("-m", "accuracy or performance", "--embedded", "--card=mobilenet_v2",
                       "--precision=fp32,fp16,int8", "--batch-size=16", "--perf-rounds=2", "--perf-warmup=1",
                       "--report-json=out/results.json")
    # floors x3, drops vs FP32 x2 (fp16, int8), precision proofs x3, FPS x3
    result.assert_outcomes(passed=11)
    result.stdout.fnmatch_lines([
        "*card: MobileNetV2 (torchvision:mobilenet_v2:MobileNet_V2_Weights.IMAGENET1K_V1)*mobilenet_v2.yaml",
        "*= res2net_validate =*",
        "MobileNetV2 | 16 * | FP32 * | onnxruntime | *",
        "MobileNetV2 | 16 * | FP16 * | onnxruntime | *",
        "MobileNetV2 | 16 * | INT8 * | onnxruntime | *",
    ])
    results = json.loads((suite.path / "out" / "results.json").read_text())
    assert (results["model"], results["card"]) == ("MobileNetV2", "mobilenet_v2")
    assert results["run"]["model_name"] == "torchvision:mobilenet_v2:MobileNet_V2_Weights.IMAGENET1K_V1"
    assert results["run"]["thresholds"]["path"].endswith("mobilenet_v2.yaml")
    assert all(r["top1"] > 50 for r in results["rows"])  # the stand-in is a healthy classifier of its images


def test_an_unknown_card_is_a_usage_error_naming_the_packaged_ones(suite):
    result = suite.run("--co", "--card=lenet")
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*--card lenet: no such packaged card; choose one of *mobilenet_v2*res2net50*"])
