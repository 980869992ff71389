"""The spool: folders, probe, dated paths, leftovers adopted after a crash."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from callrec.errors import SpoolError
from callrec.spool import Spool, move_no_replace, spool_error, write_all, write_file_atomic

RID = "0123456789abcdef0123456789abcdef"
TS = 1_795_910_400.0 + 3600 * 23.5  # 2026-11-29 23:30 UTC


def test_ensure_creates_private_folders(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    for folder in (spool.root, spool.incoming):
        assert folder.is_dir()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert list(spool.incoming.iterdir()) == []  # the probe is gone


def test_a_file_where_the_spool_should_be(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("oops")
    with pytest.raises(SpoolError) as err:
        Spool(tmp_path / "spool").ensure()
    assert str(err.value) == f"spool {tmp_path}/spool: is a file, not a folder"


def test_a_file_where_incoming_should_be(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "incoming").write_text("oops")
    with pytest.raises(SpoolError) as err:
        Spool(tmp_path / "spool").ensure()
    assert err.value.message == "is a file, not a folder"
    assert err.value.path == f"{tmp_path}/spool/incoming"


def test_a_file_above_the_spool(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("oops")
    with pytest.raises(SpoolError) as err:
        Spool(tmp_path / "var" / "spool").ensure()
    assert err.value.message == "a parent is a file, not a folder"


def test_a_device_is_not_a_folder() -> None:
    with pytest.raises(SpoolError) as err:
        Spool(Path("/dev/full")).ensure()
    assert str(err.value) == "spool /dev/full: is a file, not a folder"


def test_a_full_disk_is_named_as_such() -> None:
    # /dev/full fails every write with ENOSPC, the way a full spool does.
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError, match="No space left") as raised:
            write_all(fd, b"audio" * 1000)
    finally:
        os.close(fd)
    assert raised.value.errno == errno.ENOSPC
    err = spool_error(Path("/var/spool/callrec/incoming"), raised.value)
    assert str(err) == "spool /var/spool/callrec/incoming: disk full"


def test_dated_and_final_paths_use_the_utc_day(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.dated_dir(TS) == tmp_path / "2026" / "11" / "29"
    assert spool.final_path(RID, TS) == tmp_path / "2026/11/29" / f"{RID}.crec"
    assert spool.part_path(RID) == tmp_path / "incoming" / f"{RID}.crec.part"


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "ABCDEF0123456789", "", "0123456789abcdef/..", "1234", "a" * 129]
)
def test_paths_are_never_built_from_anything_but_hex_ids(tmp_path: Path, bad: str) -> None:
    spool = Spool(tmp_path)
    for make in (spool.part_path, lambda rid: spool.final_path(rid, TS)):
        with pytest.raises(SpoolError) as err:
            make(bad)
        assert err.value.message.startswith("invalid recording id")


def test_move_no_replace_puts_a_sealed_recording_into_its_day(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    spool.part_path(RID).write_bytes(b"sealed bytes")
    final = move_no_replace(spool.part_path(RID), spool.final_path(RID, TS))
    assert final == spool.final_path(RID, TS)
    assert final.read_bytes() == b"sealed bytes"
    assert not spool.part_path(RID).exists()
    for folder in (final.parent, final.parent.parent, final.parent.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_leftovers_are_adopted_unchanged_and_keep_their_suffix(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    older, newer = "aa" * 16, "bb" * 16
    spool.part_path(newer).write_bytes(b"new")
    spool.part_path(older).write_bytes(b"old")
    os.utime(spool.part_path(older), (TS - 86400, TS - 86400))
    os.utime(spool.part_path(newer), (TS, TS))
    (spool.incoming / "notes.txt").write_text("not a recording")
    (spool.incoming / f"{'cc' * 16}.crec.part").symlink_to("/etc/passwd")
    assert spool.leftovers() == [spool.part_path(older), spool.part_path(newer)]

    moved = [spool.adopt(p) for p in spool.leftovers()]
    assert moved == [
        spool.root / "2026/11/28" / f"{older}.crec.part",
        spool.root / "2026/11/29" / f"{newer}.crec.part",
    ]
    assert [p.read_bytes() for p in moved] == [b"old", b"new"]
    assert spool.leftovers() == []


def test_adopt_at_a_given_time_and_never_overwrites(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    spool.part_path(RID).write_bytes(b"first")
    spool.adopt(spool.part_path(RID), TS)
    spool.part_path(RID).write_bytes(b"second")
    with pytest.raises(SpoolError) as err:
        spool.adopt(spool.part_path(RID), TS)
    assert err.value.message == "already exists, not overwritten"
    assert (spool.dated_dir(TS) / f"{RID}.crec.part").read_bytes() == b"first"


def test_adopt_only_takes_files_from_incoming(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    stray = tmp_path / f"{RID}.crec.part"
    stray.write_bytes(b"x")
    with pytest.raises(SpoolError, match="not a leftover recording of this spool"):
        spool.adopt(stray, TS)


def test_no_incoming_folder_means_no_leftovers(tmp_path: Path) -> None:
    assert Spool(tmp_path / "absent").leftovers() == []


def test_ensure_creates_missing_parents_privately(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "srv" / "callrec")
    spool.ensure()
    assert stat.S_IMODE((tmp_path / "srv").stat().st_mode) == 0o700
    assert spool.incoming.is_dir()


def test_write_file_atomic_keeps_an_existing_file_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "dpo.key"
    write_file_atomic(path, b"first", 0o600, replace=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_file_atomic(path, b"second", 0o600, replace=False)
    assert path.read_bytes() == b"first"
    write_file_atomic(path, b"second", 0o644, replace=True)
    assert (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) == (b"second", 0o644)
    assert [p.name for p in tmp_path.iterdir()] == ["dpo.key"]  # no temporary file left
