"""Run Alembic migrations from inside Tocsin (``tocsin migrate``, ``tocsin serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def project_root() -> Path:
    """Find the directory holding alembic.ini and migrations/.

    That is the source checkout for an editable install, else the working directory
    (the Docker image installs the package and runs from a copy of the checkout).
    """
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "alembic.ini").is_file() and (candidate / "migrations").is_dir():
            return candidate
    raise RuntimeError(
        "alembic.ini and migrations/ were not found next to the package or in the working "
        "directory; run Tocsin from its source directory"
    )


def alembic_config(database_url: str | None = None) -> Config:
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    # Tocsin configured logging already; alembic.ini's logger set-up would replace it.
    config.attributes["configure_logger"] = False
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database; call from synchronous code (Alembic's env runs its own loop)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
