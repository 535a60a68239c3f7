"""The file datastore of Shutterline repositories: daf_butler's, with a faster checksum."""

from __future__ import annotations

from lsst.daf.butler.datastore import DatastoreConfig
from lsst.daf.butler.datastores.fileDatastore import FileDatastore
from lsst.daf.butler.registry.interfaces import DatastoreRegistryBridgeManager
from lsst.resources import ResourcePath, ResourcePathExpression

from shutterline.butler import checksums

__all__ = ["ShutterlineFileDatastore"]


class ShutterlineFileDatastore(FileDatastore):
    """`FileDatastore` recording CRC-32 checksums (see `shutterline.butler.checksums`)."""

    @classmethod
    def _create_from_config(
        cls,
        config: DatastoreConfig,
        bridgeManager: DatastoreRegistryBridgeManager,
        butlerRoot: ResourcePathExpression | None,
    ) -> FileDatastore:
        datastore = super()._create_from_config(config, bridgeManager, butlerRoot)
        # The base class builds a plain FileDatastore by name; same state, our methods.
        datastore.__class__ = cls
        return datastore

    def clone(self, bridgeManager: DatastoreRegistryBridgeManager) -> FileDatastore:
        """A copy sharing configuration, with a new registry bridge."""
        datastore = super().clone(bridgeManager)
        datastore.__class__ = type(self)
        return datastore  # type: ignore[return-value]

    @staticmethod
    def computeChecksum(
        uri: ResourcePath, algorithm: str = "crc32", block_size: int = 8 * 1024 * 1024
    ) -> str | None:
        """``crc32:<hex>`` of a local file; None for a remote one (as the base class does).

        ``algorithm`` and ``block_size`` are accepted for the base signature; the result is
        always CRC-32, which `checksums.Checksummer` recognises by its prefix.
        """
        if not uri.isLocal:
            return None
        with uri.as_local() as local:
            return checksums.file_checksum(local.ospath)
