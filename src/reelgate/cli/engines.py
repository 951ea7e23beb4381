"""`reelgate engines list`: the engines this machine can run, and the models routed to them."""

from __future__ import annotations

import typer
from rich.table import Table

from reelgate.cli.common import console, settings

engines_app = typer.Typer(help="Engines this machine can run.", no_args_is_help=True)


@engines_app.command("list")
def engines_list() -> None:
    """Engines this machine can run, and the models routed to them."""
    from reelgate.engines.registry import FACTORIES, build_engines

    current = settings()
    table = Table("engine", "available", "detail", "models")
    for name, engine in build_engines(current, FACTORIES).items():
        availability = engine.availability()
        models = ", ".join(model for model, route in current.models.items() if name in route)
        table.add_row(name, "yes" if availability.ok else "no", availability.reason, models)
    console.print(table)
