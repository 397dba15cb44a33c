"""benchmarks/ and tools/: indexed, run on the installed package, one-line errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT, SCRIPT_DIRS

#: Private package names scripts still import, until their modules make them public
#: (script, name): remove an entry when the name is renamed.
PENDING_PRIVATE: set[tuple[str, str]] = set()


def _scripts() -> list[Path]:
    return sorted(p for d in SCRIPT_DIRS for p in d.glob("*.py"))


def _private_package_names(tree: ast.AST) -> set[str]:
    """``_names`` imported from ``adaptive_codec`` or read as attributes of what was imported from it."""
    bound, private = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("adaptive_codec"):
            for alias in node.names:
                (private if alias.name.startswith("_") else bound).add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            bound |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("adaptive_codec")}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in bound):
            private.add(node.attr)
    return private


@pytest.mark.parametrize("path", _scripts(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_sys_path_hacks_or_private_package_imports(path):
    text = path.read_text(encoding="utf-8")
    assert "sys.path" not in text, "scripts run with the installed package (pip install -e .)"
    rel = path.relative_to(REPO_ROOT).as_posix()
    private = {(rel, name) for name in _private_package_names(ast.parse(text))}
    assert private <= PENDING_PRIVATE, f"private package names: {sorted(private - PENDING_PRIVATE)}"


@pytest.mark.parametrize("folder", ["benchmarks", "tools"])
def test_every_script_and_config_is_in_its_readme(folder):
    readme = (REPO_ROOT / folder / "README.md").read_text(encoding="utf-8")
    files = [p.name for p in (REPO_ROOT / folder).iterdir() if p.suffix in (".py", ".toml")]
    assert files
    missing = [name for name in files if f"`{name}`" not in readme]
    assert not missing, f"{folder}/README.md lacks an entry for {missing}"


def test_codec_quality_bad_input_is_a_one_line_error(bench_script, tmp_path, capsys):
    script = bench_script("codec_quality")
    assert script.main(["--corpus", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no corpus at {tmp_path / 'nowhere'} (expected manifest.csv there)"
    (tmp_path / "manifest.csv").write_text("path,label,source\n")
    assert script.main(["--corpus", str(tmp_path), "--bitrates", "6,x"]) == 2
    assert capsys.readouterr().err.strip() == "error: --bitrates must be comma-separated kbps > 0, got '6,x'"


def test_plot_training_bad_input_is_a_one_line_error(bench_script, tmp_path, capsys):
    script = bench_script("plot_training")
    out = tmp_path / "curves.png"
    assert script.main(["--log", str(tmp_path / "absent.csv"), "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'absent.csv'}: no such training log"
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert script.main(["--log", str(tmp_path / "other.csv"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'other.csv'}: not a training log") and err.count("\n") == 1
    (tmp_path / "log.csv").write_text("step,loss,mel\n50,3.0,1.0\n100,2.5,0.9\n")
    assert script.main(["--log", str(tmp_path / "log.csv"), "--out", str(out)]) == 0
    assert out.stat().st_size > 0
