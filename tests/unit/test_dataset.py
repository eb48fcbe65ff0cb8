"""Dataset discovery: layouts, labels, cross-checks, listing CLI -- on small real JPEG trees."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from res2net_validate.dataset import (
    LabeledImage,
    canonical_val_labels,
    canonical_wnids,
    discover,
    fingerprint_images,
    register_cli,
    write_sample_dataset,
)
from res2net_validate.errors import ValidateError

COUNT = 24


def test_canonical_tables():
    wnids = canonical_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert wnids[0] == "n01440764"  # tench
    truth = canonical_val_labels()
    assert len(truth) == 50_000
    assert truth["ILSVRC2012_val_00000001"] == 65  # the card's own example line


@pytest.mark.parametrize("layout", ["card", "card-flat"])
def test_card_layout(tmp_path, layout):
    pairs = write_sample_dataset(tmp_path, COUNT, layout=layout, size=(40, 50))
    index = discover(tmp_path)
    assert index.layout.startswith("card")
    assert [(image.name, image.label) for image in index.images] == sorted(pairs)
    assert all(image.path.is_absolute() and image.path.is_file() for image in index.images)
    assert f"{COUNT} images" in index.describe()
    assert any(f"{COUNT}/{COUNT} agree" in note for note in index.notes)


def test_card_rejects_missing_and_unlabeled_images(tmp_path):
    write_sample_dataset(tmp_path, COUNT, layout="card", size=(40, 50))
    victim = next(tmp_path.rglob("ILSVRC2012_val_00000003.JPEG"))
    victim.rename(tmp_path / "elsewhere.bin")
    with pytest.raises(ValidateError, match="ILSVRC2012_val_00000003.JPEG.*not under|labels 1 images"):
        discover(tmp_path)
    (tmp_path / "elsewhere.bin").rename(victim)
    (tmp_path / "extra.jpg").write_bytes(victim.read_bytes())
    with pytest.raises(ValidateError, match="extra.jpg"):
        discover(tmp_path)


def test_card_bad_lines(tmp_path):
    write_sample_dataset(tmp_path, 4, layout="card-flat", size=(40, 50))
    label_file = tmp_path / "val_map.txt"
    lines = label_file.read_text().splitlines()
    label_file.write_text("\n".join(lines[:-1] + [lines[-1].split("\t")[0] + "\t1000"]) + "\n")
    with pytest.raises(ValidateError, match=r"val_map.txt line 4.*outside 0..999"):
        discover(tmp_path)
    label_file.write_text("\n".join(lines[:-1] + ["just-one-field"]) + "\n")
    with pytest.raises(ValidateError, match="line 4"):
        discover(tmp_path)


def test_cross_check_catches_shifted_labels(tmp_path):
    pairs = write_sample_dataset(tmp_path, COUNT, layout="card-flat", size=(40, 50))
    labels = [label for _, label in pairs]
    shifted = labels[1:] + labels[:1]  # label file off by one line
    (tmp_path / "val_map.txt").write_text("".join(f"{n}\t{l}\n" for (n, _), l in zip(pairs, shifted)))
    with pytest.raises(ValidateError, match="disagree with the canonical ImageNet ground truth"):
        discover(tmp_path)


def test_cross_check_tolerates_a_handful(tmp_path):
    pairs = write_sample_dataset(tmp_path, COUNT, layout="card-flat", size=(40, 50))
    edited = [(n, (l + 1) % 1000 if i < 2 else l) for i, (n, l) in enumerate(pairs)]
    (tmp_path / "val_map.txt").write_text("".join(f"{n}\t{l}\n" for n, l in edited))
    index = discover(tmp_path)
    assert any(f"{COUNT - 2}/{COUNT} agree" in note for note in index.notes)


def test_fingerprint_tracks_content(tmp_path):
    write_sample_dataset(tmp_path, 6, layout="card-flat", size=(40, 50))
    index = discover(tmp_path)
    before = index.fingerprint()
    assert before == discover(tmp_path).fingerprint()
    first = index.images[0].path
    st = first.stat()
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert discover(tmp_path).fingerprint() != before
    relabeled = [LabeledImage(i.path, (i.label + 1) % 1000) for i in index.images]
    assert fingerprint_images(relabeled) != fingerprint_images(index.images)


def test_no_layout(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"not really")
    with pytest.raises(ValidateError, match="no ImageNet validation layout"):
        discover(tmp_path)
    with pytest.raises(ValidateError, match="does not exist"):
        discover(tmp_path / "nope")


def _cli(argv):
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_summary_and_list(tmp_path, capsys):
    pairs = write_sample_dataset(tmp_path, 5, layout="card", size=(40, 50))
    assert _cli(["data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "layout: card" in out and "5 images" in out
    assert _cli(["data", str(tmp_path), "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{n}\t{l}" for n, l in sorted(pairs)]
