"""Solar-system objects: orbit propagation, position prediction, ssSource association.

``orbits`` is the two-body core (elements table, state vectors, predicted sky positions);
pure numpy/astropy computation, no files, no repositories. Prediction for a visit and the
association of DIA sources with known objects build on it in ``predict``.
"""

from shutterline.solarsystem.orbits import (
    elements_from_state,
    heliocentric_positions,
    heliocentric_state,
    make_orbits,
    predict_radec,
)

__all__ = [
    "elements_from_state",
    "heliocentric_positions",
    "heliocentric_state",
    "make_orbits",
    "predict_radec",
]
