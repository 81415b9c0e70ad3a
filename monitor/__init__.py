"""The on-call view of the try-on tasks: `python -m monitor --help`."""
