"""A wheel ships every data file the library reads: each one under the package matches a package-data glob."""

import fnmatch
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "transformer_math"


def test_every_data_file_is_packaged():
    globs = (tomllib.loads((ROOT / "pyproject.toml").read_text())
             ["tool"]["setuptools"]["package-data"]["transformer_math"])
    data = [p.relative_to(PKG).as_posix() for p in PKG.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    missing = [f for f in data if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert len(data) > 50 and not missing, missing
