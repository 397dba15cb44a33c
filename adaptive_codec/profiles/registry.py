"""Registry of the profiles available to a codec: built-ins, plug-ins, users'.

Precedence, lowest first: built-in ``profiles/*.toml``; plug-in packages
(entry point group ``adaptive_codec.profiles``); folders or files in
``$ADAPTIVE_CODEC_PROFILES`` (``os.pathsep``-separated); ``--profiles-dir``
folders. A later profile that reuses a name or label must say
``override = true``, so a user never replaces a built-in by accident.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points as installed_entry_points
from pathlib import Path
from typing import Any

from adaptive_codec.errors import ProfileError
from adaptive_codec.profiles.profile import ENTRY_POINT_GROUP, ENV_VAR, Profile
from adaptive_codec.profiles.toml import where_key
from adaptive_codec.resources import profiles_dir

__all__ = ["ProfileRegistry"]


def _where_profile(profile: Profile, key: str) -> str:
    """Location prefix for a registry-level problem with ``profile``'s ``key``."""
    if profile.source is None:
        return f"profile {profile.name!r}: "
    return where_key(profile.source, key)


class ProfileRegistry:
    """The profiles available to one codec instance (no global state).

    Profiles are added in precedence order; a later profile that reuses an
    earlier name or label must say ``override = true``. :meth:`default`
    builds the usual stack: built-ins, plug-in entry points,
    ``$ADAPTIVE_CODEC_PROFILES``, then ``--profiles-dir`` folders.
    """

    def __init__(self, profiles: Iterable[Profile] = ()) -> None:
        self._profiles: dict[str, Profile] = {}
        self._origins: dict[str, str] = {}
        self._label_owner: dict[str, str] = {}
        for profile in profiles:
            self.add(profile)

    @classmethod
    def default(
        cls,
        profiles_dirs: Sequence[str | os.PathLike[str]] = (),
        *,
        environ: Mapping[str, str] | None = None,
        entry_points: Iterable[Any] | None = None,
    ) -> ProfileRegistry:
        """Built-ins + plug-ins + ``$ADAPTIVE_CODEC_PROFILES`` + ``profiles_dirs``.

        Parameters
        ----------
        profiles_dirs : sequence of path
            Folders (or single ``.toml`` files) from ``--profiles-dir``;
            highest precedence.
        environ : Mapping, optional
            Environment to read :data:`ENV_VAR` from; default ``os.environ``.
        entry_points : iterable, optional
            Entry points to load; default those installed in group
            :data:`ENTRY_POINT_GROUP`. Each loads to a folder path, a list of
            :class:`Profile`, or a callable returning either.

        Raises
        ------
        ProfileError
            Invalid file, duplicate name or label without ``override``,
            unknown or circular ``base``, missing folder, failing plug-in.
        """
        registry = cls()
        registry.load_path(profiles_dir(), origin="built-in")
        if entry_points is None:
            entry_points = installed_entry_points(group=ENTRY_POINT_GROUP)
        for ep in entry_points:
            registry._load_entry_point(ep)
        env = os.environ if environ is None else environ
        for item in env.get(ENV_VAR, "").split(os.pathsep):
            if item.strip():
                registry.load_path(item.strip(), origin=f"${ENV_VAR}")
        for item in profiles_dirs:
            registry.load_path(item, origin="--profiles-dir")
        registry.check()
        return registry

    # -- adding -------------------------------------------------------------

    def add(self, profile: Profile, *, origin: str = "python") -> None:
        """Add one profile; see the class docstring for the override rule."""
        where = str(profile.source) if profile.source else f"profile {profile.name!r}"
        if profile.name in self._profiles and not profile.override:
            raise ProfileError(
                f"{_where_profile(profile, 'name')}profile {profile.name!r} is already "
                f"defined by {self._describe(profile.name)}; set 'override = true' in "
                f"{where} to replace it"
            )
        for label in profile.labels:
            owner = self._label_owner.get(label)
            if owner not in (None, profile.name) and not profile.override:
                raise ProfileError(
                    f"{_where_profile(profile, 'labels')}label {label!r} is already "
                    f"served by profile {owner!r} ({self._describe(owner)}); set "
                    f"'override = true' in {where} to take it over"
                )
        old = self._profiles.get(profile.name)
        if old is not None:
            for label in old.labels:
                if self._label_owner.get(label) == old.name:
                    del self._label_owner[label]
        self._profiles[profile.name] = profile
        self._origins[profile.name] = origin
        for label in profile.labels:
            self._label_owner[label] = profile.name

    def load_path(self, path: str | os.PathLike[str], *, origin: str = "python") -> list[Profile]:
        """Add a ``.toml`` file, or every ``*.toml`` directly in a folder.

        Sub-folders are not searched (``profiles/examples/`` stays out of the
        built-ins). Files are added in name order.
        """
        p = Path(path).expanduser()
        if p.is_dir():
            files = sorted(p.glob("*.toml"))
        elif p.is_file():
            files = [p]
        else:
            raise ProfileError(f"{p}: no such profile folder or file (from {origin})")
        loaded = []
        for file in files:
            profile = Profile.from_toml(file)
            self.add(profile, origin=origin)
            loaded.append(profile)
        return loaded

    def _load_entry_point(self, ep: Any) -> None:
        name = getattr(ep, "name", repr(ep))
        origin = f"plug-in {name!r}"
        try:
            obj = ep.load()
            if callable(obj):
                obj = obj()
        except Exception as exc:  # a broken plug-in must not look like our bug
            raise ProfileError(f"profile {origin} failed to load: {exc}") from exc
        if isinstance(obj, (str, os.PathLike)):
            self.load_path(obj, origin=origin)
            return
        if not isinstance(obj, Iterable):
            raise ProfileError(
                f"profile {origin} returned {type(obj).__name__}; expected a folder "
                "path or a list of Profile"
            )
        for profile in obj:
            if not isinstance(profile, Profile):
                raise ProfileError(f"profile {origin} returned a {type(profile).__name__}, "
                                   "not a Profile")
            self.add(profile, origin=origin)

    def check(self) -> None:
        """Check that every ``base`` exists and bases form no cycle."""
        for profile in self._profiles.values():
            seen = [profile.name]
            current = profile
            while current.base is not None:
                if current.base not in self._profiles:
                    raise ProfileError(
                        f"{_where_profile(current, 'base')}key 'base': unknown profile "
                        f"{current.base!r}; available: "
                        + ", ".join(n for n in self.names() if n != current.name)
                    )
                if current.base in seen:
                    chain = " -> ".join([*seen, current.base])
                    raise ProfileError(
                        f"{_where_profile(current, 'base')}key 'base': circular base "
                        f"chain {chain}"
                    )
                seen.append(current.base)
                current = self._profiles[current.base]

    # -- lookup -------------------------------------------------------------

    def get(self, name: str) -> Profile:
        """Profile by name; ProfileError naming the available ones if unknown."""
        try:
            return self._profiles[name]
        except KeyError:
            raise ProfileError(
                f"unknown profile {name!r}; available: {', '.join(self.names())}"
            ) from None

    def for_label(self, label: str) -> Profile:
        """Profile that serves a classifier label."""
        try:
            return self._profiles[self._label_owner[label]]
        except KeyError:
            raise ProfileError(
                f"no profile serves label {label!r}; served labels: "
                f"{', '.join(sorted(self._label_owner))}"
            ) from None

    def resolve(self, spec: str | os.PathLike[str] | Profile) -> Profile:
        """Profile from a name, a ``.toml`` path or a :class:`Profile`.

        A file's ``base`` must exist in this registry. ``"auto"`` is not a
        profile: callers handle it (it means "classify and route").
        """
        if isinstance(spec, Profile):
            return spec
        text = os.fspath(spec)
        if text.endswith(".toml") or os.sep in text or (os.altsep and os.altsep in text):
            profile = Profile.from_toml(text)
            if profile.base is not None and profile.base not in self._profiles:
                raise ProfileError(
                    f"{_where_profile(profile, 'base')}key 'base': unknown profile "
                    f"{profile.base!r}; available: {', '.join(self.names())}"
                )
            return profile
        return self.get(text)

    def copy(self) -> ProfileRegistry:
        """An independent registry with the same profiles and origins."""
        new = ProfileRegistry()
        new._profiles = dict(self._profiles)
        new._origins = dict(self._origins)
        new._label_owner = dict(self._label_owner)
        return new

    def origin(self, name: str) -> str:
        """Where a profile came from: ``built-in``, ``--profiles-dir``, ..."""
        self.get(name)
        return self._origins[name]

    def _describe(self, name: str) -> str:
        profile = self._profiles[name]
        src = f" {profile.source}" if profile.source else ""
        return f"{self._origins[name]}{src}"

    def names(self) -> list[str]:
        """Profile names in the order they were added."""
        return list(self._profiles)

    def labels(self) -> dict[str, str]:
        """``{label: profile name}`` for every served label."""
        return dict(self._label_owner)

    def __iter__(self) -> Iterator[Profile]:
        return iter(list(self._profiles.values()))

    def __len__(self) -> int:
        return len(self._profiles)

    def __contains__(self, name: object) -> bool:
        return name in self._profiles
