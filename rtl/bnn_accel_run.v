// bnn_accel_run: the run controller of the accelerator (docs/ACCEL.md "Registers").
//
// What an HLS top function's ap_ctrl_hs block does, for the accelerator's
// three kinds of run. A run starts when ap_start is high and the controller
// is idle; it samples reps and mode then, pulses err_clear (the converters'
// and the loader's sticky flags start clean), and:
//   mode == MODE_INFER: passes exactly reps * IN_BEATS input beats to the image
//       path (img_*), then waits until reps * OUT_BEATS output beats have left
//       the accelerator (m_fire); reps = 0 finishes at once;
//   mode == MODE_LOAD: pulses load_start and passes input beats to the
//       parameter loader (par_*) until it reports load_done;
//   any other mode: consumes nothing and reports STATUS_BAD_MODE.
// The input's tready is low outside a run, so beats of the next transfer wait
// in the DMA. A run ends with a one-cycle pulse of ap_done, ap_ready and
// status_vld together, status holding
//   STATUS_FORMAT_ERROR (fmt_err) | STATUS_LOAD_LENGTH_ERROR (load_len_err,
//   load runs) | STATUS_BAD_MODE.
// ap_idle is low from the cycle ap_start rises (as an HLS core's) until the
// cycle after the run's end; with ap_start still high then (auto_restart) the
// next run starts immediately and ap_idle stays low.
// The mode codes and status bits are parameters (bnnflow.rtlgen passes the
// values of bnnflow/accel.py; the defaults are the same).
//
// Reset: rst is synchronous and active-high; it returns to idle.

module bnn_accel_run #(
    parameter IN_BEATS                 = 1,   // input beats per image (SF of layer 0 * beats per word)
    parameter OUT_BEATS                = 1,   // output beats per image (NF of the last layer * beats per word)
    parameter MODE_INFER               = 0,
    parameter MODE_LOAD                = 1,
    parameter STATUS_FORMAT_ERROR      = 1,
    parameter STATUS_LOAD_LENGTH_ERROR = 2,
    parameter STATUS_BAD_MODE          = 4
) (
    input  wire        clk,
    input  wire        rst,

    // ap_ctrl_hs
    input  wire        ap_start,
    output wire        ap_idle,
    output wire        ap_done,
    output wire        ap_ready,
    input  wire [31:0] reps,
    input  wire [31:0] mode,
    output wire [31:0] status,
    output wire        status_vld,

    // input stream handshake (TDATA, TKEEP, TLAST go to both paths directly)
    input  wire        s_tvalid,
    output wire        s_tready,
    output wire        img_tvalid,
    input  wire        img_tready,
    output wire        par_tvalid,
    input  wire        par_tready,

    // an output beat left the accelerator (TVALID & TREADY)
    input  wire        m_fire,

    // parameter loader and sticky error flags
    output wire        load_start,
    input  wire        load_done,
    input  wire        load_len_err,
    output wire        err_clear,
    input  wire        fmt_err
);

    localparam [1:0] S_IDLE = 2'd0, S_INFER = 2'd1, S_LOAD = 2'd2, S_DONE = 2'd3;
    localparam IB_W = (IN_BEATS > 1) ? $clog2(IN_BEATS) : 1;
    localparam OB_W = (OUT_BEATS > 1) ? $clog2(OUT_BEATS) : 1;
    localparam IB_LAST_I = IN_BEATS - 1;
    localparam OB_LAST_I = OUT_BEATS - 1;
    localparam [IB_W-1:0] IB_LAST = IB_LAST_I[IB_W-1:0];
    localparam [OB_W-1:0] OB_LAST = OB_LAST_I[OB_W-1:0];
    localparam [IB_W-1:0] IB_ONE  = 1;
    localparam [OB_W-1:0] OB_ONE  = 1;
    localparam [31:0] M_INFER = MODE_INFER;
    localparam [31:0] M_LOAD  = MODE_LOAD;
    localparam [31:0] ST_FMT  = STATUS_FORMAT_ERROR;
    localparam [31:0] ST_LEN  = STATUS_LOAD_LENGTH_ERROR;
    localparam [31:0] ST_MODE = STATUS_BAD_MODE;

    reg  [1:0]      state_q;
    reg  [31:0]     in_left_q, out_left_q;     // images still to take in / to send out
    reg  [IB_W-1:0] in_beat_q;
    reg  [OB_W-1:0] out_beat_q;
    reg             is_load_q, bad_mode_q;

    wire begin_run = ap_start & (state_q == S_IDLE);
    wire taking    = (state_q == S_INFER) & (in_left_q != 32'd0);
    wire in_fire   = img_tvalid & img_tready;

    assign img_tvalid = s_tvalid & taking;
    assign par_tvalid = s_tvalid & (state_q == S_LOAD);
    assign s_tready   = taking ? img_tready : ((state_q == S_LOAD) & par_tready);

    always @(posedge clk) begin
        if (rst) begin
            state_q <= S_IDLE;
        end else begin
            case (state_q)
                S_IDLE:
                    if (begin_run) begin
                        if (mode == M_INFER)
                            state_q <= (reps == 32'd0) ? S_DONE : S_INFER;
                        else if (mode == M_LOAD)
                            state_q <= S_LOAD;
                        else
                            state_q <= S_DONE;
                    end
                S_INFER:
                    if (out_left_q == 32'd0)
                        state_q <= S_DONE;
                S_LOAD:
                    if (load_done)
                        state_q <= S_DONE;
                default:
                    state_q <= S_IDLE;
            endcase
        end
    end

    always @(posedge clk) begin
        if (begin_run) begin
            in_left_q  <= reps;
            out_left_q <= reps;
            in_beat_q  <= {IB_W{1'b0}};
            out_beat_q <= {OB_W{1'b0}};
            is_load_q  <= (mode == M_LOAD);
            bad_mode_q <= (mode != M_INFER) & (mode != M_LOAD);
        end else begin
            if (in_fire) begin
                if (in_beat_q == IB_LAST) begin
                    in_beat_q <= {IB_W{1'b0}};
                    in_left_q <= in_left_q - 32'd1;
                end else begin
                    in_beat_q <= in_beat_q + IB_ONE;
                end
            end
            if (m_fire) begin
                if (out_beat_q == OB_LAST) begin
                    out_beat_q <= {OB_W{1'b0}};
                    out_left_q <= out_left_q - 32'd1;
                end else begin
                    out_beat_q <= out_beat_q + OB_ONE;
                end
            end
        end
    end

    wire finish = (state_q == S_DONE);

    assign ap_idle    = (state_q == S_IDLE) & ~ap_start;
    assign ap_done    = finish;
    assign ap_ready   = finish;
    assign status_vld = finish;
    assign status     = (fmt_err ? ST_FMT : 32'd0)
                      | ((is_load_q & load_len_err) ? ST_LEN : 32'd0)
                      | (bad_mode_q ? ST_MODE : 32'd0);
    assign load_start = begin_run & (mode == M_LOAD);
    assign err_clear  = begin_run;

endmodule
