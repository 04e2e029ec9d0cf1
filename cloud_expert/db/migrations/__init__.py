"""Alembic migrations of the cloud DB (a package so that they ship with the distribution)."""
