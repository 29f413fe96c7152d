"""`eraser`: the one console command. Subcommands load lazily so that `eraser keys` or
`eraser serve` never pay for importing torch."""

import importlib

import click

# name -> "module:attribute" of a click command or group
_SUBCOMMANDS: dict[str, str] = {
    "erase": "core.erasure.cli:erase",
    "apply": "core.erasure.cli:apply",
    "evaluate": "core.evaluation.cli:evaluate",
    "make-tiny-model": "core.erasure.cli:make_tiny_model",
    "keys": "core.auth.cli:keys_cli",
    "models": "core.registry:models_cli",
    "toyworld": "core.toyworld.cli:toyworld",
    "serve": "core.local:serve",
    "jobs": "client.cli:jobs",  # the API's client: never imports the server or torch
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup)
def main() -> None:
    """Erase concepts from text-to-image diffusion models (Adversarial Preservation)."""
