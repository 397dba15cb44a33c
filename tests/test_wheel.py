"""The built wheel carries its data: profiles, classifiers, examples, weights.

Builds a wheel from a copy of the source tree, installs it (without
dependencies) into a fresh virtual environment, and runs the installed
``adaptive-codec`` from outside the checkout, so that nothing can come from
the source tree.

The new environment borrows the dependencies (torch, typer, ...) of the
running one through a ``.pth`` file. (``--system-site-packages`` would expose
the *base* interpreter's packages, not this venv's.) A path listed in a
``.pth`` file is added to ``sys.path`` without processing the ``.pth`` files
inside it, so the editable install of the running environment stays out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from adaptive_codec import resources
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.profiles import ENV_VAR

# What a source distribution is made of; everything else (.venv, runs/, .git)
# must not matter for the build.
SOURCE_ITEMS = ["pyproject.toml", "setup.py", "README.md", "adaptive_codec", "profiles",
                "classifiers", "examples"]


def _copy_source(repo_root: Path, dest: Path) -> Path:
    dest.mkdir()
    for item in SOURCE_ITEMS:
        src = repo_root / item
        if src.is_dir():
            shutil.copytree(src, dest / item,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            shutil.copy2(src, dest / item)
    return dest


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


# Stand-ins for artifacts other parts ship, so packaging is tested before
# (and independently of) the real weights and classifiers.
PROBES = {
    "adaptive_codec/weights/v0.0-probe/backbone.safetensors":
        "adaptive_codec/weights/v0.0-probe/backbone.safetensors",
    "classifiers/probe/card.md": "adaptive_codec/_classifiers/probe/card.md",
    "classifiers/probe.json": "adaptive_codec/_classifiers/probe.json",
}


@pytest.fixture(scope="module")
def wheel(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_source(repo_root, tmp / "src")
    for probe in PROBES:
        (src / probe).parent.mkdir(parents=True, exist_ok=True)
        (src / probe).write_text("probe")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
           str(src)]
    # Reuse the installed setuptools when it is new enough (offline-friendly);
    # otherwise let pip fetch the build requirements.
    if int(version("setuptools").split(".")[0]) >= 69:
        cmd.insert(4, "--no-build-isolation")
    _run(cmd)
    (whl,) = (tmp / "dist").glob("adaptive_codec-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin/ folder."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    _run([sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install", "-q",
          "--no-deps", str(wheel)])
    purelib = _run([str(bindir / "python"), "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Dependencies from the running environment, after the venv's own packages.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "zz_borrowed_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return bindir


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "PYTHONPATH")}


def test_wheel_contains_the_data(wheel: Path, repo_root: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for profile in ("speech", "music", "ambient", "examples/podcast", "examples/birdsong"):
        assert f"adaptive_codec/_profiles/{profile}.toml" in names
    for example in ("speech.flac", "music.flac", "ambient.flac", "mixed.flac",
                    "mixed.segments.csv", "README.md"):
        assert f"adaptive_codec/_examples/{example}" in names
    for packaged in PROBES.values():
        assert packaged in names
    # Whatever the other parts ship must be in the wheel too.
    shipped = (("classifiers", "_classifiers"), ("adaptive_codec/weights", "weights"))
    for folder, packaged in shipped:
        for file in (repo_root / folder).rglob("*") if (repo_root / folder).is_dir() else []:
            if file.is_file() and file.suffix in (".json", ".safetensors", ".skops", ".md", ".onnx"):
                rel = file.relative_to(repo_root / folder).as_posix()
                assert f"adaptive_codec/{packaged}/{rel}" in names, rel
    assert not any(n.startswith(("profiles/", "examples/", "classifiers/")) for n in names)


def test_installed_cli_finds_its_data(installed: Path, tmp_path: Path):
    exe = str(installed / "adaptive-codec")
    done = _run([exe, "profiles", "list"], cwd=tmp_path, env=_env())
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == [
        "ambient", "music", "speech"]
    where = _run([str(installed / "python"), "-c",
                  "import adaptive_codec.resources as r; print(r.__file__); "
                  "print(r.profiles_dir()); print(r.examples_dir())"],
                 cwd=tmp_path, env=_env()).stdout.split()
    venv = installed.parent.resolve()
    assert all(Path(p).resolve().is_relative_to(venv) for p in where), where
    examples = _run([exe, "--profiles-dir", str(Path(where[1]) / "examples"), "profiles",
                     "show", "podcast"], cwd=tmp_path, env=_env())
    assert 'base = "speech"' in examples.stdout
    mixed = _run([exe, "examples", "--path", "mixed"], cwd=tmp_path, env=_env()).stdout.strip()
    assert Path(mixed).resolve().is_relative_to(venv) and Path(mixed).is_file()


#: Installed in the wheel's venv: with $ADAPTIVE_CODEC_NO_TORCH naming a file, every
#: process (pool workers too) refuses torch/torchaudio and scikit-learn (the train
#: extra's) and logs each attempt there.
_NO_TORCH = """
import os, sys
_log = os.environ.get("ADAPTIVE_CODEC_NO_TORCH")
if _log:
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchaudio", "sklearn"):
                with open(_log, "a") as fh:
                    fh.write(name + "\\n")
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None
    sys.meta_path.insert(0, _NoTorch())
"""


def test_installed_wheel_codes_without_torch(installed: Path, tmp_path: Path):
    """The base install's work (encode, decode, classify, archives with 2 workers) never imports torch or sklearn."""
    purelib = Path(_run([str(installed / "python"), "-c",
                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (purelib / "_no_torch_probe.py").write_text(_NO_TORCH)
    (purelib / "zz_no_torch.pth").write_text("import _no_torch_probe\n")
    log = tmp_path / "torch-imports.log"
    env = {**_env(), "ADAPTIVE_CODEC_NO_TORCH": str(log)}
    exe = str(installed / "adaptive-codec")
    blocked = subprocess.run([str(installed / "python"), "-c", "import torch"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert blocked.returncode != 0 and "blocked by the test" in blocked.stderr  # the probe works
    log.unlink()
    speech = _run([exe, "examples", "--path", "speech"], cwd=tmp_path, env=env).stdout.strip()
    mixed = _run([exe, "examples", "--path", "mixed"], cwd=tmp_path, env=env).stdout.strip()
    assert "speech" in _run([exe, "classify", mixed], cwd=tmp_path, env=env).stdout
    _run([exe, "encode", speech, "s.acx"], cwd=tmp_path, env=env)
    _run([exe, "decode", "s.acx", "s.wav"], cwd=tmp_path, env=env)
    assert (tmp_path / "s.wav").stat().st_size > 1000
    _run([exe, "archive", "create", "a.aca", speech, mixed, "--jobs", "2"], cwd=tmp_path, env=env)
    assert "mixed" in _run([exe, "archive", "list", "a.aca"], cwd=tmp_path, env=env).stdout
    _run([exe, "archive", "verify", "a.aca"], cwd=tmp_path, env=env)
    _run([exe, "archive", "extract", "a.aca", "--to", "out"], cwd=tmp_path, env=env)
    assert len(list((tmp_path / "out").iterdir())) == 2
    assert not log.exists(), f"torch or sklearn was imported: {log.read_text()}"
    # A training command names the extra in one line instead of failing on the import.
    train = subprocess.run([exe, "train", "entropy", "--cache", str(tmp_path)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert train.returncode != 0
    assert train.stderr.strip().count("\n") == 0 and "adaptive-codec[train]" in train.stderr, train.stderr
    fit = subprocess.run([exe, "train", "classifier", "--data", str(tmp_path)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert fit.returncode != 0 and fit.stderr.strip().count("\n") == 0, fit.stderr
    assert "scikit-learn" in fit.stderr and "adaptive-codec[train]" in fit.stderr, fit.stderr


def test_resources_in_the_source_checkout(repo_root: Path):
    assert resources.profiles_dir() == repo_root / "profiles"
    assert resources.examples_dir() == repo_root / "examples"
    assert resources.weights_dir() == repo_root / "adaptive_codec" / "weights"
    assert resources.example_path("mixed") == repo_root / "examples" / "mixed.flac"
    with pytest.raises(AdaptiveCodecError, match="unknown example 'jazz'; available: speech"):
        resources.example_path("jazz")
    if (repo_root / "classifiers").is_dir():
        assert resources.classifiers_dir() == repo_root / "classifiers"
    else:
        with pytest.raises(AdaptiveCodecError, match="shipped classifiers not found"):
            resources.classifiers_dir()
