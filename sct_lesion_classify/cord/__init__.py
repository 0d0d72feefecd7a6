"""Cord localization (builtin, user mask, SCT) and the invertible crop around the cord.

:mod:`.crop` holds :class:`~sct_lesion_classify.cord.crop.CropBox`, the one invertible step
between the full image and the region the lesion network sees: ``box.apply`` crops,
``box.invert`` puts a prediction back in the full field of view voxel for voxel.
"""
