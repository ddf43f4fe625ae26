"""core.atomic: a writer that fails or is killed mid-write leaves the previous complete
version (or nothing) at the path, never a torn file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import atomic
from core.atomic import append_jsonl, staging_dir, write_bytes, write_json, write_text

REPO = Path(__file__).resolve().parents[2]
OLD = b"old complete version\n"


def _fail(*_args, **_kw):
    raise OSError("disk gone")


def test_writes_create_parents_and_replace_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    write_json(path, {"k": [1, 2]})
    assert json.loads(path.read_text()) == {"k": [1, 2]} and path.read_text().endswith("\n")
    write_text(path, "short")
    assert path.read_text() == "short"  # no tail of the longer old content
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]  # no temp file left


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch, where):
    path = tmp_path / "index.json"
    path.write_bytes(OLD)
    # fsync runs after the new bytes are in the temp file, replace after they are synced
    monkeypatch.setattr(os, where, _fail)
    with pytest.raises(OSError, match="disk gone"):
        write_bytes(path, b"new version, much longer than the old one" * 100)
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_an_error_mid_write_of_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", _fail)
    with pytest.raises(OSError):
        write_text(tmp_path / "new.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_an_unserialisable_row_writes_nothing(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(OLD)
    with pytest.raises(TypeError):
        write_json(path, {"ok": 1, "bad": object()})
    assert path.read_bytes() == OLD and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_staging_dir_failure_keeps_the_previous_version(tmp_path):
    final = tmp_path / "data"
    with staging_dir(final) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError):
        with staging_dir(final) as tmp:
            (tmp / "a.txt").write_text("v2 half")
            raise RuntimeError("killed halfway")
    assert (final / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_staging_dir_replaces_a_directory_as_a_whole(tmp_path):
    final = tmp_path / "data"
    with staging_dir(final) as tmp:
        (tmp / "a.txt").write_text("v1")
        (tmp / "gone.txt").write_text("only in v1")
        assert not final.exists()  # nothing at the final path until the block is done
    with staging_dir(final) as tmp:
        assert final.joinpath("gone.txt").exists()  # readers still see v1 while v2 is built
        (tmp / "a.txt").write_text("v2")
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"] and (final / "a.txt").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # neither the temp nor the old copy stays


def test_a_failed_first_staging_leaves_no_directory(tmp_path):
    with pytest.raises(ValueError):
        with staging_dir(tmp_path / "data") as tmp:
            (tmp / "x").write_text("x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_append_jsonl_appends_whole_lines_in_order(tmp_path):
    path = tmp_path / "audit" / "results.jsonl"
    for i in range(3):
        append_jsonl(path, {"i": i})
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"i": 0}, {"i": 1}, {"i": 2}]


# A writer killed with SIGKILL after the new bytes are on disk but before the rename: it
# cannot clean up, yet the path must still hold the old version, whole.
KILLED_WRITER = """
import os, sys, time
from core import atomic
def stall(fd):
    print("written", flush=True)
    time.sleep(60)
atomic.os.fsync = stall
atomic.write_bytes(sys.argv[1], b"NEW" * 1_000_000)
"""

KILLED_STAGING = """
import sys, time
from core.atomic import staging_dir
with staging_dir(sys.argv[1]) as tmp:
    (tmp / "a.txt").write_text("v2")
    print("written", flush=True)
    time.sleep(60)
"""


def _kill_when_written(script: str, target: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_a_killed_writer_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "index.json"
    path.write_bytes(OLD)
    _kill_when_written(KILLED_WRITER, path)
    assert path.read_bytes() == OLD
    [leftover] = [p for p in tmp_path.iterdir() if p != path]  # the dead writer's temp, never read
    assert leftover.name.startswith(".index.json.") and leftover.name.endswith(".tmp")
    assert leftover.stat().st_size == 3_000_000  # the new bytes were written: only the rename was missing
    write_bytes(path, b"next")  # the next writer is not disturbed by it
    assert path.read_bytes() == b"next"


@pytest.mark.slow
def test_a_killed_staging_leaves_the_previous_directory_whole(tmp_path):
    final = tmp_path / "data"
    with staging_dir(final) as tmp:
        (tmp / "a.txt").write_text("v1")
    _kill_when_written(KILLED_STAGING, final)
    assert [p.name for p in final.iterdir()] == ["a.txt"] and (final / "a.txt").read_text() == "v1"
    [leftover] = [p for p in tmp_path.iterdir() if p != final]  # the dead writer's half-built v2
    assert leftover.name.startswith(".data.") and (leftover / "a.txt").read_text() == "v2"


def test_fsync_dir_is_called_on_the_parent(tmp_path, monkeypatch):
    """The rename itself is made durable: the directory entry is synced, not only the file."""
    synced: list[Path] = []
    monkeypatch.setattr(atomic, "fsync_dir", lambda p: synced.append(Path(p)))
    write_text(tmp_path / "sub" / "f.txt", "x")
    with staging_dir(tmp_path / "d"):
        pass
    assert synced == [tmp_path / "sub", tmp_path]
