"""bnnflow: a hardware/software co-design flow for binarized neural networks.

The flow: ``bnnflow.model`` trains a quantized network in PyTorch,
``bnnflow.export`` folds it into integer thresholds and packed weight words
(the artifact, specified in docs/ARTIFACT.md), ``bnnflow.golden`` is the
bit-exact integer model of the hardware every other level is checked against,
``rtl/`` + ``bnnflow.sim`` and ``hls/`` are the engines and their simulations,
and ``bnnflow.host`` is the driver.
"""

__version__ = "0.1.0"
