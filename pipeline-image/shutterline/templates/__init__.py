"""Template coadds per sky-map patch and band.

What belongs here: scaling calibrated warps to nJy and coadding them (`coadd`: weighted mean
with outlier rejection, variance, mask, PSF), and the Butler-level builder behind
``shutterline templates build`` (`build`), which runs ISR, characterization, calibration and
warping on earlier science visits and stores ``template_coadd`` datasets.
"""

__all__: list[str] = []
