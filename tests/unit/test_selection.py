"""Which images calibrate INT8 and which are scored: seeded, disjoint, and said in the notes."""

from pathlib import Path

import pytest

from res2net_validate.data.layouts import LabeledImage
from res2net_validate.errors import ValidateError
from res2net_validate.data.selection import split_images

VAL = tuple(LabeledImage(Path(f"/val/ILSVRC2012_val_{i:08d}.JPEG"), i % 10) for i in range(1, 41))


def split(**options):
    settings = {"num_images": None, "calib_count": None, "calib_dir": None, "calib_on_scored": False, **options}
    return split_images(VAL, **settings)


def names(images):
    return {image.name for image in images}


def test_default_holds_out_a_seeded_fifth_and_scores_the_rest():
    first, again = split(), split()
    assert len(first.calibration) == 8 and len(first.scored) == 32
    assert names(first.calibration).isdisjoint(names(first.scored))
    assert first.calibration == again.calibration  # deterministic
    assert "8 val images (seed 0) held out; the other 32 are scored" in first.notes[0]


def test_a_list_picks_val_images_and_holds_them_out(tmp_path):
    listing = tmp_path / "cal_list.txt"
    listing.write_text("# MLPerf-style\nILSVRC2012_val_00000003.JPEG\nval/ILSVRC2012_val_00000007.JPEG\n\n")
    result = split(calib_list=listing)
    assert names(result.calibration) == {"ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000007.JPEG"}
    assert len(result.scored) == 38 and names(result.calibration).isdisjoint(names(result.scored))
    assert f"2 val images listed in --calib-list {listing}, held out; the other 38 are scored" in result.notes[0]

    overlap = split(calib_list=listing, calib_on_scored=True)
    assert len(overlap.scored) == 40 and overlap.notes[0].startswith("WARNING: INT8 calibrated on 2 images")


def test_a_list_under_a_calibration_dir_scores_every_val_image(tmp_path):
    (tmp_path / "train").mkdir()
    for name in ("a.JPEG", "b.JPEG", "c.JPEG"):
        (tmp_path / "train" / name).write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text("c.JPEG\na.JPEG\n")
    result = split(calib_dir=tmp_path / "train", calib_list=listing)
    assert result.calibration_dir_images == (tmp_path / "train" / "c.JPEG", tmp_path / "train" / "a.JPEG")
    assert len(result.scored) == 40


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("ILSVRC2012_val_00000003.JPEG\nnot_in_val.JPEG\n", {}, "1 names are not images of the val set (e.g. "
                                                                  "not_in_val.JPEG); pass --calib-dir"),
        ("ILSVRC2012_val_00000003.JPEG\n", {"calib_count": 5}, "1 images, fewer than --calib-count 5"),
        ("# only a comment\n", {}, "no image names in it"),
        ("missing.JPEG\n", {"calib_dir": "DIR"}, "1 listed images do not exist (e.g."),
    ],
)
def test_bad_lists_are_one_clear_error_naming_the_file(tmp_path, text, options, message):
    listing = tmp_path / "list.txt"
    listing.write_text(text)
    options = {k: (tmp_path if v == "DIR" else v) for k, v in options.items()}
    with pytest.raises(ValidateError, match="--calib-list .*list.txt") as error:
        split(calib_list=listing, **options)
    assert message in str(error.value)


def test_a_calibration_dir_finds_every_image_suffix_the_val_set_knows(tmp_path):
    from PIL import Image

    from res2net_validate.data.layouts import IMAGE_SUFFIXES
    from res2net_validate.data.selection import calibration_files

    folder = tmp_path / "calib"
    (folder / "sub").mkdir(parents=True)
    written = {"a.tif": "TIFF", "b.tiff": "TIFF", "c.JPEG": "JPEG", "sub/d.ppm": "PPM", "e.png": "PNG"}
    for name, image_format in written.items():
        Image.new("RGB", (8, 8), (10, 200, 30)).save(folder / name, format=image_format)
    (folder / "notes.txt").write_text("not an image")

    found = calibration_files(folder, None)
    assert [path.relative_to(folder).as_posix() for path in found] == sorted(written)
    assert {Path(name).suffix.lower() for name in written} <= IMAGE_SUFFIXES
    with Image.open(found[0]) as first:  # real files, decodable
        assert first.size == (8, 8)
