"""The runner: worker processes, failure isolation, resume."""
