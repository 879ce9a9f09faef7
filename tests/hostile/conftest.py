"""Hostile-input tests: a write audit that proves where xlt's writes go.

``write_audit`` (function fixture) records every write-type operation this process makes on a path under
pytest's base temporary directory while the test runs, through a ``sys.addaudithook`` hook:

- ``open`` with a writing mode (``w``, ``a``, ``x``, ``+``) or writing flags (``O_WRONLY``, ``O_RDWR``,
  ``O_CREAT``, ``O_TRUNC``, ``O_APPEND``): builtin ``open``, ``Path.open``/``write_*`` and ``os.open``;
- ``os.rename`` (raised by ``os.rename`` and ``os.replace``: both source and destination are recorded),
  ``os.remove`` (``os.remove``/``os.unlink``/``Path.unlink``), ``os.rmdir``, ``os.mkdir``, ``shutil.rmtree``,
  ``os.chmod``, ``os.symlink`` and ``os.link`` (the new name), ``os.truncate``.

Paths relative to a ``dir_fd`` (``shutil.rmtree`` deletes that way) are resolved through ``/proc/self/fd``;
symbolic links in the parent directories are resolved, so a write through a user's link to a directory
elsewhere is recorded where it lands. The final component is resolved too where the operation follows it
(``open``, ``chmod``, ``truncate``), not where it acts on the link itself (``remove``, ``rename``, ...).

Use::

    def test_x(write_audit, tmp_path):
        ...                                   # run xlt
        write_audit.assert_writes_inside([out], temporaries_beside=[out])

``assert_writes_inside(roots, temporaries_beside=())`` fails, listing them, on any recorded write that is
neither inside one of ``roots`` (after resolving links) nor an atomic temporary beside one of the paths in
``temporaries_beside`` (``PARENT/.xlt-tmp-PID-TOKEN-NAME`` or ``.xlt-old-...`` for ``PARENT/NAME``, or
anything inside such a temporary). ``write_audit.writes`` is the list of ``(event, path)`` recorded;
``write_audit.clear()`` forgets them; ``write_audit.paused()`` is a context manager that records nothing
(for the test's own set-up and clean-up).

Limits: audit hooks cannot be removed, so the hook is installed once per session and is a no-op unless a
test holds the fixture; only this process is audited (writes of spawned worker processes are not seen);
writes through an already open file descriptor are not events (the ``open`` that produced it is).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_INSTALLED = False
_ACTIVE: _Audit | None = None
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_TEMPORARY = re.compile(r"^\.xlt-(?:tmp|old)-\d+-[0-9a-f]{8}-(.+)$")


def _path(value: object, dir_fd: object = None) -> str | None:
    """An absolute path for an audit argument (str, bytes or PathLike), or None (a file descriptor)."""
    if isinstance(value, int):
        return None
    try:
        text = os.fsdecode(os.fspath(value))  # type: ignore[arg-type]
    except TypeError:
        return None
    if not os.path.isabs(text):
        if isinstance(dir_fd, int) and dir_fd >= 0:
            try:
                base = os.readlink(f"/proc/self/fd/{dir_fd}")
            except OSError:
                return None
        else:
            base = os.getcwd()
        text = os.path.join(base, text)
    return os.path.normpath(text)


def _resolved(path: str, follow: bool) -> str:
    if follow:
        return os.path.realpath(path)
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name)


class _Audit:
    def __init__(self, base: Path) -> None:
        self.base = os.path.realpath(base)
        self.writes: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._paused = 0

    # ---- recording ---------------------------------------------------------------------------------------

    def _record(self, event: str, value: object, dir_fd: object = None, follow: bool = False) -> None:
        path = _path(value, dir_fd)
        if path is None:
            return
        path = _resolved(path, follow)
        if path == self.base or path.startswith(self.base + os.sep):
            with self._lock:
                self.writes.append((event, path))

    def event(self, event: str, args: tuple) -> None:
        if self._paused:
            return
        if event == "open":
            path, mode, flags = [*args, None, None, None][:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing:
                self._record(event, path, follow=True)
        elif event == "os.rename":
            src, dst, src_fd, dst_fd = [*args, None, None, None, None][:4]
            self._record(event, src, src_fd)
            self._record(event, dst, dst_fd)
        elif event in ("os.remove", "os.rmdir", "shutil.rmtree"):
            self._record(event, args[0], args[1] if len(args) > 1 else None)
        elif event == "os.mkdir":
            self._record(event, args[0], args[2] if len(args) > 2 else None)
        elif event == "os.chmod":
            self._record(event, args[0], args[2] if len(args) > 2 else None, follow=True)
        elif event in ("os.symlink", "os.link"):
            self._record(event, args[1], args[2] if event == "os.symlink" and len(args) > 2 else None)
        elif event == "os.truncate":
            self._record(event, args[0], follow=True)

    # ---- the test's side ---------------------------------------------------------------------------------

    def clear(self) -> None:
        with self._lock:
            self.writes.clear()

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def outside(self, roots: Iterable[Path], temporaries_beside: Iterable[Path] = ()) -> list[tuple[str, str]]:
        """The recorded writes outside ``roots`` that are not atomic temporaries beside ``temporaries_beside``."""
        real_roots = {os.path.realpath(r) for r in roots} | {os.path.normpath(os.path.abspath(r)) for r in roots}
        beside = set()
        for target in temporaries_beside:
            target = Path(os.path.abspath(target))
            beside.add((os.path.realpath(target.parent), target.name))
        bad = []
        for event, path in list(self.writes):
            if any(path == r or path.startswith(r + os.sep) for r in real_roots):
                continue
            if self._temporary_beside(path, beside):
                continue
            bad.append((event, path))
        return bad

    @staticmethod
    def _temporary_beside(path: str, beside: set[tuple[str, str]]) -> bool:
        probe = path
        while True:
            parent, name = os.path.split(probe)
            match = _TEMPORARY.match(name)
            if match and (parent, match.group(1)) in beside:
                return True
            if parent == probe or not name:
                return False
            probe = parent

    def assert_writes_inside(self, roots: Iterable[Path], temporaries_beside: Iterable[Path] = ()) -> None:
        roots, temporaries_beside = list(roots), list(temporaries_beside)
        bad = self.outside(roots, temporaries_beside)
        assert not bad, (
            f"{len(bad)} write(s) outside {[str(r) for r in roots]} (temporaries allowed beside "
            f"{[str(t) for t in temporaries_beside]}):\n" + "\n".join(f"  {e} {p}" for e, p in bad[:40])
        )


def _hook(event: str, args: tuple) -> None:
    audit = _ACTIVE
    if audit is None:
        return
    with contextlib.suppress(Exception):  # an audit hook must never break the code it watches
        audit.event(event, args)


@pytest.fixture
def write_audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Audit]:
    """Records this test's writes under pytest's base temp dir; see the module docstring."""
    global _INSTALLED, _ACTIVE
    if not _INSTALLED:
        sys.addaudithook(_hook)
        _INSTALLED = True
    audit = _Audit(tmp_path_factory.getbasetemp())
    previous, _ACTIVE = _ACTIVE, audit
    try:
        yield audit
    finally:
        _ACTIVE = previous


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads; on 2 shared cores they only slow the suite down."""
    from threads import one_torch_thread

    with one_torch_thread():
        yield
