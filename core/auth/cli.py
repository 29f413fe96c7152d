"""`eraser keys create|list|revoke`: the operator's tools for API keys."""

import click
from sqlalchemy.orm import Session, sessionmaker

from core.auth.keys import InvalidPrincipalError, create_key, list_keys, revoke_key
from core.db.session import engine_from_settings, make_session_factory, session_scope
from core.settings import get_settings


def _session_factory() -> sessionmaker[Session]:
    return make_session_factory(engine_from_settings(get_settings()))


@click.group("keys")
def keys_cli() -> None:
    """Bearer API keys, each bound to a principal (a team or tool)."""


@keys_cli.command("create")
@click.option("--principal", required=True, help="Who the key acts for; sees only its own jobs.")
@click.option(
    "--admin",
    is_flag=True,
    help="Also allow it to create and revoke keys over the API (/v1/admin/keys): the "
    "operator's bootstrap key for a shared deployment.",
)
def create_command(principal: str, admin: bool) -> None:
    """Issue a key and print it once (only its hash is stored)."""
    try:
        with session_scope(_session_factory()) as session:
            issued = create_key(session, principal, admin=admin)
    except InvalidPrincipalError as error:
        raise click.BadParameter(str(error), param_hint="--principal") from error
    click.echo(issued.key)
    click.echo(
        f"{'admin ' if admin else ''}prefix {issued.prefix} for principal {issued.principal}; "
        "store the key now, "
        "it cannot be shown again",
        err=True,
    )


@keys_cli.command("list")
@click.option("--principal", default=None, help="Only this principal's keys.")
def list_command(principal: str | None) -> None:
    """Print prefix, principal, state and dates of every key (never the keys)."""
    with session_scope(_session_factory()) as session:
        for key in list_keys(session, principal):
            state = "revoked" if key.revoked_at else "active"
            if key.admin:
                state += ",admin"
            last_used = key.last_used_at.isoformat() if key.last_used_at else "never"
            click.echo(
                f"{key.prefix}\t{key.principal}\t{state}\t"
                f"created {key.created_at.isoformat()}\tlast used {last_used}"
            )


@keys_cli.command("revoke")
@click.argument("prefix")
def revoke_command(prefix: str) -> None:
    """Revoke the active key whose prefix is PREFIX (as `keys list` prints it)."""
    with session_scope(_session_factory()) as session:
        revoked = revoke_key(session, prefix)
    if not revoked:
        raise click.ClickException(f"no active key with prefix {prefix!r}")
    click.echo(f"revoked {prefix}")
