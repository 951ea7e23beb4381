"""`reelgate submit` and `reelgate tasks get|list|cancel`: the API of a running server, through the SDK
(`reelgate-client`, imported when a command runs; `make install` puts it in the dev venv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from reelgate.cli.common import console, err, fail
from reelgate.config import DEFAULT_MODEL

if TYPE_CHECKING:
    from reelgate_client import Client, Task, TaskEvent

tasks_app = typer.Typer(help="Tasks on a running server (through the Python SDK).", no_args_is_help=True)

Server = Annotated[str, typer.Option("--server", envvar="REELGATE_BASE_URL", help="The server's base URL")]
Key = Annotated[str, typer.Option("--key", envvar="REELGATE_API_KEY", help="An API key of that server")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
_REMOTE_SCHEMES = ("http://", "https://", "data:")


def _client(server: str, key: str) -> Client:
    try:
        from reelgate_client import Client, ReelgateError
    except ImportError:
        raise fail("the Python SDK is not installed: pip install ./clients/python (make install does)") from None
    if not key:
        raise fail("an API key is needed: --key or REELGATE_API_KEY")
    try:
        return Client(base_url=server, api_key=key)
    except ReelgateError as exc:
        raise fail(exc.message) from None


def submit(
    image: Annotated[list[str], typer.Option(help="First frame, then optionally last frame: a local path or a URL")],
    prompt: Annotated[str, typer.Option(help="What happens in the video")],
    server: Server = DEFAULT_SERVER,
    key: Key = "",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write the MP4")] = None,
    aspect_ratio: Annotated[str | None, typer.Option(help="16:9, 9:16 or 1:1 (default: nearest to the image)")] = None,
    duration: Annotated[int | None, typer.Option(help="5 or 10 seconds")] = None,
    model: Annotated[str, typer.Option(help="The public model name")] = DEFAULT_MODEL,
    timeout_s: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the video")] = 600,
) -> None:
    """Upload local images, create a task, follow its progress and download the video."""
    from reelgate_client import ReelgateError, TaskFailedError

    if not 1 <= len(image) <= 2:
        raise fail("give one --image (first frame) or two (first and last frame)")
    with _client(server, key) as client:
        try:
            urls = []
            for number, source in enumerate(image, start=1):
                if source.startswith(_REMOTE_SCHEMES):
                    urls.append(source)
                    continue
                path = Path(source)
                if not path.is_file():
                    raise fail(f"--image #{number}: no such file: {source}")
                uploaded = client.files.upload(path)
                err.print(f"uploaded {path.name} as {uploaded.id}")
                urls.append(uploaded.url)
            task = client.videos.create(
                model=model, prompt=prompt, image_urls=urls, aspect_ratio=aspect_ratio, duration=duration
            )
            err.print(f"task {task.id} ({task.status})")
            done = _follow(client, task, timeout_s)
            target = output or Path(f"{done.id}.mp4")
            client.tasks.download(done, target)
        except TaskFailedError as failed:
            reason = failed.task.error.message if failed.task.error is not None else ""
            raise fail(f"task {failed.task.id} failed: {failed.code}: {reason}") from None
        except ReelgateError as exc:
            raise fail(str(exc)) from None
    console.print(f"[green]completed[/green] {done.id}: {target}")
    if done.poster_url:
        console.print(f"poster: {done.poster_url}")


def _follow(client: Client, task: Task, timeout_s: float) -> Task:
    """A progress bar driven by the task's event stream (the SDK polls where there is none)."""
    with Progress(
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[left]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        row = bar.add_task("video", total=100, status=task.status, left="")

        def on_progress(event: TaskEvent) -> None:
            left = f"~{event.estimated_time} s left" if event.estimated_time and not event.is_terminal else ""
            bar.update(row, completed=event.progress, status=event.status, left=left)

        return client.tasks.wait(task.id, timeout_s=timeout_s, on_progress=on_progress)


def _print_task(task: Task, as_json: bool) -> None:
    if as_json:
        print(json.dumps(task.raw))
        return
    console.print(f"[bold]{task.id}[/bold] {task.status} {task.progress}% ({task.model}, engine {task.engine})")
    if task.error is not None:
        console.print(f"  error: {task.error.code}: {task.error.message}")
    for url in task.results:
        console.print(f"  video: {url}")
    if task.poster_url:
        console.print(f"  poster: {task.poster_url}")


@tasks_app.command("get")
def tasks_get(
    task_id: Annotated[str, typer.Argument(help="The task id (task-unified-...)")],
    server: Server = DEFAULT_SERVER,
    key: Key = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the task object")] = False,
) -> None:
    """One task: status, progress, links."""
    from reelgate_client import ReelgateError

    with _client(server, key) as client:
        try:
            task = client.tasks.get(task_id)
        except ReelgateError as exc:
            raise fail(str(exc)) from None
    _print_task(task, as_json)


@tasks_app.command("list")
def tasks_list(
    server: Server = DEFAULT_SERVER,
    key: Key = "",
    limit: Annotated[int, typer.Option(help="Tasks to show, newest first", min=1, max=100)] = 20,
    after: Annotated[str | None, typer.Option(help="The next_cursor of a previous page")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as JSON")] = False,
) -> None:
    """The key's tasks, newest first."""
    from reelgate_client import ReelgateError

    with _client(server, key) as client:
        try:
            page = client.tasks.list(limit=limit, after=after)
        except ReelgateError as exc:
            raise fail(str(exc)) from None
    if as_json:
        print(
            json.dumps({"data": [t.raw for t in page.data], "has_more": page.has_more, "next_cursor": page.next_cursor})
        )
        return
    table = Table("status", "progress", "model", "created")
    # An id is copied into the next command: it must never wrap.
    table.columns.insert(0, Column("id", no_wrap=True))
    for task in page.data:
        table.add_row(task.id, task.status, f"{task.progress}%", task.model, str(task.created))
    console.print(table)
    if page.has_more:
        console.print(f"more: --after {page.next_cursor}")


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(help="The task id (task-unified-...)")],
    server: Server = DEFAULT_SERVER,
    key: Key = "",
) -> None:
    """Cancel a pending or processing task (its credits are released)."""
    from reelgate_client import ReelgateError

    with _client(server, key) as client:
        try:
            task = client.tasks.cancel(task_id)
        except ReelgateError as exc:
            raise fail(str(exc)) from None
    console.print(f"cancelled [bold]{task.id}[/bold]: {task.status} ({task.error.code if task.error else ''})")
