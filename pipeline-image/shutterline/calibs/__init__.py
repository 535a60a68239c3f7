"""Master calibrations: bias and flat construction, defect finding, certification.

What belongs here: the array-level combination of assembled calibration exposures
(`combine`, `defects`, `masters`) and the Butler-level builder behind
``shutterline calibs build`` (`build`), which reads raws and certifies the masters into the
calibration collection. Array-level modules never touch the Butler.
"""

__all__: list[str] = []
