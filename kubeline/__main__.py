from kubeline.cli import app

app(prog_name="kubeline")
