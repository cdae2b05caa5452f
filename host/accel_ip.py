"""The PYNQ driver of the accelerator IP (imports pynq: load it only for the board).

Vitis HLS gives the top function ``bnnflow_top`` an AXI4-Lite slave (bundle
``control``) with the ap_ctrl_hs block-level protocol:

====== =====================================================================
0x00   control: bit 0 ap_start (R/W), bit 1 ap_done (clear on read),
       bit 2 ap_idle (R), bit 3 ap_ready (clear on read), bit 7 auto_restart
0x04   global interrupt enable      0x08 IP interrupt enable
0x0c   IP interrupt status          0x10 ``reps``: images in the next run
====== =====================================================================

``bindto`` names the VLNV that hls/hls_config.cfg and hls/run_hls.tcl package
the IP under (vendor bnnflow, library bnnflow, name = top function, version
1.0; tests/test_host.py keeps them consistent), plus Vitis HLS's default
VLNV for IP packaged without those settings, so ``pynq.Overlay`` binds this
class to the IP by itself.
"""

from __future__ import annotations

import time

from pynq import DefaultIP

CTRL = 0x00
GIE = 0x04
IER = 0x08
ISR = 0x0C
REPS = 0x10

AP_START = 1 << 0
AP_DONE = 1 << 1
AP_IDLE = 1 << 2
AP_READY = 1 << 3
AUTO_RESTART = 1 << 7

VLNV = "bnnflow:bnnflow:bnnflow_top:1.0"
DEFAULT_HLS_VLNV = "xilinx.com:hls:bnnflow_top:1.0"


class BnnflowAccel(DefaultIP):
    """Start/poll driver of the ``bnnflow_top`` HLS IP (ap_ctrl_hs, ``reps`` at 0x10)."""

    bindto = [VLNV, DEFAULT_HLS_VLNV]

    @property
    def control(self) -> int:
        """The control register (reading it clears ap_done and ap_ready)."""
        return self.mmio.read(CTRL)

    @property
    def idle(self) -> bool:
        return bool(self.control & AP_IDLE)

    def start(self, reps: int) -> None:
        """Run the network on ``reps`` images: write ``reps``, then set ap_start."""
        if not 0 < reps < 1 << 32:
            raise ValueError(f"reps must be in [1, 2**32), got {reps}")
        status = self.control
        if not status & AP_IDLE:
            raise RuntimeError(f"accelerator is busy (control register 0x{status:02x}, ap_idle clear); "
                               "a previous run did not finish")
        self.mmio.write(REPS, int(reps))
        self.mmio.write(CTRL, AP_START)

    def wait(self, timeout_s: float, poll_s: float = 0.0) -> None:
        """Wait for ap_done (or ap_idle: ap_done is cleared by any earlier read)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.control
            if status & (AP_DONE | AP_IDLE):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"accelerator did not finish within {timeout_s} s "
                                   f"(control register 0x{status:02x})")
            if poll_s:
                time.sleep(poll_s)
