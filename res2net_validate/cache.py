"""Content-addressed artifact cache.

Every artifact (ONNX graph, calibration ranges, preprocessed images, engines) lives at
``<root>/<kind>/<key>.<ext>`` where ``key`` hashes everything that went into it:
input file contents, settings and tool versions.  A hit is therefore never stale.
Builds write to a temporary file and rename it into place, under a file lock so that
two pytest-xdist workers asking for the same artifact build it once.

A manifest beside each artifact records its sha256 and each file's size and mtime.  A hit
whose files still have those sizes and mtimes is served without re-reading them (a 50,000-image
cache is 7.5 GB); any other hit is re-hashed, and rebuilt if its bytes changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

_FILE_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within the process."""
    path = Path(path)
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _FILE_HASH_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _FILE_HASH_MEMO[memo_key] = digest.hexdigest()
    return _FILE_HASH_MEMO[memo_key]


def content_key(parts: Any) -> str:
    """Stable short hash of JSON-serialisable key parts (dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]




@dataclass(frozen=True)
class CacheEntry:
    path: Path
    key: str
    built: bool  # False when reused from the cache


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)


class ArtifactCache:
    """Artifacts under ``root``; see the module docstring for the contract."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.reused: list[str] = []  # kinds served from the cache in this process, for the report
        self.built: list[str] = []

    def path_for(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def get_or_build(
        self,
        kind: str,
        key_parts: dict[str, Any],
        build: Callable[[Path], None],
        suffix: str = "",
    ) -> CacheEntry:
        """Return the artifact for ``key_parts``, calling ``build(tmp_path)`` on a miss.

        ``build`` must write the artifact to ``tmp_path`` (a file, or a directory it
        creates); it is renamed into place only if ``build`` returns normally.  A manifest
        beside the artifact records the key parts and the artifact's hash; an entry whose
        bytes no longer match its manifest is rebuilt with a warning.
        """
        key = content_key(key_parts)
        path = self.path_for(kind, key, suffix)
        manifest = path.with_name(path.name + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.exists() and manifest.exists():
                if self._verify(path, manifest):
                    self.reused.append(kind)
                    return CacheEntry(path, key, built=False)
                warnings.warn(f"cached {kind} artifact {path} does not match its manifest; rebuilding", stacklevel=2)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
            _remove(tmp)
            try:
                build(tmp)
                if not tmp.exists():
                    raise RuntimeError(f"builder for {kind} did not write {tmp}")
                _remove(path)
                os.replace(tmp, path)
            finally:
                _remove(tmp)
            record = {"kind": kind, "key": key, "key_parts": key_parts, "sha256": _artifact_digest(path),
                      "files": _file_stats(path)}
            atomic_write_bytes(manifest, json.dumps(record, indent=2, sort_keys=True, default=str).encode())
            self.built.append(kind)
            return CacheEntry(path, key, built=True)

    def _verify(self, path: Path, manifest: Path) -> bool:
        try:
            record = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        stats = _file_stats(path)
        if record.get("files") == stats:
            return True  # untouched since it was hashed
        if record.get("sha256") != _artifact_digest(path):
            return False
        # Same bytes, new mtimes (copied, touched): record them so the next hit is cheap again.
        atomic_write_bytes(manifest, json.dumps({**record, "files": stats}, indent=2, sort_keys=True,
                                                default=str).encode())
        return True


def _file_stats(path: Path) -> dict[str, list[int]]:
    """{relative name: [size, mtime_ns]} of an artifact's files."""
    if not path.is_dir():
        st = path.stat()
        return {path.name: [st.st_size, st.st_mtime_ns]}
    stats = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        st = file.stat()
        stats[str(file.relative_to(path))] = [st.st_size, st.st_mtime_ns]
    return stats


def _artifact_digest(path: Path) -> str:
    if path.is_dir():
        # Directory artifacts (a graph plus its info file, a generated dataset): hash every file.
        listing = sorted((str(p.relative_to(path)), file_sha256(p)) for p in path.rglob("*") if p.is_file())
        return content_key(listing)
    return file_sha256(path)


def _remove(path: Path) -> None:
    if path.is_dir():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
