"""The analysis pipeline's measurements: QA values too costly for the prompt pipeline.

Pure functions over a detector's exported products (``calexp``, ``src``,
``difference_image``, ``dia_source``), its reference stars and the broadcast metrics records;
they return plain numbers and dictionaries (`records`). Nothing here reads or writes a
repository, a topic or a file: the driver (`shutterline.pipeline.analyze`) does, and the
night report (`report`) takes its records as arguments. Like a stage, this package never
imports the Butler, the simulator or the evaluation (import-linter contract).

Pixel convention as everywhere in the pipeline: ``x`` along axis 1, ``y`` along axis 0, the
centre of the first pixel at ``(0.0, 0.0)``.
"""

from __future__ import annotations

__all__: list[str] = []
