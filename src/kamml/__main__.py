"""`python -m kamml`: the `kamml` command where its console script is not on PATH (a venv not activated)."""

from kamml.cli import main

if __name__ == "__main__":
    main()
