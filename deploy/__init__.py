"""Deployment helpers: `python -m deploy.package` builds one zip per function."""
