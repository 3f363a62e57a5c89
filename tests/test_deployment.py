"""The deployment files start things that exist, and the settings refuse malformed environments.

docker-compose.yml, the Dockerfile and the Procfile name executables, manage.py commands, a WSGI module, a
Celery app with its beat schedule, and health-check URLs. A typo in any of them shows only when a container
or process starts, which no other test does; these tests find it without Docker and without a database.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.settings_runs import settings_runs_for
from tests.shipped import option_value

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROCFILE_ENV = {"PORT": "8000"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_dependencies() -> set[str]:
    """Distribution names in [project].dependencies: what the image installs (the test extras are not)."""
    import tomllib

    names = set()
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert name, requirement
        names.add(_normalize(name[0]))
    return names


# --- Collecting the commands --------------------------------------------------------------------------


def _dockerfile_cmd() -> list[str]:
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert lines, "Dockerfile has no CMD"
    argv = json.loads(lines[-1].removeprefix("CMD "))  # exec form: a JSON array
    assert isinstance(argv, list)
    return argv


def _healthcheck_argv(test: list[str] | str) -> list[str]:
    if isinstance(test, str):  # a plain string is the shell form
        return shlex.split(test)
    kind, *rest = test
    if kind == "CMD":
        return rest
    assert kind == "CMD-SHELL", f"healthcheck disabled or malformed: {test!r}"
    return shlex.split(rest[0])


def _expand_shell(text: str, env: dict[str, str]) -> str:
    """The little shell expansion the Procfile uses: $VAR, ${VAR} and ${VAR:-default}."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return env.get(name) or (match.group(2) or "")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", sub, text)


def _procfile() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = command.strip()
    return processes


def _compose_argv(name: str) -> list[str]:
    command = SERVICES[name].get("command", _dockerfile_cmd())
    return shlex.split(command) if isinstance(command, str) else list(command)


def _is_celery_worker(argv: list[str]) -> bool:
    return argv[:1] == ["celery"] and "worker" in argv


def _compose_workers() -> dict[str, list[str]]:
    """docker-compose's Celery worker services and their commands."""
    built = {name: _compose_argv(name) for name, service in SERVICES.items() if "build" in service}
    return {name: argv for name, argv in built.items() if _is_celery_worker(argv)}


def _procfile_workers() -> dict[str, list[str]]:
    """The Procfile's Celery worker processes and their commands."""
    argvs = {name: shlex.split(_expand_shell(command, PROCFILE_ENV)) for name, command in _procfile().items()}
    return {name: argv for name, argv in argvs.items() if _is_celery_worker(argv)}


def _commands() -> Iterator[Any]:
    for name, service in SERVICES.items():
        if "build" not in service:
            continue  # postgres and redis images: their own executables
        command = service.get("command", _dockerfile_cmd())
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        yield pytest.param(argv, id=f"compose-{name}-command")
        if "healthcheck" in service:
            yield pytest.param(_healthcheck_argv(service["healthcheck"]["test"]), id=f"compose-{name}-healthcheck")
    yield pytest.param(_dockerfile_cmd(), id="dockerfile-cmd")
    for name, command in _procfile().items():
        yield pytest.param(shlex.split(_expand_shell(command, PROCFILE_ENV)), id=f"procfile-{name}")


# --- Checking one command -----------------------------------------------------------------------------


def _check_installed_dependency(executable: str) -> None:
    """The script is in this environment and comes from a runtime dependency, so the image has it too."""
    assert (Path(sys.executable).parent / executable).exists(), f"{executable} is not installed in the venv"
    scripts = metadata.entry_points(group="console_scripts", name=executable)
    assert scripts, f"no installed distribution provides {executable}"
    providers = {_normalize(ep.dist.name) for ep in scripts if ep.dist is not None}
    assert providers & _runtime_dependencies(), f"{executable} comes from {providers}, not a project dependency"


def _check_python(args: list[str]) -> None:
    match args:
        case ["manage.py", name, *rest]:
            from django.core.management import get_commands, load_command_class

            commands = get_commands()
            assert name in commands, f"manage.py has no command {name!r}"
            command = load_command_class(commands[name], name)
            command.create_parser("manage.py", name).parse_args(rest)  # raises CommandError on bad options
        case ["-c", code]:
            # Every name the snippet imports must exist.
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        importlib.import_module(alias.name)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        case _:
            pytest.fail(f"unexpected python invocation: {args!r}")


def _check_gunicorn(args: list[str]) -> None:
    from gunicorn.config import Config

    try:
        options = Config().parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"gunicorn rejects the options {args!r}")
    [app_spec] = options.args
    module_name, _, attribute = app_spec.partition(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute or "application", None)), f"{app_spec} is not a WSGI application"


def _check_celery(args: list[str]) -> None:
    from celery.app.control import Inspect
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as cli

    split = next((i for i, arg in enumerate(args) if arg in cli.commands), None)
    assert split is not None, f"no celery subcommand in {args!r}"
    name, sub_args = args[split], args[split + 1 :]
    context = cli.make_context("celery", [*args[:split], name])  # rejects unknown global options
    assert context.params["app"], "celery runs without -A"
    context.obj = CLIContext(app=find_app(context.params["app"]), no_color=True, workdir=None, quiet=True)
    sub_context = cli.commands[name].make_context(name, list(sub_args), parent=context)  # rejects bad options
    if name in {"inspect", "control"}:
        assert hasattr(Inspect, sub_context.params["command"]), f"celery inspect has no {sub_context.params['command']}"


@pytest.mark.filterwarnings("ignore:No directory at:UserWarning")  # WhiteNoise, before collectstatic ran
@pytest.mark.parametrize("argv", list(_commands()))
def test_command_exists(argv: list[str]) -> None:
    executable, *args = argv
    if executable in {"python", "python3"}:
        _check_python(args)
    elif executable == "gunicorn":
        _check_installed_dependency(executable)
        _check_gunicorn(args)
    elif executable == "celery":
        _check_installed_dependency(executable)
        _check_celery(args)
    else:
        pytest.fail(f"{executable!r} is neither python nor a known project executable")


# --- docker-compose.yml -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if "build" in s], ids=lambda name: f"service-{name}")
def test_built_services_use_the_repository_dockerfile(name: str) -> None:
    build = SERVICES[name]["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert context.resolve() == ROOT
    assert (context / dockerfile).resolve() == ROOT / "Dockerfile"
    assert (ROOT / "Dockerfile").is_file()


def _one_shot(name: str) -> bool:
    """A job (migrate) that others wait for to finish, rather than a service that keeps running."""
    return SERVICES[name].get("restart") == "no" and any(
        isinstance(deps := s.get("depends_on"), dict)
        and deps.get(name, {}).get("condition") == "service_completed_successfully"
        for s in SERVICES.values()
    )


# Ids say "service-postgres", not "postgres": a bare id would read as the postgres marker's keyword.
@pytest.mark.parametrize("name", list(SERVICES), ids=[f"service-{name}" for name in SERVICES])
def test_every_running_service_has_a_healthcheck(name: str) -> None:
    if _one_shot(name):
        assert "healthcheck" not in SERVICES[name]
        return
    healthcheck = SERVICES[name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable")
    _healthcheck_argv(healthcheck["test"])


def test_services_wait_for_what_they_need() -> None:
    for name, service in SERVICES.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions, not a bare list"
        for dependency, rule in depends_on.items():
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{name} waits for {dependency}, which has no healthcheck"
            else:
                assert rule["condition"] == "service_completed_successfully"
                assert _one_shot(dependency)
    for name in ("web", *_compose_workers()):
        assert set(SERVICES[name]["depends_on"]) >= {"postgres", "redis", "migrate"}


def test_production_services_bring_their_own_secret_and_no_debug() -> None:
    for name, service in SERVICES.items():
        if "build" in service:
            environment = service["environment"]
            assert environment["DEBUG"] == "0", name
            assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?"), f"{name} must require SECRET_KEY"
            assert "REGISTRY_TESTING" not in environment
    for name in _compose_workers():
        assert any("media" in volume for volume in SERVICES[name]["volumes"]), f"{name} reads uploaded files"


def test_healthcheck_urls_resolve() -> None:
    from django.urls import resolve

    paths = []
    for service in SERVICES.values():
        if "healthcheck" in service:
            text = " ".join(_healthcheck_argv(service["healthcheck"]["test"]))
            paths += [urlsplit(url).path for url in re.findall(r"https?://[^\s\"']+", text)]
    assert "/healthz" in paths, "web's healthcheck should request /healthz"
    for path in paths:
        resolve(path)  # raises Resolver404


# --- Celery --------------------------------------------------------------------------------------------


def test_beat_schedule_tasks_are_registered() -> None:
    from django.conf import settings

    from config import celery_app

    celery_app.loader.import_default_modules()
    assert celery_app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    for entry, schedule in settings.CELERY_BEAT_SCHEDULE.items():
        assert schedule["task"] in celery_app.tasks, f"beat entry {entry}: task {schedule['task']} is not registered"


# --- Dockerfile, Procfile, Makefile, README -----------------------------------------------------------


def test_image_runs_as_an_unprivileged_user() -> None:
    users = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    assert users, "Dockerfile sets no USER"
    assert users[-1] not in {"root", "0"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env", ".git"} <= set(ignored)


def test_procfile_runs_web_the_workers_and_beat() -> None:
    processes = _procfile()
    assert next(iter(processes)) == "web", "honcho gives the first process the base PORT"
    assert "$PORT" in processes["web"]
    assert {"web", "worker", "worker_long", "beat"} <= set(processes)


def test_procfile_and_compose_ship_the_same_worker_commands() -> None:
    # The worker tests and the accrual benchmark start the Procfile's commands (tests/shipped.py): they are
    # docker-compose's too, worker for worker.
    assert _procfile_workers() == _compose_workers()
    assert len(_compose_workers()) >= 2


def test_each_worker_has_a_node_name_of_its_own_and_compose_pings_it() -> None:
    # Two workers on one host (make run) must not both be celery@host; compose's health check pings by name.
    names = {name: option_value(argv, "--hostname") for name, argv in _compose_workers().items()}
    assert len(set(names.values())) == len(names), names
    for name, node in names.items():
        assert node is not None, f"{name} has no --hostname"
        assert node.endswith("@%h"), node
        ping = _healthcheck_argv(SERVICES[name]["healthcheck"]["test"])
        # $$ is compose's escape: the container's shell sees $HOSTNAME, the host name Celery's %h stands for.
        assert option_value(ping, "--destination") == node.replace("%h", "$$HOSTNAME"), ping


def test_readme_opens_with_the_make_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert re.search(r"^make run\b", first_block, re.M)
    assert re.search(r"^make test\b", first_block, re.M)
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert {"run", "test", "lint"} <= targets


def _settings_variables() -> set[str]:
    """Every NAME in env.<helper>("NAME", ...) in config/settings.py."""
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "env"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def test_readme_documents_every_setting_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, re.M))
    variables = _settings_variables()
    assert len(variables) > 15  # the parse found them
    assert variables - documented == set(), "add these to README.md's configuration table"
    assert documented - variables == set(), "README.md documents variables the settings no longer read"


# --- What a newcomer running docker compose needs --------------------------------------------------------

# Variables the settings read that compose sets to a value of its own, and why.
COMPOSE_FIXED = {
    "DEBUG": "the stack is production",
    "DATABASE_URL": "the stack's own postgres service",
    "REDIS_URL": "the stack's own redis service",
    "DATA_DIR": "the image's /app/var, where the media volume is mounted",
    "CELERY_TASK_ALWAYS_EAGER": "tasks run in the worker service",
}
# Variables compose does not pass at all, and why.
COMPOSE_WITHHELD = {
    "REGISTRY_TESTING": "tests and lint only, never a deployment",
    "RECEIPT_SIGNING_KEY_FILE": "compose takes the seed in RECEIPT_SIGNING_KEY; a key file would need a volume",
}


def _readme_variables() -> set[str]:
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", (ROOT / "README.md").read_text(), re.M))


def _readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end >= 0 else None]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


def test_compose_passes_every_documented_variable_into_its_containers() -> None:
    environment: dict[str, str | None] = COMPOSE["x-app"]["environment"]
    documented = _readme_variables()
    assert set(COMPOSE_FIXED) | set(COMPOSE_WITHHELD) <= documented
    missing = []
    for name in sorted(documented):
        if name in COMPOSE_WITHHELD:
            assert name not in environment, f"{name} is passed, though {COMPOSE_WITHHELD[name]}"
        elif name not in environment:
            missing.append(name)
        elif name in COMPOSE_FIXED:
            value = environment[name]
            assert isinstance(value, str), f"{name} is fixed: {COMPOSE_FIXED[name]}"
            assert f"${{{name}" not in value, f"{name} is fixed: {COMPOSE_FIXED[name]}"
        else:
            # Passed through: "NAME:" (unset in the container when the shell and .env leave it unset, so the
            # settings' default applies) or an interpolation of the same name.
            value = environment[name]
            assert value is None or re.fullmatch(rf"\$\{{{name}(:?[-?][^}}]*)?\}}", value), f"{name}: {value!r}"
    assert not missing, f"add to docker-compose.yml's x-app environment (as NAME: to pass it through): {missing}"
    # YAML keeps the last of two equal keys silently; docker compose refuses the file.
    names = re.findall(
        r"^    ([A-Z][A-Z0-9_]*):", (ROOT / "docker-compose.yml").read_text().split("\nservices:")[0], re.M
    )
    assert len(names) == len(set(names)), (
        f"x-app names a variable twice: {sorted({n for n in names if names.count(n) > 1})}"
    )
    assert set(environment) <= documented, "compose sets variables README's configuration table does not name"
    for name, service in SERVICES.items():
        if "build" in service:
            assert service["environment"] == environment, f"{name} does not run with x-app's environment"


def test_an_empty_boolean_means_its_default() -> None:
    # Old compose versions pass "NAME:" as an empty value; that must not turn SECURE_COOKIES off.
    from config.env import Env

    assert Env({"SECURE_COOKIES": ""}).boolean("SECURE_COOKIES", True) is True
    assert Env({"DEBUG": " "}).boolean("DEBUG", False) is False
    assert Env({"SECURE_COOKIES": "0"}).boolean("SECURE_COOKIES", True) is False


def _fresh_path() -> str:
    """PATH without this virtualenv: the README's commands run in a newcomer's plain shell."""
    venv_bin = str(Path(sys.executable).parent)
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)


def test_readme_compose_commands_set_every_variable_compose_requires(tmp_path: Path) -> None:
    required = set(re.findall(r"\$\{(\w+):?\?", (ROOT / "docker-compose.yml").read_text()))
    assert {"SECRET_KEY", "RECEIPT_SIGNING_KEY", "PAYOUT_DATA_KEYS"} <= required
    script = _code_blocks(_readme_section("Docker Compose"))[0]
    assert re.search(r"^docker compose up --build$", script, re.M)
    # Run the README's first block as a newcomer would, with a docker that records what it was asked and the
    # variables compose would read from .env, in a fresh shell without this virtualenv.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\necho "$@" >> docker-calls\n')
    docker.chmod(0o755)
    work = tmp_path / "checkout"
    work.mkdir()
    fresh = {"PATH": f"{bin_dir}{os.pathsep}{_fresh_path()}", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    def run() -> dict[str, str]:
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-c", script],
            cwd=work,
            env=fresh,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        lines = (work / ".env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))

    values = run()
    assert required <= set(values), f"the README's compose commands leave {required - set(values)} unset"
    assert (work / "docker-calls").read_text().split("\n")[0] == "compose up --build"
    assert (work / ".env").stat().st_mode & 0o077 == 0, ".env holds secrets: readable by its owner only"
    assert len(values["SECRET_KEY"]) >= 50
    from optout.receipts import receipt_settings_check

    receipt_settings_check(key_file=None, seed=values["RECEIPT_SIGNING_KEY"], retired=[], dev_key_allowed=False)
    from compensation.payouts.crypto import payout_keys_check

    payout_keys_check(values["PAYOUT_DATA_KEYS"].split(","))
    # Running the commands again keeps the keys: a new one would sign everyone out and orphan receipts.
    assert run() == values


def test_readme_says_how_to_create_the_first_staff_user() -> None:
    commands = [
        shlex.split(line)
        for block in _code_blocks(_readme_section("Docker Compose"))
        for line in block.splitlines()
        if line.startswith("docker compose exec ")
    ]
    names = []
    for argv in commands:
        assert argv[3] in SERVICES, argv
        assert "build" in SERVICES[argv[3]], argv
        assert argv[4] == "python", argv
        _check_python(argv[5:])  # the command exists and takes these options
        names.append(argv[6])
    assert names[0] == "createsuperuser"
    assert any(argv[6] == "apikey_create" and "--staff-user" in argv and "staff" in argv for argv in commands)


def _dockerfile_apt_packages() -> set[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    packages: set[str] = set()
    for line in text.splitlines():
        if line.startswith("RUN "):
            lexer = shlex.shlex(line.removeprefix("RUN "), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            argv: list[str] = []
            for token in [*lexer, "&&"]:
                if token not in {"&&", ";", "||", "|"}:
                    argv.append(token)
                    continue
                if argv[:2] in (["apt-get", "install"], ["apt", "install"]):
                    packages |= {arg for arg in argv[2:] if not arg.startswith("-")}
                argv = []
    return packages


def test_the_image_has_the_korean_font_pdfs_embed() -> None:
    assert {"gettext", "fonts-nanum"} <= _dockerfile_apt_packages()
    default = re.search(r'env\.string\("PDF_FONT_PATH", "([^"]+)"\)', (ROOT / "config" / "settings.py").read_text())
    assert default
    assert default[1].startswith("/usr/share/fonts/truetype/nanum/"), "the default is fonts-nanum's file"


# --- Settings fail loudly on a malformed environment ----------------------------------------------------

SECRET = "x" * 50
RECEIPT_SEED = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # base64 of bytes 0..31
PAYOUT_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # a Fernet key: the same 32 bytes, url-safe base64
# (id, environment, variable the error must name, or None for "starts")
SETTINGS_CASES: list[tuple[str, dict[str, str], str | None]] = [
    ("debug-without-secret-starts", {"DEBUG": "1"}, None),
    (
        "production-starts",
        {
            "DEBUG": "0",
            "SECRET_KEY": SECRET,
            "ALLOWED_HOSTS": "registry.example",
            "RECEIPT_SIGNING_KEY": RECEIPT_SEED,
            "PAYOUT_DATA_KEYS": PAYOUT_KEY,
        },
        None,
    ),
    (
        "no-receipt-key-outside-debug",
        {"DEBUG": "0", "SECRET_KEY": SECRET, "PAYOUT_DATA_KEYS": PAYOUT_KEY},
        "RECEIPT_SIGNING_KEY",
    ),
    ("no-payout-key-outside-debug", {"DEBUG": "0", "SECRET_KEY": SECRET}, "PAYOUT_DATA_KEYS"),
    (
        "payout-key-malformed",
        {"DEBUG": "0", "SECRET_KEY": SECRET, "PAYOUT_DATA_KEYS": "not-a-fernet-key"},
        "PAYOUT_DATA_KEYS",
    ),
    ("lookup-rate", {"DEBUG": "1", "LOOKUP_RATE": "lots"}, "LOOKUP_RATE"),
    ("no-secret-outside-debug", {"DEBUG": "0"}, "SECRET_KEY"),
    ("no-secret-by-default", {}, "SECRET_KEY"),
    ("debug", {"DEBUG": "maybe"}, "DEBUG"),
    ("registry-testing", {"REGISTRY_TESTING": "perhaps"}, "REGISTRY_TESTING"),
    ("database-mysql", {"DEBUG": "1", "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ("redis-http", {"DEBUG": "1", "REDIS_URL": "http://x"}, "REDIS_URL"),
    ("time-zone", {"DEBUG": "1", "TIME_ZONE": "Mars/Base"}, "TIME_ZONE"),
    ("language", {"DEBUG": "1", "LANGUAGE_CODE": "fr"}, "LANGUAGE_CODE"),
    ("upload-size", {"DEBUG": "1", "DATA_UPLOAD_MAX_MEMORY_SIZE": "64MB"}, "DATA_UPLOAD_MAX_MEMORY_SIZE"),
    ("eager", {"DEBUG": "1", "CELERY_TASK_ALWAYS_EAGER": "sometimes"}, "CELERY_TASK_ALWAYS_EAGER"),
    ("recheck-minutes", {"DEBUG": "1", "DOMAIN_RECHECK_MINUTES": "0"}, "DOMAIN_RECHECK_MINUTES"),
    ("import-rows", {"DEBUG": "1", "WORK_IMPORT_MAX_ROWS": "0"}, "WORK_IMPORT_MAX_ROWS"),
    ("import-chunk", {"DEBUG": "1", "WORK_IMPORT_CHUNK_ROWS": "many"}, "WORK_IMPORT_CHUNK_ROWS"),
    ("check-timeout", {"DEBUG": "1", "DOMAIN_CHECK_TIMEOUT": "soon"}, "DOMAIN_CHECK_TIMEOUT"),
    ("allow-private", {"DEBUG": "1", "DOMAIN_CHECK_ALLOW_PRIVATE": "sure"}, "DOMAIN_CHECK_ALLOW_PRIVATE"),
    ("verification-ttl", {"DEBUG": "1", "DOMAIN_VERIFICATION_TTL_DAYS": "a week"}, "DOMAIN_VERIFICATION_TTL_DAYS"),
    ("secure-cookies", {"DEBUG": "0", "SECRET_KEY": SECRET, "SECURE_COOKIES": "maybe"}, "SECURE_COOKIES"),
]


@pytest.fixture(scope="module")
def settings_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Starts Django once per case, all at once (each start takes about a second)."""
    base = {k: v for k, v in os.environ.items() if k not in _settings_variables() and k != "DJANGO_SETTINGS_MODULE"}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return settings_runs_for(SETTINGS_CASES, base_env=base, tmp_path_factory=tmp_path_factory)


@pytest.mark.parametrize(("case_id", "variable"), [pytest.param(c, v, id=c) for c, _e, v in SETTINGS_CASES])
def test_settings_refuse_malformed_environment(
    settings_runs: dict[str, subprocess.CompletedProcess[str]], case_id: str, variable: str | None
) -> None:
    result = settings_runs[case_id]
    if variable is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0, f"settings accepted a malformed {variable}"
        assert "ImproperlyConfigured" in result.stderr
        assert variable in result.stderr.strip().splitlines()[-1], result.stderr
