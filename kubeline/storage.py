"""Local-or-S3 locations: list, fetch to a local folder, and atomic writes.

A location is a local path or an ``s3://bucket/prefix`` URI. Writers never leave half-written
output: local files go to a temporary name in the same folder and are renamed; an S3 object
appears only when its upload completes (a PUT, or a multipart upload, is atomic).

The output policy, for every command that writes:

* a file output (``features --out x.parquet``) replaces only that file; a folder there, or a
  file where one of its parent folders should be, is an error before any work is done;
* a folder output (``data generate --out DIR``) is written to a temporary folder beside it and
  moved into place whole. A user's files are never deleted: an existing folder is replaced
  only when it is empty or holds nothing but an earlier output of kubeline (listed in its
  ``.kubeline-output.json``); one holding anything else is refused with a sentence;
* a folder that several outputs share (``compile --out``) must be a folder or creatable;
  each writer replaces only its own files in it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeline.errors import StorageError

if TYPE_CHECKING:
    from kubeline.settings import Settings


def is_s3(location: str | os.PathLike[str]) -> bool:
    return str(location).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    if not is_s3(uri):
        raise StorageError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}", hint="write s3://BUCKET/prefix")
    return bucket, key


def s3_client(
    settings: Settings | None = None, *, attempts: int = 3, timeout: float | None = None
) -> Any:
    """A boto3 S3 client for the configured endpoint (path-style, as MinIO/SeaweedFS need).

    ``attempts`` and ``timeout`` (connect and read, seconds; default boto3's 60) are for callers
    that retry on their own schedule and must not hang on an unreachable store.
    """
    import boto3
    from botocore.config import Config

    if settings is None:
        from kubeline.settings import get_settings

        settings = get_settings()
    waits = {} if timeout is None else {"connect_timeout": timeout, "read_timeout": timeout}
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": attempts}, **waits)
    kwargs: dict[str, Any] = {"region_name": settings.s3_region, "config": config}
    if settings.s3_endpoint_url:
        kwargs["endpoint_url"] = settings.s3_endpoint_url
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        kwargs["aws_access_key_id"] = settings.s3_access_key_id.get_secret_value()
        kwargs["aws_secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    return boto3.client("s3", **kwargs)


def _s3_error(action: str, uri: str, exc: Exception) -> StorageError:
    return StorageError(
        f"cannot {action} {uri}: {exc}",
        hint="check KUBELINE_S3_ENDPOINT_URL, the credentials and that the bucket exists",
    )


def list_s3(uri: str, settings: Settings | None = None) -> list[str]:
    """Every object key under an s3:// prefix, as full URIs, sorted."""
    bucket, prefix = split_s3(uri)
    client = s3_client(settings)
    out: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
    except Exception as exc:  # botocore raises many unrelated types
        raise _s3_error("list", uri, exc) from exc
    return sorted(out)


def _objects(uri: str, settings: Settings | None) -> tuple[str, str, list[str]]:
    """(bucket, key prefix, keys) for a location: one object, or every object below a folder.

    ``s3://b/raw/market`` names the object ``raw/market`` if it exists, else the folder
    ``raw/market/`` (never ``raw/market2/`` beside it). A bare bucket is refused: data sets
    share buckets with other things (MLflow's artifacts, for one).
    """
    bucket, prefix = split_s3(uri)
    if not prefix.strip("/"):
        raise StorageError(
            f"{uri} names a whole bucket", hint="name the folder: s3://BUCKET/path/to/data"
        )
    listed = list_s3(uri, settings)
    if f"s3://{bucket}/{prefix}" in listed and not prefix.endswith("/"):
        return bucket, prefix, [prefix]
    folder = prefix.rstrip("/") + "/"
    keys = [k.split("/", 3)[3] for k in listed]
    keys = [k for k in keys if k.startswith(folder) and not k.endswith("/")]
    if not keys:
        raise StorageError(f"nothing found under {uri}")
    return bucket, folder, keys


def fetch(
    location: str | os.PathLike[str], workdir: Path, settings: Settings | None = None
) -> Path:
    """A local path holding the data at ``location``: itself if local, else a downloaded copy.

    An s3:// prefix that names a folder is mirrored with its structure below ``workdir``.
    """
    if not is_s3(location):
        path = Path(location).expanduser()
        if not path.exists():
            raise StorageError(f"no such file or folder: {path}")
        return path
    uri = str(location)
    bucket, prefix, keys = _objects(uri, settings)
    client = s3_client(settings)
    base = workdir / bucket
    for key in keys:
        dest = base / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(bucket, key, str(dest))
        except Exception as exc:
            raise _s3_error("download", f"s3://{bucket}/{key}", exc) from exc
    return base / prefix.rstrip("/")


def fingerprint(location: str | os.PathLike[str], settings: Settings | None = None) -> str:
    """A short digest of what is at ``location`` (names, sizes, modification times or ETags).

    Cheap (no data is read) and changes whenever a file is added, removed or rewritten, so a
    cached ingest is reused only for the same data.
    """
    import hashlib

    digest = hashlib.sha256()
    if is_s3(location):
        bucket, prefix, keys = _objects(str(location), settings)
        client = s3_client(settings)
        wanted = set(keys)
        try:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for o in page.get("Contents", []):
                    if o["Key"] in wanted:
                        digest.update(f"{o['Key']}\0{o['Size']}\0{o['ETag']}\n".encode())
        except Exception as exc:
            raise _s3_error("list", str(location), exc) from exc
    else:
        root = Path(location).expanduser()
        if not root.exists():
            raise StorageError(f"no such file or folder: {root}")
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            stat = path.stat()
            digest.update(
                f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()[:16]


def refuse_writing_into_the_input(
    data: str | os.PathLike[str], out: str | os.PathLike[str], what: str = "the output"
) -> None:
    """The output must not replace the raw data it is computed from (or land among it)."""

    def where(location: str | os.PathLike[str]) -> str:
        text = str(location)
        return text.rstrip("/") if is_s3(text) else str(Path(text).resolve())

    source, target = where(data), where(out)
    if target == source or target.startswith(source.rstrip("/") + "/"):
        raise StorageError(
            f"the output {out} would replace or sit inside the input data {data}; nothing "
            "was written",
            hint=f"write {what} somewhere outside the raw data",
        )


MANIFEST = ".kubeline-output.json"


def check_file_target(path: str | os.PathLike[str], what: str = "the output") -> Path:
    """``path`` as a place a file may be written to, or a StorageError saying why not."""
    return _check_target(Path(path).expanduser(), what, folder=False)


def check_folder_target(path: str | os.PathLike[str], what: str = "the output folder") -> Path:
    """``path`` as a folder that exists or can be made, or a StorageError saying why not."""
    return _check_target(Path(path).expanduser(), what, folder=True)


def _check_target(target: Path, what: str, *, folder: bool) -> Path:
    if target.exists() and target.is_dir() != folder:
        found, wanted = ("file", "folder") if folder else ("folder", "file")
        raise StorageError(
            f"{what} {target} is a {found}, where a {wanted} is expected",
            hint="name a folder (a new one is created)"
            if folder
            else "name a file (e.g. features.parquet) inside it",
        )
    # The nearest existing parent must be a folder: nothing can be made below a file.
    blocker = next((p for p in target.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise StorageError(
            f"{what} {target} cannot be {'made' if folder else 'written'}: {blocker} is a file, "
            "not a folder",
            hint="choose a path whose folders are folders",
        )
    return target


def _foreign_files(folder: Path) -> list[str]:
    """What in ``folder`` an earlier kubeline output did not write (sorted, relative)."""
    listed: set[str] = set()
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            listed = set(json.loads(manifest.read_text())["files"])
        except (ValueError, KeyError, TypeError):
            listed = set()
    present = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p != manifest
    )
    return [name for name in present if name not in listed]


@contextmanager
def output_folder(path: str | os.PathLike[str], what: str = "the output folder") -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes ``path``, replacing it whole.

    Refused before any work when ``path`` is a file, or a folder holding anything an earlier
    kubeline output did not write. The files written are listed in ``path/.kubeline-output.json``
    so the next run knows they are its own to replace.
    """
    final = check_folder_target(path, what)
    if final.is_dir():
        foreign = _foreign_files(final)
        if foreign:
            shown = ", ".join(foreign[:3]) + (
                f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            )
            raise StorageError(
                f"{what} {final} already holds files kubeline did not write ({shown}); "
                "nothing was changed",
                hint="choose a new or empty folder, or move those files away",
            )
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        written = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        (tmp / MANIFEST).write_text(json.dumps({"files": written}, indent=1) + "\n")
        _swap_into_place(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an old ``final`` (kubeline's own) goes once the new is in."""
    if not final.exists():
        tmp.rename(final)
        return
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    final.rename(old)
    try:
        tmp.rename(final)
    except OSError:
        old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else vanishes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        tmp.replace(target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def upload(local: Path, uri: str, settings: Settings | None = None) -> None:
    """Upload one file to an s3:// key; readers see the old object or the whole new one."""
    bucket, key = split_s3(uri)
    try:
        s3_client(settings).upload_file(str(local), bucket, key)
    except Exception as exc:
        raise _s3_error("upload", uri, exc) from exc


@contextmanager
def output_location(
    location: str | os.PathLike[str], settings: Settings | None = None
) -> Iterator[Path]:
    """A local path to write ``location``'s content to; committed atomically on success.

    For s3:// the file is written to a local temporary folder and uploaded when the block ends.
    """
    if not is_s3(location):
        with atomic_path(check_file_target(location)) as tmp:
            yield tmp
        return
    with tempfile.TemporaryDirectory(prefix="kubeline-out-") as tmpdir:
        local = Path(tmpdir) / Path(split_s3(str(location))[1]).name
        yield local
        upload(local, str(location), settings)
