"""The command line: typer's CliRunner for behaviour, real subprocesses for the
console script, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptive_codec import __version__
from adaptive_codec.cli.app import app, main
from adaptive_codec.profiles import ENV_VAR, Profile, ProfileRegistry
from adaptive_codec.resources import profiles_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Keep the host's environment (a developer's $ADAPTIVE_CODEC_PROFILES) out.
runner = CliRunner(env={ENV_VAR: None})


def _run(*args: str):
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_version():
    result = _run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"adaptive-codec {__version__}"


@pytest.mark.parametrize("args", [["--help"], ["profiles", "--help"],
                                  ["profiles", "list", "--help"], ["examples", "--help"]])
def test_help_everywhere(args):
    result = _run(*args)
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_profiles_list_table_and_json():
    table = _run("profiles", "list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "LABELS", "RATE", "DEPTH", "BASE", "ORIGIN"]
    assert [line.split()[0] for line in lines[1:]] == ["ambient", "music", "speech"]
    slope = ProfileRegistry.default().get("speech").depth_slope
    assert f"adaptive ({slope:g}/10 dB)" in lines[3] and "fixed" in lines[1]
    rows = json.loads(_run("profiles", "list", "--format", "json").stdout)
    assert {r["name"]: r["labels"] for r in rows} == {
        "ambient": ["ambient", "silence"], "music": ["music"], "speech": ["speech"]}
    assert all(r["origin"] == "built-in" and Path(r["source"]).is_file() for r in rows)


def test_profiles_show_prints_loadable_toml(tmp_path):
    result = _run("profiles", "show", "speech")
    assert result.exit_code == 0
    assert result.stdout.startswith("# profile 'speech' (built-in: ")
    shown = tmp_path / "speech.toml"
    shown.write_text(result.stdout)
    assert Profile.from_toml(shown) == Profile.from_toml(profiles_dir() / "speech.toml")
    assert tomllib.loads(result.stdout)["loss_weights"]["mel"] == 1.0


def test_profiles_dir_option_and_env_var(tmp_path):
    examples = str(profiles_dir() / "examples")
    result = _run("--profiles-dir", examples, "profiles", "list")
    assert "podcast" in result.stdout and "birdsong" in result.stdout
    via_env = runner.invoke(app, ["profiles", "show", "podcast"], env={ENV_VAR: examples})
    assert via_env.exit_code == 0 and 'base = "speech"' in via_env.stdout


def test_profiles_validate(tmp_path):
    good = profiles_dir() / "examples" / "podcast.toml"
    result = _run("profiles", "validate", str(good))
    assert result.exit_code == 0
    assert result.stdout.startswith(f"ok: {good} (profile 'podcast', 6 kbps")
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("bitrate_kbps = 6.0", "bitrate_kbps = -1"))
    clash = tmp_path / "speech.toml"
    clash.write_text((profiles_dir() / "speech.toml").read_text())
    result = _run("profiles", "validate", str(good), str(bad), str(clash))
    assert result.exit_code == 1
    assert result.stdout.count("ok: ") == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"error: {bad}:") and "key 'bitrate_kbps': must be > 0" in errors[0]
    assert "profile 'speech' is already defined by built-in" in errors[1]


def test_validate_accepts_the_files_of_the_registry_itself():
    examples = profiles_dir() / "examples"
    result = _run("--profiles-dir", str(examples), "profiles", "validate",
                  str(examples / "podcast.toml"), str(examples / "birdsong.toml"))
    assert result.exit_code == 0, result.stderr


def test_examples_command():
    result = _run("examples")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "speech", "music", "ambient", "mixed"]
    path = _run("examples", "--path", "mixed").stdout.strip()
    assert Path(path).name == "mixed.flac" and Path(path).is_file()


# -- errors: one line on stderr, exit 1 (runtime) or 2 (usage) ----------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["profiles", "show", "nope"], 1,
         "error: unknown profile 'nope'; available: ambient, music, speech"),
        (["--profiles-dir", "/nonexistent-dir", "profiles", "list"], 1,
         "error: /nonexistent-dir: no such profile folder or file (from --profiles-dir)"),
        (["examples", "--path", "jazz"], 1,
         "error: unknown example 'jazz'; available: speech, music, ambient, mixed"),
        (["profiles", "frobnicate"], 2,
         "error: No such command 'frobnicate'. (see 'adaptive-codec profiles --help')"),
        (["--frobnicate"], 2, "error: No such option: --frobnicate (see 'adaptive-codec --help')"),
        (["profiles", "show"], 2,
         "error: Missing argument 'NAME'. (see 'adaptive-codec profiles show --help')"),
    ],
)
def test_errors_are_one_line(capsys, monkeypatch, args, code, message):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.splitlines() == [message]


def test_bugs_are_one_line_too(monkeypatch, capsys):
    def boom(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("adaptive_codec.cli.common.ProfileRegistry.default", boom)
    assert main(["profiles", "list"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: internal error: ZeroDivisionError: division by zero "
        "(rerun with --debug for the traceback)"]
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "profiles", "list"])


# -- real processes -----------------------------------------------------------


def _console_script() -> str:
    script = Path(sys.executable).parent / "adaptive-codec"
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    return str(script)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != ENV_VAR}


def test_subprocess_console_script(tmp_path):
    done = subprocess.run([_console_script(), "profiles", "list"], capture_output=True,
                          text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "speech" in done.stdout and done.stderr == ""


def test_subprocess_error_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nbitrate_kbps = "fast"\n')
    done = subprocess.run([sys.executable, "-m", "adaptive_codec", "profiles", "validate",
                           str(bad)], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: {bad}:2: key 'bitrate_kbps': must be a number, got str 'fast'"]
    usage = subprocess.run([sys.executable, "-m", "adaptive_codec", "profiles", "show"],
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr + usage.stderr


def test_subprocess_debug_shows_traceback():
    done = subprocess.run([sys.executable, "-m", "adaptive_codec", "--debug", "profiles",
                           "show", "nope"], capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ProfileError: unknown profile 'nope'" in done.stderr
