// bnn_maxpool: POOL x POOL max-pool, stride POOL, over a feature map stream.
//
// bnnflow/conv.py is the reference (conv.max_pool, torch.nn.MaxPool2d(POOL)):
// each output element is the largest code of its window (on 1-bit maps an
// OR); the rows and columns beyond floor(IFM/POOL)*POOL are read and dropped.
//
// Streams (docs/ARTIFACT.md "Streams"); CF = CH/PE channel folds:
//   s_axis: the map pixel by pixel, row-major (y, then x); one pixel is CF
//           words, word f holding channels f*PE + j, element j at bits
//           [j*ELEM_BITS +: ELEM_BITS] (unsigned codes). IFM_H*IFM_W*CF words
//           per image; images follow each other with no gap needed.
//   m_axis: the pooled map (OFM_H = IFM_H/POOL by OFM_W = IFM_W/POOL) in the
//           same order and word layout, OFM_H*OFM_W*CF words per image.
//   TLAST:  the last output word of an image carries TLAST exactly when the
//           last input word of that image did (docs/ARTIFACT.md "Streams"); no
//           other output word does. Images are counted (an image is exactly
//           IFM_H*IFM_W*CF words), so TLAST on any other input word is ignored.
//           When rows or columns are dropped, the last window ends before the
//           image does: its output word is held until the image's last input
//           word arrives and leaves with that word's TLAST.
//
// Memory: one row of OFM_W*CF accumulator words of PE*ELEM_BITS bits, one
// write port and one synchronous read port (block or distributed RAM). Input
// word (y, x, f) reads accumulator (x/POOL)*CF + f, keeps the larger code per
// element (or its own word at the top-left of a window) and writes it back;
// at the bottom-right of a window the result is the output word. A word
// written back is forwarded to the next cycle's word when it reads the same
// accumulator (POOL > 1 with CF = 1: the next pixel of the same window).
//
// Throughput: one input word per cycle (IFM_H*IFM_W*CF cycles per image back
// to back); output words are at most 1/POOL^2 of them, so the unit never
// limits a pipeline while its consumer keeps up.
// Latency: the output word of a window appears on m_axis 2 cycles after the
// window's last input word is accepted (the image's last output word: 2 cycles
// after the image's last input word).
// Backpressure: output words wait in a 4-word FIFO; s_axis_tready is low only
// while that FIFO and the words in flight could fill it (credit-based), so
// there is no combinational path from m_axis_tready to s_axis_tready, and both
// s_axis_tready and m_axis_tvalid come from registers only.
//
// Reset: rst is synchronous and active-high; it clears the control state
// (counters, FIFO pointers, credits), not the accumulators or the FIFO data.
//
// Parameters are checked at elaboration: an illegal set instantiates a module
// named after the problem (bnn_maxpool_error_...), which no tool can find.

module bnn_maxpool #(
    parameter IFM_H     = 8,    // input map height, >= POOL
    parameter IFM_W     = 8,    // input map width, >= POOL
    parameter CH        = 8,    // channels; a multiple of PE
    parameter POOL      = 2,    // window size and stride
    parameter PE        = 4,    // channels per word (the producing bnn_mvtu's PE)
    parameter ELEM_BITS = 1     // bits per element (unsigned code)
) (
    input  wire                     clk,
    input  wire                     rst,

    // input: map words
    input  wire [PE*ELEM_BITS-1:0]  s_axis_tdata,
    input  wire                     s_axis_tvalid,
    output wire                     s_axis_tready,
    input  wire                     s_axis_tlast,     // read on each image's last word only (see the header)

    // output: pooled map words
    output wire [PE*ELEM_BITS-1:0]  m_axis_tdata,
    output wire                     m_axis_tvalid,
    input  wire                     m_axis_tready,
    output wire                     m_axis_tlast
);

    localparam W     = PE * ELEM_BITS;
    localparam CF    = CH / PE;                 // words per pixel
    localparam OFM_H = IFM_H / POOL;
    localparam OFM_W = IFM_W / POOL;
    localparam DEPTH = OFM_W * CF;              // accumulator words: one pooled row

    // ------------------------------------------------------------------
    // Parameter checks (elaboration)
    // ------------------------------------------------------------------
    generate
        if (PE < 1 || CH < 1 || CH % PE != 0) begin : g_err_ch
            bnn_maxpool_error_CH_must_be_a_positive_multiple_of_PE u_err ();
        end
        if (POOL < 1 || IFM_H < POOL || IFM_W < POOL) begin : g_err_map
            bnn_maxpool_error_map_smaller_than_the_POOL_window u_err ();
        end
        if (ELEM_BITS < 1) begin : g_err_bits
            bnn_maxpool_error_ELEM_BITS_must_be_positive u_err ();
        end
    endgenerate

    // counter widths, one bit more than the largest value (no constant compares)
    localparam CF_CW = $clog2(CF + 1);
    localparam P_CW  = $clog2(POOL + 1);
    localparam X_CW  = $clog2(IFM_W + 1);
    localparam Y_CW  = $clog2(IFM_H + 1);
    localparam AW    = (DEPTH > 1) ? $clog2(DEPTH) : 1;   // accumulator address
    localparam MDEPTH = (DEPTH > 1) ? DEPTH : 2;         // array size (an AW-bit index)

    localparam CF_LAST_I = CF - 1;
    localparam P_LAST_I  = POOL - 1;
    localparam X_LAST_I  = IFM_W - 1;
    localparam Y_LAST_I  = IFM_H - 1;
    localparam X_KEEP_I  = OFM_W * POOL;        // columns x < X_KEEP are pooled
    localparam Y_KEEP_I  = OFM_H * POOL;
    localparam X_OUT_I   = X_KEEP_I - 1;        // last pooled column and row: the image's last output
    localparam Y_OUT_I   = Y_KEEP_I - 1;
    localparam CF_I      = CF;
    localparam [CF_CW-1:0] CF_LAST = CF_LAST_I[CF_CW-1:0];
    localparam [P_CW-1:0]  P_LAST  = P_LAST_I[P_CW-1:0];
    localparam [X_CW-1:0]  X_LAST  = X_LAST_I[X_CW-1:0];
    localparam [Y_CW-1:0]  Y_LAST  = Y_LAST_I[Y_CW-1:0];
    localparam [X_CW-1:0]  X_KEEP  = X_KEEP_I[X_CW-1:0];
    localparam [Y_CW-1:0]  Y_KEEP  = Y_KEEP_I[Y_CW-1:0];
    localparam [X_CW-1:0]  X_OUT   = X_OUT_I[X_CW-1:0];
    localparam [Y_CW-1:0]  Y_OUT   = Y_OUT_I[Y_CW-1:0];
    localparam [AW-1:0]    A_CF    = CF_I[AW-1:0];
    localparam [CF_CW-1:0] CF_ONE  = 1;
    localparam [P_CW-1:0]  P_ONE   = 1;
    localparam [X_CW-1:0]  X_ONE   = 1;
    localparam [Y_CW-1:0]  Y_ONE   = 1;
    localparam [AW-1:0]    A_ONE   = 1;

    // ------------------------------------------------------------------
    // Stage 0: input position counters; accumulator read
    // ------------------------------------------------------------------
    reg  [CF_CW-1:0] f_q;
    reg  [P_CW-1:0]  px_q, py_q;        // position inside the window
    reg  [X_CW-1:0]  x_q;
    reg  [Y_CW-1:0]  y_q;
    reg  [AW-1:0]    abase_q;           // accumulator of fold 0 of the current window column
    reg  [AW-1:0]    addr_q;            // abase_q + f_q
    reg  [2:0]       credit_q;          // output words accepted into the pipeline and not yet popped

    wire s_ready = (credit_q != 3'd4);
    wire s_fire  = s_axis_tvalid & s_ready;

    wire f_end  = (f_q == CF_LAST);
    wire px_end = (px_q == P_LAST);
    wire py_end = (py_q == P_LAST);
    wire x_end  = (x_q == X_LAST);
    wire y_end  = (y_q == Y_LAST);
    wire keep   = (x_q < X_KEEP) & (y_q < Y_KEEP);
    wire first  = (px_q == {P_CW{1'b0}}) & (py_q == {P_CW{1'b0}});
    wire emit   = keep & px_end & py_end;
    wire last   = emit & f_end & (x_q == X_OUT) & (y_q == Y_OUT);
    wire img_end = f_end & x_end & y_end;     // the image's last input word

    wire pop = m_axis_tvalid & m_axis_tready;

    // the column after x is pooled (x + 1 < OFM_W*POOL)
    wire next_kept;
    generate
        if (X_OUT_I > 0) begin : g_next
            assign next_kept = (x_q < X_OUT);
        end else begin : g_no_next
            assign next_kept = 1'b0;
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            f_q      <= {CF_CW{1'b0}};
            px_q     <= {P_CW{1'b0}};
            py_q     <= {P_CW{1'b0}};
            x_q      <= {X_CW{1'b0}};
            y_q      <= {Y_CW{1'b0}};
            abase_q  <= {AW{1'b0}};
            addr_q   <= {AW{1'b0}};
            credit_q <= 3'd0;
        end else begin
            if (s_fire) begin
                if (!f_end) begin
                    f_q    <= f_q + CF_ONE;
                    addr_q <= addr_q + A_ONE;
                end else begin
                    f_q <= {CF_CW{1'b0}};
                    if (!x_end) begin
                        x_q <= x_q + X_ONE;
                        if (!px_end) begin
                            px_q   <= px_q + P_ONE;
                            addr_q <= abase_q;
                        end else begin
                            // next window column; the dropped columns (x >= OFM_W*POOL) stay on
                            // the last one, so every address is < DEPTH
                            px_q <= {P_CW{1'b0}};
                            if (next_kept) begin
                                abase_q <= abase_q + A_CF;
                                addr_q  <= abase_q + A_CF;
                            end else begin
                                addr_q  <= abase_q;
                            end
                        end
                    end else begin
                        // next row
                        x_q     <= {X_CW{1'b0}};
                        px_q    <= {P_CW{1'b0}};
                        abase_q <= {AW{1'b0}};
                        addr_q  <= {AW{1'b0}};
                        py_q    <= py_end ? {P_CW{1'b0}} : py_q + P_ONE;
                        if (!y_end) begin
                            y_q <= y_q + Y_ONE;
                        end else begin
                            // next image
                            y_q  <= {Y_CW{1'b0}};
                            py_q <= {P_CW{1'b0}};
                        end
                    end
                end
            end
            if ((s_fire & emit) & ~pop)
                credit_q <= credit_q + 3'd1;
            else if (~(s_fire & emit) & pop)
                credit_q <= credit_q - 3'd1;
        end
    end

    // ------------------------------------------------------------------
    // Stage 1: per-element max with the accumulator; write back; output word
    // ------------------------------------------------------------------
    reg  [W-1:0]  acc_mem [0:MDEPTH-1];
    reg  [W-1:0]  rd_q;                 // accumulator read in stage 0
    reg  [W-1:0]  x1_q;
    reg  [AW-1:0] a1_q;
    reg           v1_q, keep1_q, first1_q, emit1_q, last1_q, end1_q, tlast1_q;
    reg  [W-1:0]  hold_q;               // the image's last output word, waiting for the image's end
    reg  [W-1:0]  res_q;                // the word written back last cycle
    reg  [AW-1:0] res_a_q;
    reg           res_v_q;

    // the previous word's write-back is not in the memory yet when this word read it
    wire [W-1:0] acc_in = (res_v_q && res_a_q == a1_q) ? res_q : rd_q;
    wire [W-1:0] res;
    genvar j;
    generate
        for (j = 0; j < PE; j = j + 1) begin : g_lane
            wire [ELEM_BITS-1:0] a = acc_in[j*ELEM_BITS +: ELEM_BITS];
            wire [ELEM_BITS-1:0] b = x1_q[j*ELEM_BITS +: ELEM_BITS];
            assign res[j*ELEM_BITS +: ELEM_BITS] = (first1_q || b > a) ? b : a;
        end
    endgenerate

    wire wr = v1_q & keep1_q;

    always @(posedge clk) begin
        if (s_fire)
            rd_q <= acc_mem[addr_q];
        if (wr)
            acc_mem[a1_q] <= res;
    end

    always @(posedge clk) begin
        if (rst) begin
            v1_q    <= 1'b0;
            res_v_q <= 1'b0;
        end else begin
            v1_q    <= s_fire;
            res_v_q <= wr;
        end
        x1_q     <= s_axis_tdata;
        a1_q     <= addr_q;
        keep1_q  <= keep;
        first1_q <= first;
        emit1_q  <= emit;
        last1_q  <= last;
        end1_q   <= img_end;
        tlast1_q <= s_axis_tlast;
        if (v1_q & last1_q)
            hold_q <= res;
        res_q    <= res;
        res_a_q  <= a1_q;
    end

    // ------------------------------------------------------------------
    // Output FIFO (4 words; the credit counter keeps it from overflowing)
    // ------------------------------------------------------------------
    // a window's word leaves now, except the image's last one before the image's
    // last input word (dropped rows/columns): that one leaves with the image's end
    wire push = v1_q & ((emit1_q & ~last1_q) | end1_q);

    bnn_out_fifo4 #(.WIDTH(W)) out_fifo (
        .clk(clk), .rst(rst),
        .push(push), .push_tdata(emit1_q ? res : hold_q), .push_tlast(end1_q & tlast1_q),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .m_axis_tlast(m_axis_tlast)
    );

    assign s_axis_tready = s_ready;

endmodule
