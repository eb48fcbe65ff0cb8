"""Dataset discovery: layouts, labels, cross-checks, listing CLI -- on small real JPEG trees."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from res2net_validate.cli.data import register_cli
from res2net_validate.imagenet import canonical_val_labels, canonical_wnids
from res2net_validate.data.layouts import LabeledImage, discover, fingerprint_images
from res2net_validate.errors import ValidateError
from res2net_validate.data.sample import write_sample_dataset

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


# -- the other layouts -------------------------------------------------------------------------


def _devkit_ids_of_labels(seed: int = 0) -> dict[int, int]:
    """Sorted-WNID label -> devkit ID.  Devkit IDs are not sorted-WNID indices: every class gets a
    shuffled ID (the real order is WordNet's; any permutation exercises the same mapping)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(1000)
    return {int(label): devkit_id + 1 for devkit_id, label in enumerate(order)}


def _write_meta_mat(path: Path, id_of_label: dict[int, int]) -> None:
    import numpy as np

    scipy_io = pytest.importorskip("scipy.io")
    wnids = canonical_wnids()
    entries = [(id_of_label[label], wnids[label], 0) for label in range(1000)]
    entries += [(1001, "n00001740", 3), (1002, "n00002137", 5)]  # inner synsets, as in the real file
    synsets = np.zeros(len(entries), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for row, (devkit_id, wnid, children) in enumerate(entries):
        synsets[row] = (devkit_id, wnid, children)
    scipy_io.savemat(str(path), {"synsets": synsets})


DEVKIT_DATA = Path("ILSVRC2012_devkit_t12") / "data"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


def _devkit_tree(root: Path, count: int, seed: int = 0, meta: bool = True) -> list[int]:
    """A devkit-style tree: ``count`` flat canonical JPEGs, the full 50,000-line ground truth (devkit
    IDs of the canonical labels) and, if ``meta``, a meta.mat with the same ID order.

    Returns the devkit IDs of the images written.
    """
    write_sample_dataset(root, count, layout="flat", size=(40, 50))
    id_of_label = _devkit_ids_of_labels(seed)
    truth = canonical_val_labels()
    devkit_ids = [id_of_label[truth[f"ILSVRC2012_val_{number:08d}"]] for number in range(1, 50_001)]
    data = root / DEVKIT_DATA
    data.mkdir(parents=True)
    if meta:
        _write_meta_mat(data / "meta.mat", id_of_label)
    (data / GROUND_TRUTH).write_text("".join(f"{devkit_id}\n" for devkit_id in devkit_ids))
    return devkit_ids[:count]


def _listing(index):
    return [(image.name, image.label) for image in index.images]


def test_every_layout_lists_the_same_images(tmp_path):
    count = 12
    expected = sorted(write_sample_dataset(tmp_path / "card", count, layout="card", size=(40, 50)))
    listings, layouts = {}, {}
    for layout in ("card-flat", "imagefolder", "flat", "kaggle"):
        index = discover(_written(tmp_path / layout, count, layout))
        listings[layout], layouts[layout] = _listing(index), index.layout
    devkit_variants = {"devkit": False}  # the ground-truth file alone
    if importlib.util.find_spec("scipy") is not None:
        devkit_variants["devkit+meta"] = True
    for name, meta in devkit_variants.items():
        _devkit_tree(tmp_path / name, count, meta=meta)
        index = discover(tmp_path / name)
        listings[name], layouts[name] = _listing(index), index.layout
    listings["card"] = _listing(discover(tmp_path / "card"))
    for layout, listing in listings.items():
        assert listing == expected, layout
    assert layouts["imagefolder"].startswith("imagefolder") and layouts["flat"].startswith("flat")
    assert layouts["kaggle"].startswith("kaggle")
    assert layouts["devkit"].startswith("devkit") and "matched against the canonical ground truth" in layouts["devkit"]
    if "devkit+meta" in layouts:
        assert layouts["devkit+meta"].startswith("devkit") and "mapped through meta.mat" in layouts["devkit+meta"]


def _written(root, count, layout):
    write_sample_dataset(root, count, layout=layout, size=(40, 50))
    return root


def test_imagefolder_subset_maps_through_all_1000_wnids(tmp_path):
    pairs = write_sample_dataset(tmp_path, 10, layout="imagefolder", size=(40, 50), first=1001)
    index = discover(tmp_path)
    folders = sorted({p.name for p in tmp_path.iterdir()})
    assert len(folders) < 1000
    for image in index.images:
        assert canonical_wnids()[image.label] == image.path.parent.name  # not the index among folders present
    assert _listing(index) == sorted(pairs)
    assert any(f"{len(folders)}/1000 WNID class folders" in note for note in index.notes)


def test_imagefolder_rejects_unknown_folders_and_strays(tmp_path):
    write_sample_dataset(tmp_path, 4, layout="imagefolder", size=(40, 50))
    (tmp_path / "n99999999").mkdir()
    image = next(tmp_path.rglob("*.JPEG"))
    (tmp_path / "n99999999" / "x.JPEG").write_bytes(image.read_bytes())
    with pytest.raises(ValidateError, match="n99999999.*not one of the 1,000"):
        discover(tmp_path)
    (tmp_path / "n99999999" / "x.JPEG").unlink()
    (tmp_path / "n99999999").rmdir()
    (tmp_path / "loose.JPEG").write_bytes(image.read_bytes())
    with pytest.raises(ValidateError, match="loose.JPEG"):
        discover(tmp_path)


def test_imagefolder_catches_misfiled_images(tmp_path):
    write_sample_dataset(tmp_path, COUNT, layout="imagefolder", size=(40, 50))
    # move every image one class folder along: folder labels now disagree with the ground truth
    images = sorted(tmp_path.rglob("*.JPEG"))
    folders = [image.parent for image in images]
    moves = [(image, folders[(i + 1) % len(folders)] / image.name) for i, image in enumerate(images)]
    for source, target in moves:
        source.rename(target.with_suffix(".moving"))
    for _, target in moves:
        target.with_suffix(".moving").rename(target)
    with pytest.raises(ValidateError, match="disagree with the canonical"):
        discover(tmp_path)


def test_flat_needs_canonical_names(tmp_path):
    write_sample_dataset(tmp_path, 4, layout="flat", size=(40, 50))
    index = discover(tmp_path)
    assert any("canonical" in note for note in index.notes)
    image = next(tmp_path.glob("*.JPEG"))
    (tmp_path / "holiday.JPEG").write_bytes(image.read_bytes())
    with pytest.raises(ValidateError, match="holiday.JPEG"):
        discover(tmp_path)


def test_kaggle_images_without_rows(tmp_path):
    write_sample_dataset(tmp_path, 5, layout="kaggle", size=(40, 50))
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ValidateError, match="1 images .*have no line in .*LOC_val_solution.csv"):
        discover(tmp_path)
    csv.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n12345678 1 2 3 4\n")
    with pytest.raises(ValidateError, match="n12345678"):
        discover(tmp_path)


def test_devkit_ids_go_through_meta_mat(tmp_path):
    devkit_ids = _devkit_tree(tmp_path, COUNT)
    index = discover(tmp_path)
    assert [image.label for image in index.images] == [canonical_val_labels()[image.path.stem] for image in index.images]
    assert [image.label for image in index.images] != [i - 1 for i in devkit_ids]
    assert any("devkit class IDs mapped through" in note and "meta.mat" in note for note in index.notes)
    assert any(f"{COUNT} of the 50,000 images" in note for note in index.notes)


def test_devkit_without_meta_mat_matches_the_canonical_ground_truth(tmp_path):
    devkit_ids = _devkit_tree(tmp_path, COUNT, meta=False)
    index = discover(tmp_path)
    # flat canonical JPEGs in the root: the ground-truth file alone must make it devkit, not flat
    assert index.layout.startswith("devkit")
    assert [image.label for image in index.images] == [canonical_val_labels()[image.path.stem] for image in index.images]
    assert [image.label for image in index.images] != [i - 1 for i in devkit_ids]
    assert any("by matching all 50,000 lines against the canonical ground truth" in note for note in index.notes)
    assert not any("meta.mat" in note for note in index.notes)


def test_devkit_meta_mat_unread_without_scipy(tmp_path, monkeypatch):
    _devkit_tree(tmp_path, 4)
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # as if scipy were not installed
    index = discover(tmp_path)
    assert [image.label for image in index.images] == [canonical_val_labels()[image.path.stem] for image in index.images]
    assert "matched against the canonical ground truth" in index.layout
    assert any("meta.mat not read: scipy is not installed" in note for note in index.notes)


def test_flat_with_a_stray_meta_mat_is_not_devkit(tmp_path):
    write_sample_dataset(tmp_path, 4, layout="flat", size=(40, 50))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.mat").write_bytes(b"not the ground truth")
    assert discover(tmp_path).layout.startswith("flat")


@pytest.mark.parametrize("meta", [False, True])
def test_devkit_shifted_ground_truth(tmp_path, meta):
    _devkit_tree(tmp_path, COUNT, meta=meta)
    ground_truth = tmp_path / DEVKIT_DATA / GROUND_TRUTH
    lines = ground_truth.read_text().splitlines()
    ground_truth.write_text("\n".join(lines[1:] + lines[:1]) + "\n")  # first line lost, count made up at the end
    with pytest.raises(ValidateError, match=rf"{GROUND_TRUTH} does not match .* shifted by a line: line i holds the ID "
                       r"of image i\+1.*Use the unmodified"):
        discover(tmp_path)
    ground_truth.write_text("\n".join(lines[-2:] + lines[:-2]) + "\n")  # two lines inserted at the top
    with pytest.raises(ValidateError, match=r"shifted by 2 lines: line i holds the ID of image i-2"):
        discover(tmp_path)


def test_devkit_ground_truth_that_is_no_renaming_of_the_classes(tmp_path):
    _devkit_tree(tmp_path, COUNT, meta=False)
    ground_truth = tmp_path / DEVKIT_DATA / GROUND_TRUTH
    lines = ground_truth.read_text().splitlines()
    ground_truth.write_text("".join(f"{(number % 1000) + 1}\n" for number in range(len(lines))))
    with pytest.raises(ValidateError, match=r"does not match the ImageNet validation images: .*lines disagree.*"
                       r"not the devkit's validation ground truth"):
        discover(tmp_path)


def test_devkit_meta_mat_disagreeing_with_the_ground_truth(tmp_path):
    _devkit_tree(tmp_path, COUNT)
    id_of_label = _devkit_ids_of_labels()
    id_of_label[0], id_of_label[1] = id_of_label[1], id_of_label[0]  # two classes swapped in meta.mat only
    meta_path = tmp_path / DEVKIT_DATA / "meta.mat"
    _write_meta_mat(meta_path, id_of_label)
    with pytest.raises(ValidateError) as caught:
        discover(tmp_path)
    message = str(caught.value)
    assert f"{meta_path} and {tmp_path / DEVKIT_DATA / GROUND_TRUTH} disagree on 2 of 1,000 devkit class IDs" in message
    assert "n01440764" in message and "remove" in message


def test_devkit_wrong_line_count_and_bad_ids(tmp_path):
    _devkit_tree(tmp_path, 4, meta=False)
    ground_truth = tmp_path / DEVKIT_DATA / GROUND_TRUTH
    lines = ground_truth.read_text().splitlines()
    ground_truth.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValidateError, match=rf"{GROUND_TRUTH} has 49,999 lines, expected 50,000.*ends at line 49999"):
        discover(tmp_path)
    ground_truth.write_text("\n".join(lines + ["7", "8"]) + "\n")
    with pytest.raises(ValidateError, match=r"has 50,002 lines, expected 50,000.*lines 50001 to 50002 are extra"):
        discover(tmp_path)
    for bad, error in (("seven", "not an integer"), ("1001", "outside 1..1000"), ("", "not an integer")):
        ground_truth.write_text("\n".join(lines[:6] + [bad] + lines[7:]) + "\n")
        with pytest.raises(ValidateError, match=rf"{GROUND_TRUTH} line 7: devkit class ID .*{error}"):
            discover(tmp_path)


def test_devkit_rejects_images_that_are_not_validation_images(tmp_path):
    _devkit_tree(tmp_path, 4, meta=False)
    image = next(tmp_path.glob("*.JPEG"))
    (tmp_path / "holiday.JPEG").write_bytes(image.read_bytes())
    with pytest.raises(ValidateError, match=rf"holiday.JPEG.*not ILSVRC2012 validation images|"
                       rf"not ILSVRC2012 validation images.*{GROUND_TRUTH} has no line.*holiday.JPEG"):
        discover(tmp_path)


def test_devkit_ids_used_as_labels_are_caught(tmp_path):
    # The classic mix-up: devkit IDs minus one written into a val_map.txt as if they were labels.
    devkit_ids = _devkit_tree(tmp_path / "devkit", COUNT)
    pairs = write_sample_dataset(tmp_path / "card", COUNT, layout="card-flat", size=(40, 50))
    (tmp_path / "card" / "val_map.txt").write_text(
        "".join(f"{name}\t{devkit_id - 1}\n" for (name, _), devkit_id in zip(pairs, devkit_ids))
    )
    with pytest.raises(ValidateError, match="devkit class IDs"):
        discover(tmp_path / "card")


def test_a_fingerprint_without_mtimes_matches_a_copy_of_the_same_files(tmp_path):
    # Baselines identify their dataset this way: copied to another machine, the files get new mtimes.
    write_sample_dataset(tmp_path, 4, layout="card", size=(40, 50))
    images = discover(tmp_path).images
    before = fingerprint_images(images, mtimes=False), fingerprint_images(images)
    for image in images:
        os.utime(image.path, ns=(1, 1))
    assert fingerprint_images(images, mtimes=False) == before[0]
    assert fingerprint_images(images) != before[1]
