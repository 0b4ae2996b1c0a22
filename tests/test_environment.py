"""environment.yml (conda) and binder/ (Binder) install what pyproject.toml declares.

Every runtime dependency of pyproject, and every dependency of its ``widgets`` extra (the
notebooks and the dashboard need them), must be listed in environment.yml and in
binder/requirements.txt with a pin that is compatible: it allows no version pyproject forbids
and at least one version pyproject allows. A dependency added to pyproject and forgotten in
either file fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names of packages whose PyPI names differ
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


# ---------------------------------------------------------------------------------------------
# reading the three files
# ---------------------------------------------------------------------------------------------


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def required(project: dict, extras: tuple[str, ...] = ("widgets",)) -> dict[str, SpecifierSet]:
    """``{name: specifier}`` of the runtime dependencies plus the given extras."""
    lines = list(project["project"]["dependencies"])
    for extra in extras:
        lines += project["project"]["optional-dependencies"][extra]
    out: dict[str, SpecifierSet] = {}
    for line in lines:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            out[canonicalize_name(req.name)] = req.specifier
    return out


def conda_spec(text: str) -> tuple[str, SpecifierSet]:
    """A conda match spec (``pytorch>=2.1``, ``pandas 2.*``, ``numpy=1.26``) as a PyPI name and
    a specifier set."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:::)?\s*(.*?)\s*", text.split("#")[0])
    if not m:
        raise ValueError(f"cannot read the conda dependency {text!r}")
    name, spec = m.group(1), m.group(2).replace(" ", "")
    parts = []
    for part in filter(None, spec.split(",")):
        if part[0].isdigit():  # "2.1" / "2.1.*": conda's fuzzy match
            part = "==" + (part if part.endswith("*") else part + ".*")
        elif part.startswith("=") and not part.startswith("=="):  # "=2.1": same fuzzy match
            part = "==" + part[1:].rstrip("*").rstrip(".") + ".*"
        parts.append(part)
    name = CONDA_TO_PYPI.get(name.lower(), name)
    return canonicalize_name(name), SpecifierSet(",".join(parts))


def environment(path: Path) -> tuple[dict[str, SpecifierSet], list[str], dict]:
    """What a conda environment file installs: ``({name: specifier}, pip options, raw data)``;
    the pip section's requirements count like conda's."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("dependencies"), list), \
        f"{path.name} has no dependencies list"
    found: dict[str, SpecifierSet] = {}
    options: list[str] = []
    for dep in data["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"unexpected entry {dep} in {path.name}"
            more, opts = requirement_lines(dep["pip"])
            options += opts
            for name, spec in more.items():
                found[name] = found.get(name, SpecifierSet()) & spec
        else:
            name, spec = conda_spec(str(dep))
            found[name] = found.get(name, SpecifierSet()) & spec
    return found, options, data


def requirement_lines(lines) -> tuple[dict[str, SpecifierSet], list[str]]:
    """A pip requirements list: ``({name: specifier}, option lines such as -e . or
    --extra-index-url)``."""
    found: dict[str, SpecifierSet] = {}
    options: list[str] = []
    for raw in lines:
        line = str(raw).split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        req = Requirement(line)
        name = canonicalize_name(req.name)
        found[name] = found.get(name, SpecifierSet()) & req.specifier
    return found, options


def binder_requirements() -> tuple[dict[str, SpecifierSet], list[str]]:
    return requirement_lines((ROOT / "binder" / "requirements.txt").read_text(
        encoding="utf-8").splitlines())


# ---------------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------------


def _candidates(*specs: SpecifierSet) -> list[Version]:
    """Versions that probe the edges of the specifiers: each bound, just above and just below
    it, and far below / far above everything."""
    out = {Version("0.0.1"), Version("9999")}
    for spec in specs:
        for s in spec:
            v = Version(s.version.rstrip(".*").rstrip("."))
            rel = list(v.release)
            out.add(Version(".".join(map(str, rel))))
            out.add(Version(".".join(map(str, rel + [0, 1]))))  # just above
            up = rel[:-1] + [rel[-1] + 1]
            out.add(Version(".".join(map(str, up))))  # next at the pin's precision
            if any(rel):
                i = max(k for k, x in enumerate(rel) if x)
                down = rel[:i] + [rel[i] - 1, 999]
                out.add(Version(".".join(map(str, down))))  # just below
    return sorted(out)


def incompatibility(wanted: SpecifierSet, given: SpecifierSet | None) -> str | None:
    """Why ``given`` (the environment's pin) does not fit ``wanted`` (pyproject's), or None."""
    if given is None:
        return "missing"
    if str(wanted) and not str(given):
        return f"not pinned (pyproject wants {wanted})"
    probes = _candidates(wanted, given)
    loose = [v for v in probes if given.contains(v, prereleases=True)
             and not wanted.contains(v, prereleases=True)]
    if loose:
        return f"{given} allows {loose[0]}, which pyproject's {wanted} forbids"
    if not any(given.contains(v, prereleases=True) and wanted.contains(v, prereleases=True)
               for v in probes):
        return f"{given} allows no version that pyproject's {wanted} allows"
    return None


def problems(wanted: dict[str, SpecifierSet], given: dict[str, SpecifierSet]) -> list[str]:
    out = []
    for name, spec in sorted(wanted.items()):
        why = incompatibility(spec, given.get(name))
        if why:
            out.append(f"{name}: {why}")
    return out


# ---------------------------------------------------------------------------------------------
# the checker itself
# ---------------------------------------------------------------------------------------------


def test_the_checker_reports_a_dependency_missing_from_an_environment():
    project = pyproject()
    given, _, _ = environment(ROOT / "environment.yml")
    project["project"]["dependencies"].append("brand-new-dependency>=1.0")
    assert problems(required(project), given) == ["brand-new-dependency: missing"]


@pytest.mark.parametrize("wanted, given, ok", [
    (">=2.1", ">=2.1", True),
    (">=2.1", ">=2.2,<3", True),          # stricter is fine
    (">=2.1", ">=2.0", False),            # allows 2.0, which pyproject forbids
    (">=5.0,<6", ">=5.0", False),         # allows 6
    ("==0.1.5", "==0.1.5", True),
    ("==0.1.5", ">=0.1", False),
    (">=2.10,<3", ">=3", False),          # disjoint
    (">=6", "", False),                   # unpinned
    ("", "", True),
])
def test_pin_compatibility(wanted, given, ok):
    assert (incompatibility(SpecifierSet(wanted), SpecifierSet(given)) is None) == ok


@pytest.mark.parametrize("text, name, inside, outside", [
    ("pytorch>=2.1", "torch", "2.1", "2.0"),
    ("matplotlib-base>=3.8", "matplotlib", "3.9", "3.7"),
    ("pydantic>=2.10,<3", "pydantic", "2.11", "3.0"),
    ("pandas 2.*", "pandas", "2.2", "3.0"),
    ("numpy=1.26", "numpy", "1.26.4", "1.27"),
])
def test_conda_specs_are_read_as_pip_specifiers(text, name, inside, outside):
    got_name, spec = conda_spec(text)
    assert got_name == name
    assert spec.contains(inside) and not spec.contains(outside)


# ---------------------------------------------------------------------------------------------
# the real files
# ---------------------------------------------------------------------------------------------


def test_environment_yml_installs_what_pyproject_declares():
    given, options, data = environment(ROOT / "environment.yml")
    assert problems(required(pyproject()), given) == []
    assert data.get("name") == "llmcombo"
    assert any(re.fullmatch(r"-e \.(\[[a-z,\-]*widgets[a-z,\-]*\])?", o) for o in options), \
        "environment.yml must pip-install llmcombo itself (-e .[widgets])"


def test_environment_python_fits_requires_python():
    given, _, _ = environment(ROOT / "environment.yml")
    wanted = SpecifierSet(pyproject()["project"]["requires-python"])
    assert incompatibility(wanted, given.get("python")) is None


def test_binder_installs_what_pyproject_declares():
    given, options = binder_requirements()
    assert problems(required(pyproject()), given) == []
    # the CPU wheel of torch: Binder has no GPU and the CUDA wheels are several GB
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in options


def test_binder_post_build_installs_llmcombo_and_finds_the_shipped_zoo():
    post = ROOT / "binder" / "postBuild"
    text = post.read_text(encoding="utf-8")
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert text.startswith("#!")
    assert re.search(r"pip install .*-e \"?\.\[widgets\]", text)
    # the zoo ships with the package: the image checks it is found and never retrains it
    assert "llmcombo zoo list" in text and "zoo build" not in text
    runtime = (ROOT / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    m = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert m and SpecifierSet(pyproject()["project"]["requires-python"]).contains(m.group(1))
