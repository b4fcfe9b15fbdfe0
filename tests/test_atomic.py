"""The one atomic writer: a failure at any point leaves the old target or the new one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sparsediff import atomic
from sparsediff.errors import InputError


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def make_file(text: str) -> Callable[[Path], None]:
    def put(tmp: Path) -> None:
        tmp.write_text(text)

    return put


def make_dir(text: str) -> Callable[[Path], None]:
    def put(tmp: Path) -> None:
        tmp.mkdir()
        for i in range(3):
            (tmp / f"part{i}.txt").write_text(f"{text} {i}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "deep.txt").write_text(text)

    return put


def content(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or the file itself) with its text."""
    if path.is_file():
        return {".": path.read_text()}
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


KINDS = {"file": make_file, "dir": make_dir}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("existing", [False, True])
def test_success_writes_new_and_leaves_no_temp(tmp_path: Path, kind: str, existing: bool) -> None:
    target = tmp_path / "out"
    if existing:
        KINDS[kind]("old")(target)
    assert atomic.write_atomic(target, KINDS[kind]("new")) is None
    expected = tmp_path / "expected"
    KINDS[kind]("new")(expected)
    assert content(target) == content(expected)
    expected_listing = ["expected", "out"]
    assert listing(tmp_path) == expected_listing


def _fail_in_writer(kind: str) -> Callable[[Path], None]:
    """A writer that writes part of the new target, then raises."""

    def put(tmp: Path) -> None:
        if kind == "file":
            tmp.write_text("half")
        else:
            tmp.mkdir()
            (tmp / "part0.txt").write_text("new 0")
        raise RuntimeError("writer failed on purpose")

    return put


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("existing", [False, True])
def test_failing_writer_leaves_old_or_nothing(tmp_path: Path, kind: str, existing: bool) -> None:
    target = tmp_path / "out"
    if existing:
        KINDS[kind]("old")(target)
    before = content(target) if existing else None
    with pytest.raises(RuntimeError, match="on purpose"):
        atomic.write_atomic(target, _fail_in_writer(kind))
    if existing:
        assert content(target) == before
        assert listing(tmp_path) == ["out"]
    else:
        assert listing(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("fail_at", [1, 2])
def test_failing_rename_leaves_old_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, existing: bool, fail_at: int
) -> None:
    """The n-th ``os.replace`` fails (for a directory: moving the old one aside, then
    moving the new one in); the old target survives whole and no temp is left."""
    target = tmp_path / "out"
    if existing:
        KINDS[kind]("old")(target)
    before = content(target) if existing else None
    real = os.replace
    calls: list[tuple[str, str]] = []

    def flaky(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        calls.append((str(src), str(dst)))
        if len(calls) == fail_at:
            raise OSError("rename failed on purpose")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    if fail_at > 1 and not (existing and kind == "dir"):
        # a file (or a directory into an empty place) is one rename: nothing to fail later
        atomic.write_atomic(target, KINDS[kind]("new"))
        assert content(target)
        return
    with pytest.raises(OSError, match="on purpose"):
        atomic.write_atomic(target, KINDS[kind]("new"))
    monkeypatch.setattr(atomic.os, "replace", real)
    if existing:
        assert content(target) == before
        assert listing(tmp_path) == ["out"]
    else:
        assert listing(tmp_path) == []


def test_replace_moves_directories_over_files_and_back(tmp_path: Path) -> None:
    target = tmp_path / "x"
    make_file("a file")(target)
    new = tmp_path / "new"
    make_dir("a dir")(new)
    atomic.replace(new, target)
    assert content(target)["sub/deep.txt"] == "a dir"
    other = tmp_path / "other"
    make_file("a file again")(other)
    atomic.replace(other, target)
    assert content(target) == {".": "a file again"}
    assert listing(tmp_path) == ["x"]


def test_write_text_and_bytes(tmp_path: Path) -> None:
    target = atomic.write_text(tmp_path / "deep" / "a.json", '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    atomic.write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert listing(target.parent) == ["a.json"]


def test_a_writer_that_creates_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="created nothing"):
        atomic.write_atomic(tmp_path / "x", lambda tmp: None)
    assert listing(tmp_path) == []


def test_parent_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="is not a directory"):
        atomic.write_text(tmp_path / "f" / "x.json", "{}")
    assert listing(tmp_path) == ["f"]


def test_read_only_directory_is_one_clear_error(readonly_dir: Path) -> None:
    with pytest.raises(InputError, match="not writable"):
        atomic.write_text(readonly_dir / "x.json", "{}")
    with pytest.raises(InputError, match="not writable"):
        atomic.write_atomic(readonly_dir / "d", make_dir("new"))


def test_no_module_writes_a_table_or_figure_around_the_atomic_writers() -> None:
    """Every ``savefig`` and ``to_csv(path)`` of the package goes through ``sparsediff.atomic``."""
    import ast

    import sparsediff

    root = Path(sparsediff.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "atomic.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            to_file = name == "to_csv" and (
                node.args or any(k.arg == "path_or_buf" for k in node.keywords)
            )
            if name == "savefig" or to_file:
                offenders.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert not offenders, "writes that bypass sparsediff.atomic:\n" + "\n".join(offenders)
