"""The artifact cache under real faults: killed, interrupted and stopped builders (SIGKILL, SIGINT,
SIGSTOP), a full disk (a size-limited tmpfs) and a read-only mount."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
from reliability_tools import finish, python, read_only_view, tmpfs

from res2net_validate.cache import ArtifactCache
from res2net_validate.errors import ValidateError

# A builder that writes 1 MB into its partial, says so, and then takes its time.
SLOW_BUILDER = """
import sys, time
from res2net_validate.cache import ArtifactCache

def build(out):
    out.write_bytes(b"x" * (1 << 20))
    print("building", flush=True)
    time.sleep(60)

ArtifactCache(sys.argv[1]).get_or_build("slow", {"x": int(sys.argv[2])}, build, ".bin")
"""


def partials(folder):
    return sorted(p.name for p in folder.glob(".*partial*")) if folder.exists() else []


def start_slow_builder(root, key=1):
    builder = python(SLOW_BUILDER, str(root), str(key))
    assert builder.stdout.readline().strip() == "building", builder.stderr.read()
    return builder


def test_a_partial_of_a_killed_builder_is_swept_by_the_next_run_and_a_live_ones_kept(tmp_path):
    stopped = start_slow_builder(tmp_path, key=1)
    stopped.send_signal(signal.SIGSTOP)  # alive: its partial must stay
    try:
        killed = start_slow_builder(tmp_path, key=3)
        killed.send_signal(signal.SIGKILL)
        finish(killed)
        assert len(partials(tmp_path / "slow")) == 2  # SIGKILL runs no clean-up

        ArtifactCache(tmp_path).get_or_build("slow", {"x": 2}, lambda out: out.write_bytes(b"ok"), ".bin")
        assert len(partials(tmp_path / "slow")) == 1
        killed = start_slow_builder(tmp_path, key=4)
        killed.send_signal(signal.SIGKILL)
        finish(killed)
        hit = ArtifactCache(tmp_path).get_or_build("slow", {"x": 2}, pytest.fail, ".bin")  # a run that only reads
        assert not hit.built
        name = ArtifactCache(tmp_path).path_for("slow", _key({"x": 1}), ".bin").name
        assert partials(tmp_path / "slow") == [f".{name}.{stopped.pid}@{socket.gethostname()}.partial"]
    finally:
        stopped.kill()
        finish(stopped)


def _key(parts):
    from res2net_validate.cache import content_key

    return content_key(parts)


def test_sigint_during_a_build_leaves_no_partial_and_no_lock_holder(tmp_path):
    builder = start_slow_builder(tmp_path)
    builder.send_signal(signal.SIGINT)
    code, _, err = finish(builder)
    assert code != 0 and "KeyboardInterrupt" in err
    assert partials(tmp_path / "slow") == []
    assert not list((tmp_path / "slow").glob("*.owner"))
    started = time.monotonic()
    entry = ArtifactCache(tmp_path).get_or_build("slow", {"x": 1}, lambda o: o.write_bytes(b"ok"), ".bin")
    assert entry.built and entry.path.read_bytes() == b"ok" and time.monotonic() - started < 5


def test_a_stopped_lock_holder_is_named_and_lock_timeout_ends_the_wait(tmp_path):
    holder = start_slow_builder(tmp_path)
    holder.send_signal(signal.SIGSTOP)  # Ctrl-Z: holds the lock, does nothing
    try:
        waiter = python("""
            import sys
            from res2net_validate.cache import ArtifactCache
            from res2net_validate.errors import ValidateError
            try:
                cache = ArtifactCache(sys.argv[1], lock_timeout=4)
            except TypeError:  # a version without --lock-timeout: shows what waiting looked like there
                cache = ArtifactCache(sys.argv[1])
            try:
                cache.get_or_build("slow", {"x": 1}, lambda o: None, ".bin")
            except ValidateError as exc:
                print(exc)
            """, str(tmp_path))
        code, out, err = finish(waiter, timeout=15)
    finally:
        holder.kill()
        finish(holder)
    assert code == 0, err
    assert f"waiting for the slow artifact {tmp_path}/slow/" in err
    assert f"held by pid {holder.pid} on {socket.gethostname()} since {time.strftime('%Y-%m-%d')}" in err
    assert out.startswith("gave up after 4 s (--lock-timeout) waiting for the slow artifact")
    assert f"held by pid {holder.pid}" in out


def test_a_finished_cache_is_used_from_a_read_only_mount(tmp_path):
    source = tmp_path / "cache"
    cache = ArtifactCache(source)
    file_entry = cache.get_or_build("file", {"x": 1}, lambda out: out.write_text("graph"), ".onnx")

    def build_dir(out):
        out.mkdir()
        (out / "a.bin").write_text("a")

    cache.get_or_build("dir", {"x": 1}, build_dir)
    with read_only_view(source, tmp_path / "ro") as view:
        readonly = ArtifactCache(view)
        hit = readonly.get_or_build("file", {"x": 1}, pytest.fail, ".onnx")
        assert not hit.built and hit.path.read_text() == "graph" and str(hit.path).startswith(str(view))
        assert not readonly.get_or_build("dir", {"x": 1}, pytest.fail).built

        with pytest.raises(ValidateError) as missing:
            readonly.get_or_build("file", {"x": 2}, pytest.fail, ".onnx")
        assert f"is not built yet, and the cache folder {view}/file is read-only" in str(missing.value)

        stat = file_entry.path.stat()
        file_entry.path.write_text("evil!")  # through the writable side, same size, same mtime
        os.utime(file_entry.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        with pytest.raises(ValidateError) as corrupt:
            readonly.get_or_build("file", {"x": 1}, pytest.fail, ".onnx")
        assert f"{view}/file/{file_entry.path.name} does not match its manifest (bytes changed)" in str(corrupt.value)
        assert "read-only" in str(corrupt.value)


def test_a_known_size_that_does_not_fit_is_one_clear_error_before_building(tmp_path):
    with tmpfs(tmp_path / "small", "4m") as small:
        calls = []
        with pytest.raises(ValidateError) as error:
            ArtifactCache(small).get_or_build("big", {"x": 1}, calls.append, ".bin", needs_bytes=8 << 20)
        assert calls == []
        message = str(error.value)
        assert f"not enough space in {small}/big" in message and "MB free, 8.0 MB needed" in message


@pytest.mark.parametrize("writer", ["python", "onnx", "errno-less"])
def test_running_out_of_space_mid_build_is_one_clear_error_and_leaves_no_partial(tmp_path, writer):
    def write_python(out):
        with open(out, "wb") as f:
            for _ in range(8):
                f.write(b"x" * (1 << 20))

    def write_onnx(out):  # the exporter's own writer (ENOSPC here; C++ writers lose the errno, see cache.py)
        import numpy as np
        import onnx
        from onnx import helper, numpy_helper

        weight = numpy_helper.from_array(np.ones((2 << 20,), dtype=np.float32), "w")
        graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2 << 20])], [weight])
        onnx.save(helper.make_model(graph), str(out))

    def write_without_errno(out):  # what a C++ stream reports: "basic_ios::clear: iostream error"
        failed = False
        try:
            write_python(out)
        except OSError:
            failed = True
        if failed:  # raised outside the handler: no OSError left in the chain
            raise RuntimeError("basic_ios::clear: iostream error")

    writers = {"python": write_python, "onnx": write_onnx, "errno-less": write_without_errno}
    with tmpfs(tmp_path / "small", "4m") as small:
        with pytest.raises(ValidateError) as error:
            ArtifactCache(small).get_or_build("big", {"x": 1}, writers[writer], ".bin")
        assert f"ran out of space in {small}/big while building the big artifact" in str(error.value)
        assert partials(small / "big") == []
        assert not (small / "big" / f"{_key({'x': 1})}.bin.json").exists()


def test_the_manifest_names_every_file_with_its_sha256(tmp_path):
    import hashlib

    entry = ArtifactCache(tmp_path).get_or_build("kind", {"x": 1}, lambda out: out.write_text("abc"), ".txt")
    record = json.loads(entry.path.with_name(entry.path.name + ".json").read_text())
    assert record["format"] == 2 and record["file_sha256"] == {".": hashlib.sha256(b"abc").hexdigest()}
    assert record["sizes"] == {".": 3}


def test_waiting_is_announced_only_after_a_few_seconds(tmp_path):
    notes = []
    cache = ArtifactCache(tmp_path, notify=notes.append)
    cache.get_or_build("kind", {"x": 1}, lambda out: out.write_text("abc"), ".txt")
    cache.get_or_build("kind", {"x": 2}, lambda out: out.write_text("abc"), ".txt")
    assert notes == []  # nobody held the lock: nothing to say


def test_data_on_a_file_says_it_is_a_file(tmp_path, capsys):
    from res2net_validate.cli import main

    listed = tmp_path / "val.txt"
    listed.write_text("x")
    assert main(["data", str(listed)]) == 2
    assert f"dataset directory {listed} is a file, not a directory" in capsys.readouterr().err
