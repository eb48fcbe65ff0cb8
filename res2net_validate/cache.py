"""Content-addressed artifact cache.

Every artifact (ONNX graph, calibration ranges, preprocessed images, engines) lives at
``<root>/<kind>/<key>.<ext>`` where ``key`` hashes everything that went into it:
input file contents, settings and tool versions.  A hit is therefore never stale.
Builds write to a temporary ``.partial`` (named after its owner's pid and host) and rename it
into place, under a file lock so that two processes asking for the same artifact build it once.

A manifest beside each artifact records the sha256 of each of its files.  A hit is served only
if those bytes are still the ones written: every file is hashed again on each hit (graphs and
engines are read in full anyway), except the files a caller checks itself as it reads them
(the 7.5 GB image cache carries per-chunk checksums, see ``data/image_cache.py``), whose size is checked
here.  A mismatch is rebuilt with a warning, or is one error naming the file where the cache
is read-only.  Finished entries are read without taking the lock, so a read-only cache works.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from filelock import FileLock, Timeout

from .errors import DiskFullError, ValidateError

MANIFEST_FORMAT = 2  # 2: per-file sha256 ("file_sha256"); 1 had one digest plus sizes and mtimes
LOCK_NOTICE_AFTER_S = 3.0  # say who holds a lock once a wait lasts this long
_LOW_SPACE = 16 << 20  # a build that fails with less free than this ran out of space

_FILE_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within the process (for keys)."""
    path = Path(path)
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _FILE_HASH_MEMO:
        _FILE_HASH_MEMO[memo_key] = _hash_file(path)
    return _FILE_HASH_MEMO[memo_key]


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_key(parts: Any) -> str:
    """Stable short hash of JSON-serialisable key parts (dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    key: str
    built: bool  # False when reused from the cache


# -- partials: temporary files and folders named after their owner --------------------------------

_HOST = socket.gethostname().replace("/", "_").replace("@", "_")
_PARTIAL = re.compile(r"\.(?P<pid>\d+)@(?P<host>[^@/]+)\.partial$")


def partial_path(path: Path, tag: str = "") -> Path:
    """A temporary sibling of ``path`` that says which process writes it (swept once that one is gone)."""
    middle = f".{tag}" if tag else ""
    return path.with_name(f".{path.name}{middle}.{os.getpid()}@{_HOST}.partial")


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_partials(folder: Path) -> list[Path]:
    """Remove the partials in ``folder`` whose owner ran on this host and is gone; return them."""
    swept = []
    try:
        names = os.listdir(folder)
    except OSError:
        return swept
    for name in names:
        match = _PARTIAL.search(name)
        if match and match["host"] == _HOST and not _owner_alive(int(match["pid"])):
            path = folder / name
            try:
                _remove(path)
            except OSError:
                continue  # read-only or gone meanwhile: nothing to do
            swept.append(path)
    return swept


def check_can_create(folder: Path, where: str) -> None:
    """``folder`` exists and is writable, or can be created: its nearest existing ancestor is a
    writable folder.  One error starting with ``where`` otherwise."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing ancestor decides whether the rest can be created
    if not folder.is_dir():
        raise ValidateError(f"{where}: {folder} is a file, so no folder can be created there")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValidateError(f"{where}: cannot write into {folder} (read-only or no permission); "
                            "pick a writable location")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path, tag=os.urandom(4).hex())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# -- errors ----------------------------------------------------------------------------------------


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def free_bytes(folder: Path) -> int:
    import shutil

    return shutil.disk_usage(folder).free


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """One clear error, before writing, when ``folder`` cannot hold ``needed`` more bytes."""
    free = free_bytes(folder)
    if needed > free:
        raise DiskFullError(f"not enough space in {folder} for {what}: {human_size(free)} free, "
                            f"{human_size(needed)} needed. Free some space, or point --checkpoints-dir "
                            "(CHECKPOINTS_DIR) at a larger disk.")


def _is_out_of_space(exc: BaseException, folder: Path) -> bool:
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    try:  # C++ writers (onnx.save: "basic_ios::clear: iostream error") lose the errno
        return free_bytes(folder) < _LOW_SPACE
    except OSError:
        return False


def _is_read_only(exc: OSError) -> bool:
    return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


# -- the cache -------------------------------------------------------------------------------------


class ArtifactCache:
    """Artifacts under ``root``; see the module docstring for the contract.

    ``lock_timeout``: seconds to wait for another process's build (None: wait as long as it takes).
    ``notify``: where waiting notices go (default: stderr).
    """

    def __init__(self, root: str | os.PathLike, lock_timeout: float | None = None,
                 notify: Callable[[str], None] | None = None):
        self.root = Path(root).expanduser()
        self.lock_timeout = lock_timeout
        self.notify = notify or _print_to_stderr
        self.reused: list[str] = []  # kinds served from the cache in this process, for the report
        self.built: list[str] = []
        self._swept: set[Path] = set()

    def path_for(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def get_or_build(
        self,
        kind: str,
        key_parts: dict[str, Any],
        build: Callable[[Path], None],
        suffix: str = "",
        needs_bytes: int = 0,
        self_checked: Iterable[str] = (),
        usable: Callable[[Path], bool] | None = None,
    ) -> CacheEntry:
        """Return the artifact for ``key_parts``, calling ``build(tmp_path)`` on a miss.

        ``build`` must write the artifact to ``tmp_path`` (a file, or a directory it
        creates); it is renamed into place only if ``build`` returns normally.
        ``needs_bytes``: about how much the build writes (checked against the free space first).
        ``self_checked``: files of a directory artifact that the caller verifies as it reads them;
        only their size is checked here.  ``usable(path)``: the caller's own test of a hit (e.g.
        an older format); False rebuilds it.
        """
        key = content_key(key_parts)
        path = self.path_for(kind, key, suffix)
        manifest = path.with_name(path.name + ".json")
        self_checked = frozenset(self_checked)
        what = f"the {kind} artifact {path}"

        if path.parent not in self._swept:  # once per folder and process, hit or miss
            self._swept.add(path.parent)
            sweep_dead_partials(path.parent)
        # Lock-free first: entries are renamed into place whole, so a finished one can be read
        # without the write lock (a read-only cache works).
        problem = self._check_hit(path, manifest, self_checked, usable)
        if problem is None:
            self.reused.append(kind)
            return CacheEntry(path, key, built=False)
        self._require_writable(path.parent, what, problem)
        with self._locked(path, what):
            problem = self._check_hit(path, manifest, self_checked, usable)
            if problem is None:  # another process built it while we waited
                self.reused.append(kind)
                return CacheEntry(path, key, built=False)
            if problem != "missing":
                warnings.warn(f"cached {kind} artifact {path} {problem}; rebuilding", stacklevel=2)
            if needs_bytes:
                check_free_space(path.parent, needs_bytes, f"building {what}")
            tmp = partial_path(path)
            _remove(tmp)
            try:
                build(tmp)
                if not tmp.exists():
                    raise RuntimeError(f"builder for {kind} did not write {tmp}")
                hashes = {name: _hash_file(file) for name, file in _files(tmp)}
                record = {"format": MANIFEST_FORMAT, "kind": kind, "key": key, "key_parts": key_parts,
                          "file_sha256": hashes, "sizes": {name: file.stat().st_size for name, file in _files(tmp)}}
                _remove(manifest)  # never a manifest that describes other bytes than the artifact's
                _remove(path)
                os.replace(tmp, path)
                record.update(_legacy_fields(path, hashes))
                atomic_write_bytes(manifest, json.dumps(record, indent=2, sort_keys=True, default=str).encode())
            except BaseException as exc:
                # (Ctrl-C and the user's own errors stay what they are, even on a nearly full disk)
                out_of_space = (isinstance(exc, Exception) and not isinstance(exc, ValidateError)
                                and _is_out_of_space(exc, path.parent))
                _remove(tmp)
                if out_of_space:
                    raise DiskFullError(
                        f"ran out of space in {path.parent} while building {what}: "
                        f"{human_size(free_bytes(path.parent))} free after removing the partial ({type(exc).__name__}: {exc}). Free some space, or point "
                        "--checkpoints-dir (CHECKPOINTS_DIR) at a larger disk.") from None
                raise
            self.built.append(kind)
            return CacheEntry(path, key, built=True)

    def discard(self, path: Path) -> None:
        """Remove an entry a reader found corrupt (its manifest first), so the next run rebuilds it."""
        with FileLock(str(path) + ".lock", timeout=self.lock_timeout if self.lock_timeout is not None else -1):
            _remove(path.with_name(path.name + ".json"))
            _remove(path)

    # -- hits ------------------------------------------------------------------------------------

    def _check_hit(self, path: Path, manifest: Path, self_checked: frozenset, usable) -> str | None:
        """None for a good hit, else what is wrong ("missing" when there is nothing yet)."""
        if not manifest.exists() or not path.exists():
            return "missing"
        try:
            record = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return "has an unreadable manifest"
        problem = (self._upgrade(path, manifest, record) if record.get("format") != MANIFEST_FORMAT
                   else _mismatch(path, record, self_checked))
        if problem is not None:
            return problem
        if usable is not None and not usable(path):
            return "is in an older format"
        return None

    def _upgrade(self, path: Path, manifest: Path, record: dict) -> str | None:
        """A format-1 entry (one digest, trusted by size and mtime) is hashed in full once: the same
        bytes get a format-2 manifest where the cache is writable, anything else is rebuilt."""
        try:
            hashes = {name: _hash_file(file) for name, file in _files(path)}
        except OSError as exc:
            return f"cannot be read ({exc})"
        if record.get("sha256") != _legacy_digest(path, hashes):
            return "was written by an older version and does not match its manifest"
        upgraded = {**record, "format": MANIFEST_FORMAT, "file_sha256": hashes,
                    "sizes": {name: file.stat().st_size for name, file in _files(path)}, **_legacy_fields(path, hashes)}
        try:
            atomic_write_bytes(manifest, json.dumps(upgraded, indent=2, sort_keys=True, default=str).encode())
        except OSError as exc:
            if not _is_read_only(exc):
                raise  # read-only: served as verified now, hashed again next time
        return None

    # -- writing -----------------------------------------------------------------------------------

    def _require_writable(self, folder: Path, what: str, problem: str) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = partial_path(folder / "write-probe", tag=os.urandom(4).hex())  # unique per thread too
            probe.touch()
            probe.unlink(missing_ok=True)
        except OSError as exc:
            if not _is_read_only(exc):
                raise
            state = "is not built yet" if problem == "missing" else problem
            raise ValidateError(
                f"{what} {state}, and the cache folder {folder} is read-only ({exc.strerror}): cannot build it "
                "there. Build it once in a writable cache, or point --checkpoints-dir (CHECKPOINTS_DIR) at a "
                "writable folder.") from None

    def _locked(self, path: Path, what: str):
        return _OwnedLock(path, what, self.lock_timeout, self.notify)


class _OwnedLock:
    """The entry's file lock, plus a sidecar naming its holder so that waiters can say who it is."""

    def __init__(self, path: Path, what: str, timeout: float | None, notify):
        self.lock = FileLock(str(path) + ".lock")
        self.owner = Path(str(path) + ".lock.owner")
        self.what, self.timeout, self.notify = what, timeout, notify

    def __enter__(self):
        started, noticed = time.monotonic(), False
        while True:
            try:
                self.lock.acquire(timeout=0.2)
                break
            except Timeout:
                self._refuse_waiting_on_the_parent()
                waited = time.monotonic() - started
                if self.timeout is not None and waited >= self.timeout:
                    raise ValidateError(
                        f"gave up after {waited:.0f} s (--lock-timeout) waiting for {self.what}: {self._holder()}. "
                        "Let that process finish, or stop it (a stopped process keeps its lock: `kill -CONT` "
                        "or end it).") from None
                if not noticed and waited >= LOCK_NOTICE_AFTER_S:
                    noticed = True
                    self.notify(f"res2net_validate: waiting for {self.what}, {self._holder()}")
        atomic_write_bytes(self.owner, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                   "since": time.time()}).encode())
        return self

    def __exit__(self, *exc_info):
        try:
            self.owner.unlink()
        except OSError:
            pass
        self.lock.release()

    def _refuse_waiting_on_the_parent(self) -> None:
        """A spawned worker that waits for its own parent's lock waits forever: that is a script
        without a ``__main__`` guard, whose top level each decode worker runs again on start-up."""
        import multiprocessing

        if not getattr(multiprocessing.current_process(), "_inheriting", False):
            return  # not a spawned worker still running its parent's script (multiprocessing's own test)
        try:
            holder = json.loads(self.owner.read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            return
        if holder == os.getppid():
            raise ValidateError(
                f"a worker process started to build {self.what} again while its parent holds it: the calling "
                "script runs res2net_validate at its top level, which every spawned worker re-runs. Put that "
                "code under `if __name__ == \"__main__\":`")

    def _holder(self) -> str:
        try:
            owner = json.loads(self.owner.read_text())
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["since"]))
            return f"held by pid {owner['pid']} on {owner['host']} since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"held by another process (lock file {self.lock.lock_file})"


def _mismatch(path: Path, record: dict, self_checked: frozenset) -> str | None:
    """What differs between an artifact's files and its format-2 manifest, or None."""
    hashes, sizes = record.get("file_sha256", {}), record.get("sizes", {})
    try:
        files = dict(_files(path))
        if set(files) != set(hashes):
            return "does not match its manifest (files added or missing)"
        for name, file in files.items():
            shown = "" if name == "." else f"{name}: "
            if file.stat().st_size != sizes.get(name):
                return f"does not match its manifest ({shown}size changed)"
            if name not in self_checked and _hash_file(file) != hashes[name]:
                return f"does not match its manifest ({shown}bytes changed)"
    except OSError as exc:
        return f"cannot be read ({exc})"
    return None


def _legacy_digest(path: Path, hashes: dict[str, str]) -> str:
    """The format-1 "sha256" of an artifact, from its files' hashes."""
    if not path.is_dir():
        return hashes["."]
    return content_key(sorted(hashes.items()))


def _legacy_fields(path: Path, hashes: dict[str, str]) -> dict:
    """Format-1 fields, so that older versions sharing this cache still accept the entry."""
    files = {}
    for name, file in _files(path):
        st = file.stat()
        files[path.name if name == "." else name] = [st.st_size, st.st_mtime_ns]
    return {"sha256": _legacy_digest(path, hashes), "files": files}


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _files(path: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of an artifact's files, sorted."""
    if not path.is_dir():
        return [(".", path)] if path.exists() else []  # one name, whatever the file (or its partial) is called
    return sorted((str(p.relative_to(path)), p) for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
