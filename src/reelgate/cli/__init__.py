"""The `reelgate` command line: serve, worker, migrate, keys, accounts, credits, engines, generate, and the
remote commands submit and tasks (through the SDK).

Each command lives in the module of its subject and imports what it needs when it runs.
"""

from __future__ import annotations

import typer

from reelgate.cli import accounts, engines, generate, keys, remote, server, workers

app = typer.Typer(
    help="reelgate: a self-hosted Kling-O1 image-to-video API.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(server.migrate)
app.command()(server.serve)
app.command()(server.worker)
app.command()(generate.generate)
app.command()(remote.submit)
app.add_typer(remote.tasks_app, name="tasks")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(engines.engines_app, name="engines")
app.add_typer(workers.workers_app, name="workers")
app.add_typer(accounts.accounts_app, name="accounts")
app.add_typer(accounts.credits_app, name="credits")
