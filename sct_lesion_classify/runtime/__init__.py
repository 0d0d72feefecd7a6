"""Where the networks run: ONNX Runtime sessions and the slices fed to them, as a card says.

The package format (card, verified package, registry, install) is
:mod:`sct_lesion_classify.modelpkg`; this package runs what it loads:

- :mod:`.session`: ``create_session`` and ``Predictor`` (one reused session per package; batches
  checked against the card; imports numpy, onnxruntime lazily).
- :mod:`.preprocess`: a card's input contract applied to a canonical volume: ``normalize`` and
  ``input_resampler`` (the one choice of the network's grid, for the segmentation models and
  the classifiers alike); ``Volume``, an array with its voxel size (``io.image.Image`` is one
  too: ``CanonicalVolume``).
- :mod:`.sagittal`: ``prepare_slices`` (shared with training) and ``SagittalSegmenter`` (a 2D
  segmentation package run on the sagittal slices, probabilities back on the volume's grid).
- :mod:`.tiling`: ``plan_tiles``, the tiles that follow the cord inside the crop box.

Nothing is imported here, so ``runtime.session`` stays light for the command-line modules.
"""
