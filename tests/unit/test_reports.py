"""The merged report: Markdown tables with the right numbers, the HTML's inline plots, refusal to mix kinds."""

from __future__ import annotations

import base64
import copy
import json
import re

import pytest

from res2net_validate.cli import main
from res2net_validate.errors import ValidateError
from res2net_validate.report import Report
from res2net_validate.reports import write_report

matplotlib_missing = pytest.importorskip  # noqa: keep the name local; see the html tests

CPU = "CPU (AMD EPYC, onnxruntime)"
GPU = "NVIDIA H100 80GB HBM3"


def verdict(precision, metric, measured, interval, threshold, kind="absolute"):
    return {"kind": kind, "precision": precision, "metric": metric, "measured": measured, "interval": interval,
            "threshold": threshold, "images": 256, "population": 50000, "alpha": 0.05, "p_value": 0.001,
            "passed": interval[1] >= threshold if kind == "absolute" else True, "message": f"{metric} check"}


def results(timestamp, device=CPU, fps=(10.0, 8.0), top1=(94.14, 93.75), sha="a" * 64, fingerprint="f" * 64,
            host="box1"):
    rows = []
    for precision, speed, accuracy in zip(("fp32", "fp16"), fps, top1):
        row = {"precision": precision, "backend": "onnxruntime", "batch_size": 32, "fps": speed, "top1": accuracy,
               "top5": 100.0, "images": 256, "device": device,
               "verdicts": [verdict(precision, "top1", accuracy, [accuracy - 3, accuracy + 2], 85.0),
                            verdict(precision, "top5", 100.0, [98.6, 100.0], 95.0)]}
        if precision == "fp16":
            row["fidelity_vs_fp32"] = {"images": 256, "top1_agreement": 96.1, "mean_cosine": 0.99991,
                                       "mean_kl": 1.2e-4,
                                       "classes_lost": [{"class": c, "label": f"n0{c:07d}", "lost": 12 - c,
                                                         "gained": c % 3} for c in range(12)]}
        rows.append(row)
    return {"model": "Res2Net50",
            "run": {"timestamp": timestamp, "host": host,
                    "thresholds": {"path": "thresholds/embedded.yaml", "sha256": sha, "model": "res2net50_14w_8s",
                                   "batch_size": 32},
                    "dataset": {"fingerprint": fingerprint, "images": 256, "population": 320},
                    "model_name": "res2net50_14w_8s", "source": "embedded default"},
            "rows": rows, "notes": ["a note"]}


def write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Each Markdown table under its nearest heading: a list of {column: cell}."""
    found, heading, lines = {}, None, markdown.splitlines()
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
