// bnn_swu: sliding-window unit (convolution input generator), K x K window, stride 1, PAD on every side.
//
// Turns a feature map into one im2col vector per output pixel, the input of a
// bnn_mvtu with MW = KERNEL*KERNEL*CH and the same SIMD (bnnflow/conv.py is the
// reference: conv.im2col; docs/ARTIFACT.md "Convolutions").
//
// Streams (docs/ARTIFACT.md "Streams"); CF = CH/SIMD channel folds:
//   s_axis: the map pixel by pixel, row-major (y, then x); one pixel is CF
//           words, word f holding channels f*SIMD + j, element j at bits
//           [j*ELEM_BITS +: ELEM_BITS] (unsigned codes). IFM_H*IFM_W*CF words
//           per image; images follow each other with no gap needed.
//   m_axis: for each output pixel (oy, ox) row-major (OFM_H x OFM_W,
//           OFM = IFM + 2*PAD - KERNEL + 1), for each window position (ky, kx)
//           row-major, for each fold f: fold f of input pixel
//           (oy + ky - PAD, ox + kx - PAD), or a word of SIMD PAD_CODE elements
//           when that pixel is outside the map. OFM_H*OFM_W*KERNEL^2*CF words
//           per image.
//   TLAST:  the last output word of an image carries TLAST exactly when the
//           last input word of that image did (docs/ARTIFACT.md "Streams"); no
//           other output word does. Images are counted (an image is exactly
//           IFM_H*IFM_W*CF words), so TLAST on any other input word is ignored.
//           The buffer keeps each word's TLAST bit; the reader takes the bit of
//           the map's last word (pixel (IFM_H-1, IFM_W-1), fold CF-1) when it
//           reads it, which is always in the image's last output pixel, at or
//           before the image's last output word.
//
// Memory: a circular buffer of DEPTH words of SIMD*ELEM_BITS + 1 bits (the
// word and its TLAST), DEPTH the power of two >= 2*KERNEL*IFM_W*CF
// (2*KERNEL map rows), one write port (the
// input) and one synchronous read port (the window), so synthesis tools infer
// block or distributed RAM (no whole-image buffer). Input word number g,
// counted from reset across images, lives at address g mod DEPTH. The reader
// issues a map word once it has been written (word-level handshake); the
// writer may overwrite a word once the reader's current output row no longer
// needs its row (the buffer frees whole rows: the row oy - PAD of the current
// output row oy and everything below stays). 2*KERNEL rows hold the K rows a
// window needs, the row being written behind them, and at an image boundary the
// K - PAD rows of the next image the first output row needs while the last
// output row of this image still holds its K - PAD rows.
//
// Throughput: one output word per cycle while m_axis_tready is high and the
// word's input has arrived; the input runs ahead as far as the buffer allows
// and the next image's rows are accepted while this image's last rows are
// still read. Output words >= input words for every legal geometry, so back to
// back an image takes OFM_H*OFM_W*KERNEL^2*CF cycles (the tests measure it).
// Latency: 2 cycles from the issue of a word to m_axis_tvalid. A word is
// issued the cycle after its input word is written; a padding word needs no
// input but waits for the first input word of its image (no output runs ahead
// of its image's input). So the first output word of an image appears 3
// cycles after its first input word is accepted (when the unit was idle).
// Backpressure: output words wait in a 4-word FIFO; issue is credit-based, so
// m_axis_tready reaches no other output combinationally; s_axis_tready and
// m_axis_tvalid come from registers only.
//
// Reset: rst is synchronous and active-high; it clears the control state
// (counters, FIFO pointers, credits), not the buffer or the FIFO data.
//
// Parameters are checked at elaboration: an illegal set instantiates a module
// named after the problem (bnn_swu_error_...), which no tool can find.

module bnn_swu #(
    parameter IFM_H     = 8,    // input map height
    parameter IFM_W     = 8,    // input map width
    parameter CH        = 8,    // channels; a multiple of SIMD
    parameter KERNEL    = 3,    // K: window size (K x K)
    parameter PAD       = 1,    // padding on every side, 0..K-1
    parameter SIMD      = 4,    // channels per word (the consuming bnn_mvtu's SIMD)
    parameter ELEM_BITS = 1,    // bits per element (unsigned code)
    parameter PAD_CODE  = 0     // code every element of an out-of-map window position reads, < 2^ELEM_BITS
) (
    input  wire                       clk,
    input  wire                       rst,

    // input: map words
    input  wire [SIMD*ELEM_BITS-1:0]  s_axis_tdata,
    input  wire                       s_axis_tvalid,
    output wire                       s_axis_tready,
    input  wire                       s_axis_tlast,     // read on each image's last word only (see the header)

    // output: im2col words
    output wire [SIMD*ELEM_BITS-1:0]  m_axis_tdata,
    output wire                       m_axis_tvalid,
    input  wire                       m_axis_tready,
    output wire                       m_axis_tlast
);

    localparam W      = SIMD * ELEM_BITS;
    localparam CF     = CH / SIMD;                      // words per pixel
    localparam OFM_H  = IFM_H + 2 * PAD - KERNEL + 1;
    localparam OFM_W  = IFM_W + 2 * PAD - KERNEL + 1;
    localparam WR     = IFM_W * CF;                     // words per map row
    localparam IMG    = IFM_H * WR;                     // words per image
    localparam AW     = $clog2(2 * KERNEL * WR);
    localparam DEPTH  = 1 << AW;                        // buffer words
    // global word numbers: the reader's and writer's distances stay within
    // (-IMG, DEPTH], so GW bits hold them as two's complement differences
    localparam GW     = $clog2(IMG + DEPTH + 1) + 2;

    // ------------------------------------------------------------------
    // Parameter checks (elaboration)
    // ------------------------------------------------------------------
    generate
        if (SIMD < 1 || CH < 1 || CH % SIMD != 0) begin : g_err_ch
            bnn_swu_error_CH_must_be_a_positive_multiple_of_SIMD u_err ();
        end
        if (KERNEL < 1 || PAD < 0 || PAD >= KERNEL) begin : g_err_pad
            bnn_swu_error_PAD_must_be_0_to_KERNEL_minus_1 u_err ();
        end
        if (IFM_H < 1 || IFM_W < 1 || OFM_H < 1 || OFM_W < 1) begin : g_err_map
            bnn_swu_error_map_smaller_than_the_padded_window u_err ();
        end
        if (ELEM_BITS < 1 || PAD_CODE < 0 || PAD_CODE >= (1 << ELEM_BITS)) begin : g_err_code
            bnn_swu_error_PAD_CODE_must_fit_ELEM_BITS u_err ();
        end
        if (GW > 32) begin : g_err_size
            bnn_swu_error_map_too_large u_err ();
        end
    endgenerate

    // counter widths, one bit more than the largest value (no constant compares)
    localparam CF_CW = $clog2(CF + 1);
    localparam K_CW  = $clog2(KERNEL + 1);
    localparam OW_CW = $clog2(OFM_W + 1);
    localparam OH_CW = $clog2(OFM_H + 1);
    localparam XX_CW = $clog2(OFM_W + KERNEL) + 1;      // ox + kx <= OFM_W + K - 2
    localparam YY_CW = $clog2(OFM_H + KERNEL) + 1;

    localparam CF_LAST_I = CF - 1;
    localparam K_LAST_I  = KERNEL - 1;
    localparam OW_LAST_I = OFM_W - 1;
    localparam OH_LAST_I = OFM_H - 1;
    localparam X_HI_I    = IFM_W + PAD;                 // xx in [PAD, IFM_W + PAD): in the map
    localparam Y_HI_I    = IFM_H + PAD;
    localparam [CF_CW-1:0] CF_LAST = CF_LAST_I[CF_CW-1:0];
    localparam [K_CW-1:0]  K_LAST  = K_LAST_I[K_CW-1:0];
    localparam [OW_CW-1:0] OW_LAST = OW_LAST_I[OW_CW-1:0];
    localparam [OH_CW-1:0] OH_LAST = OH_LAST_I[OH_CW-1:0];
    localparam [XX_CW-1:0] X_HI    = X_HI_I[XX_CW-1:0];
    localparam [YY_CW-1:0] Y_HI    = Y_HI_I[YY_CW-1:0];
    localparam X_END_I   = IFM_W + PAD - 1;             // xx, yy of the map's last pixel
    localparam Y_END_I   = IFM_H + PAD - 1;
    localparam [XX_CW-1:0] X_END   = X_END_I[XX_CW-1:0];
    localparam [YY_CW-1:0] Y_END   = Y_END_I[YY_CW-1:0];
    localparam [CF_CW-1:0] CF_ONE  = 1;
    localparam [K_CW-1:0]  K_ONE   = 1;
    localparam [OW_CW-1:0] OW_ONE  = 1;
    localparam [OH_CW-1:0] OH_ONE  = 1;
    localparam [XX_CW-1:0] XX_ONE  = 1;
    localparam [YY_CW-1:0] YY_ONE  = 1;

    // global-index steps (modulo 2^GW; some are negative)
    localparam integer STEP_KY_I = WR - KERNEL * CF + 1;      // last word of a window row -> next row
    localparam integer ORIGIN_I  = -(PAD * WR + PAD * CF);    // window (0, 0) top-left, from the image base
    localparam integer DEPTH_I   = DEPTH;
    localparam [GW-1:0] G_ONE    = 1;
    localparam integer CF_I      = CF;
    localparam integer WR_I      = WR;
    localparam integer IMG_I     = IMG;
    localparam [GW-1:0] G_CF     = CF_I[GW-1:0];
    localparam [GW-1:0] G_WR     = WR_I[GW-1:0];
    localparam [GW-1:0] G_IMG    = IMG_I[GW-1:0];
    localparam [GW-1:0] STEP_KY  = STEP_KY_I[GW-1:0];
    localparam [GW-1:0] ORIGIN   = ORIGIN_I[GW-1:0];
    localparam [GW-1:0] G_DEPTH  = DEPTH_I[GW-1:0];

    localparam [W-1:0] PAD_WORD = {SIMD{PAD_CODE[ELEM_BITS-1:0]}};

    // ------------------------------------------------------------------
    // Writer: input word g goes to address g mod DEPTH
    // ------------------------------------------------------------------
    reg  [GW-1:0] wcount_q;          // input words written since reset
    reg  [GW-1:0] rel_q;             // first word the reader may still read (start of a map row)
    wire [GW-1:0] room_in = wcount_q - rel_q;       // in [0, DEPTH]
    wire          s_ready = (room_in < G_DEPTH);
    wire          s_fire  = s_axis_tvalid & s_ready;

    reg  [W:0]    mem [0:DEPTH-1];   // {TLAST, word}
    reg  [W:0]    rd_q;

    // ------------------------------------------------------------------
    // Reader: output word counters and the global number of the word it reads
    // ------------------------------------------------------------------
    reg  [CF_CW-1:0] f_q;
    reg  [K_CW-1:0]  kx_q, ky_q;
    reg  [OW_CW-1:0] ox_q;
    reg  [OH_CW-1:0] oy_q;
    reg  [XX_CW-1:0] xx_q;           // ox + kx: the input column + PAD
    reg  [YY_CW-1:0] yy_q;           // oy + ky: the input row + PAD
    reg  [GW-1:0]    g_q;            // word of pixel (oy+ky-PAD, ox+kx-PAD), fold f (if in the map)
    reg  [GW-1:0]    win_q;          // pixel (oy-PAD, ox-PAD), fold 0
    reg  [GW-1:0]    row_q;          // pixel (oy-PAD, -PAD), fold 0
    reg  [GW-1:0]    base_q;         // pixel (0, 0), fold 0 of the image being read
    reg  [2:0]       credit_q;       // words issued and not yet popped (<= 4: the output FIFO)

    wire x_lo, y_lo;
    generate
        if (PAD > 0) begin : g_lo
            localparam integer PAD_I = PAD;
            localparam [XX_CW-1:0] X_LO = PAD_I[XX_CW-1:0];
            localparam [YY_CW-1:0] Y_LO = PAD_I[YY_CW-1:0];
            assign x_lo = (xx_q >= X_LO);
            assign y_lo = (yy_q >= Y_LO);
        end else begin : g_no_lo
            assign x_lo = 1'b1;
            assign y_lo = 1'b1;
        end
    endgenerate
    wire in_map = x_lo & y_lo & (xx_q < X_HI) & (yy_q < Y_HI);
    // the word being read is the map's last (its TLAST bit is the image's)
    wire at_map_end = (xx_q == X_END) & (yy_q == Y_END) & (f_q == CF_LAST);

    // leaving output row oy frees map row oy - PAD when it exists (oy >= PAD)
    wire rel_step;
    generate
        if (PAD > 0) begin : g_rel
            localparam integer PAD_I = PAD;
            localparam [YY_CW-1:0] OY_PAD = PAD_I[YY_CW-1:0];
            assign rel_step = ({{(YY_CW-OH_CW){1'b0}}, oy_q} >= OY_PAD);
        end else begin : g_no_rel
            assign rel_step = 1'b1;
        end
    endgenerate

    wire [GW-1:0] ahead = wcount_q - g_q;            // > 0: the word has been written
    wire          avail = ~ahead[GW-1] & (ahead != {GW{1'b0}});
    // a padding word waits for the first input word of its image: no output runs ahead of its input
    wire [GW-1:0] begun = wcount_q - base_q;
    wire          started = ~begun[GW-1] & (begun != {GW{1'b0}});
    wire          room  = (credit_q != 3'd4);
    wire          fire  = room & (in_map ? avail : started);

    wire f_end  = (f_q == CF_LAST);
    wire kx_end = (kx_q == K_LAST);
    wire ky_end = (ky_q == K_LAST);
    wire ox_end = (ox_q == OW_LAST);
    wire oy_end = (oy_q == OH_LAST);
    wire img_end = f_end & kx_end & ky_end & ox_end & oy_end;

    wire [GW-1:0] win_nx  = win_q + G_CF;
    wire [GW-1:0] row_nx  = row_q + G_WR;
    wire [GW-1:0] base_nx = base_q + G_IMG;

    wire pop = m_axis_tvalid & m_axis_tready;

    always @(posedge clk) begin
        if (rst) begin
            wcount_q <= {GW{1'b0}};
            rel_q    <= {GW{1'b0}};
            f_q      <= {CF_CW{1'b0}};
            kx_q     <= {K_CW{1'b0}};
            ky_q     <= {K_CW{1'b0}};
            ox_q     <= {OW_CW{1'b0}};
            oy_q     <= {OH_CW{1'b0}};
            xx_q     <= {XX_CW{1'b0}};
            yy_q     <= {YY_CW{1'b0}};
            g_q      <= ORIGIN;
            win_q    <= ORIGIN;
            row_q    <= ORIGIN;
            base_q   <= {GW{1'b0}};
            credit_q <= 3'd0;
        end else begin
            if (s_fire)
                wcount_q <= wcount_q + G_ONE;
            if (fire) begin
                if (!f_end) begin
                    f_q <= f_q + CF_ONE;
                    g_q <= g_q + G_ONE;
                end else begin
                    f_q <= {CF_CW{1'b0}};
                    if (!kx_end) begin
                        kx_q <= kx_q + K_ONE;
                        xx_q <= xx_q + XX_ONE;
                        g_q  <= g_q + G_ONE;
                    end else begin
                        kx_q <= {K_CW{1'b0}};
                        if (!ky_end) begin
                            // next window row: back to column ox
                            ky_q <= ky_q + K_ONE;
                            yy_q <= yy_q + YY_ONE;
                            xx_q <= {{(XX_CW-OW_CW){1'b0}}, ox_q};
                            g_q  <= g_q + STEP_KY;
                        end else begin
                            ky_q <= {K_CW{1'b0}};
                            if (!ox_end) begin
                                // next output pixel
                                ox_q  <= ox_q + OW_ONE;
                                xx_q  <= {{(XX_CW-OW_CW){1'b0}}, ox_q} + XX_ONE;
                                yy_q  <= {{(YY_CW-OH_CW){1'b0}}, oy_q};
                                win_q <= win_nx;
                                g_q   <= win_nx;
                            end else begin
                                ox_q <= {OW_CW{1'b0}};
                                xx_q <= {XX_CW{1'b0}};
                                if (!oy_end) begin
                                    // next output row; its top map row is oy + 1 - PAD:
                                    // the rows above it are free once it is above row 0
                                    oy_q  <= oy_q + OH_ONE;
                                    yy_q  <= {{(YY_CW-OH_CW){1'b0}}, oy_q} + YY_ONE;
                                    row_q <= row_nx;
                                    win_q <= row_nx;
                                    g_q   <= row_nx;
                                    if (rel_step)
                                        rel_q <= rel_q + G_WR;
                                end else begin
                                    // next image
                                    oy_q   <= {OH_CW{1'b0}};
                                    yy_q   <= {YY_CW{1'b0}};
                                    base_q <= base_nx;
                                    rel_q  <= base_nx;
                                    row_q  <= base_nx + ORIGIN;
                                    win_q  <= base_nx + ORIGIN;
                                    g_q    <= base_nx + ORIGIN;
                                end
                            end
                        end
                    end
                end
            end
            if (fire & ~pop)
                credit_q <= credit_q + 3'd1;
            else if (~fire & pop)
                credit_q <= credit_q - 3'd1;
        end
    end

    // ------------------------------------------------------------------
    // Buffer: one write port, one synchronous read port
    // ------------------------------------------------------------------
    always @(posedge clk) begin
        if (s_fire)
            mem[wcount_q[AW-1:0]] <= {s_axis_tlast, s_axis_tdata};
        rd_q <= mem[g_q[AW-1:0]];
    end

    // stage 1: the read word (or padding), whether it is the image's last output
    // word, and the image's TLAST (the bit of the map's last word)
    reg v1_q, pad1_q, last1_q, end1_q, tl_q;
    wire tl_now = end1_q ? rd_q[W] : tl_q;
    always @(posedge clk) begin
        if (rst)
            v1_q <= 1'b0;
        else
            v1_q <= fire;
        pad1_q  <= ~in_map;
        last1_q <= img_end;
        end1_q  <= in_map & at_map_end;
        if (v1_q & end1_q)
            tl_q <= rd_q[W];
    end

    // ------------------------------------------------------------------
    // Output FIFO (4 words; the credit counter keeps it from overflowing)
    // ------------------------------------------------------------------
    bnn_out_fifo4 #(.WIDTH(W)) out_fifo (
        .clk(clk), .rst(rst),
        .push(v1_q), .push_tdata(pad1_q ? PAD_WORD : rd_q[W-1:0]), .push_tlast(last1_q & tl_now),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .m_axis_tlast(m_axis_tlast)
    );

    assign s_axis_tready = s_ready;

endmodule
