"""Stage 6: DIA source to DIA object association against the Alert Production Database.

What belongs here: opening or creating an APDB (``lsst-dax-apdb``, its own ``sdm_schemas``
schema, SQLite or PostgreSQL), translating the differencing stage's DIA source table to APDB
rows, nearest-neighbour association, DIA object summaries, the history an alert carries, and
forced PSF photometry at known object positions. Everything takes and returns tables, frames
and `Exposure`s; the only I/O is the APDB connection handed in by the caller. Alert packets
are built in ``shutterline.alerts``; nothing here writes alerts or opens Butler repositories.
"""

__all__: list[str] = []
