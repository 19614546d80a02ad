"""Error hierarchy shared by the site node and the hub.

Every error the platform raises on purpose derives from :class:`PlatformError`. Each subclass
carries a process exit code (for the CLIs), an HTTP status (for the APIs) and a public message.
Messages name the field, tag or file *role* that is wrong, never the offending value: a value may
be PHI. The CLIs and the APIs each translate these errors in exactly one place.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Root of all deliberate platform errors.

    Args:
        message: public message; must not contain data values (they may be PHI).
        field: optional name of the field, tag or setting the error is about.
    """

    exit_code: int = 1
    http_status: int = 500
    code: str = "platform_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.public_message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        """Return the machine-readable form used by the API and ``--json`` output."""
        out = {"error": self.code, "message": self.public_message}
        if self.field:
            out["field"] = self.field
        return out


class ConfigError(PlatformError):
    """Configuration is missing or invalid (exit 78, EX_CONFIG)."""

    exit_code = 78
    http_status = 500
    code = "config_error"


class KeyFileError(ConfigError):
    """The site key file is missing, too short or readable by others."""

    code = "key_file_error"


class InputError(PlatformError):
    """Input data or arguments are invalid (exit 65, EX_DATAERR)."""

    exit_code = 65
    http_status = 422
    code = "invalid_input"


class NotFoundError(PlatformError):
    """A requested object does not exist."""

    exit_code = 66
    http_status = 404
    code = "not_found"


class AuthenticationError(PlatformError):
    """No or unknown credentials."""

    exit_code = 77
    http_status = 401
    code = "unauthenticated"


class PermissionDeniedError(PlatformError):
    """Credentials are valid but the role may not do this."""

    exit_code = 77
    http_status = 403
    code = "forbidden"


class ConflictError(PlatformError):
    """The request conflicts with the current state."""

    exit_code = 75
    http_status = 409
    code = "conflict"


class PayloadTooLargeError(PlatformError):
    """A payload exceeds the configured size limit."""

    exit_code = 65
    http_status = 413
    code = "payload_too_large"


class PrivacyError(PlatformError):
    """A privacy rule would be broken (e.g. a count below the floor would leave the site)."""

    exit_code = 70
    http_status = 422
    code = "privacy_violation"


class RemoteError(PlatformError):
    """A remote service (the hub, NVFlare) answered with an error or could not be reached."""

    exit_code = 69
    http_status = 502
    code = "remote_error"


class TooManyRequestsError(PlatformError):
    """A quota or a throttle refuses the request for now (HTTP 429)."""

    exit_code = 75
    http_status = 429
    code = "too_many_requests"
