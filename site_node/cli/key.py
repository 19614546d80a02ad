"""``site-node key backup FILE`` and ``site-node key restore FILE``: the one thing a site must back up.

The passphrase comes from ``$SITE_NODE_KEY_PASSPHRASE`` or a hidden prompt, never from an argument
(arguments show in ``ps`` and shell history).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from common.crypto import KEY_FILE_NAME, MIN_PASSPHRASE_CHARS, backup_check_value, backup_key, restore_key
from common.errors import ConflictError, InputError, NotFoundError
from site_node.audit import audited_run
from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site

#: Environment variable holding the backup passphrase (read instead of prompting).
PASSPHRASE_ENV = "SITE_NODE_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret

key_app = typer.Typer(help="Back up and restore the site key (see docs/pseudonyms.md).", no_args_is_help=True)


def _passphrase(confirm: bool) -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    return str(
        typer.prompt(
            f"Backup passphrase (at least {MIN_PASSPHRASE_CHARS} characters; or set {PASSPHRASE_ENV})",
            hide_input=True,
            confirmation_prompt=confirm,
            err=True,
        )
    )


def _write_private(path: Path, data: bytes, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConflictError("the backup file exists; pass --force to replace it", field="file") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)


@key_app.command("backup")
def backup(
    file: Annotated[
        Path, typer.Argument(help="Where to write the encrypted key (keep it off this machine).")
    ],
    home: HomeOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing backup file.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Write the site key encrypted under a passphrase (scrypt + AES-256-GCM), file mode 0600."""
    site = open_site(home)  # checks the key first: only the key the data was made with is backed up
    passphrase = _passphrase(confirm=True)
    with audited_run(site.engine, "key-backup", {}) as run:
        blob = backup_key(site.settings.phi_dir / KEY_FILE_NAME, passphrase)
        _write_private(file, blob, force)
        check = backup_check_value(blob)
        run.counts = {"check_value_prefix": check[:16]}
    result = {"file": str(file), "check_value": check}
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"site key backed up to {file} (check value {check[:16]}...).")
        typer.echo("Keep the file and its passphrase apart, both off this machine: without them a lost")
        typer.echo("key cannot be replaced and the site's pseudonyms cannot be reproduced.")


@key_app.command("restore")
def restore(
    file: Annotated[Path, typer.Argument(help="A backup written by 'site-node key backup'.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Install a backed-up key after checking it against the check value stored with the site's data."""
    from site_node.keycheck import (
        data_made_with_key,
        record_check_value,
        stored_check_values,
        verify_site_key,
    )

    site = open_site(home, verify_key=False)  # the key may be missing or wrong: that is why we are here
    try:
        blob = file.read_bytes()
    except FileNotFoundError:
        raise NotFoundError("backup file not found", field="file") from None
    stored = {v for v in stored_check_values(site.settings, site.engine).values() if v}
    if len(stored) > 1:
        raise InputError(
            "the site database and the re-identification store hold different key check values; "
            "they come from different sites' homes. Nothing was changed.",
            field="site_key",
        )
    held = data_made_with_key(site.settings, site.engine)
    expected = next(iter(stored)) if stored and held else None
    with audited_run(site.engine, "key-restore", {}) as run:
        restore_key(site.settings.phi_dir, blob, _passphrase(confirm=False), expected)
        if expected is None:  # no data depends on an earlier check value: this key's replaces it
            record_check_value(site.settings, site.engine, site.load_pseudonymizer(), replace=True)
        check = verify_site_key(site.settings, site.engine).check_value()
        run.counts = {"check_value_prefix": check[:16], "verified_against_data": expected is not None}
    result = {"check_value": check, "verified_against_data": expected is not None}
    if json_out:
        emit_json(result)
    else:
        how = "it matches the check value stored with the site's data" if expected else "no data to check"
        typer.echo(f"site key restored ({how}; check value {check[:16]}...).")


def register(app: typer.Typer) -> None:
    """Attach the ``key`` command group to ``app``."""
    app.add_typer(key_app, name="key")
