"""A checked connection to a KFP API: one probe that says what is wrong, then ``kfp.Client``.

``kfp.Client()`` probes ``/apis/v2beta1/healthz`` at start and retries any HTTP error there for
25 s before raising a bare TimeoutError, so kubeline probes once itself first: an endpoint that
does not answer, a refused login (401/403, or a login proxy's HTML page) and a host that is not
KFP each get one sentence with a hint. Every later call goes through ``Kfp.call``, which turns
the client's exceptions into the same errors.
"""

from __future__ import annotations

import contextlib
import io
import json
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeline.errors import ConfigError, KfpAuthError, KfpError
from kubeline.settings import Settings

HEALTHZ = "/apis/v2beta1/healthz"
PORT_FORWARD = "kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888"
AUTH_HINT = (
    "KUBELINE_KFP_TOKEN must hold a bearer token the KFP API accepts, or KUBELINE_KFP_COOKIES "
    "the login proxy's session cookie (e.g. authservice_session=...)"
)


def require_host(settings: Settings) -> str:
    """The KFP endpoint, or a ConfigError saying how to set it."""
    if not settings.kfp_host:
        raise ConfigError(
            "no KFP endpoint is set: KUBELINE_KFP_HOST is empty",
            hint=f"set KUBELINE_KFP_HOST to the KFP API (e.g. http://127.0.0.1:8888 after "
            f"`{PORT_FORWARD}`)",
        )
    return settings.kfp_host.rstrip("/")


def _auth_headers(settings: Settings) -> dict[str, str]:
    headers = {}
    token = settings.kfp_token.get_secret_value() if settings.kfp_token is not None else None
    if token is None:
        token = service_account_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if settings.kfp_cookies is not None:
        headers["Cookie"] = settings.kfp_cookies.get_secret_value()
    return headers


def service_account_token() -> str | None:
    """The projected ServiceAccount token kfp.Client itself sends when given no token.

    In a pod (the chart's upload Job, the monitor CronJob that retrains) the kubelet projects a
    token for audience pipelines.kubeflow.org at ``KF_PIPELINES_SA_TOKEN_PATH``, what a
    multi-user KFP authorizes a ServiceAccount by. The probe sends it as the client does
    (``_pod_credentials``). Read at each call: the kubelet rotates the file.
    """
    import os

    from kfp.client import KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH

    path = Path(os.environ.get(KF_PIPELINES_SA_TOKEN_ENV) or KF_PIPELINES_SA_TOKEN_PATH)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def probe(settings: Settings, timeout: float = 10.0) -> None:
    """One GET of the healthz endpoint, so a wrong host or refused login is said plainly.

    ``kfp.Client()`` would retry any HTTP error for 25 s and then raise a bare TimeoutError.
    """
    host = require_host(settings)
    request = urllib.request.Request(host + HEALTHZ, headers=_auth_headers(settings))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise _http_error(host, exc.code, exc.reason, "GET " + HEALTHZ, exc.read()) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unreachable(host, reason) from None
    try:
        json.loads(body)
    except ValueError:
        # A login proxy (dex, oauth2-proxy) answers an unauthenticated call with its HTML page.
        raise KfpAuthError(
            f"{host}{HEALTHZ} answered with {content_type or 'a page'} instead of the KFP API's "
            "JSON: a login page, or not a KFP endpoint",
            hint=AUTH_HINT,
        ) from None


def _unreachable(host: str, reason: object) -> KfpError:
    return KfpError(
        f"the KFP API at {host} does not answer ({reason})",
        hint=f"check KUBELINE_KFP_HOST; from outside the cluster run `{PORT_FORWARD}` and use "
        "http://127.0.0.1:8888",
    )


def _http_error(
    host: str, status: int, reason: object, what: str, body: str | bytes | None = None
) -> KfpError:
    detail = _server_message(body)
    said = f"{status} {reason}".strip() + (f": {detail}" if detail else "")
    if status in (401, 403):
        return KfpAuthError(
            f"the KFP API at {host} refused the credentials on {what} (HTTP {said})", hint=AUTH_HINT
        )
    if status == 404 and what.endswith(HEALTHZ):
        return KfpError(
            f"{host} has no KFP v2 API ({what} answered HTTP 404)",
            hint="KUBELINE_KFP_HOST must be the ml-pipeline API service (port 8888) of KFP 2.x",
        )
    return KfpError(f"the KFP API at {host} failed {what} (HTTP {said})")


def _server_message(body: str | bytes | None) -> str:
    """The message of a grpc-gateway error body (``{"code": 5, "message": ...}``), if any."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")
    return ""


@dataclass
class Kfp:
    """A checked connection: the kfp.Client, the endpoint and where links point."""

    client: Any
    host: str
    ui: str
    namespace: str | None

    @contextlib.contextmanager
    def call(self, what: str) -> Iterator[None]:
        """Turn the client's exceptions during ``what`` into KfpError; hush its printed links."""
        import kfp_server_api
        import urllib3

        try:
            # The client prints its own "Run details: <link>" lines; kubeline prints one link.
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        except kfp_server_api.ApiException as exc:
            if not exc.status:  # the client's own wrapping of a TLS failure: no answer at all
                raise _unreachable(self.host, exc.reason) from None
            raise _http_error(self.host, exc.status, exc.reason or "", what, exc.body) from None
        except urllib3.exceptions.HTTPError as exc:
            raise _unreachable(self.host, exc) from None
        except ValueError as exc:  # the client's own "Multiple pipelines with the name ..."
            raise KfpError(f"{what} on {self.host}: {exc}") from None

    def run_url(self, run_id: str) -> str:
        return f"{self.ui}/#/runs/details/{run_id}"


def connect(settings: Settings) -> Kfp:
    """A kfp.Client for the settings' endpoint, after one probe that explains what is wrong."""
    probe(settings)
    import kfp

    host = require_host(settings)
    namespace = settings.kfp_namespace
    kfp_conn = Kfp(None, host, (settings.kfp_ui_host or host).rstrip("/"), namespace)
    with warnings.catch_warnings(), kfp_conn.call("GET " + HEALTHZ):
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2+"
        kfp_conn.client = kfp.Client(
            host=host,
            namespace=namespace or "kubeflow",  # the client's own "not set" value
            existing_token=(
                settings.kfp_token.get_secret_value() if settings.kfp_token is not None else None
            ),
            cookies=(
                settings.kfp_cookies.get_secret_value()
                if settings.kfp_cookies is not None
                else None
            ),
            ui_host=settings.kfp_ui_host,
            credentials=_pod_credentials(settings),
        )
    return kfp_conn


def _pod_credentials(settings: Settings) -> Any:
    """kfp.Client's reader of the projected token, when a pod has one and no token is set.

    Given a host, kfp.Client sends the projected token only if it is handed these credentials
    (it looks for the file by itself only when it finds the in-cluster host on its own), and
    the chart always sets the host. They read the file again before each request.
    """
    if settings.kfp_token is not None or service_account_token() is None:
        return None
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    return ServiceAccountTokenVolumeCredentials()


def equals_filter(key: str, value: str) -> str:
    """A v2beta1 list filter: ``key`` equals ``value``."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]})
