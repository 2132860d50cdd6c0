"""``python -m dynforecast``: the same app as the ``dynforecast`` command (used under torchrun)."""

from dynforecast.cli import app

if __name__ == "__main__":
    app(prog_name="dynforecast")
