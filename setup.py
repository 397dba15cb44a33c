"""Build hook: map the repository's data folders into the wheel.

``profiles/``, ``classifiers/`` and ``examples/`` live at the repository root
(DESIGN.md) but must ship inside the package, as ``adaptive_codec/_profiles``
etc., where ``adaptive_codec.resources`` finds them. Everything else is in
pyproject.toml. A folder that does not exist yet is skipped, so the build
never depends on another part being finished.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
# installed sub-package -> folder at the repository root
DATA_FOLDERS = {
    "adaptive_codec._profiles": "profiles",
    "adaptive_codec._classifiers": "classifiers",
    "adaptive_codec._examples": "examples",
}
# Data a package folder may hold (weights and their exported runtime stacks,
# configs, cards, audio, golden files);
# code (*.py) never comes from the data folders.
DATA_SUFFIXES = [
    "toml", "json", "safetensors", "skops", "md", "txt", "csv",
    "flac", "wav", "ogg", "acx", "aca", "onnx",
]

packages = find_namespace_packages(
    include=["adaptive_codec", "adaptive_codec.*"], exclude=["*.__pycache__"]
)
package_dir = {}
package_data = {
    # "*": every package, e.g. a config file beside a module.
    "*": [f"*.{suffix}" for suffix in DATA_SUFFIXES],
    # Backbone weights, also in version sub-folders whose names ("v0.1")
    # cannot be packages.
    "adaptive_codec": [f"weights/**/*.{suffix}" for suffix in DATA_SUFFIXES],
}
for package, folder in DATA_FOLDERS.items():
    if (ROOT / folder).is_dir():
        packages.append(package)
        package_dir[package] = folder
        # "**/": sub-folders such as profiles/examples/ are not packages.
        package_data[package] = [f"**/*.{suffix}" for suffix in DATA_SUFFIXES]

setup(packages=packages, package_dir=package_dir, package_data=package_data)
