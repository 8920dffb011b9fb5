"""``python -m effdsl`` runs the command-line interface."""

from effdsl.cli import main

main()
