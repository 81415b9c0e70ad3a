"""The package the five functions share; deploy a copy of it beside each function's index.py."""
