"""Stage 1, profile: YAML text in, a validated :class:`~albert_deploy.profile.model.Profile` out.

Owns the profile's schema (strict Pydantic models), its loading with errors that name the file and
the key, and the lock file that pins images. Imports nothing from a later stage.
"""
