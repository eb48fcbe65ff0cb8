"""The wheel ships what a checkout runs: every module, and the top-level thresholds/ files byte for byte
inside the package, where an installed res2net_validate finds them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import res2net_validate
from res2net_validate.thresholds import PACKAGED

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = ("mobilenet_v2.yaml", "res2net50.yaml", "resnet50.yaml")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the sources: setuptools builds in the source tree (build/,
    *.egg-info), and a stale build/ there could hide a file the configuration no longer ships."""
    pytest.importorskip("setuptools")
    pytest.importorskip("pip")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("res2net_validate", "thresholds"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    # --no-build-isolation: the build needs only setuptools, already here (no index is reached).
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(work / "dist"), str(source)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (work / "dist").glob("res2net_validate-*.whl")
    return found


def test_a_checkout_reads_the_top_level_thresholds_folder():
    assert Path(res2net_validate.__file__).resolve().parent.parent == REPO  # this suite runs on a checkout
    assert PACKAGED == REPO / "thresholds"
    assert all((PACKAGED / name).is_file() for name in DEFAULTS)


def test_the_wheel_ships_the_top_level_thresholds_byte_for_byte(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = {name: archive.read(f"res2net_validate/_thresholds/{name}") for name in DEFAULTS
                   if f"res2net_validate/_thresholds/{name}" in names}
    assert set(shipped) == set(DEFAULTS), sorted(n for n in names if n.endswith(".yaml"))
    for name, data in shipped.items():
        assert data == (REPO / "thresholds" / name).read_bytes(), name
    yaml_files = sorted(n for n in names if n.endswith(".yaml"))
    assert yaml_files == [f"res2net_validate/_thresholds/{name}" for name in DEFAULTS]  # one copy, no stale one


def test_the_wheel_holds_every_module_of_the_package(wheel):
    """pyproject.toml lists the packages (discovery cannot see the thresholds mapping): a new subpackage
    left out of that list would be missing from every installation."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "res2net_validate").rglob("*.py")
                     if "__pycache__" not in p.parts)
    missing = [m for m in modules if m not in names]
    assert not missing, f"not in the wheel (add the package to [tool.setuptools] packages): {missing}"


def test_an_installed_wheel_finds_its_thresholds_inside_the_package(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a pure-Python wheel unpacked: what pip install puts in site-packages
    probe = ("import res2net_validate.thresholds as t; print(t.__file__); print(t.PACKAGED); "
             "import res2net_validate.cards as c; print(c.load_card('res2net50').model_key)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    module, packaged, model = shown.stdout.split()
    assert Path(module).resolve().is_relative_to(site.resolve())  # the unpacked copy, not this checkout
    assert Path(packaged) == site.resolve() / "res2net_validate" / "_thresholds" and model == "res2net50_14w_8s"
