"""The artifact cache: content keys, atomic builds, one build under concurrency, verification."""

import threading
import time

import pytest

from res2net_validate.cache import ArtifactCache, content_key, file_sha256


def test_content_key_ignores_dict_order_and_sees_values():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def test_file_sha256_follows_content(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"one")
    first = file_sha256(path)
    time.sleep(0.01)
    path.write_bytes(b"two")
    assert file_sha256(path) != first


def test_built_once_then_reused(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build(out):
        calls.append(out)
        out.write_text("artifact")

    first = cache.get_or_build("kind", {"x": 1}, build, ".txt")
    second = cache.get_or_build("kind", {"x": 1}, build, ".txt")
    other = cache.get_or_build("kind", {"x": 2}, build, ".txt")
    assert (first.built, second.built, other.built) == (True, False, True)
    assert first.path == second.path != other.path
    assert len(calls) == 2


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(out):
        out.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build("kind", {"x": 1}, build, ".txt")
    assert [p.name for p in (tmp_path / "kind").iterdir() if not p.name.endswith(".lock")] == []


def test_a_tampered_artifact_is_rebuilt_with_a_warning(tmp_path):
    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("good"), ".txt")
    entry.path.write_text("corrupted")
    with pytest.warns(UserWarning, match=r"does not match its manifest \(size changed\); rebuilding"):
        again = cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("good"), ".txt")
    assert again.built and again.path.read_text() == "good"


def test_concurrent_requests_build_once(tmp_path):
    calls = []

    def build(out):
        calls.append(1)
        time.sleep(0.2)
        out.write_text("artifact")

    results = []
    threads = [threading.Thread(target=lambda: results.append(
        ArtifactCache(tmp_path).get_or_build("kind", {"x": 1}, build, ".txt"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(r.built for r in results) == [False, False, False, True]


def test_directory_artifacts(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(out):
        out.mkdir()
        (out / "a.txt").write_text("a")

    entry = cache.get_or_build("dir", {"x": 1}, build)
    assert (entry.path / "a.txt").read_text() == "a"
    assert not cache.get_or_build("dir", {"x": 1}, build).built


def test_a_hit_corrupted_in_place_with_its_mtime_kept_is_rebuilt(tmp_path):
    """Bit rot, or a copy tool that keeps timestamps: same size, same mtime, other bytes."""
    import os

    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("good"), ".txt")
    stat = entry.path.stat()
    entry.path.write_text("evil")
    os.utime(entry.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.warns(UserWarning, match=r"does not match its manifest \(bytes changed\); rebuilding"):
        again = cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("good"), ".txt")
    assert again.built and again.path.read_text() == "good"


def test_self_checked_files_are_only_size_checked_here(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(out):
        out.mkdir()
        (out / "big.bin").write_bytes(b"0123")
        (out / "meta.json").write_text("{}")

    entry = cache.get_or_build("dir", {"x": 1}, build, self_checked=("big.bin",))
    (entry.path / "big.bin").write_bytes(b"9999")  # the reader's own checksums catch this one
    assert not cache.get_or_build("dir", {"x": 1}, build, self_checked=("big.bin",)).built
    (entry.path / "big.bin").write_bytes(b"99999")
    with pytest.warns(UserWarning, match=r"big.bin: size changed"):
        assert cache.get_or_build("dir", {"x": 1}, build, self_checked=("big.bin",)).built


def test_an_entry_of_the_old_manifest_format_is_upgraded_if_intact_else_rebuilt(tmp_path):
    import json

    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("good"), ".txt")
    manifest = entry.path.with_name(entry.path.name + ".json")
    record = json.loads(manifest.read_text())
    legacy = {k: record[k] for k in ("kind", "key", "key_parts", "sha256", "files")}  # what version 1 wrote
    assert legacy["sha256"] == file_sha256(entry.path)
    manifest.write_text(json.dumps(legacy))
    assert not cache.get_or_build("kind", {"x": 1}, pytest.fail, ".txt").built
    assert json.loads(manifest.read_text())["format"] == 2
    manifest.write_text(json.dumps(legacy))
    with pytest.warns(UserWarning, match="older format; rebuilding"):  # upgraded, then the caller's own test
        assert cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("v2"), ".txt",
                                  usable=lambda path: path.read_text() == "v2").built

    manifest.write_text(json.dumps({**legacy, "sha256": "0" * 64}))
    with pytest.warns(UserWarning, match="older version and does not match its manifest; rebuilding"):
        assert cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("good"), ".txt").built


def test_usable_false_rebuilds(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("v1"), ".txt")
    with pytest.warns(UserWarning, match="older format"):
        entry = cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("v2"), ".txt",
                                   usable=lambda path: path.read_text() == "v2")
    assert entry.built and entry.path.read_text() == "v2"
