"""``python -m pesabridge``."""

from .cli import main

main()
