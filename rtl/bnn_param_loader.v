// bnn_param_loader: the parameter stream in, memory writes out (docs/ACCEL.md
// "The parameter stream").
//
// The stream is a sequence of SEGMENTS segments, one per memory, in stream
// order; segment s is SEG_WORDS(s) memory words of SEG_WORD_BITS(s) bits, each
// split into SEG_BEATS(s) = ceil(SEG_WORD_BITS(s) / BEAT_BITS) beats, lowest
// bits first, zero above the word. Every word becomes one write
//   cfg_we = 1, cfg_layer = SEG_LAYER(s), cfg_sel = SEG_SEL(s) (0 weights,
//   1 thresholds), cfg_addr = word index within the segment, cfg_wdata = word
// one cycle after its last beat; bits of cfg_wdata above the word carry no
// meaning. The segment table comes as packed parameters, segment s in bits
// [32*s +: 32] of each (bnnflow.rtlgen fills them from
// bnnflow.accel.param_segments, the one definition of the stream).
//
// A load: start (a one-cycle pulse) arms the loader; it then takes exactly the
// stream's sum of SEG_WORDS(s)*SEG_BEATS(s) beats (s_axis_tready is high while
// armed, so the caller gates s_axis_tvalid to load runs) and pulses done one
// cycle after the last beat, with the last write. Checks, as sticky flags
// cleared by err_clear (and by start):
//   len_err: TLAST was set on a beat other than the last, or not on the last;
//   fmt_err: a TKEEP bit was clear, or a padding bit of a word's last beat was 1.
// The words are written whatever the flags say; the caller reports them.
//
// Reset: rst is synchronous and active-high; it disarms the loader and clears
// the counters and flags.

module bnn_param_loader #(
    parameter BEAT_BITS  = 32,               // TDATA width of the parameter stream
    parameter LAYER_BITS = 1,                // width of cfg_layer
    parameter ADDR_BITS  = 1,                // width of cfg_addr: holds every SEG_WORDS(s) - 1
    parameter DATA_BITS  = 32,               // width of cfg_wdata: >= every SEG_WORD_BITS(s)
    parameter SEGMENTS   = 1,
    parameter [32*SEGMENTS-1:0] SEG_WORDS     = {32'd2},
    parameter [32*SEGMENTS-1:0] SEG_WORD_BITS = {32'd32},
    parameter [32*SEGMENTS-1:0] SEG_BEATS     = {32'd1},
    parameter [32*SEGMENTS-1:0] SEG_LAYER     = {32'd0},
    parameter [32*SEGMENTS-1:0] SEG_SEL       = {32'd0}
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,
    output wire                   done,

    // the parameter stream
    input  wire [BEAT_BITS-1:0]   s_axis_tdata,
    input  wire [BEAT_BITS/8-1:0] s_axis_tkeep,
    input  wire                   s_axis_tvalid,
    output wire                   s_axis_tready,
    input  wire                   s_axis_tlast,

    // memory writes
    output wire                   cfg_we,
    output wire [LAYER_BITS-1:0]  cfg_layer,
    output wire                   cfg_sel,
    output wire [ADDR_BITS-1:0]   cfg_addr,
    output wire [DATA_BITS-1:0]   cfg_wdata,

    // checks
    input  wire                   err_clear,
    output wire                   len_err,
    output wire                   fmt_err
);

    localparam MAX_BEATS = (DATA_BITS + BEAT_BITS - 1) / BEAT_BITS;
    localparam ASM_BITS  = MAX_BEATS * BEAT_BITS;
    localparam SW = (SEGMENTS > 1) ? $clog2(SEGMENTS) : 1;
    localparam BW = (MAX_BEATS > 1) ? $clog2(MAX_BEATS) : 1;
    localparam SEG_LAST_I = SEGMENTS - 1;
    localparam [SW-1:0] SEG_LAST = SEG_LAST_I[SW-1:0];
    localparam [SW-1:0] SEG_ONE  = 1;
    localparam [ADDR_BITS-1:0] ADDR_ONE = 1;
    localparam [BW-1:0] BEAT_ONE = 1;

    // ------------------------------------------------------------------
    // Segment table (constants, indexed by the segment counter)
    // ------------------------------------------------------------------
    wire [ADDR_BITS-1:0]  t_last_word [0:SEGMENTS-1];
    wire [BW-1:0]         t_last_beat [0:SEGMENTS-1];
    wire [LAYER_BITS-1:0] t_layer     [0:SEGMENTS-1];
    wire                  t_sel       [0:SEGMENTS-1];
    wire [BEAT_BITS-1:0]  t_pad       [0:SEGMENTS-1];   // padding bits of a word's last beat

    genvar s;
    generate
        for (s = 0; s < SEGMENTS; s = s + 1) begin : g_seg
            localparam integer WORDS = SEG_WORDS[32*s +: 32];
            localparam integer BITS  = SEG_WORD_BITS[32*s +: 32];
            localparam integer BEATS = SEG_BEATS[32*s +: 32];
            localparam integer LAYER = SEG_LAYER[32*s +: 32];
            localparam integer SEL   = SEG_SEL[32*s +: 32];
            localparam integer LW_I  = WORDS - 1;
            localparam integer LB_I  = BEATS - 1;
            localparam integer VALID = BITS - LB_I * BEAT_BITS;   // word bits in the last beat
            assign t_last_word[s] = LW_I[ADDR_BITS-1:0];
            assign t_last_beat[s] = LB_I[BW-1:0];
            assign t_layer[s]     = LAYER[LAYER_BITS-1:0];
            assign t_sel[s]       = SEL[0];
            assign t_pad[s]       = {BEAT_BITS{1'b1}} << VALID;
        end
    endgenerate

    // ------------------------------------------------------------------
    // Walk: segment, word, beat
    // ------------------------------------------------------------------
    reg                 armed_q;
    reg [SW-1:0]        seg_q;
    reg [ADDR_BITS-1:0] word_q;
    reg [BW-1:0]        beat_q;

    wire fire       = s_axis_tvalid & armed_q;
    wire beat_last  = (beat_q == t_last_beat[seg_q]);
    wire word_last  = (word_q == t_last_word[seg_q]);
    wire seg_last   = (seg_q == SEG_LAST);
    wire final_beat = beat_last & word_last & seg_last;

    assign s_axis_tready = armed_q;

    always @(posedge clk) begin
        if (rst | start) begin
            armed_q <= ~rst;
            seg_q   <= {SW{1'b0}};
            word_q  <= {ADDR_BITS{1'b0}};
            beat_q  <= {BW{1'b0}};
        end else if (fire) begin
            if (final_beat)
                armed_q <= 1'b0;
            if (beat_last) begin
                beat_q <= {BW{1'b0}};
                if (word_last) begin
                    word_q <= {ADDR_BITS{1'b0}};
                    seg_q  <= seg_q + SEG_ONE;
                end else begin
                    word_q <= word_q + ADDR_ONE;
                end
            end else begin
                beat_q <= beat_q + BEAT_ONE;
            end
        end
    end

    // ------------------------------------------------------------------
    // Word assembly and the write
    // ------------------------------------------------------------------
    reg [ASM_BITS-1:0]   asm_q;
    reg                  we_q, done_q;
    reg [LAYER_BITS-1:0] layer_q;
    reg                  sel_q;
    reg [ADDR_BITS-1:0]  addr_q;

    genvar b;
    generate
        for (b = 0; b < MAX_BEATS; b = b + 1) begin : g_asm
            localparam integer  BI  = b;
            localparam [BW-1:0] IDX = BI[BW-1:0];
            always @(posedge clk) begin
                if (fire & (beat_q == IDX))
                    asm_q[b*BEAT_BITS +: BEAT_BITS] <= s_axis_tdata;
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            we_q   <= 1'b0;
            done_q <= 1'b0;
        end else begin
            we_q   <= fire & beat_last;
            done_q <= fire & final_beat;
        end
        layer_q <= t_layer[seg_q];
        sel_q   <= t_sel[seg_q];
        addr_q  <= word_q;
    end

    assign cfg_we    = we_q;
    assign cfg_layer = layer_q;
    assign cfg_sel   = sel_q;
    assign cfg_addr  = addr_q;
    assign done      = done_q;
    generate
        if (ASM_BITS > DATA_BITS) begin : g_trim
            /* verilator lint_off UNUSEDSIGNAL */
            wire [ASM_BITS-1:0] whole = asm_q;   // the bits above DATA_BITS are beat padding
            /* verilator lint_on UNUSEDSIGNAL */
            assign cfg_wdata = whole[DATA_BITS-1:0];
        end else begin : g_whole
            assign cfg_wdata = asm_q;
        end
    endgenerate

    // ------------------------------------------------------------------
    // Checks
    // ------------------------------------------------------------------
    reg len_err_q, fmt_err_q;
    wire pad_bad = |(s_axis_tdata & t_pad[seg_q]);

    always @(posedge clk) begin
        if (rst | start | err_clear) begin
            len_err_q <= 1'b0;
            fmt_err_q <= 1'b0;
        end else if (fire) begin
            if (s_axis_tlast != final_beat)
                len_err_q <= 1'b1;
            if (~&s_axis_tkeep | (beat_last & pad_bad))
                fmt_err_q <= 1'b1;
        end
    end
    assign len_err = len_err_q;
    assign fmt_err = fmt_err_q;

endmodule
