"""Profiles as TOML: validation messages, serialisation, the registry."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_codec.errors import ProfileError
from adaptive_codec.profiles import ENTRY_POINT_GROUP, ENV_VAR, LossWeights, Profile, ProfileRegistry
from adaptive_codec.resources import profiles_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GOOD = """\
name = "podcast"
description = "Talk"
labels = ["podcast"]
bitrate_kbps = 6.0
rate_lambda = 0.01
base = "speech"

[loss_weights]
mel = 1.0
stft = 0.5
"""


def _no_plugins(profiles_dirs=(), environ=None):
    """Registry without the host's plug-ins or environment leaking in."""
    return ProfileRegistry.default(profiles_dirs, environ=environ or {}, entry_points=[])


# -- built-in and example profiles --------------------------------------------


def test_builtins():
    registry = _no_plugins()
    assert registry.names() == ["ambient", "music", "speech"]
    assert all(registry.origin(n) == "built-in" for n in registry.names())
    speech, music, ambient = (registry.get(n) for n in ("speech", "music", "ambient"))
    assert speech.labels == ("speech",) and speech.bitrate_kbps == 6.0
    assert music.labels == ("music",) and music.loss_weights.chroma > 0
    assert ambient.labels == ("ambient", "silence")
    # ambient is the cheapest profile and also takes the classifier's silence.
    assert ambient.bitrate_kbps == min(p.bitrate_kbps for p in registry)
    assert registry.for_label("silence") is ambient
    assert speech.loss_weights.mel > speech.loss_weights.stft
    assert music.loss_weights.stft >= music.loss_weights.mel
    assert all(p.base is None and p.conditioning is None for p in registry)


def test_examples_load_with_their_bases():
    registry = _no_plugins([profiles_dir() / "examples"])
    assert registry.get("podcast").base == "speech"
    assert registry.get("birdsong").base == "ambient"
    assert registry.for_label("podcast").name == "podcast"
    assert registry.origin("podcast") == "--profiles-dir"


@pytest.mark.parametrize("name", ["speech", "music", "ambient"])
def test_toml_and_dict_round_trip(name, tmp_path):
    profile = Profile.from_toml(profiles_dir() / f"{name}.toml")
    assert Profile.from_dict(profile.to_dict()) == profile
    copy = tmp_path / "copy.toml"
    copy.write_text(profile.to_toml())
    again = Profile.from_toml(copy)
    assert again == profile and again.source == copy


@settings(max_examples=50, deadline=None)
@given(
    weights=st.fixed_dictionaries(
        {}, optional={k: st.floats(0, 100, allow_nan=False) for k in LossWeights().as_dict()}
    ),
    rate=st.one_of(st.floats(0.1, 64), st.integers(1, 32)),
    labels=st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), unique=True,
                    max_size=3),
)
def test_round_trip_property(weights, rate, labels):
    data = {"name": "x", "labels": labels, "loss_weights": weights}
    data["bitrate_kbps" if isinstance(rate, float) else "n_q"] = rate
    profile = Profile.from_dict(data)
    assert Profile.from_dict(tomllib.loads(profile.to_toml())) == profile


# -- validation messages: file, line, key, problem -----------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rate_lambda = 0.01", "rate_lamda = 0.01", ":5: key 'rate_lamda': unknown key"),
        ("bitrate_kbps = 6.0", 'bitrate_kbps = "6"', ":4: key 'bitrate_kbps': must be a number"),
        ("bitrate_kbps = 6.0", "bitrate_kbps = -6.0", ":4: key 'bitrate_kbps': must be > 0"),
        ("bitrate_kbps = 6.0", "bitrate_kbps = 0", ":4: key 'bitrate_kbps': must be > 0"),
        ("bitrate_kbps = 6.0", "bitrate_kbps = 6.0\nn_q = 4", "key 'bitrate_kbps': set exactly "
         "one of 'bitrate_kbps' and 'n_q' (got both)"),
        ("bitrate_kbps = 6.0", "", "key 'bitrate_kbps': set exactly one of 'bitrate_kbps' and "
         "'n_q' (got neither)"),
        ("bitrate_kbps = 6.0", "n_q = true", ":4: key 'n_q': must be an integer"),
        ("bitrate_kbps = 6.0", "n_q = 0", ":4: key 'n_q': must be between 1 and 64"),
        ("stft = 0.5", "stfft = 0.5", ":10: key 'loss_weights.stfft': unknown loss term"),
        ("stft = 0.5", "stft = -0.5", ":10: key 'loss_weights.stft': must be >= 0"),
        ("stft = 0.5", "stft = nan", ":10: key 'loss_weights.stft': must be finite"),
        ('labels = ["podcast"]', 'labels = "podcast"', ":3: key 'labels': must be a list"),
        ('labels = ["podcast"]', 'labels = ["Pod cast"]', ":3: key 'labels': 'Pod cast' must"),
        ('labels = ["podcast"]', 'labels = ["a", "a"]', ":3: key 'labels': lists a label twice"),
        ('name = "podcast"', 'name = "auto"', ":1: key 'name': 'auto' is reserved"),
        ('name = "podcast"', "name = 3", ":1: key 'name': must be a string"),
        ('name = "podcast"', "", "key 'name': missing"),
        ('base = "speech"', 'base = "podcast"', ":6: key 'base': a profile cannot be its own"),
        ("rate_lambda = 0.01", "rate_lambda = -1", ":5: key 'rate_lambda': must be >= 0"),
        ("rate_lambda = 0.01", "depth_slope = 20", ":5: key 'depth_slope': must be in 0..16"),
        ("rate_lambda = 0.01", "override = 1", ":5: key 'override': must be true or false"),
        ("rate_lambda = 0.01", 'conditioning = "c.pt"', ":5: key 'conditioning': must name a "
         ".safetensors file"),
        ("rate_lambda = 0.01", 'conditioning = "missing.safetensors"',
         ":5: key 'conditioning': file not found"),
        ("rate_lambda = 0.01", "rate_lambda = ", ":5:15: invalid TOML: "),
        ("[loss_weights]", "[loss_weights", ":8:14: invalid TOML: "),
        ("stft = 0.5", "stft = 0.5\nstft = 0.7", ":11:"),
    ],
)
def test_validation_messages(write_text, old, new, expected):
    assert old in GOOD
    path = write_text("bad.toml", GOOD.replace(old, new))
    with pytest.raises(ProfileError) as excinfo:
        Profile.from_toml(path)
    message = str(excinfo.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_inline_and_dotted_loss_weights_report_their_line(write_text):
    inline = GOOD.split("[loss_weights]")[0] + "loss_weights = { mel = 1.0, stftt = 2 }\n"
    with pytest.raises(ProfileError, match=r"bad.toml:8: key 'loss_weights.stftt'"):
        Profile.from_toml(write_text("bad.toml", inline))
    dotted = GOOD.split("[loss_weights]")[0] + "loss_weights.mel = -1\n"
    with pytest.raises(ProfileError, match=r"bad.toml:8: key 'loss_weights.mel': must be >= 0"):
        Profile.from_toml(write_text("bad.toml", dotted))


def test_obsolete_sample_rate_is_ignored_with_a_warning(write_text):
    # Profile.sample_rate_hz was validated but never used (removed, issue 29):
    # old files that set it still load, and say where the key is.
    path = write_text("old.toml", GOOD.replace("rate_lambda = 0.01", "rate_lambda = 0.01\nsample_rate_hz = 24000"))
    with pytest.warns(FutureWarning, match=r"old.toml:6: key 'sample_rate_hz' is obsolete and ignored"):
        profile = Profile.from_toml(path)
    assert profile == Profile.from_toml(write_text("new.toml", GOOD))
    assert "sample_rate_hz" not in profile.to_dict()
    with pytest.warns(FutureWarning, match="sample_rate_hz"):
        assert Profile.from_dict({**profile.to_dict(), "sample_rate_hz": 16000}) == profile
    with pytest.raises(TypeError):
        Profile(name="x", bitrate_kbps=1.0, sample_rate_hz=24000)


def test_plugin_entry_point_group_is_the_documented_one():
    # Installed plug-ins register under this name: renaming it silently drops them.
    assert ENTRY_POINT_GROUP == "adaptive_codec.profiles"


def test_unreadable_file(tmp_path):
    with pytest.raises(ProfileError, match="cannot read profile"):
        Profile.from_toml(tmp_path / "nope.toml")


def test_conditioning_is_relative_to_the_file(write_text):
    weights = write_text("sub/podcast.safetensors", "stand-in")
    path = write_text("sub/podcast.toml", GOOD + '\n', )
    path.write_text(GOOD.replace('base = "speech"',
                                 'base = "speech"\nconditioning = "podcast.safetensors"'))
    profile = Profile.from_toml(path)
    assert profile.conditioning == weights
    assert profile.to_dict()["conditioning"] == "podcast.safetensors"


def test_direct_construction_validates():
    with pytest.raises(ProfileError, match="got neither"):
        Profile(name="x")
    with pytest.raises(ProfileError, match="loss_weights.mel"):
        Profile(name="x", n_q=2, loss_weights=LossWeights(mel=-1.0))
    assert Profile(name="x", n_q=2, labels=["a"]).labels == ("a",)


# -- registry -----------------------------------------------------------------


def _profile_dir(tmp_path: Path, folder: str, **texts: str) -> Path:
    d = tmp_path / folder
    d.mkdir()
    for name, text in texts.items():
        (d / f"{name}.toml").write_text(text)
    return d


def test_unknown_base_names_file_and_line(tmp_path):
    d = _profile_dir(tmp_path, "user", podcast=GOOD.replace('"speech"', '"talk"'))
    with pytest.raises(ProfileError) as excinfo:
        _no_plugins([d])
    assert str(excinfo.value).startswith(f"{d / 'podcast.toml'}:6: key 'base': unknown "
                                         "profile 'talk'; available: ambient, music, speech")


def test_circular_base(tmp_path):
    a = GOOD.replace('"podcast"', '"a"').replace('"speech"', '"b"')
    b = GOOD.replace('"podcast"', '"b"').replace('"speech"', '"a"')
    with pytest.raises(ProfileError, match="circular base chain"):
        _no_plugins([_profile_dir(tmp_path, "user", a=a, b=b)])


def test_duplicate_name_needs_explicit_override(tmp_path):
    speech2 = GOOD.replace('name = "podcast"', 'name = "speech"').replace('base = "speech"\n', "")
    d = _profile_dir(tmp_path, "user", speech=speech2)
    with pytest.raises(ProfileError) as excinfo:
        _no_plugins([d])
    message = str(excinfo.value)
    assert f"{d / 'speech.toml'}:1: profile 'speech' is already defined by built-in" in message
    assert "override = true" in message
    (d / "speech.toml").write_text("override = true\n" + speech2)
    registry = _no_plugins([d])
    assert registry.get("speech").description == "Talk"
    assert registry.origin("speech") == "--profiles-dir"
    # The replaced built-in's label now routes to the replacement.
    assert registry.for_label("podcast").name == "speech"
    with pytest.raises(ProfileError, match="no profile serves label 'speech'"):
        registry.for_label("speech")


def test_label_clash_needs_explicit_override(tmp_path):
    d = _profile_dir(tmp_path, "user", talk=GOOD.replace('["podcast"]', '["speech"]'))
    with pytest.raises(ProfileError, match=r"talk.toml:3: label 'speech' is already served by "
                       r"profile 'speech'"):
        _no_plugins([d])
    (d / "talk.toml").write_text("override = true\n" + (d / "talk.toml").read_text())
    assert _no_plugins([d]).for_label("speech").name == "podcast"


def test_precedence_env_then_profiles_dir(tmp_path):
    env1 = _profile_dir(tmp_path, "env1", podcast=GOOD)
    env2 = _profile_dir(tmp_path, "env2", birdsong=GOOD.replace("podcast", "birdsong"))
    cli = _profile_dir(tmp_path, "cli", podcast="override = true\n" + GOOD.replace(
        'description = "Talk"', 'description = "from --profiles-dir"'))
    environ = {ENV_VAR: os.pathsep.join([str(env1), "", str(env2)])}
    registry = _no_plugins([cli], environ=environ)
    assert registry.names() == ["ambient", "music", "speech", "podcast", "birdsong"]
    assert registry.get("podcast").description == "from --profiles-dir"
    assert registry.origin("birdsong") == f"${ENV_VAR}"
    # Without override the later source is an error, whichever it is.
    clash = _profile_dir(tmp_path, "clash", podcast=GOOD)
    with pytest.raises(ProfileError, match="already defined by \\$ADAPTIVE_CODEC_PROFILES"):
        _no_plugins([clash], environ=environ)


def test_env_var_is_read_from_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(_profile_dir(tmp_path, "env", podcast=GOOD)))
    assert "podcast" in ProfileRegistry.default(entry_points=[])


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ProfileError, match=r"nope: no such profile folder or file \(from "
                       r"--profiles-dir\)"):
        _no_plugins([tmp_path / "nope"])
    with pytest.raises(ProfileError, match=f"from \\${ENV_VAR}"):
        _no_plugins(environ={ENV_VAR: str(tmp_path / "nope")})


def _entry_point(name, obj):
    return SimpleNamespace(name=name, load=lambda: obj)


def test_entry_point_plugins(tmp_path):
    d = _profile_dir(tmp_path, "plugin", podcast=GOOD)
    bird = Profile(name="birdsong", labels=("birdsong",), bitrate_kbps=4.0, base="ambient")
    registry = ProfileRegistry.default(environ={}, entry_points=[
        _entry_point("by-path", str(d)),
        _entry_point("by-list", lambda: [bird]),
    ])
    assert registry.origin("podcast") == "plug-in 'by-path'"
    assert registry.get("birdsong") is bird
    with pytest.raises(ProfileError, match="plug-in 'broken' failed to load: boom"):
        ProfileRegistry.default(environ={}, entry_points=[
            _entry_point("broken", lambda: (_ for _ in ()).throw(RuntimeError("boom")))])
    with pytest.raises(ProfileError, match="returned int; expected a folder"):
        ProfileRegistry.default(environ={}, entry_points=[_entry_point("junk", 3)])
    with pytest.raises(ProfileError, match="returned a str, not a Profile"):
        ProfileRegistry.default(environ={}, entry_points=[_entry_point("junk", ["x"])])


def test_lookup_errors_name_the_alternatives(write_text):
    registry = _no_plugins()
    with pytest.raises(ProfileError, match="unknown profile 'podcast'; available: ambient, "
                       "music, speech"):
        registry.get("podcast")
    with pytest.raises(ProfileError, match="served labels: ambient, music, silence, speech"):
        registry.for_label("noise")
    assert registry.resolve("music") is registry.get("music")
    path = write_text("p/podcast.toml", GOOD)
    assert registry.resolve(path).name == "podcast"
    assert registry.resolve(str(path)).source == path
    with pytest.raises(ProfileError, match="key 'base': unknown profile 'talk'"):
        registry.resolve(write_text("t.toml", GOOD.replace('"speech"', '"talk"')))
