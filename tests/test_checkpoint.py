from pathlib import Path

import pytest
import torch

from pretrain.checkpoint import check_writable, load_checkpoint, save_atomic
from pretrain.errors import PretrainError


def test_atomic_save_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_atomic({"state_dict": {}, "metadata": {"v": 1}}, path)

    def explode(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"state_dict": {}, "metadata": {"v": 2}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["metadata"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "c.pt"
    save_atomic({"state_dict": {"0.weight": torch.ones(3, 3)}, "metadata": {}}, path)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(PretrainError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(PretrainError, match="not a pretrain checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(PretrainError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


class _Exploit:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_a_checkpoint_carrying_code_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": {}, "metadata": {}, "payload": _Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(PretrainError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "dir" / "c.pt")  # parents can be created ...
    assert list(tmp_path.iterdir()) == []  # ... and nothing is left behind
    with pytest.raises(PretrainError, match="is a directory"):
        check_writable(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(PretrainError, match="cannot write the output file .*Not a directory"):
        check_writable(tmp_path / "file" / "c.pt")
    # a virtual file system: permission bits say root may write, the kernel says no
    with pytest.raises(PretrainError, match="cannot write the output file /proc/nope/o.pt"):
        check_writable("/proc/nope/o.pt")
    assert not Path("/proc/nope").exists()
