# bnnflow: build a PYNQ overlay (bitstream + hardware handoff) around the accelerator.
#
#   vivado -mode batch -source vivado/build_bitstream.tcl -tclargs <build>/params.tcl
#
# `make bitstream RUN=runs/NAME BOARD=pynq-z2` (or `bnnflow bitstream`) writes
# params.tcl and runs this. Targets Vivado 2022.1 .. 2024.2; IP versions are
# taken from the installed catalog (latest_vlnv), so newer releases work too.
#
# The block design (docs/DRIVER.md, "Building the bitstream"):
#
#   PS (Zynq-7000 PS7 or Zynq UltraScale+ PSU), board preset, one 100 MHz fabric clock
#     M_AXI_GP0 / M_AXI_HPM0_FPD -> AXI interconnect -> AXI DMA S_AXI_LITE
#                                                    -> accelerator s_axi_control
#   AXI DMA (simple mode, no scatter-gather): M_AXIS_MM2S -> accelerator input stream
#                                             accelerator output stream -> S_AXIS_S2MM
#     M_AXI_MM2S, M_AXI_S2MM -> SmartConnect -> S_AXI_HP0 / S_AXI_HP0_FPD
#   proc_sys_reset on the fabric clock drives every active-low reset.
#
# The accelerator is the Vitis HLS IP (engine hls: the folder `vitis_hls -f
# hls/run_hls.tcl` exported) or the generated Verilog `bnnflow_accel`
# packaged here as an IP with Vivado's ipx:: commands (engine rtl). Both have
# the register map and stream format of docs/ACCEL.md. The build ends by
# copying <name>.bit, <name>.hwh (PYNQ finds the pair by name) and
# <name>.signature.json (what the bitstream was built for) into bnn(out_dir).

if {[llength $argv] != 1} {
    puts stderr "usage: vivado -mode batch -source build_bitstream.tcl -tclargs <build>/params.tcl"
    exit 2
}
source [lindex $argv 0]
set build $bnn(build_dir)
set design bnnflow

proc fail {message} {
    puts stderr "bnnflow build_bitstream: $message"
    exit 1
}

# The newest version of an IP in this Vivado's catalog ("xilinx.com:ip:axi_dma" -> "xilinx.com:ip:axi_dma:7.1").
proc latest_vlnv {prefix} {
    set found [lsort -dictionary [get_ipdefs -all "${prefix}:*"]]
    if {[llength $found] == 0} { fail "IP $prefix is not in the IP catalog" }
    return [lindex $found end]
}

# -- 1. the accelerator IP ------------------------------------------------------------
set ip_repo $build/ip_repo
if {$bnn(engine) eq "rtl"} {
    # Package the generated Verilog (sources + $readmemh files) as bnnflow:bnnflow:bnnflow_accel:1.0.
    file delete -force $build/package $ip_repo
    create_project -force package $build/package -part $bnn(part)
    add_files -norecurse $bnn(rtl_sources)
    # The .mem files are design sources: synthesis resolves $readmemh's bare file names against them.
    add_files -norecurse $bnn(rtl_memories)
    set_property file_type {Memory Initialization Files} [get_files -of_objects [current_fileset] *.mem]
    set_property top $bnn(accel_top) [current_fileset]
    update_compile_order -fileset sources_1
    ipx::package_project -root_dir $ip_repo/bnnflow_accel -vendor bnnflow -library bnnflow \
        -taxonomy /UserIP -import_files -set_current true
    set core [ipx::current_core]
    set_property name bnnflow_accel $core
    set_property version 1.0 $core
    set_property display_name "bnnflow accelerator (Verilog)" $core
    set_property description "bnnflow network: AXI4-Stream in/out, AXI4-Lite control (docs/ACCEL.md)" $core
    # ipx infers the AXI4-Lite and AXI4-Stream interfaces from the s_axi_control_*, s_axis_*, m_axis_*
    # port names; tie them to the clock so the block design knows their clock domain.
    foreach intf [list $bnn(accel_control) $bnn(accel_in) $bnn(accel_out)] {
        if {[ipx::get_bus_interfaces $intf -of_objects $core] eq ""} {
            fail "packaging: interface $intf was not inferred from $bnn(accel_top)'s ports"
        }
        ipx::associate_bus_interfaces -busif $intf -clock $bnn(accel_clock) $core
    }
    set_property value ACTIVE_LOW [ipx::get_bus_parameters POLARITY \
        -of_objects [ipx::get_bus_interfaces $bnn(accel_reset_n) -of_objects $core]]
    ipx::create_xgui_files $core
    ipx::update_checksums $core
    ipx::check_integrity $core
    ipx::save_core $core
    close_project
} else {
    if {$bnn(hls_ip_dir) eq "" || ![file isdirectory $bnn(hls_ip_dir)]} {
        fail "engine hls: the HLS IP folder '$bnn(hls_ip_dir)' does not exist (run hls/run_hls.tcl first)"
    }
    set ip_repo $bnn(hls_ip_dir)
}

# -- 2. the project and the block design -----------------------------------------------
create_project -force $design $build/project -part $bnn(part)
if {$bnn(board_part) ne ""} {
    if {[llength [get_board_parts -quiet $bnn(board_part)]] == 0} {
        fail "board files for $bnn(board_part) are not installed: install them (Vivado's board store,\
              or github.com/Xilinx/XilinxBoardStore) or clear bnn(board_part) to build for the part alone"
    }
    set_property board_part $bnn(board_part) [current_project]
}
set_property ip_repo_paths [list $ip_repo] [current_project]
update_ip_catalog -rebuild
create_bd_design $design

# processing system with the board preset, the fabric clock and the two AXI ports
if {$bnn(ps) eq "ps7"} {
    set ps [create_bd_cell -type ip -vlnv [latest_vlnv xilinx.com:ip:processing_system7] ps]
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps
    set_property -dict [list \
        CONFIG.PCW_USE_M_AXI_GP0 {1} \
        CONFIG.PCW_USE_S_AXI_HP0 {1} \
        CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
        CONFIG.PCW_EN_CLK0_PORT {1} \
        CONFIG.PCW_EN_RST0_PORT {1} \
        CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $bnn(fclk_mhz)] $ps
    set gp_clock M_AXI_GP0_ACLK
    set hp_clock S_AXI_HP0_ACLK
} else {
    set ps [create_bd_cell -type ip -vlnv [latest_vlnv xilinx.com:ip:zynq_ultra_ps_e] ps]
    apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
    set_property -dict [list \
        CONFIG.PSU__USE__M_AXI_GP0 {1} \
        CONFIG.PSU__USE__M_AXI_GP1 {0} \
        CONFIG.PSU__USE__M_AXI_GP2 {0} \
        CONFIG.PSU__USE__S_AXI_GP2 {1} \
        CONFIG.PSU__FPGA_PL0_ENABLE {1} \
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $bnn(fclk_mhz)] $ps
    set gp_clock maxihpm0_fpd_aclk
    set hp_clock saxihp0_fpd_aclk
}
set clk [get_bd_pins ps/$bnn(ps_clock)]

set rst [create_bd_cell -type ip -vlnv [latest_vlnv xilinx.com:ip:proc_sys_reset] rst_fclk]
connect_bd_net $clk [get_bd_pins rst_fclk/slowest_sync_clk]
connect_bd_net [get_bd_pins ps/$bnn(ps_reset_n)] [get_bd_pins rst_fclk/ext_reset_in]
set aresetn [get_bd_pins rst_fclk/peripheral_aresetn]
set ic_aresetn [get_bd_pins rst_fclk/interconnect_aresetn]

# the accelerator
set accel [create_bd_cell -type ip -vlnv $bnn(accel_vlnv) $bnn(accel_name)]
connect_bd_net $clk [get_bd_pins $bnn(accel_name)/$bnn(accel_clock)]
connect_bd_net $aresetn [get_bd_pins $bnn(accel_name)/$bnn(accel_reset_n)]

# the AXI DMA: simple mode, stream widths = the accelerator's beat widths, memory side at least 64 bits
set mm_width_in [expr {max(64, $bnn(in_beat_bits))}]
set mm_width_out [expr {max(64, $bnn(out_beat_bits))}]
set dma [create_bd_cell -type ip -vlnv [latest_vlnv xilinx.com:ip:axi_dma] $bnn(dma_name)]
set_property -dict [list \
    CONFIG.c_include_sg {0} \
    CONFIG.c_sg_length_width $bnn(dma_length_width) \
    CONFIG.c_include_mm2s {1} \
    CONFIG.c_include_s2mm {1} \
    CONFIG.c_m_axis_mm2s_tdata_width $bnn(in_beat_bits) \
    CONFIG.c_s_axis_s2mm_tdata_width $bnn(out_beat_bits) \
    CONFIG.c_m_axi_mm2s_data_width $mm_width_in \
    CONFIG.c_m_axi_s2mm_data_width $mm_width_out \
    CONFIG.c_mm2s_burst_size {16} \
    CONFIG.c_s2mm_burst_size {16}] $dma
connect_bd_net $clk [get_bd_pins $bnn(dma_name)/s_axi_lite_aclk] [get_bd_pins $bnn(dma_name)/m_axi_mm2s_aclk] \
    [get_bd_pins $bnn(dma_name)/m_axi_s2mm_aclk]
connect_bd_net $aresetn [get_bd_pins $bnn(dma_name)/axi_resetn]

# streams
connect_bd_intf_net [get_bd_intf_pins $bnn(dma_name)/M_AXIS_MM2S] [get_bd_intf_pins $bnn(accel_name)/$bnn(accel_in)]
connect_bd_intf_net [get_bd_intf_pins $bnn(accel_name)/$bnn(accel_out)] [get_bd_intf_pins $bnn(dma_name)/S_AXIS_S2MM]

# AXI4-Lite: PS master -> interconnect -> DMA registers, accelerator registers
set lite [create_bd_cell -type ip -vlnv [latest_vlnv xilinx.com:ip:axi_interconnect] axi_lite_ic]
set_property CONFIG.NUM_MI {2} $lite
connect_bd_intf_net [get_bd_intf_pins ps/$bnn(gp_port)] [get_bd_intf_pins axi_lite_ic/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_lite_ic/M00_AXI] [get_bd_intf_pins $bnn(dma_name)/S_AXI_LITE]
connect_bd_intf_net [get_bd_intf_pins axi_lite_ic/M01_AXI] [get_bd_intf_pins $bnn(accel_name)/$bnn(accel_control)]
connect_bd_net $clk [get_bd_pins axi_lite_ic/ACLK] [get_bd_pins axi_lite_ic/S00_ACLK] \
    [get_bd_pins axi_lite_ic/M00_ACLK] [get_bd_pins axi_lite_ic/M01_ACLK] [get_bd_pins ps/$gp_clock]
connect_bd_net $ic_aresetn [get_bd_pins axi_lite_ic/ARESETN]
connect_bd_net $aresetn [get_bd_pins axi_lite_ic/S00_ARESETN] [get_bd_pins axi_lite_ic/M00_ARESETN] \
    [get_bd_pins axi_lite_ic/M01_ARESETN]

# DMA memory masters -> SmartConnect -> the PS's high-performance slave port
set mem [create_bd_cell -type ip -vlnv [latest_vlnv xilinx.com:ip:smartconnect] axi_mem_sc]
set_property -dict [list CONFIG.NUM_SI {2} CONFIG.NUM_MI {1}] $mem
connect_bd_intf_net [get_bd_intf_pins $bnn(dma_name)/M_AXI_MM2S] [get_bd_intf_pins axi_mem_sc/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins $bnn(dma_name)/M_AXI_S2MM] [get_bd_intf_pins axi_mem_sc/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_mem_sc/M00_AXI] [get_bd_intf_pins ps/$bnn(hp_port)]
connect_bd_net $clk [get_bd_pins axi_mem_sc/aclk] [get_bd_pins ps/$hp_clock]
connect_bd_net $aresetn [get_bd_pins axi_mem_sc/aresetn]

assign_bd_address
if {[catch {validate_bd_design} message]} { fail "the block design does not validate: $message" }
save_bd_design

# -- 3. implementation ------------------------------------------------------------------
set bd_file [get_files $design.bd]
generate_target all $bd_file
add_files -norecurse [make_wrapper -files $bd_file -top]
set_property top ${design}_wrapper [current_fileset]
update_compile_order -fileset sources_1
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    fail "implementation did not finish: see [get_property DIRECTORY [get_runs impl_1]]/runme.log"
}

# -- 4. the overlay files next to the export ----------------------------------------------
file mkdir $bnn(out_dir)
set bit [glob -nocomplain [get_property DIRECTORY [get_runs impl_1]]/*.bit]
set hwh [glob -nocomplain $build/project/$design.gen/sources_1/bd/$design/hw_handoff/$design.hwh]
if {[llength $bit] != 1 || [llength $hwh] != 1} { fail "bitstream or .hwh not found after implementation" }
file copy -force [lindex $bit 0] $bnn(out_dir)/$bnn(name).bit
file copy -force [lindex $hwh 0] $bnn(out_dir)/$bnn(name).hwh
file copy -force $bnn(signature_file) $bnn(out_dir)/$bnn(name).signature.json
puts "bnnflow build_bitstream: wrote $bnn(out_dir)/$bnn(name).bit, .hwh and .signature.json (signature $bnn(signature))"
