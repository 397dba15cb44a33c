"""One owner per fact (issue 29): each test fails if two sides of a join drift apart."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import adaptive_codec
from adaptive_codec.audio import AUDIO_SUFFIXES, INTERNAL_SAMPLE_RATE_HZ
from adaptive_codec.backbone import losses
from adaptive_codec.backbone.model import BUILTIN_PROFILES, BackboneConfig
from adaptive_codec.profiles import BUILTIN_CLASSES, LOSS_TERMS, LossWeights, ProfileRegistry
from adaptive_codec.profiles.toml import TomlError, load_toml, parse_toml
from adaptive_codec.resources import profiles_dir

PACKAGE = Path(adaptive_codec.__file__).parent


# -- loss terms: LossWeights fields own the names -----------------------------


def test_loss_terms_are_the_loss_weight_fields():
    assert LOSS_TERMS == tuple(f.name for f in dataclasses.fields(LossWeights))
    assert losses.LOSS_TERMS is LOSS_TERMS
    assert tuple(LossWeights().as_dict()) == LOSS_TERMS


def test_every_weighted_term_is_computed():
    # A field added to LossWeights but not computed by ReconstructionLoss
    # would keep its zero default and train nothing: every term must respond
    # to a difference between the signals, and carry a gradient.
    torch.manual_seed(0)
    t = torch.arange(INTERNAL_SAMPLE_RATE_HZ) / INTERNAL_SAMPLE_RATE_HZ
    reference = (0.3 * torch.sin(2 * torch.pi * 440 * t) * (1 + torch.sin(2 * torch.pi * 3 * t)))[None]
    reference = reference + 0.01 * torch.randn_like(reference)
    estimate = (0.7 * reference + 0.05 * torch.randn_like(reference)).requires_grad_(True)
    terms = losses.ReconstructionLoss()(estimate, reference)
    assert tuple(terms) == LOSS_TERMS
    for name in LOSS_TERMS:
        value = terms[name]
        assert value.shape == (1,) and float(value.detach()) > 0, name
        (grad,) = torch.autograd.grad(value.sum(), estimate, retain_graph=True)
        assert float(grad.abs().sum()) > 0, name


def test_weight_matrix_rejects_unknown_terms():
    assert losses.weight_matrix([{"mel": 1.0}]).shape == (1, len(LOSS_TERMS))
    with pytest.raises(ValueError, match="unknown loss term"):
        losses.weight_matrix([{"mell": 1.0}])


# -- built-in classes ---------------------------------------------------------


def test_builtin_classes_have_one_owner():
    assert BUILTIN_PROFILES is BUILTIN_CLASSES
    assert BackboneConfig().profiles == BUILTIN_CLASSES


def test_every_builtin_class_has_its_profile_file():
    shipped = {p.stem for p in profiles_dir().glob("*.toml")}
    assert shipped == set(BUILTIN_CLASSES)
    registry = ProfileRegistry.default(environ={}, entry_points=[])
    assert all(registry.for_label(c).name == c for c in BUILTIN_CLASSES)


def test_shipped_weights_use_the_builtin_order():
    from adaptive_codec.backbone.weights import load_weights
    from adaptive_codec.resources import weights_dir

    model, _ = load_weights(weights_dir() / "backbone.safetensors")
    assert model.config.profiles == BUILTIN_CLASSES


# -- audio suffixes and the internal rate -------------------------------------


def _assigned_literals(name: str) -> list[str]:
    """``module:line`` of every package assignment of ``name`` to a literal."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                if not isinstance(node.value, (ast.Name, ast.Attribute)):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


@pytest.mark.parametrize("name", ["AUDIO_SUFFIXES", "INTERNAL_SAMPLE_RATE_HZ", "BUILTIN_CLASSES",
                                  "LOSS_TERMS"])
def test_fact_is_written_out_once(name):
    owners = _assigned_literals(name)
    assert len(owners) == 1, owners


def test_training_and_benchmarks_use_the_audio_suffixes():
    from adaptive_codec.bench import corpus
    from adaptive_codec.train import classifier_data, profile

    assert corpus.AUDIO_SUFFIXES is classifier_data.AUDIO_SUFFIXES is profile.AUDIO_SUFFIXES is AUDIO_SUFFIXES


def test_internal_rate_defaults():
    import inspect

    from adaptive_codec.bench.metrics import ANALYSIS_SAMPLE_RATE_HZ
    from adaptive_codec.train.codec_data import CropSampler, band_limit, build_cache
    from adaptive_codec.train.codec_eval import HeldOutSet

    assert ANALYSIS_SAMPLE_RATE_HZ == INTERNAL_SAMPLE_RATE_HZ
    for fn in (losses.ReconstructionLoss.__init__, CropSampler.__init__, band_limit, build_cache,
               HeldOutSet.from_corpus):
        assert inspect.signature(fn).parameters["sample_rate_hz"].default == INTERNAL_SAMPLE_RATE_HZ


# -- TOML ---------------------------------------------------------------------


def test_toml_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("a = 1\nb = \n")
    with pytest.raises(TomlError, match=r"bad.toml:2:5: invalid TOML: ") as excinfo:
        load_toml(bad)
    assert "\n" not in str(excinfo.value) and "(at line" not in str(excinfo.value)
    with pytest.raises(TomlError, match=r"absent.toml: cannot read config \("):
        load_toml(tmp_path / "absent.toml", what="config")
    with pytest.raises(KeyError):
        parse_toml("x = [", "text", error=KeyError)
    assert parse_toml("[t]\nx = 1", "text") == {"t": {"x": 1}}


def test_no_bare_tomllib_import():
    # Python 3.10 (pyproject's requires-python) has no tomllib: only the
    # owner imports it, behind a version check.
    users = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] in ("tomllib", "tomli") for n in names):
                users.append(path.relative_to(PACKAGE).as_posix())
    assert sorted(set(users)) == ["profiles/toml.py"]


# -- no cycles between profiles, train and bench (the package's shape: test_architecture.py) --


def _package_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, at any level."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adaptive_codec"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("adaptive_codec")}
    return out


def test_bench_does_not_import_train():
    users = [p.name for p in (PACKAGE / "bench").glob("*.py")
             if any(m.startswith("adaptive_codec.train") for m in _package_imports(p))]
    assert users == []


def test_profile_does_not_import_registry_at_import_time():
    tree = ast.parse((PACKAGE / "profiles" / "profile.py").read_text(encoding="utf-8"))
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert "adaptive_codec.profiles.registry" not in top
