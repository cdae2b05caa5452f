// bnn_out_fifo4: the 4-word output FIFO of the streaming units (bnn_swu, bnn_maxpool).
//
// A unit pushes a word (push, push_tdata, push_tlast) and the FIFO presents the
// oldest one on m_axis; a word leaves when m_axis_tvalid & m_axis_tready. The
// FIFO never refuses a push: the unit holds one credit per word in flight
// (issued and not yet popped, at most 4), so it never pushes into a full FIFO.
// The credit scheme keeps m_axis_tready out of the unit's s_axis_tready path.
// m_axis_tvalid/tdata/tlast come from registers and the FIFO's storage.
//
// Reset: rst is synchronous and active-high; it empties the FIFO (pointers,
// count), not the stored words.

module bnn_out_fifo4 #(
    parameter WIDTH = 8                 // bits of one word (m_axis_tdata)
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             push,
    input  wire [WIDTH-1:0] push_tdata,
    input  wire             push_tlast,
    output wire [WIDTH-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready,
    output wire             m_axis_tlast
);

    reg [WIDTH-1:0] data_q [0:3];
    reg [3:0]       last_q;
    reg [1:0]       wp_q, rp_q;
    reg [2:0]       count_q;
    wire            pop = m_axis_tvalid & m_axis_tready;

    always @(posedge clk) begin
        if (push) begin
            data_q[wp_q] <= push_tdata;
            last_q[wp_q] <= push_tlast;
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            wp_q    <= 2'd0;
            rp_q    <= 2'd0;
            count_q <= 3'd0;
        end else begin
            if (push)
                wp_q <= wp_q + 2'd1;
            if (pop)
                rp_q <= rp_q + 2'd1;
            if (push & ~pop)
                count_q <= count_q + 3'd1;
            else if (~push & pop)
                count_q <= count_q - 3'd1;
        end
    end

    assign m_axis_tvalid = (count_q != 3'd0);
    assign m_axis_tdata  = data_q[rp_q];
    assign m_axis_tlast  = last_q[rp_q];

endmodule
