"""Atomic files and directories (`ast_jax.files`); JSON reading with errors naming the file."""

from __future__ import annotations

import os
import stat

import pytest

from ast_jax.files import atomic_directory, atomic_write, read_json_object, write_json


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_files_and_directories_get_the_umask_permissions(tmp_path, umask_022):
    path = atomic_write(tmp_path / "f.txt", lambda temp: open(temp, "w").close())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not the 0600 of a temporary file
    with atomic_directory(tmp_path / "d") as temp:
        (temp / "x").write_text("1")
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_a_directory_is_replaced_as_a_whole(tmp_path):
    target = tmp_path / "checkpoint"
    with atomic_directory(target) as temp:
        (temp / "weights").write_text("old")
        (temp / "extractor").write_text("old")
    with atomic_directory(target, replaceable={"weights", "extractor"}) as temp:
        (temp / "weights").write_text("new")
    assert sorted(os.listdir(target)) == ["weights"]  # the old extractor did not survive
    assert (target / "weights").read_text() == "new"
    assert os.listdir(tmp_path) == ["checkpoint"]  # no temporary directory left


def test_a_failed_directory_write_leaves_the_old_one(tmp_path):
    target = tmp_path / "checkpoint"
    with atomic_directory(target) as temp:
        (temp / "weights").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as temp:
        (temp / "weights").write_text("half")
        raise RuntimeError("crash")
    assert (target / "weights").read_text() == "old"
    assert os.listdir(tmp_path) == ["checkpoint"]


def test_directories_of_other_files_and_file_paths_are_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"")
    with (
        pytest.raises(FileExistsError, match=r"holiday\.jpg"),
        atomic_directory(tmp_path / "photos", replaceable={"weights"}),
    ):
        pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"), atomic_directory(tmp_path / "file"):
        pass
    assert (tmp_path / "photos" / "holiday.jpg").exists()


def test_leftovers_of_a_killed_write_are_removed_by_the_next(tmp_path):
    stale = tmp_path / ".checkpoint.abc123.tmp"
    stale.mkdir()
    (stale / "weights").write_text("half")
    with atomic_directory(tmp_path / "checkpoint") as temp:
        (temp / "weights").write_text("new")
    assert os.listdir(tmp_path) == ["checkpoint"]


def test_json_without_nan_and_errors_that_name_the_file(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "a.json", {"mean": float("nan")})
    assert not (tmp_path / "a.json").exists()
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"bad.json is not valid JSON: .*line 1 column 2"):
        read_json_object(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"list\.json: expected a JSON object, got list"):
        read_json_object(tmp_path / "list.json")
