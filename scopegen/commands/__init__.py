"""The CLI's commands, one module each: lint, schema, build, serve, deploy and mcp.

``scopegen.cli`` parses options and calls ``run_<command>`` here; each returns
the process exit code. They import their heavy dependencies lazily so that
``scopegen lint`` stays light.
"""
