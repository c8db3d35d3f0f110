"""modelwatch: self-hosted model monitoring and governance as Prefect flows over a local or S3 store.

Everything installs under this one name: the flows, tasks and deployments are ``modelwatch.flows``,
``modelwatch.tasks`` and ``modelwatch.deployments``.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# The wheel places flows/, tasks/ and deployments/ inside this package. A source checkout keeps them
# at the top of the repository, as the project's layout has them: there the repository is one more
# place the package's submodules are found, so the same imports work in both.
_HERE = _Path(__file__).resolve().parent
if not (_HERE / "tasks").is_dir() and (_HERE.parent / "tasks" / "store.py").is_file():
    __path__.append(str(_HERE.parent))  # noqa: F821 - a package's own __path__
