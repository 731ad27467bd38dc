"""CLI command groups. Each module has ``register(app)`` adding its commands to the typer app.

Commands only parse arguments and call library functions (see DEVELOPERS.md).
"""
