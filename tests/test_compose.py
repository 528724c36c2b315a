"""Static checks of the docker-compose topology (docker-compose.yml, docker/gpu.yml, Dockerfile,
.dockerignore, .env.example, docker/postgres-init): no Docker engine needed.

Variables are interpolated the way Compose does it, with .env.example as the env file, so the
checks see what `docker compose config` would produce. Where a `docker compose` CLI is on PATH,
it validates the files too.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
GPU = ROOT / "docker" / "gpu.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
INIT_SCRIPTS = ROOT / "docker" / "postgres-init"
COMPOSE_FILES = (COMPOSE, GPU)
PROJECT_SERVICES = ("mlflow", "create-study", "worker")

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, $VAR; $$ escapes.
BRACED = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


# --- helpers ---------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped, one pair of quotes removed)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution on one string."""

    def braced(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op is None:
            return value or ""
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if unset_or_empty else value
        if op.endswith("?"):
            if unset_or_empty:
                raise KeyError(f"required variable {name}: {arg}")
            return value
        return "" if unset_or_empty else arg  # :+ / +

    escaped = text.replace("$$", "\0")
    escaped = BRACED.sub(braced, escaped)
    escaped = re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda m: env.get(m[1], ""), escaped)
    return escaped.replace("\0", "$")


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def variables_in(text: str) -> set[str]:
    """Names of the variables a compose file reads ($$ is an escaped dollar, not a variable)."""
    text = text.replace("$$", "")
    return {m["braced"] or m["plain"] for m in VARIABLE.finditer(text)}


def command_args(command: Any) -> list[str]:
    """A service's command as an argument list: Compose splits a string command like a shell."""
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def option(args: list[str], name: str) -> str:
    """The value of ``--name value`` or ``--name=value`` in args."""
    for index, arg in enumerate(args):
        if arg == name:
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def published_ports(service: dict) -> list[tuple[str, str]]:
    """(host_ip, published) for each port of an interpolated service."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((str(port.get("host_ip", "")), str(port.get("published", ""))))
            continue
        spec = str(port).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            ports.append((parts[0].strip("[]"), parts[1]))
        elif len(parts) == 2:
            ports.append(("", parts[0]))
        else:
            ports.append(("", spec))  # container port only: published on a random port of every interface
    return ports


def depends(service: dict) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def host_allowed(allowed: list[str], host: str) -> bool:
    """MLflow's own Host-header check where it is installed, else the same rule (fnmatch on '*')."""
    try:
        from mlflow.server.security_utils import is_allowed_host_header
    except ImportError:  # pragma: no cover - mlflow is a dependency of sweeps
        return "*" in allowed or any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed)
    return is_allowed_host_header(allowed, host)


def dockerfile_stages(text: str) -> dict[str, dict]:
    """Stages of a Dockerfile: name -> {"from": base, "instructions": [(INSTRUCTION, args)]}."""
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, dict] = {}
    current = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            current = stages[name] = {"from": words[0], "instructions": []}
        elif current is not None:
            current["instructions"].append((instruction, args.strip()))
    return stages


def effective_instructions(stages: dict[str, dict], name: str) -> list[tuple[str, str]]:
    """A stage's instructions including those of the stages it is built FROM."""
    stage = stages[name]
    inherited = effective_instructions(stages, stage["from"]) if stage["from"] in stages else [("FROM", stage["from"])]
    return inherited + stage["instructions"]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """.env.example as a user fills it in: its empty POSTGRES_PASSWORD set (compose refuses it empty)."""
    return {**read_env_file(ENV_EXAMPLE), "POSTGRES_PASSWORD": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict, env: dict[str, str]) -> dict:
    return interpolate_tree(raw, env)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module", params=[".env.example", "defaults"])
def each_services(request: pytest.FixtureRequest, raw: dict, env: dict[str, str]) -> dict:
    """The services interpolated with .env.example, then with the compose file's own defaults."""
    values = env if request.param == ".env.example" else {"POSTGRES_PASSWORD": env["POSTGRES_PASSWORD"]}
    return interpolate_tree(raw, values)["services"]


@pytest.fixture(scope="module")
def gpu(env: dict[str, str]) -> dict:
    return interpolate_tree(yaml.safe_load(GPU.read_text()), env)


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    return dockerfile_stages(DOCKERFILE.read_text())


# --- the compose file ------------------------------------------------------------------------


def test_services_and_named_volumes(raw: dict, services: dict) -> None:
    assert {"postgres", "mlflow", "create-study", "worker"} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    declared = set(raw.get("volumes") or {})
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert {"pgdata", "mlartifacts"} <= declared
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name}: host networking publishes every port"
        assert "container_name" not in service, f"{name}: container_name prevents replicas"
    # opt-in extras are behind profiles
    assert services["optuna-dashboard"]["profiles"] == ["dashboard"]
    for name in ("postgres", "mlflow", "create-study", "worker"):
        assert "profiles" not in services[name]


def test_healthchecks(services: dict) -> None:
    postgres = services["postgres"]["healthcheck"]
    assert "pg_isready" in " ".join(postgres["test"])
    # over TCP, so that the init script's socket-only temporary server does not count as ready
    assert "-h 127.0.0.1" in " ".join(postgres["test"])
    mlflow = services["mlflow"]["healthcheck"]
    assert "/health" in " ".join(mlflow["test"])
    for check in (postgres, mlflow):
        assert check["test"][0] in ("CMD", "CMD-SHELL")
        assert check.get("interval") and check.get("retries")


def test_dependency_conditions(services: dict) -> None:
    assert depends(services["mlflow"]) == {"postgres": "service_healthy"}
    create = depends(services["create-study"])
    assert create["postgres"] == "service_healthy" and create["mlflow"] == "service_healthy"
    worker = depends(services["worker"])
    assert worker["create-study"] == "service_completed_successfully"
    assert all(condition in ("service_healthy", "service_completed_successfully") for condition in worker.values())
    assert depends(services["optuna-dashboard"]) == {"postgres": "service_healthy"}


def test_ports_are_published_on_loopback_only(each_services: dict, gpu: dict) -> None:
    services = each_services
    published = {}
    for name, service in [*services.items(), *gpu["services"].items()]:
        for host_ip, port in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name}: port {port} published on {host_ip or 'every interface'}"
            published[name] = int(port)
    assert published.keys() == {"postgres", "mlflow", "optuna-dashboard"}
    assert published["mlflow"] == 5000 and published["optuna-dashboard"] == 8080
    for name in ("create-study", "worker"):
        assert "ports" not in services[name]


def test_no_secret_literals_in_compose_files(raw: dict, env: dict[str, str]) -> None:
    for path in COMPOSE_FILES:
        text = path.read_text()
        assert env["POSTGRES_PASSWORD"] not in text
        # every password in a URL is a variable reference
        for user, password in re.findall(r"://(\$\{[^}]+\}|[^:/@\s]+):(\$\{[^}]+\}|[^@\s]+)@", text):
            assert re.fullmatch(r"\$\{POSTGRES_PASSWORD[^}]*\}", password), f"{path.name}: literal password in a URL"
            assert re.fullmatch(r"\$\{POSTGRES_USER[^}]*\}", user), f"{path.name}: literal user in a URL"
        # and every secret-looking key holds a variable reference only
        for key, value in re.findall(r"^\s*-?\s*([A-Za-z_]*(?:PASSWORD|SECRET|TOKEN)[A-Za-z_]*)\s*[:=]\s*(.+)$", text, re.M):
            assert re.fullmatch(r"\"?\$\{[^}]+\}\"?", value.strip()), f"{path.name}: {key} is not a ${{...}} reference"
    postgres_env = env_of(raw["services"]["postgres"])
    assert postgres_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")  # required, no default


def test_every_variable_is_documented_in_env_example(env: dict[str, str]) -> None:
    used = set().union(*(variables_in(path.read_text()) for path in COMPOSE_FILES))
    missing = used - set(env)
    assert not missing, f"used in compose files, not documented in .env.example: {sorted(missing)}"
    unused = set(env) - used
    assert not unused, f"documented in .env.example, used by no compose file: {sorted(unused)}"


def test_interpolation_needs_the_password(raw: dict, env: dict[str, str]) -> None:
    without = {k: v for k, v in env.items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate_tree(raw, without)
    # the example file's placeholder is empty: a stack started without editing .env is refused,
    # never run with a password published in this repository
    assert read_env_file(ENV_EXAMPLE)["POSTGRES_PASSWORD"] == ""
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate_tree(raw, read_env_file(ENV_EXAMPLE))


def test_no_password_on_any_command_line(raw: dict, services: dict, env: dict[str, str]) -> None:
    """A process's arguments are visible to every user of the host (ps): URLs go in the environment."""
    for name, service in raw["services"].items():
        for field in ("command", "entrypoint"):
            assert "PASSWORD" not in str(service.get(field, "")), f"{name}.{field} holds the password"
        for field in ("command", "entrypoint"):
            assert env["POSTGRES_PASSWORD"] not in str(services[name].get(field, "")), f"{name}.{field}"
    dashboard_env = env_of(services["optuna-dashboard"])
    assert re.fullmatch(r"postgresql\+psycopg://[^:]+:[^@]+@postgres:5432/optuna", dashboard_env["OPTUNA_STORAGE_URL"])
    assert "OPTUNA_STORAGE_URL" in " ".join(command_args(services["optuna-dashboard"]["entrypoint"]))


def test_worker(raw: dict, services: dict, env: dict[str, str]) -> None:
    worker = services["worker"]
    args = command_args(worker["command"])
    assert args[0] == "worker"
    # `sweeps worker` takes machine-local overrides only: the study fixes everything else
    try:
        from sweeps.run.sweep import WORKER_LOCAL_OVERRIDES as allowed
    except ImportError:
        allowed = ("storage.", "tracking.", "sweep.study_name", "train.device", "train.threads", "hydra.")
    overrides = [a for a in args[1:] if "=" in a and not a.startswith("-")]
    for override in overrides:
        assert override.lstrip("+~").partition("=")[0].startswith(tuple(allowed)), f"worker cannot take {override}"
    assert f"sweep.study_name={env['STUDY_NAME']}" in args
    worker_env = env_of(worker)
    assert re.fullmatch(r"postgresql\+psycopg://[^:]+:[^@]+@postgres:5432/optuna", worker_env["SWEEPS_STORAGE_URL"])
    assert worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert worker_env["SWEEPS_STUDY_NAME"] == env["STUDY_NAME"]
    assert raw["services"]["worker"]["deploy"]["replicas"] == "${WORKERS:-2}"
    assert int(worker["deploy"]["replicas"]) == int(env["WORKERS"])
    assert worker["restart"] == "on-failure"
    assert worker["stop_signal"] == "SIGTERM"
    grace = re.fullmatch(r"(\d+)(s|m)", worker["stop_grace_period"])
    assert grace and int(grace[1]) * (60 if grace[2] == "m" else 1) >= 30
    assert worker.get("init") is True  # PID 1 is tini: SIGTERM reaches the sweeps process
    assert "resources" not in worker.get("deploy", {}), "GPU use is opt-in (docker/gpu.yml)"


def test_create_study_is_a_one_shot_on_the_same_study(services: dict, env: dict[str, str]) -> None:
    create = services["create-study"]
    args = command_args(create["command"])
    assert args[0] == "create"
    assert "storage=postgres" in args and "tracking=server" in args
    assert f"sweep.study_name={env['STUDY_NAME']}" in args
    assert shlex.split(env["SWEEP_ARGS"]) == args[-len(shlex.split(env["SWEEP_ARGS"])):]
    assert create["restart"] == "no"
    assert env_of(create) == env_of(services["worker"])  # same storage, server and study


def test_mlflow_server(each_services: dict) -> None:
    services = each_services
    mlflow = services["mlflow"]
    assert mlflow["entrypoint"] == ["mlflow"]
    args = command_args(mlflow["command"])
    assert args[0] == "server"
    assert "--backend-store-uri" not in args  # from MLFLOW_BACKEND_STORE_URI: no password in ps
    assert re.fullmatch(r"postgresql\+psycopg://[^:]+:[^@]+@postgres:5432/mlflow", env_of(mlflow)["MLFLOW_BACKEND_STORE_URI"])
    assert "--serve-artifacts" in args
    assert option(args, "--artifacts-destination") == "/mlartifacts"
    assert "mlartifacts:/mlartifacts" in mlflow["volumes"]
    assert option(args, "--host") == "0.0.0.0" and option(args, "--port") == "5000"
    assert option(args, "--workers") == "1"
    assert str(mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]).lower() == "false"
    allowed = [h.strip() for h in option(args, "--allowed-hosts").split(",")]
    for host in ("mlflow:5000", "127.0.0.1:5000", "localhost:5000"):
        assert host_allowed(allowed, host), f"MLflow would answer 403 to Host: {host}"
    assert not host_allowed(allowed, "evil.example.com"), "--allowed-hosts must not allow every host"


def test_project_services_share_one_image_built_here(raw: dict, services: dict) -> None:
    images = {services[name]["image"] for name in PROJECT_SERVICES}
    assert len(images) == 1
    builds = [services[name]["build"] for name in PROJECT_SERVICES]
    assert all(build == builds[0] for build in builds)
    assert builds[0]["context"] == "." and builds[0].get("target", "app") == "app"
    assert builds[0]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert services["optuna-dashboard"]["build"]["target"] == "dashboard"


def test_postgres_init_script_creates_both_databases(raw: dict) -> None:
    mounts = raw["services"]["postgres"]["volumes"]
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in mounts
    scripts = sorted(INIT_SCRIPTS.glob("*.sh"))
    assert scripts
    text = "\n".join(script.read_text() for script in scripts)
    assert re.search(r"\boptuna\b", text) and re.search(r"\bmlflow\b", text) and "CREATE DATABASE" in text
    for script in scripts:
        subprocess.run(["sh", "-n", str(script)], check=True)


def test_gpu_override_is_opt_in_and_reserves_nvidia_gpus(services: dict, gpu: dict) -> None:
    assert set(gpu["services"]) <= set(services)
    devices = gpu["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}] or (
        devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    )
    # the override builds one CUDA image for every project service, under its own tag
    images = {gpu["services"][name]["image"] for name in PROJECT_SERVICES}
    assert len(images) == 1 and images != {services["worker"]["image"]}
    for service in services.values():
        assert "resources" not in service.get("deploy", {})


def test_docker_compose_validates_the_files(compose: dict, gpu: dict) -> None:
    # static: everything interpolates, no variable left, replicas an integer
    for path, tree in ((COMPOSE, compose), (GPU, gpu)):
        # the only "$" left are the escaped "$$" (a dollar for the container's shell)
        assert yaml.safe_dump(tree).count("$") == path.read_text().count("$$")
    assert int(compose["services"]["worker"]["deploy"]["replicas"]) >= 1
    # and with the real CLI where there is one (not on CI's machine: no Docker there)
    docker = shutil.which("docker")
    has_compose = docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    if not has_compose:
        return
    for files in ([COMPOSE], [COMPOSE, GPU]):
        flags = [arg for path in files for arg in ("-f", str(path))]
        result = subprocess.run(
            [docker, "compose", "--project-directory", str(ROOT), "--env-file", str(ENV_EXAMPLE), *flags, "config", "-q"],
            capture_output=True, text=True, cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr


# --- image -----------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_as_a_non_root_user(stages: dict[str, dict]) -> None:
    final = list(stages)[-1]
    instructions = effective_instructions(stages, final)
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert re.search(r"pip install[^&]* \.(\s|$)", runs), "the project is installed with `pip install .`"
    assert re.search(r"pip install --index-url \"?\$\{?TORCH_INDEX_URL", runs)
    args = dict(a.split("=", 1) for name, a in instructions if name == "ARG" and "=" in a)
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    users = [a for name, a in instructions if name == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "the image runs as a non-root user"
    assert [a for name, a in instructions if name == "ENTRYPOINT"][-1] == '["sweeps"]'
    assert [a for name, a in instructions if name == "WORKDIR"][-1] == "/work"
    dashboard = effective_instructions(stages, "dashboard")
    assert [a for name, a in dashboard if name == "USER"][-1] not in ("root", "0")


def test_dockerignore_keeps_stores_and_secrets_out_but_not_the_sources(stages: dict[str, dict]) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    excluded = [p for p in patterns if not p.startswith("!")]
    for must in (".venv", ".git", "*.db", "mlruns", "mlartifacts", ".env"):
        assert must in excluded, f".dockerignore should exclude {must}"

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").strip("/")
            if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
                verdict = not negate
        return verdict

    copied = [a for stage in stages.values() for name, a in stage["instructions"] if name == "COPY" and "--from" not in a]
    sources = [src.rstrip("/") for line in copied for src in line.split()[:-1]]
    assert {"pyproject.toml", "README.md", "sweeps", "objectives", "conf"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert not ignored(source), f".dockerignore excludes {source}, which the Dockerfile copies"
    assert not ignored(".env.example") and ignored(".env") and ignored("optuna.db")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the image's Python reads pyproject.toml with tomllib (3.11+)")
def test_dockerfile_requirements_step_lists_the_project_dependencies(tmp_path: Path) -> None:
    """The image installs the dependencies from pyproject.toml before the code (a cached layer)."""
    import tomllib

    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    snippet = re.search(r'python -c "(.+?)" > /tmp/requirements.txt', text)
    assert snippet, "the Dockerfile reads the dependencies with a python -c one-liner"
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run([sys.executable, "-c", snippet[1]], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out.split("\n")[:-1] == expected
