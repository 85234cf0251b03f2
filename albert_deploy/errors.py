"""One error hierarchy. Only the CLI turns these into messages and exit codes."""

from __future__ import annotations


class DeployError(Exception):
    """Anything the user can fix. ``str(err)`` is the whole message (one or two lines)."""

    exit_code = 1


class ProfileError(DeployError):
    """The profile file is missing, unreadable, not YAML, or does not validate."""


class RenderError(DeployError):
    """Rendering produced something that fails its own checks, or could not be written."""


class PlacementError(DeployError):
    """The models cannot be placed on the GPUs the profile declares."""


class DockerError(DeployError):
    """The Docker daemon refused, is unreachable, or a service failed to come up."""


class ServiceFailed(DockerError):
    """A service exited or never turned healthy."""


class CheckFailed(DeployError):
    """``albert-deploy check`` found a model that does not honour its contract."""


class LockError(DeployError):
    """The lock file cannot be read or written, or an image has no digest to lock."""


class OfflineError(DeployError):
    """``offline: true`` and an image or a model cache is missing on this host."""


class BundleError(DeployError):
    """A bundle archive is corrupted, incomplete, or cannot be written or restored."""


class BackupError(BundleError):
    """A backup archive is corrupted or does not fit the stack, or a backup or restore step failed."""
