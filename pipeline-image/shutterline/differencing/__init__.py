"""Image differencing and DIA sources (stages 4 and 5).

Belongs here: warping templates onto the science grid (`warp`, with its compiled kernel in
`_resample`), PSF matching (`psfmatch`), subtraction and decorrelation (`subtract`,
`decorrelate`), detection and measurement on the difference image (`detection`,
`measurement`, `reliability`, with `dia` as the stage-5 entry point). Functions take and
return arrays, `Exposure` objects and astropy Tables; nothing here opens files or
repositories, imports the Butler, or reads configuration from the environment.
"""
