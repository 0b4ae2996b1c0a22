"""Files and folders written so that nothing is ever half-written, and one configuration hash.

* :func:`atomic_write` -- a file (text or bytes) through a temporary sibling renamed into place;
  the result has the permissions a plain ``open(path, "w")`` would give (the user's umask), not
  the 0600 of temporary files.
* :func:`staged_dir` -- a folder built in a hidden temporary sibling and moved into place only when
  the block succeeds; a failure (or a kill) leaves the previous folder untouched.
* :func:`replace_dir` -- the final move of a staged folder.
* :func:`config_hash` -- a stable short hash of any JSON-like data (cache keys, folder names).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from llmcombo.errors import UserError


def umask() -> int:
    """The process umask, read without changing it where the system allows (``os.umask`` changes
    it for every thread for a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 minus the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new folder: 0777 minus the umask."""
    return 0o777 & ~umask()


def atomic_write(path: str | os.PathLike, data: str | bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename: readers
    see the old file or the new one, never half of it. ``mode`` defaults to what the umask gives a
    new file (an existing file keeps its own mode)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p} is a folder; give a file name.")
    if not p.parent.exists():
        raise UserError(f"folder not found: {p.parent}", hint="Create it first or choose another path.")
    if mode is None:
        try:
            mode = p.stat().st_mode & 0o7777
        except OSError:
            mode = file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike, old_tag: str = "old") -> None:
    """Move the complete folder ``tmp`` to ``target`` (same file system), replacing an existing
    ``target`` only once the new one is in place: readers see the old folder or the new one. The
    old folder waits as ``.NAME.OLD_TAG-...`` beside it until the new one is there."""
    tmp, target = Path(tmp), Path(target)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.{old_tag}-{os.getpid()}-{os.urandom(4).hex()}"
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike, *, tag: str = "staging") -> Iterator[Path]:
    """Build a folder in a hidden sibling ``.NAME.TAG-XXXX`` and move it to ``target`` when the
    block ends without an exception (replacing an existing ``target`` only then); on an exception
    the staging folder is removed and ``target`` is left as it was. Staging folders left by killed
    processes are removed first. The folder gets the umask's permissions, not mkdtemp's 0700."""
    target = Path(target).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.{tag}-*"):
        if _owner_dead(stale):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}-{os.getpid()}-", dir=target.parent))
    try:
        os.chmod(tmp, dir_mode())
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _owner_dead(folder: Path) -> bool:
    """A staging folder ``.NAME.TAG-PID-XXXX`` whose process no longer runs."""
    parts = folder.name.rsplit("-", 2)
    try:
        pid = int(parts[-2])
    except (IndexError, ValueError):
        return True
    return not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def config_hash(data: Any, extra: Any = None, length: int = 12) -> str:
    """A stable hash of JSON-like ``data`` (and ``extra``): the same content gives the same hash
    whatever the order of keys, in every process."""
    text = json.dumps([_plain(data), _plain(extra)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


__all__ = ["atomic_write", "config_hash", "dir_mode", "file_mode", "pid_alive", "replace_dir",
           "staged_dir", "umask"]
