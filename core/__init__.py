"""The shared kernel every app builds on: errors, actors and permission checks, the API base view and error
handler, background jobs and task presets, advisory locks, money, bounded uploads, the read-only admin.

It imports nothing from ``registry``, ``optout``, ``compensation`` or ``portal`` at run time (import-linter
contracts in ``pyproject.toml``)."""
