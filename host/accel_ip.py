"""The PYNQ driver of the accelerator IP (imports pynq: load it only for the board).

Both network tops -- the HLS IP ``bnnflow_top`` and the Verilog
``bnnflow_accel`` -- present one AXI4-Lite register map (docs/ACCEL.md,
"Registers"): ap_ctrl_hs control at 0x00, ``reps``, ``mode``, and the
read-only ``signature`` and ``status`` with their ap_vld bits. Every offset
and bit comes from :mod:`bnnflow.accel`; nothing is restated here.

``bindto`` lists both engines' VLNVs (``bnnflow.vivado.ACCEL_IPS``, the names
hls/run_hls.tcl and the Verilog packaging give the IPs) and Vitis HLS's
default VLNV for an HLS top packaged without those settings, so
``pynq.Overlay`` binds this class to either IP by itself.
"""

from __future__ import annotations

import time

from pynq import DefaultIP

from bnnflow import accel
from bnnflow.vivado import ACCEL_IPS

from .backend_board import BoardError

#: What Vitis HLS calls an IP packaged without vendor/library/version settings.
DEFAULT_HLS_VLNV = "xilinx.com:hls:bnnflow_top:1.0"
#: The VLNVs the driver binds to: each engine's (bnnflow.vivado.ACCEL_IPS), then Vitis's default.
VLNVS = tuple(ip.vlnv for ip in ACCEL_IPS.values()) + (DEFAULT_HLS_VLNV,)
#: The HLS IP's VLNV (the one hls/hls_config.cfg and hls/run_hls.tcl package).
VLNV = ACCEL_IPS["hls"].vlnv


def check_register_map(description: dict) -> None:
    """Refuse an IP whose .hwh register map puts reps/mode/signature/status elsewhere than docs/ACCEL.md.

    Vitis HLS derives the offsets from the top function's arguments; a changed
    signature or another tool version could move them, and the driver would
    then write ``reps`` into the wrong register. Where the .hwh lists no
    registers (the Verilog IP, or an older PYNQ), there is nothing to compare.
    """
    registers = {str(name).lower(): info for name, info in (description.get("registers") or {}).items()}
    wrong = []
    for name, offset in BnnflowAccel.REGISTERS.items():
        info = registers.get(name)
        if isinstance(info, dict) and "address_offset" in info and int(info["address_offset"]) != offset:
            wrong.append(f"{name} at 0x{int(info['address_offset']):02x} (driver: 0x{offset:02x})")
    if wrong:
        raise BoardError(f"the accelerator's register map (from the .hwh) differs from docs/ACCEL.md: "
                         f"{', '.join(wrong)}; the bitstream was built from other sources than this bnnflow")


class AcceleratorStatusError(BoardError):
    """A run finished but its STATUS register reports a problem (``accel.STATUS_*`` bits)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class BnnflowAccel(DefaultIP):
    """Start/poll driver of a bnnflow accelerator (ap_ctrl_hs; reps, mode, signature, status)."""

    bindto = list(VLNVS)

    #: The registers docs/ACCEL.md fixes, by the names Vitis HLS gives them in the .hwh.
    REGISTERS = {"reps": accel.REPS, "mode": accel.MODE, "signature": accel.SIGNATURE, "status": accel.STATUS}

    def __init__(self, description: dict):
        super().__init__(description)
        check_register_map(description)

    @property
    def control(self) -> int:
        """The control register (reading it clears ap_done and ap_ready)."""
        return self.mmio.read(accel.CTRL)

    @property
    def idle(self) -> bool:
        return bool(self.control & accel.AP_IDLE)

    @property
    def status(self) -> int:
        """STATUS: the ``accel.STATUS_*`` bits the last run wrote (0 = fine)."""
        return self.mmio.read(accel.STATUS)

    def start(self, reps: int, mode: int = accel.MODE_INFER) -> None:
        """Start one run: write ``reps`` and ``mode``, then set ap_start.

        ``reps`` images in infer mode (0: consume nothing, only write
        signature and status); load mode ignores it. ``mode`` is any 32-bit
        value, so a bad mode can be tried (the accelerator answers
        ``STATUS_BAD_MODE``).
        """
        for name, value in (("reps", reps), ("mode", mode)):
            if not 0 <= value < 1 << 32:
                raise ValueError(f"{name} must be in [0, 2**32), got {value}")
        control = self.control
        if not control & accel.AP_IDLE:
            raise RuntimeError(f"accelerator is busy (control register 0x{control:02x}, ap_idle clear); "
                               "a previous run did not finish")
        self.mmio.write(accel.REPS, int(reps))
        self.mmio.write(accel.MODE, int(mode))
        self.mmio.write(accel.CTRL, accel.AP_START)

    def wait(self, timeout_s: float, poll_s: float = 0.0, what: str = "run") -> None:
        """Wait for ap_done (or ap_idle: ap_done is cleared by any earlier read)."""
        deadline = time.monotonic() + timeout_s
        while True:
            control = self.control
            if control & (accel.AP_DONE | accel.AP_IDLE):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"accelerator {what} did not finish within {timeout_s} s "
                                   f"(control register 0x{control:02x})")
            if poll_s:
                time.sleep(poll_s)

    def check(self, what: str) -> None:
        """After a run: raise :class:`AcceleratorStatusError` naming the STATUS bits, or a BoardError
        when the run wrote no status (status_ctrl's ap_vld clear)."""
        if not self.mmio.read(accel.STATUS_CTRL) & accel.AP_VLD:
            raise BoardError(f"accelerator {what}: it finished without writing its status register "
                             f"(status_ctrl 0x{accel.STATUS_CTRL:02x}, ap_vld clear); the bitstream's accelerator "
                             "predates the interface of docs/ACCEL.md: rebuild it from a current export")
        status = self.status
        if status:
            raise AcceleratorStatusError(f"accelerator {what} reported STATUS=0x{status:x}: "
                                         f"{accel.describe_status(status)}", status)

    def signature(self, timeout_s: float = 1.0) -> int:
        """The hardware signature of the loaded bitstream: a reps=0 infer run, then SIGNATURE (docs/ACCEL.md)."""
        self.start(0, accel.MODE_INFER)
        self.wait(timeout_s, what="reps=0 run (reading the signature)")
        valid = self.mmio.read(accel.SIGNATURE_CTRL) & accel.AP_VLD
        value = self.mmio.read(accel.SIGNATURE)
        self.check("reps=0 run (reading the signature)")
        if not valid:
            raise BoardError(f"the accelerator reported no hardware signature (signature_ctrl ap_vld clear, "
                             f"SIGNATURE=0x{value:08x}): its bitstream predates the interface of docs/ACCEL.md; "
                             "rebuild it from a current export")
        return value
