// bnn_mvtu: folded matrix-vector(-threshold) unit of one bnnflow layer.
//
// Computes, for every input vector of MW (padded) elements, MH outputs:
//   XNOR = 1 (xnor_* layers):   acc[n] = popcount(XNOR(a, w[n]))  (1-bit inputs, 1-bit sym weights)
//   XNOR = 0 (int_* layers):    acc[n] = sum_i x[i] * w[n][i], x unsigned INPUT_BITS, w[n][i] the
//                               value of a WEIGHT_BITS-bit code (WEIGHT_SIGNED = 0: sym,
//                               2q - (2^K-1); 1: narrow two's complement), see bnn_simd_dot
//   THRESHOLD = 1:              out[n] = #{t : acc[n] >= T[n][t]}, t < N_THRESHOLDS (unsigned,
//                               OUTPUT_BITS = bit_length(N_THRESHOLDS))
//   THRESHOLD = 0 (score):      dot[n] = 2*acc[n] - REAL_MW (XNOR = 1) or acc[n] (XNOR = 0);
//                               out[n] = mul[n]*dot[n] + add[n] if AFFINE_BITS > 0, else dot[n]
//                               (signed, OUTPUT_BITS wide)
// exactly as docs/ARTIFACT.md and bnnflow/golden.py define them.
//
// Folding: PE rows x SIMD lanes, NF = MH/PE neuron folds, SF = MW/SIMD synapse
// folds. Every cycle each PE processes SIMD lanes of one weight word, so a
// vector takes NF*SF cycles with no backpressure (II = 1). The SF input words
// of a vector are read from s_axis only during neuron fold 0 and kept in an
// input buffer for folds 1..NF-1.
//
// Streams (docs/ARTIFACT.md "Streams"):
//   s_axis: SF words per vector, SIMD elements of INPUT_BITS, element j at
//           bits [j*INPUT_BITS +: INPUT_BITS].
//   m_axis: NF words per vector, PE elements of OUTPUT_BITS, element p of word
//           nf is neuron nf*PE + p. Scores are two's complement.
//   TLAST:  the last output word of a vector carries TLAST exactly when the
//           last input word of that vector did; other output words never do.
// Backpressure: m_axis_tready may be low at any time; output words wait in a
// small FIFO and are never dropped or duplicated. Issue is credit-based, so
// there is no combinational path from m_axis_tready to s_axis_tready.
//
// Memories (docs/ARTIFACT.md "RTL memory files"); $readmemh gives their
// power-on contents:
//   WEIGHT_FILE:    NF*SF words of PE*SIMD*K bits (K = WEIGHT_BITS), PE p lane j
//                   at bits [(p*SIMD + j)*K +: K], address nf*SF + sf.
//   THRESHOLD_FILE: the neuron parameter memory, NF words (address nf) of PARAM_W
//                   bits (TB = THRESHOLD_BITS, N = N_THRESHOLDS, AB = AFFINE_BITS):
//                     THRESHOLD = 1:                    PE*N*TB bits, threshold t of PE p
//                                                       at [(p*N + t)*TB +: TB];
//                     THRESHOLD = 0 and AFFINE_BITS > 0: PE*2*AB bits, mul of PE p at
//                                                       [(p*2)*AB +: AB], add at [(p*2+1)*AB +: AB];
//                     THRESHOLD = 0 and AFFINE_BITS = 0: no memory (the file is not read).
//                   All fields two's complement.
//
// Parameter write port (run-time parameters, docs/ACCEL.md): on a clock edge
// with cfg_weight_we high, weight word cfg_addr becomes
// cfg_wdata[PE*SIMD*K-1:0]; with cfg_threshold_we high, neuron parameter word
// cfg_addr (< NF) becomes cfg_wdata[PARAM_W-1:0]. Bits of cfg_addr and
// cfg_wdata above those are ignored (a network top drives one bus, as wide as
// its widest memory, to every layer). Contract: write only while the unit is
// idle -- no vector in flight, which a run controller guarantees by loading
// only between runs -- and tie both enables low when unused. The port does not
// touch the datapath: the timing (II = 1, NF*SF cycles per vector) is the same
// with or without it. Each memory has one write port and one synchronous
// read port (read-before-write in one always block), the pattern synthesis
// tools infer as block or distributed RAM initialised from the .mem file.
//
// Reset: rst is synchronous and active-high; it clears the control state
// (counters, valid flags, FIFO pointers), not the datapath.
// Latency: 4 cycles from the last weight word of a neuron fold to m_axis_tvalid.

module bnn_mvtu #(
    parameter MW             = 64,     // input elements per vector, padded to a multiple of SIMD
    parameter MH             = 64,     // output elements (neurons); a multiple of PE
    parameter PE             = 4,      // neurons computed in parallel
    parameter SIMD           = 8,      // input lanes per PE and cycle
    parameter INPUT_BITS     = 1,      // bits per unsigned input element (1 for XNOR)
    parameter XNOR           = 1,      // 1: XNOR-popcount lanes, 0: unsigned integer x weight value
    parameter WEIGHT_BITS    = 1,      // K: bits per weight code, 1..8 (1 for XNOR)
    parameter WEIGHT_SIGNED  = 0,      // 0: sym codes, 1: narrow two's complement codes (K >= 2)
    parameter THRESHOLD      = 1,      // 1: threshold output, 0: score output
    parameter N_THRESHOLDS   = 1,      // thresholds per neuron, 1..255 (ignored if THRESHOLD = 0)
    parameter AFFINE_BITS    = 0,      // score layers: width of mul and add, 0 = no affine (THRESHOLD = 0 only)
    parameter ACC_BITS       = 7,      // accumulator width from the manifest (one sign bit is added)
    parameter THRESHOLD_BITS = 8,      // two's-complement threshold width (ignored if THRESHOLD = 0)
    parameter OUTPUT_BITS    = 1,      // bits per output element (bit_length(N_THRESHOLDS) for thresholds)
    parameter REAL_MW        = MW,     // unpadded input count, for dot = 2*popcount - REAL_MW
    parameter WEIGHT_FILE    = "weights.mem",     // $readmemh file of the weights
    parameter THRESHOLD_FILE = "thresholds.mem",  // $readmemh file of the neuron parameters
    parameter FIFO_DEPTH     = 8,      // output FIFO words, a power of two >= 4 (II = 1 needs >= 4)
    parameter WEIGHT_RAM_BLOCK = 0,    // 1: ask for block RAM for the weight memory (ram_style), 0: the tool's choice
    // width of cfg_addr: >= $clog2(NF*SF) (the default)
    parameter CFG_ADDR_BITS  = ((MH / PE) * (MW / SIMD) > 1) ? $clog2((MH / PE) * (MW / SIMD)) : 1,
    // width of cfg_wdata: >= PE*SIMD*K and >= the neuron parameter word (the default is the larger)
    parameter CFG_BITS       = (SIMD * WEIGHT_BITS >
                                ((THRESHOLD != 0) ? N_THRESHOLDS * THRESHOLD_BITS : 2 * AFFINE_BITS))
                               ? PE * SIMD * WEIGHT_BITS
                               : PE * ((THRESHOLD != 0) ? N_THRESHOLDS * THRESHOLD_BITS : 2 * AFFINE_BITS)
) (
    input  wire                        clk,
    input  wire                        rst,

    // input vector stream
    input  wire [SIMD*INPUT_BITS-1:0]  s_axis_tdata,
    input  wire                        s_axis_tvalid,
    output wire                        s_axis_tready,
    input  wire                        s_axis_tlast,

    // output vector stream
    output wire [PE*OUTPUT_BITS-1:0]   m_axis_tdata,
    output wire                        m_axis_tvalid,
    input  wire                        m_axis_tready,
    output wire                        m_axis_tlast,

    // parameter write port (only while idle; see the header)
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                        cfg_weight_we,
    input  wire                        cfg_threshold_we,   // ignored without a neuron parameter memory
    input  wire [CFG_ADDR_BITS-1:0]    cfg_addr,
    input  wire [CFG_BITS-1:0]         cfg_wdata
    /* verilator lint_on UNUSEDSIGNAL */
);

    localparam NF       = MH / PE;
    localparam SF       = MW / SIMD;
    localparam DEPTH    = NF * SF;
    localparam IN_W     = SIMD * INPUT_BITS;
    localparam OUT_W    = PE * OUTPUT_BITS;
    localparam SF_CW    = (SF > 1) ? $clog2(SF) : 1;
    localparam NF_CW    = (NF > 1) ? $clog2(NF) : 1;
    localparam AW       = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam W_BITS   = PE * SIMD * WEIGHT_BITS;             // weight memory word
    // largest |weight value|: 2^K - 1 (sym; 1 for K = 1 and XNOR), 2^(K-1) - 1 (int)
    localparam WMAX     = (WEIGHT_SIGNED != 0) ? (1 << (WEIGHT_BITS - 1)) - 1 : (1 << WEIGHT_BITS) - 1;
    // largest |lane product|: 1 (XNOR match), (2^INPUT_BITS - 1) * WMAX
    localparam LANE_MAX = (XNOR != 0) ? 1 : ((1 << INPUT_BITS) - 1) * WMAX;
    // per-cycle SIMD partial: |dot| <= SIMD * LANE_MAX, plus a sign bit
    localparam DOT_BITS = $clog2(SIMD * LANE_MAX + 1) + 1;
    // accumulator: ACC_BITS (manifest) bounds the whole sum; one extra sign bit (xnor's is unsigned)
    localparam ACC_W    = ((ACC_BITS > DOT_BITS) ? ACC_BITS : DOT_BITS) + 1;
    localparam TB       = (THRESHOLD_BITS > 0) ? THRESHOLD_BITS : 1;
    localparam AB       = (AFFINE_BITS > 0) ? AFFINE_BITS : 1;
    // neuron parameter memory: thresholds, or (mul, add) pairs of an affine score layer
    localparam HAS_PMEM = (THRESHOLD != 0) || (AFFINE_BITS > 0);
    localparam PARAM_PE = (THRESHOLD != 0) ? N_THRESHOLDS * TB : 2 * AB;   // bits per PE
    localparam PARAM_W  = PE * PARAM_PE;
    // threshold count width: bit_length(N_THRESHOLDS) (0..N)
    localparam CNT_BITS = $clog2(N_THRESHOLDS + 1);
    localparam FIFO_AW  = $clog2(FIFO_DEPTH);

    localparam SF_LAST_I = SF - 1;
    localparam NF_LAST_I = NF - 1;
    localparam AD_LAST_I = DEPTH - 1;
    localparam [SF_CW-1:0]   SF_LAST = SF_LAST_I[SF_CW-1:0];
    localparam [NF_CW-1:0]   NF_LAST = NF_LAST_I[NF_CW-1:0];
    localparam [AW-1:0]      AD_LAST = AD_LAST_I[AW-1:0];
    localparam [SF_CW-1:0]   SF_ONE  = 1;
    localparam [NF_CW-1:0]   NF_ONE  = 1;
    localparam [AW-1:0]      AD_ONE  = 1;
    localparam [FIFO_AW:0]   CR_FULL = FIFO_DEPTH;
    localparam [FIFO_AW:0]   CR_ONE  = 1;

    // ------------------------------------------------------------------
    // Issue stage: fold counters, input buffer, credit for the output FIFO
    // ------------------------------------------------------------------
    reg  [SF_CW-1:0]   sf_q;
    reg  [NF_CW-1:0]   nf_q;
    reg  [AW-1:0]      addr_q;       // nf_q*SF + sf_q
    reg  [FIFO_AW:0]   credit_q;     // output words issued and not yet popped
    reg                vlast_q;      // TLAST of the current vector's last input word

    wire in_phase  = (nf_q == {NF_CW{1'b0}});
    wire sf_last   = (sf_q == SF_LAST);
    wire nf_last   = (nf_q == NF_LAST);
    wire room      = (credit_q != CR_FULL);
    wire fire      = room & (~in_phase | s_axis_tvalid);
    wire word_out  = fire & sf_last;
    wire word_pop  = m_axis_tvalid & m_axis_tready;
    wire beat_last = nf_last & sf_last & (in_phase ? s_axis_tlast : vlast_q);
    wire [IN_W-1:0] x_issue;

    assign s_axis_tready = room & in_phase;

    always @(posedge clk) begin
        if (rst) begin
            sf_q     <= {SF_CW{1'b0}};
            nf_q     <= {NF_CW{1'b0}};
            addr_q   <= {AW{1'b0}};
            credit_q <= {(FIFO_AW+1){1'b0}};
        end else begin
            if (fire) begin
                if (sf_last) begin
                    sf_q <= {SF_CW{1'b0}};
                    nf_q <= nf_last ? {NF_CW{1'b0}} : nf_q + NF_ONE;
                end else begin
                    sf_q <= sf_q + SF_ONE;
                end
                addr_q <= (addr_q == AD_LAST) ? {AW{1'b0}} : addr_q + AD_ONE;
            end
            if (word_out & ~word_pop)
                credit_q <= credit_q + CR_ONE;
            else if (~word_out & word_pop)
                credit_q <= credit_q - CR_ONE;
        end
    end

    always @(posedge clk) begin
        if (fire & in_phase & sf_last)
            vlast_q <= s_axis_tlast;
    end

    generate
        if (NF > 1) begin : g_ibuf
            // input buffer: written in neuron fold 0, read in folds 1..NF-1
            reg [IN_W-1:0] ibuf [0:SF-1];
            always @(posedge clk) begin
                if (fire & in_phase)
                    ibuf[sf_q] <= s_axis_tdata;
            end
            assign x_issue = in_phase ? s_axis_tdata : ibuf[sf_q];
        end else begin : g_no_ibuf
            assign x_issue = s_axis_tdata;
        end
    endgenerate

    // ------------------------------------------------------------------
    // Stage 1: weight read (synchronous ROM), input word, beat flags
    // ------------------------------------------------------------------
    reg  [W_BITS-1:0]  w1_q;
    reg  [IN_W-1:0]    x1_q;
    reg                v1_q, first1_q, last1_q, tlast1_q;

    // One write port (parameter loads), one synchronous read port. Tools map
    // a wide, shallow memory to LUT RAM by their own costs; WEIGHT_RAM_BLOCK
    // asks for block RAM instead (the ram_style attribute yosys and Vivado
    // read), where LUTs are scarcer than block RAM. Same behaviour either way.
    generate
        if (WEIGHT_RAM_BLOCK != 0) begin : g_wmem_block
            (* ram_style = "block" *) reg [W_BITS-1:0] wmem [0:DEPTH-1];
            initial $readmemh(WEIGHT_FILE, wmem);
            always @(posedge clk) begin
                if (cfg_weight_we)
                    wmem[cfg_addr[AW-1:0]] <= cfg_wdata[W_BITS-1:0];
                w1_q <= wmem[addr_q];
            end
        end else begin : g_wmem
            reg [W_BITS-1:0] wmem [0:DEPTH-1];
            initial $readmemh(WEIGHT_FILE, wmem);
            always @(posedge clk) begin
                if (cfg_weight_we)
                    wmem[cfg_addr[AW-1:0]] <= cfg_wdata[W_BITS-1:0];
                w1_q <= wmem[addr_q];
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst)
            v1_q <= 1'b0;
        else
            v1_q <= fire;
        x1_q     <= x_issue;
        first1_q <= (sf_q == {SF_CW{1'b0}});
        last1_q  <= sf_last;
        tlast1_q <= beat_last;
    end

    // ------------------------------------------------------------------
    // Stage 2: per-PE SIMD dot products (registered)
    // Stage 3: per-PE accumulators; neuron parameter read for the neuron fold
    // ------------------------------------------------------------------
    reg                v2_q, first2_q, last2_q, tlast2_q;
    reg                v3_q, tlast3_q;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [PARAM_W-1:0] par3;         // neuron parameters of the fold in stage 3 (unused by plain scores)
    /* verilator lint_on UNUSEDSIGNAL */
    wire [OUT_W-1:0]   y_word;

    always @(posedge clk) begin
        if (rst) begin
            v2_q <= 1'b0;
            v3_q <= 1'b0;
        end else begin
            v2_q <= v1_q;
            v3_q <= v2_q & last2_q;
        end
        first2_q <= first1_q;
        last2_q  <= last1_q;
        tlast2_q <= tlast1_q;
        tlast3_q <= tlast2_q;
    end

    generate
        if (HAS_PMEM) begin : g_tmem
            reg [PARAM_W-1:0] tmem [0:NF-1];
            reg [PARAM_W-1:0] par3_q;
            reg [NF_CW-1:0]   nf1_q, nf2_q;   // neuron fold of the beats in stages 1 and 2
            initial $readmemh(THRESHOLD_FILE, tmem);
            always @(posedge clk) begin
                if (cfg_threshold_we)
                    tmem[cfg_addr[NF_CW-1:0]] <= cfg_wdata[PARAM_W-1:0];
                nf1_q  <= nf_q;
                nf2_q  <= nf1_q;
                par3_q <= tmem[nf2_q];
            end
            assign par3 = par3_q;
        end else begin : g_no_tmem
            assign par3 = {PARAM_W{1'b0}};
        end
    endgenerate

    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire [DOT_BITS-1:0] dot;
            reg  [DOT_BITS-1:0] dot2_q;
            reg  [ACC_W-1:0]    acc3_q;

            bnn_simd_dot #(
                .SIMD          (SIMD),
                .INPUT_BITS    (INPUT_BITS),
                .XNOR          (XNOR),
                .WEIGHT_BITS   (WEIGHT_BITS),
                .WEIGHT_SIGNED (WEIGHT_SIGNED),
                .DOT_BITS      (DOT_BITS)
            ) u_dot (
                .x   (x1_q),
                .w   (w1_q[p*SIMD*WEIGHT_BITS +: SIMD*WEIGHT_BITS]),
                .dot (dot)
            );

            always @(posedge clk) begin
                dot2_q <= dot;
                if (v2_q)
                    acc3_q <= (first2_q ? {ACC_W{1'b0}} : acc3_q)
                            + {{(ACC_W-DOT_BITS){dot2_q[DOT_BITS-1]}}, dot2_q};
            end

            if (THRESHOLD != 0) begin : g_thr
                bnn_threshold #(
                    .ACC_W          (ACC_W),
                    .THRESHOLD_BITS (TB),
                    .N_THRESHOLDS   (N_THRESHOLDS),
                    .OUT_BITS       (CNT_BITS)
                ) u_thr (
                    .acc (acc3_q),
                    .thr (par3[p*PARAM_PE +: PARAM_PE]),
                    .y   (y_word[p*OUTPUT_BITS +: CNT_BITS])
                );
                if (OUTPUT_BITS > CNT_BITS) begin : g_pad
                    assign y_word[p*OUTPUT_BITS+CNT_BITS +: OUTPUT_BITS-CNT_BITS] = {(OUTPUT_BITS-CNT_BITS){1'b0}};
                end
            end else begin : g_score
                localparam [ACC_W:0] RMW = REAL_MW[ACC_W:0];
                wire [ACC_W:0] acc_x = {acc3_q[ACC_W-1], acc3_q};
                // dot = 2*acc - REAL_MW (XNOR) or acc: |dot| <= MW*LANE_MAX, which ACC_W + 1 bits hold
                /* verilator lint_off UNUSEDSIGNAL */
                wire [ACC_W:0] dot3 = (XNOR != 0) ? {acc3_q, 1'b0} - RMW : acc_x;
                /* verilator lint_on UNUSEDSIGNAL */
                if (AFFINE_BITS > 0) begin : g_affine
                    // score = mul*dot + add, one AB x (ACC_W+1) signed multiplier per PE:
                    // |mul*dot| <= 2^(AB-1) * 2^ACC_W, which PROD_BITS = AB + ACC_W + 1 bits hold.
                    // The sum is formed on SC_BITS (wider than the product and than OUTPUT_BITS);
                    // the manifest's OUTPUT_BITS holds its worst case 2^(mul_bits-1)*|dot| + 2^(AB-1)
                    // (mul_bits <= AB bounds every mul; the reader refuses others), so keeping the low
                    // OUTPUT_BITS bits is exact.
                    localparam PROD_BITS = AB + ACC_W + 1;
                    localparam SC_BITS   = ((PROD_BITS > OUTPUT_BITS) ? PROD_BITS : OUTPUT_BITS) + 1;
                    wire signed [AB-1:0]        mul_s = par3[(p*2)*AB +: AB];
                    wire signed [AB-1:0]        add_s = par3[(p*2+1)*AB +: AB];
                    wire signed [ACC_W:0]       dot_s = dot3;
                    wire signed [PROD_BITS-1:0] prod  = mul_s * dot_s;
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire        [SC_BITS-1:0]   score = {{(SC_BITS-PROD_BITS){prod[PROD_BITS-1]}}, prod}
                                                      + {{(SC_BITS-AB){add_s[AB-1]}}, add_s};
                    /* verilator lint_on UNUSEDSIGNAL */
                    assign y_word[p*OUTPUT_BITS +: OUTPUT_BITS] = score[OUTPUT_BITS-1:0];
                end else begin : g_plain
                    assign y_word[p*OUTPUT_BITS +: OUTPUT_BITS] = dot3[OUTPUT_BITS-1:0];
                end
            end
        end
    endgenerate

    // ------------------------------------------------------------------
    // Output FIFO (never overflows: issue holds a credit per output word)
    // ------------------------------------------------------------------
    reg  [OUT_W:0]     fifo [0:FIFO_DEPTH-1];
    reg  [FIFO_AW:0]   wr_q, rd_q;
    localparam [FIFO_AW:0] PTR_ONE = 1;

    always @(posedge clk) begin
        if (v3_q)
            fifo[wr_q[FIFO_AW-1:0]] <= {tlast3_q, y_word};
    end

    always @(posedge clk) begin
        if (rst) begin
            wr_q <= {(FIFO_AW+1){1'b0}};
            rd_q <= {(FIFO_AW+1){1'b0}};
        end else begin
            if (v3_q)
                wr_q <= wr_q + PTR_ONE;
            if (word_pop)
                rd_q <= rd_q + PTR_ONE;
        end
    end

    assign m_axis_tvalid = (wr_q != rd_q);
    assign {m_axis_tlast, m_axis_tdata} = fifo[rd_q[FIFO_AW-1:0]];

endmodule
