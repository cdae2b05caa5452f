// bnn_axilite_ctrl: the accelerator's AXI4-Lite control slave (docs/ACCEL.md "Registers").
//
// The register map Vitis HLS gives
//   void bnnflow_top(stream in, stream out, unsigned reps, unsigned mode,
//                    unsigned *signature, unsigned *status)
// with ap_ctrl_hs on bundle "control", so one driver serves the HLS IP and the
// Verilog accelerator. Offsets are parameters (bnnflow.rtlgen passes the values
// of bnnflow/accel.py; the defaults are the same):
//   CTRL            R/W  bit 0 ap_start (writing 1 sets it; cleared by ap_ready
//                        unless auto_restart), bit 1 ap_done (clear on read),
//                        bit 2 ap_idle, bit 3 ap_ready (clear on read),
//                        bit 7 auto_restart
//   GIE             R/W  bit 0 global interrupt enable
//   IER             R/W  bit 0 ap_done, bit 1 ap_ready interrupt enable
//   ISR             R/TOW bit 0 ap_done, bit 1 ap_ready interrupt status (a 1 written toggles)
//   REPS, MODE      R/W  32-bit arguments of the next run (byte strobes honoured)
//   SIGNATURE       R    last value presented with signature_vld
//   SIGNATURE_CTRL  R    bit 0 ap_vld: set by signature_vld, clear on read
//   STATUS          R    last value presented with status_vld
//   STATUS_CTRL     R    bit 0 ap_vld: set by status_vld, clear on read
// Unmapped offsets read 0; writes to them and to read-only registers are
// ignored. The two low address bits are ignored (32-bit registers).
//
// Bus behaviour (as the HLS slave): BRESP and RRESP are always OKAY; one write
// and one read may be outstanding at a time; AW and W are taken independently
// (either may come first, or both in one cycle); the write takes effect on the
// cycle after both have been taken, and BVALID rises with it. A read returns
// the register as it was in the cycle of its AR handshake; the clear-on-read
// bits are cleared by that handshake, and an event in the same cycle (ap_done,
// a vld pulse) wins, so it is never lost. interrupt = GIE & (ISR != 0),
// registered.
//
// Block-level side (ap_ctrl_hs, as an HLS core sees it): ap_start is a level
// held until ap_ready; ap_done and ap_ready are one-cycle pulses from the run
// controller; ap_idle is its level (it must already be low while ap_start is
// high). reps and mode are the register contents (the run controller samples
// them when it starts).
//
// Reset: rst is synchronous and active-high; it clears every register.

module bnn_axilite_ctrl #(
    parameter ADDR_BITS           = 6,
    parameter ADDR_CTRL           = 'h00,
    parameter ADDR_GIE            = 'h04,
    parameter ADDR_IER            = 'h08,
    parameter ADDR_ISR            = 'h0C,
    parameter ADDR_REPS           = 'h10,
    parameter ADDR_MODE           = 'h18,
    parameter ADDR_SIGNATURE      = 'h20,
    parameter ADDR_SIGNATURE_CTRL = 'h24,
    parameter ADDR_STATUS         = 'h28,
    parameter ADDR_STATUS_CTRL    = 'h2C
) (
    input  wire                 clk,
    input  wire                 rst,

    // AXI4-Lite slave (address bits 1:0 are ignored)
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [ADDR_BITS-1:0] s_axi_awaddr,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                 s_axi_awvalid,
    output wire                 s_axi_awready,
    input  wire [31:0]          s_axi_wdata,
    input  wire [3:0]           s_axi_wstrb,
    input  wire                 s_axi_wvalid,
    output wire                 s_axi_wready,
    output wire [1:0]           s_axi_bresp,
    output wire                 s_axi_bvalid,
    input  wire                 s_axi_bready,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [ADDR_BITS-1:0] s_axi_araddr,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                 s_axi_arvalid,
    output wire                 s_axi_arready,
    output wire [31:0]          s_axi_rdata,
    output wire [1:0]           s_axi_rresp,
    output wire                 s_axi_rvalid,
    input  wire                 s_axi_rready,
    /* verilator lint_off SYMRSVDWORD */
    output wire                 interrupt,     // the Vitis HLS name (also a C++ word)
    /* verilator lint_on SYMRSVDWORD */

    // block-level handshake and arguments
    output wire                 ap_start,
    input  wire                 ap_done,
    input  wire                 ap_ready,
    input  wire                 ap_idle,
    output wire [31:0]          reps,
    output wire [31:0]          mode,
    input  wire [31:0]          signature,
    input  wire                 signature_vld,
    input  wire [31:0]          status,
    input  wire                 status_vld
);

    localparam [ADDR_BITS-1:0] A_CTRL    = ADDR_CTRL[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_GIE     = ADDR_GIE[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_IER     = ADDR_IER[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_ISR     = ADDR_ISR[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_REPS    = ADDR_REPS[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_MODE    = ADDR_MODE[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_SIG     = ADDR_SIGNATURE[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_SIG_C   = ADDR_SIGNATURE_CTRL[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_STAT    = ADDR_STATUS[ADDR_BITS-1:0];
    localparam [ADDR_BITS-1:0] A_STAT_C  = ADDR_STATUS_CTRL[ADDR_BITS-1:0];

    // ------------------------------------------------------------------
    // Registers
    // ------------------------------------------------------------------
    reg         ap_start_q, ap_done_q, ap_ready_q, auto_restart_q;
    reg         gie_q;
    reg  [1:0]  ier_q, isr_q;
    reg  [31:0] reps_q, mode_q;
    reg  [31:0] signature_q, status_q;
    reg         signature_vld_q, status_vld_q;
    reg         interrupt_q;

    // ------------------------------------------------------------------
    // Write channel: AW and W held independently, committed together
    // ------------------------------------------------------------------
    reg                 aw_full_q, w_full_q, bvalid_q;
    reg [ADDR_BITS-1:0] waddr_q;
    reg [31:0]          wdata_q;
    reg [3:0]           wstrb_q;

    wire aw_hs  = s_axi_awvalid & ~aw_full_q & ~bvalid_q;
    wire w_hs   = s_axi_wvalid & ~w_full_q & ~bvalid_q;
    wire commit = aw_full_q & w_full_q;

    assign s_axi_awready = ~aw_full_q & ~bvalid_q;
    assign s_axi_wready  = ~w_full_q & ~bvalid_q;
    assign s_axi_bvalid  = bvalid_q;
    assign s_axi_bresp   = 2'b00;

    always @(posedge clk) begin
        if (rst) begin
            aw_full_q <= 1'b0;
            w_full_q  <= 1'b0;
            bvalid_q  <= 1'b0;
        end else begin
            if (commit) begin
                aw_full_q <= 1'b0;
                w_full_q  <= 1'b0;
                bvalid_q  <= 1'b1;
            end else begin
                if (aw_hs)
                    aw_full_q <= 1'b1;
                if (w_hs)
                    w_full_q <= 1'b1;
                if (bvalid_q & s_axi_bready)
                    bvalid_q <= 1'b0;
            end
        end
    end

    always @(posedge clk) begin
        if (aw_hs)
            waddr_q <= {s_axi_awaddr[ADDR_BITS-1:2], 2'b00};
        if (w_hs) begin
            wdata_q <= s_axi_wdata;
            wstrb_q <= s_axi_wstrb;
        end
    end

    wire wr_ctrl = commit & (waddr_q == A_CTRL) & wstrb_q[0];
    wire wr_gie  = commit & (waddr_q == A_GIE)  & wstrb_q[0];
    wire wr_ier  = commit & (waddr_q == A_IER)  & wstrb_q[0];
    wire wr_isr  = commit & (waddr_q == A_ISR)  & wstrb_q[0];
    wire wr_reps = commit & (waddr_q == A_REPS);
    wire wr_mode = commit & (waddr_q == A_MODE);

    // byte-strobed update of a 32-bit argument register
    function [31:0] strobed;
        input [31:0] old;
        input [31:0] data;
        input [3:0]  strb;
        integer b;
        begin
            for (b = 0; b < 4; b = b + 1)
                strobed[b*8 +: 8] = strb[b] ? data[b*8 +: 8] : old[b*8 +: 8];
        end
    endfunction

    // ------------------------------------------------------------------
    // Read channel
    // ------------------------------------------------------------------
    reg        rvalid_q;
    reg [31:0] rdata_q;

    wire                 ar_hs = s_axi_arvalid & ~rvalid_q;
    wire [ADDR_BITS-1:0] raddr = {s_axi_araddr[ADDR_BITS-1:2], 2'b00};
    wire rd_ctrl  = ar_hs & (raddr == A_CTRL);
    wire rd_sig_c = ar_hs & (raddr == A_SIG_C);
    wire rd_stat_c = ar_hs & (raddr == A_STAT_C);

    assign s_axi_arready = ~rvalid_q;
    assign s_axi_rvalid  = rvalid_q;
    assign s_axi_rdata   = rdata_q;
    assign s_axi_rresp   = 2'b00;

    reg [31:0] rmux;
    always @* begin
        rmux = 32'd0;
        if (raddr == A_CTRL)
            rmux = {24'd0, auto_restart_q, 3'd0, ap_ready_q, ap_idle, ap_done_q, ap_start_q};
        else if (raddr == A_GIE)
            rmux = {31'd0, gie_q};
        else if (raddr == A_IER)
            rmux = {30'd0, ier_q};
        else if (raddr == A_ISR)
            rmux = {30'd0, isr_q};
        else if (raddr == A_REPS)
            rmux = reps_q;
        else if (raddr == A_MODE)
            rmux = mode_q;
        else if (raddr == A_SIG)
            rmux = signature_q;
        else if (raddr == A_SIG_C)
            rmux = {31'd0, signature_vld_q};
        else if (raddr == A_STAT)
            rmux = status_q;
        else if (raddr == A_STAT_C)
            rmux = {31'd0, status_vld_q};
    end

    always @(posedge clk) begin
        if (rst)
            rvalid_q <= 1'b0;
        else if (ar_hs)
            rvalid_q <= 1'b1;
        else if (s_axi_rready)
            rvalid_q <= 1'b0;
        if (ar_hs)
            rdata_q <= rmux;
    end

    // ------------------------------------------------------------------
    // Control, interrupt, arguments and results
    // ------------------------------------------------------------------
    always @(posedge clk) begin
        if (rst) begin
            ap_start_q      <= 1'b0;
            ap_done_q       <= 1'b0;
            ap_ready_q      <= 1'b0;
            auto_restart_q  <= 1'b0;
            gie_q           <= 1'b0;
            ier_q           <= 2'b00;
            isr_q           <= 2'b00;
            reps_q          <= 32'd0;
            mode_q          <= 32'd0;
            signature_q     <= 32'd0;
            status_q        <= 32'd0;
            signature_vld_q <= 1'b0;
            status_vld_q    <= 1'b0;
            interrupt_q     <= 1'b0;
        end else begin
            if (wr_ctrl & wdata_q[0])
                ap_start_q <= 1'b1;
            else if (ap_ready)
                ap_start_q <= auto_restart_q;
            if (wr_ctrl)
                auto_restart_q <= wdata_q[7];

            if (ap_done)
                ap_done_q <= 1'b1;
            else if (rd_ctrl)
                ap_done_q <= 1'b0;
            if (ap_ready)
                ap_ready_q <= 1'b1;
            else if (rd_ctrl)
                ap_ready_q <= 1'b0;

            if (wr_gie)
                gie_q <= wdata_q[0];
            if (wr_ier)
                ier_q <= wdata_q[1:0];
            if (ier_q[0] & ap_done)
                isr_q[0] <= 1'b1;
            else if (wr_isr)
                isr_q[0] <= isr_q[0] ^ wdata_q[0];
            if (ier_q[1] & ap_ready)
                isr_q[1] <= 1'b1;
            else if (wr_isr)
                isr_q[1] <= isr_q[1] ^ wdata_q[1];
            interrupt_q <= gie_q & (isr_q != 2'b00);

            if (wr_reps)
                reps_q <= strobed(reps_q, wdata_q, wstrb_q);
            if (wr_mode)
                mode_q <= strobed(mode_q, wdata_q, wstrb_q);

            if (signature_vld)
                signature_q <= signature;
            if (signature_vld)
                signature_vld_q <= 1'b1;
            else if (rd_sig_c)
                signature_vld_q <= 1'b0;
            if (status_vld)
                status_q <= status;
            if (status_vld)
                status_vld_q <= 1'b1;
            else if (rd_stat_c)
                status_vld_q <= 1'b0;
        end
    end

    assign ap_start  = ap_start_q;
    assign reps      = reps_q;
    assign mode      = mode_q;
    assign interrupt = interrupt_q;

endmodule
