"""Container images by role, built with whichever engine is here, from the role's lock file.

Each role has a Containerfile (``images/<role>/Containerfile``) and a lock
(``requirements/<role>.txt``). A build needs no network inside the container: the Python
distributions come from a wheelhouse filled on the host, and kubeline itself from a wheel built
from this checkout, so the image holds exactly the source that was tested. Each role's image is
tagged with its setting: the pipeline's ``KUBELINE_IMAGE`` (default
``kubeline-pipeline:<version>``: the image ``kubeline compile`` names and ``kubeline run
--runner docker`` runs), the serving one's ``KUBELINE_SERVING_IMAGE`` (default
``kubeline-serving:<version>``), the monitor's ``KUBELINE_MONITOR_IMAGE``
(``kubeline-monitor:<version>``). The git revision is in the image's labels and its
``KUBELINE_GIT_REVISION``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kubeline import __version__
from kubeline.errors import ConfigError, PipelineError

ROLES = ("pipeline", "serving", "monitor")
# The setting that names each role's image (name and tag).
_IMAGE_SETTING = {"pipeline": "image", "serving": "serving_image", "monitor": "monitor_image"}
ENGINES = ("docker", "podman")
# The one sdist in a lock (kfp-server-api) is built inside the image from these, offline;
# their versions and hashes come from the dev lock, the lock family every role shares.
BUILD_TOOLS = ("setuptools", "wheel")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

OnOutput = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    """One image built for a role: ``name:tag`` (and ``localhost/name:tag`` for a bare name)."""

    role: str
    name: str
    tag: str
    size_bytes: int
    build_seconds: float

    @property
    def reference(self) -> str:
        """The full reference kfp.local needs (a short name makes it try to pull)."""
        return local_reference(f"{self.name}:{self.tag}")


def local_reference(image: str) -> str:
    """The reference kfp.local finds without pulling: ``localhost/`` before a bare name.

    An image a local engine built as ``name:tag`` is also ``localhost/name:tag``; kfp.local
    tries to pull any name it does not find among the local tags, and a bare name means Docker
    Hub. A name with a registry (``host/...``) is kept as is.
    """
    name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return image if "/" in name else f"localhost/{image}"


def role_image(role: str, tag: str | None = None) -> tuple[str, str]:
    """A role's image name and tag: its setting's (``KUBELINE_IMAGE`` for the pipeline,
    ``KUBELINE_SERVING_IMAGE``, ``KUBELINE_MONITOR_IMAGE``), or that name and ``tag``."""
    from kubeline.settings import ENV_PREFIX, get_settings

    field = _IMAGE_SETTING[role]
    image: str = getattr(get_settings(), field)
    name, sep, own_tag = image.rpartition(":")
    if not sep or "/" in own_tag:
        raise ConfigError(
            f"{ENV_PREFIX}{field.upper()} {image!r} has no tag",
            hint=f"give it one, e.g. kubeline-{role}:0.1.0 (an untagged image means :latest)",
        )
    return name, tag or own_tag


def find_engine(engine: str | None = None) -> str:
    """The path of a container engine that answers (``docker`` first, then ``podman``).

    ``DOCKER_HOST`` and the engines' own settings are honoured: the engine is asked, not guessed.
    """
    tried: list[str] = []
    for name in [engine] if engine else ENGINES:
        path = shutil.which(name)
        if path is None:
            tried.append(f"{name}: not on PATH")
            continue
        try:
            done = subprocess.run(
                [path, "info"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            tried.append(f"{name}: {exc}")
            continue
        if done.returncode == 0:
            return path
        last = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        tried.append(f"{name}: {last}")
    raise PipelineError(
        "no container engine is reachable (" + "; ".join(tried) + ")",
        hint="start a Docker daemon (and set DOCKER_HOST if its socket is not the default) "
        "or install podman; see README, 'Images'",
    )


def source_root() -> Path:
    """The kubeline checkout images are built from (they need its Containerfiles and locks)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "images").is_dir():
        raise PipelineError(
            f"{root} is not a kubeline checkout: images are built from the source tree",
            hint="run `kubeline images build` from a git clone of kubeline (pip install -e .)",
        )
    return root


@dataclass(frozen=True)
class Pin:
    """One entry of a hash-pinned lock: ``name==version`` and its allowed hashes."""

    version: str
    hashes: tuple[str, ...]

    def requirement(self, name: str) -> str:
        return " \\\n".join([f"{name}=={self.version}", *(f"    --hash={h}" for h in self.hashes)])


def lock_pins(lock: Path) -> dict[str, Pin]:
    """The entries of a ``uv pip compile --generate-hashes`` lock, by (normalized) name."""
    pins: dict[str, Pin] = {}
    for match in re.finditer(r"^(\S+)==(\S+)((?: \\\n\s+--hash=\S+)*)", lock.read_text(), re.M):
        name, version, hashes = match.groups()
        pins[name.lower()] = Pin(version, tuple(re.findall(r"--hash=(\S+)", hashes)))
    return pins


def build_tool_requirements(dev_lock: Path) -> str:
    """The hash-pinned entries of the build tools, cut from the dev lock."""
    pins = lock_pins(dev_lock)
    blocks = []
    for name in BUILD_TOOLS:
        if name not in pins or not pins[name].hashes:
            raise PipelineError(
                f"{dev_lock} pins no {name}: the image cannot build the lock's sdists offline",
                hint="re-lock with `make lock`",
            )
        blocks.append(pins[name].requirement(name))
    return "\n".join(blocks) + "\n"


def fill_wheelhouse(
    dest: Path, *, roles: Iterable[str] = ROLES, on_output: OnOutput | None = None
) -> Path:
    """Download every distribution of the roles' locks (hash-checked) into ``dest``."""
    root = source_root()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubeline-tools-") as tmp:
        tools = Path(tmp) / "build-tools.txt"
        tools.write_text(build_tool_requirements(root / "requirements" / "dev.txt"))
        locks = [_lock(root, role) for role in roles] + [tools]
        for lock in locks:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "-r",
                    str(lock),
                    "-d",
                    str(dest),
                ],
                what=f"downloading {lock.name} into {dest}",
                on_output=on_output,
            )
    return dest


def build_images(
    *,
    engine: str | None,
    base: str | None,
    tag: str | None,
    wheelhouse: Path | None,
    roles: Iterable[str] = ROLES,
    on_output: OnOutput | None = None,
) -> list[BuiltImage]:
    """Build each role's image; return what was built.

    Each image is tagged with its role's setting (``KUBELINE_IMAGE``, ``KUBELINE_SERVING_IMAGE``;
    its name with ``tag``, if given), and also ``localhost/...`` when that name has no registry. ``wheelhouse`` is used as is (filled by
    ``pip download``/``pip wheel`` on the host); without one, a temporary wheelhouse is filled
    from the package index and removed afterwards. ``base`` overrides the Containerfile's
    ``BASE`` (for builders with no registry); a base the engine has not and cannot pull stops
    the build before any download.
    """
    roles = tuple(roles)
    root = source_root()
    for role in roles:
        _lock(root, role)
    if tag is not None and not _TAG.match(tag):
        raise ConfigError(
            f"image tag {tag!r} is not valid",
            hint="use up to 128 of A-Z a-z 0-9 _ . - (not starting with . or -)",
        )
    from kubeline.lineage import git_revision

    revision = git_revision()
    images = {role: role_image(role, tag) for role in roles}
    engine_path = find_engine(engine)
    for role in roles:
        _ensure_base(engine_path, base or _default_base(root, role))
    built: list[BuiltImage] = []
    with tempfile.TemporaryDirectory(prefix="kubeline-image-") as tmp:
        wheels = wheelhouse
        if wheels is None:
            wheels = fill_wheelhouse(Path(tmp) / "wheelhouse", roles=roles, on_output=on_output)
        elif not wheels.is_dir():
            raise PipelineError(
                f"wheelhouse {wheels} is not a folder",
                hint="fill it with `pip download --no-deps -r requirements/pipeline.txt -d DIR`",
            )
        kubeline_wheels = build_kubeline_wheel(root, Path(tmp), on_output=on_output)
        for role in roles:
            context = Path(tmp) / f"context-{role}"
            _assemble_context(context, root, role, wheels, kubeline_wheels)
            built.append(
                _build_one(
                    engine_path, context, role, images[role], base, revision, on_output=on_output
                )
            )
    return built


def wheel_sources(root: Path) -> list[Path]:
    """What the kubeline wheel is built from: pyproject.toml, its readme, each package folder.

    Read from pyproject.toml's setuptools packages and package-dir, so nothing else in the
    checkout (a stale ``build/``, data, a venv) can reach the wheel.
    """
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    setup = project.get("tool", {}).get("setuptools", {})
    mapped = setup.get("package-dir", {})
    tops = {str(mapped.get(p) or p.replace(".", "/")).split("/")[0] for p in setup["packages"]}
    readme = project["project"].get("readme")
    named = ["pyproject.toml", *([readme] if isinstance(readme, str) else []), *sorted(tops)]
    return [root / name for name in named]


def build_kubeline_wheel(root: Path, out: Path, *, on_output: OnOutput | None = None) -> Path:
    """Build the kubeline wheel into ``out/kubeline-wheel`` from a copy of its sources.

    setuptools builds in the source folder and packs whatever its ``build/lib`` holds, a
    module deleted since an earlier build included; a fresh copy holds only today's files.
    """
    wheels = out / "kubeline-wheel"
    copy = out / "kubeline-source"
    copy.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for source in wheel_sources(root):
        if source.is_dir():
            shutil.copytree(source, copy / source.name, ignore=skip)
        else:
            shutil.copy2(source, copy / source.name)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(wheels),
            str(copy),
        ],
        what="building the kubeline wheel",
        on_output=on_output,
    )
    return wheels


def _lock(root: Path, role: str) -> Path:
    lock = root / "requirements" / f"{role}.txt"
    containerfile = root / "images" / role / "Containerfile"
    if role not in ROLES or not lock.is_file() or not containerfile.is_file():
        raise ConfigError(f"unknown image role {role!r}", hint=f"choose from {', '.join(ROLES)}")
    return lock


def _assemble_context(
    context: Path, root: Path, role: str, wheelhouse: Path, kubeline_wheels: Path
) -> None:
    """Containerfile, lock and wheels in one folder: the build context, nothing else."""
    (context / "requirements").mkdir(parents=True)
    (context / "wheels").mkdir()
    shutil.copy2(root / "images" / role / "Containerfile", context / "Containerfile")
    shutil.copy2(root / "requirements" / f"{role}.txt", context / "requirements" / f"{role}.txt")
    sources = [
        p for p in wheelhouse.iterdir() if p.is_file() and not p.name.startswith("kubeline-")
    ]
    for src in [*sources, *kubeline_wheels.glob("kubeline-*.whl")]:
        dst = context / "wheels" / src.name
        try:  # a hard link costs nothing; across filesystems, copy
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _default_base(root: Path, role: str) -> str:
    """The Containerfile's own ``ARG BASE=...``: the base a build without ``--base`` uses."""
    containerfile = root / "images" / role / "Containerfile"
    found = re.search(r"^ARG BASE=(\S+)", containerfile.read_text(), re.M)
    if found is None:
        raise PipelineError(f"{containerfile} declares no default BASE", hint="pass --base")
    return found.group(1)


def _ensure_base(engine: str, base: str) -> None:
    """The base image is in the engine, or pulled now; else say so, and what to do instead."""
    have = subprocess.run(
        [engine, "image", "inspect", base], capture_output=True, text=True, check=False
    )
    if have.returncode == 0:
        return
    pulled = subprocess.run([engine, "pull", base], capture_output=True, text=True, check=False)
    if pulled.returncode == 0:
        return
    why = (pulled.stderr.strip().splitlines() or ["no answer"])[-1]
    raise PipelineError(
        f"cannot pull the base image {base} ({why})",
        hint="pass --base with an image the engine has; with no registry, make one from "
        "Debian: `debootstrap --variant=minbase --include=python3,python3-venv bookworm DIR` "
        "then `tar -C DIR -c . | docker import - localhost/kubeline-base:bookworm` and "
        "`kubeline images build --base localhost/kubeline-base:bookworm` (README, 'Images')",
    )


def _build_one(
    engine: str,
    context: Path,
    role: str,
    image: tuple[str, str],
    base: str | None,
    revision: str,
    *,
    on_output: OnOutput | None,
) -> BuiltImage:
    name, tag = image
    reference = f"{name}:{tag}"
    tags = dict.fromkeys([reference, local_reference(reference)])
    args = [
        engine,
        "build",
        # A failed build leaves no stopped container of its failing step behind.
        "--force-rm",
        "-f",
        str(context / "Containerfile"),
        *(arg for t in tags for arg in ("-t", t)),
        "--build-arg",
        f"VERSION={__version__}",
        "--build-arg",
        f"REVISION={revision}",
        "--build-arg",
        f"SOURCE={_source_url()}",
    ]
    if base:
        args += ["--build-arg", f"BASE={base}"]
    started = time.monotonic()
    _run([*args, str(context)], what=f"building {name}:{tag}", on_output=on_output)
    seconds = time.monotonic() - started
    done = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", f"{name}:{tag}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PipelineError(f"{name}:{tag} was built but cannot be inspected: {done.stderr}")
    return BuiltImage(role, name, tag, int(done.stdout.strip()), round(seconds, 1))


def _source_url() -> str:
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("kubeline").get_all("Project-URL") or []
    except PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "source":
            return url.strip()
    return ""


def _run(args: list[str], *, what: str, on_output: OnOutput | None) -> None:
    """Run a step, streaming its output; on failure, raise with the last lines it printed."""
    tail: deque[str] = deque(maxlen=30)
    try:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
    except OSError as exc:
        raise PipelineError(f"{what}: cannot start {args[0]}: {exc}") from exc
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if on_output is not None:
                on_output(line)
    if proc.returncode != 0:
        raise PipelineError(
            f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail),
            hint="the lines above are the end of its output; rerun with output shown for all",
        )
