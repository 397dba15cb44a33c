"""Archives on Dask: byte-identical to ``--jobs 1``, a killed worker, a corrupt input."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("distributed")

from adaptive_codec.container.aca import create_archive, list_archive, read_member  # noqa: E402
from adaptive_codec.cli.app import app  # noqa: E402
from adaptive_codec.archive.dask_backend import DaskArchiveEncoder, dask_client  # noqa: E402
from adaptive_codec.profiles import ENV_VAR  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# mixed.flac (41 s) is longer than one processing piece, so it is split across workers.
NAMES = ["ambient", "mixed", "music", "speech"]

runner = CliRunner(env={ENV_VAR: None})


def _inputs() -> list[Path]:
    return [EXAMPLES / f"{n}.flac" for n in NAMES]


def _files() -> list[tuple[Path, str]]:
    return [(p, p.with_suffix(".acx").name) for p in _inputs()]


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def reference_archive(tmp_path_factory) -> Path:
    """The bundled examples archived by the single-process path (``--jobs 1``)."""
    out = tmp_path_factory.mktemp("ref") / "ref.aca"
    result = _invoke("archive", "create", out, *_inputs(), "--jobs", "1")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def thread_cluster():
    """A LocalCluster of 2 single-thread workers inside this process (fast start)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def test_cluster_address_archive_is_byte_identical_to_jobs_1(tmp_path, reference_archive,
                                                             thread_cluster):
    out = tmp_path / "dask.aca"
    address = thread_cluster.scheduler.address
    result = _invoke("archive", "create", out, *_inputs(), "--scheduler", address)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == reference_archive.read_bytes()


@pytest.mark.slow
def test_local_cluster_archive_is_byte_identical_to_jobs_1(tmp_path, reference_archive):
    out = tmp_path / "dask.aca"
    result = _invoke("archive", "create", out, *_inputs(), "--scheduler", "local", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == reference_archive.read_bytes()


def test_corrupt_input_is_reported_and_skipped(tmp_path, reference_archive, thread_cluster):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + os.urandom(3000))
    files = [_files()[0], (bad, "broken.acx"), _files()[2]]
    encoder = DaskArchiveEncoder(thread_cluster, files)
    create_archive(tmp_path / "out.aca", encoder.members())
    assert [f.name for f in encoder.failures] == ["broken.acx"]
    assert "broken.flac" in encoder.failures[0].message
    names = [e.name for e in list_archive(tmp_path / "out.aca")]
    assert names == ["ambient.acx", "music.acx"]
    for name in names:
        assert read_member(tmp_path / "out.aca", name) == read_member(reference_archive, name)


def test_cli_reports_failed_file_and_exits_1(tmp_path, reference_archive, thread_cluster):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF" + os.urandom(500))
    good = tmp_path / "ambient.flac"
    shutil.copy(EXAMPLES / "ambient.flac", good)
    out = tmp_path / "out.aca"
    result = _invoke("archive", "create", out, good, bad,
                     "--scheduler", thread_cluster.scheduler.address)
    assert result.exit_code == 1
    assert "noise.wav" in result.output and "1 file(s) failed" in result.output
    assert [e.name for e in list_archive(out)] == ["ambient.acx"]
    assert read_member(out, "ambient.acx") == read_member(reference_archive, "ambient.acx")


def test_killed_worker_still_gives_complete_archive(tmp_path, reference_archive):
    killed: list[int] = []

    with dask_client("local", workers=2, processes=True) as client:

        def kill_a_busy_worker(_name: str) -> None:
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            pids = client.run(os.getpid)
            victim = busy[0] if busy else next(iter(pids))
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(pids[victim])

        encoder = DaskArchiveEncoder(client, _files(), on_file_done=kill_a_busy_worker)
        create_archive(tmp_path / "out.aca", encoder.members())
    assert killed and not encoder.failures
    assert (tmp_path / "out.aca").read_bytes() == reference_archive.read_bytes()


def test_only_a_file_much_longer_than_the_rest_is_split(thread_cluster):
    # 68 s, 2 workers, 4 tasks: mixed.flac (41 s, 3 pieces) gets round(4 * 41 / 68) = 2 groups.
    assert DaskArchiveEncoder(thread_cluster, _files())._files_to_split() == {1: 2}
    assert DaskArchiveEncoder(thread_cluster, _files(), split_long_files=True)._files_to_split() == {1: 3}
    assert DaskArchiveEncoder(thread_cluster, _files(), split_long_files=False)._files_to_split() == {}
    # With 16 more 11 s files (217 s in all) its share is under 2 tasks: not split.
    many = _files()[1:2] + [(p, f"{k}.acx") for k, p in enumerate([_inputs()[3]] * 16)]
    assert DaskArchiveEncoder(thread_cluster, many)._files_to_split() == {}


def test_every_piece_its_own_task_is_byte_identical(tmp_path, reference_archive, thread_cluster):
    encoder = DaskArchiveEncoder(thread_cluster, _files()[1:2], split_long_files=True)
    create_archive(tmp_path / "out.aca", encoder.members())
    assert read_member(tmp_path / "out.aca", "mixed.acx") == read_member(reference_archive, "mixed.acx")
