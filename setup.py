"""One import name over the card's layout.

The task runtime lives in ``tasks/`` and the Hera definitions in ``workflows/``; both install
under the single import name ``canaryflow`` (``canaryflow.workflows`` is imported only by
``canaryflow compile``, so the task runtime stays light). pyproject.toml cannot express a
package-dir mapping together with package discovery, hence this file.
"""

from setuptools import find_packages, setup


def _packages(root: str, prefix: str) -> list[str]:
    return [prefix, *(f"{prefix}.{name}" for name in find_packages(root))]


setup(
    packages=_packages("tasks", "canaryflow") + _packages("workflows", "canaryflow.workflows"),
    package_dir={"canaryflow": "tasks", "canaryflow.workflows": "workflows"},
    package_data={"canaryflow": ["**/*.yaml", "**/*.json", "**/*.go", "**/go.mod"]},
    include_package_data=True,
)
