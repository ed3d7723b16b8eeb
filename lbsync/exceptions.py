"""One error root for lbsync, with a subclass only where a caller acts differently.

Pure: imports nothing from lbsync. Errors carry evidence (URL, status, HAProxy's own
output) so that the one line the CLI prints is enough to act on.
"""
from typing import Optional, Sequence


class LbsyncError(Exception):
    """Root of every error lbsync raises on purpose."""

    exit_code = 2


class SettingsError(LbsyncError):
    """A setting (flag, env var, YAML key) is missing or malformed. Not retried."""


class SourceError(LbsyncError):
    """Reading Kubernetes objects failed (file or API). A daemon retries these."""


class SourceFileError(SourceError):
    """A --source file or directory cannot be read or parsed."""


class ApiError(SourceError):
    """The Kubernetes API server answered with an error, or not at all.

    `status` is the HTTP status (None when there was no answer), `reason` the
    Status body's reason (e.g. "Forbidden") and `message` its message.
    """

    def __init__(self, message: str, *, url: str = "", status: Optional[int] = None,
                 reason: str = "", retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.reason = reason
        self.retry_after = retry_after  # seconds, from a Retry-After header (429/503)


class ApiUnreachable(ApiError):
    """Connection refused, DNS failure, TLS failure or timeout: no HTTP answer."""


class ApiUnauthorized(ApiError):
    """401: the credentials were rejected."""


class ApiForbidden(ApiError):
    """403: the credentials lack an RBAC permission."""


class ApiNotFound(ApiError):
    """404: the resource type or namespace is not served."""


class ApiGone(ApiError):
    """410: a paging `continue` token expired; the list must restart."""


class ApiTooManyRequests(ApiError):
    """429: the API server asks us to slow down."""


class ApiServerError(ApiError):
    """5xx from the API server."""


class ApiMalformed(ApiError):
    """The answer was not the JSON object the API promises (truncated, HTML, ...)."""


class CredentialsError(SourceError):
    """kubeconfig / in-cluster credentials are missing, malformed or the exec plugin failed."""


class HAProxyError(LbsyncError):
    """Talking to HAProxy (binary, sockets, reload) failed."""


class HAProxyNotFound(HAProxyError):
    """The haproxy binary is missing."""


class HAProxyCheckFailed(HAProxyError):
    """`haproxy -c` rejected a staged config. `alerts` holds HAProxy's own [ALERT] lines."""

    def __init__(self, message: str, *, output: str = "", alerts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.output = output
        self.alerts = list(alerts)


class ReloadFailed(HAProxyError):
    """HAProxy did not take the new config; the old worker keeps serving."""


class RuntimeApiError(HAProxyError):
    """An answer on the Runtime API was not the expected one; the caller falls back to a reload."""


class ApplyError(LbsyncError):
    """Staging or renaming the config file failed (disk full, read-only, permissions)."""


class RenderError(LbsyncError):
    """The template failed, or a value reaching the config is not a safe HAProxy word."""
