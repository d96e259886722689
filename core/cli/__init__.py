"""The ``facekp`` command line: each subcommand parses, checks and calls the rooms below.

May import every room of core. Nothing in core imports it.
"""
