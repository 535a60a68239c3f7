"""``python -m shutterline_operator``: run the operator (kopf) on the namespaces of
``SHUTTERLINE_NAMESPACES`` (comma-separated; all namespaces when unset)."""

from __future__ import annotations

import logging
import os


def main() -> None:
    """Configure logging and run kopf with the Shutterline handlers until signalled."""
    import kopf

    from shutterline_operator import handlers

    kopf.configure(verbose=os.environ.get("SHUTTERLINE_OPERATOR_VERBOSE") == "1")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    watched = handlers.namespaces()
    kopf.run(clusterwide=not watched, namespaces=watched, standalone=True)


if __name__ == "__main__":
    main()
