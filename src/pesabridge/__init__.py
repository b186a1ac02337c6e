"""pesabridge: mobile money to back office, exactly once.

The public surface most integrators need::

    from pesabridge.model import Transaction, Entry, Direction
    from pesabridge.formats import get_parser
"""

__version__ = "0.1.0"
