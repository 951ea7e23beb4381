"""The web console's files (`static/`): plain ES modules, CSS and HTML, served by api/console.py at `/console`.

No Python lives here and there is no build step: the files in `static/` are what the browser runs, shipped as
package data in the wheel (pyproject.toml), so there is no build output that could disagree with its sources.
The console is a client of the public API only (docs/console.md).
"""
