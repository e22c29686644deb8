from typer_app.cli import app

app()
