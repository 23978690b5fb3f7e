from controlplane.cli import app

app(prog_name="fleetpilot")
