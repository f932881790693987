"""The backend guide (docs/writing-a-backend.md) followed command by command: tox -e new-backend."""
