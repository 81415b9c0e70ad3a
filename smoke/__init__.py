"""`python -m smoke`: one real look through Replicate (see __main__)."""
