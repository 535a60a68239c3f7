"""Stage 8: alert packets in the Rubin alert schema, their cutouts, and the atomic spool.

What belongs here: building alert dicts from association records (``packet``), FITS cutouts
as bytes (``cutouts``), Avro encoding in the Confluent wire format and Avro container files
(``serialize``), and the spool writer the alert relay reads (``spool``). The schema is the
latest one shipped by ``lsst-alert-packet``. Nothing here talks to Kafka or to the APDB.
"""

__all__: list[str] = []
