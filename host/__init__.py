"""bnnflow.host: the driver that runs an exported network on golden, rtl or board.

``import bnnflow.host`` needs neither pynq nor a simulator: each backend loads
what it needs when it is constructed. See docs/DRIVER.md.
"""

from .backend_board import BoardError, BoardNotFoundError, SignatureMismatchError
from .backend_rtl import RtlUnavailableError
from .driver import BACKENDS, BnnDriver
from .result import BackendResult, BatchTiming

__all__ = ["BACKENDS", "BackendResult", "BatchTiming", "BnnDriver", "BoardError", "BoardNotFoundError",
           "RtlUnavailableError", "SignatureMismatchError"]
