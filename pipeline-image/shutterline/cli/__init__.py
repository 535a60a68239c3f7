"""The ``shutterline`` command line: one entry point, one module per subcommand.

Each module ``shutterline.cli.<name>`` defines ``register(subparsers)`` which adds its
subcommand and sets ``func`` (a callable taking the parsed namespace and returning an exit
code). Modules import heavy dependencies inside their handlers so ``--help`` stays fast.
"""
