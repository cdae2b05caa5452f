# Classic Vitis HLS flow for a bnnflow network (Vitis HLS 2020.2 .. 2024.x).
#
#   cd <somewhere to build>
#   vitis_hls -f <repo>/hls/run_hls.tcl -tclargs <export_dir> [steps]
#
# <export_dir> is the folder `bnnflow export` wrote (default: runs/demo/export
# of this checkout); steps is a comma list of csim,csynth,cosim,export
# (default: all four). The generated header <export_dir>/hls/bnnflow_params.h
# reaches the sources through -I. The testbench reads the DMA buffers that
#
#   python -m bnnflow.hlsflow <export_dir>
#
# writes into <export_dir>/hls/tb (the export's parameter stream, its golden
# images as input beats, their scores as output beats): it loads the
# parameters (load mode), infers, checks the status and signature registers,
# and returns non-zero on any mismatch, which fails csim_design /
# cosim_design. See docs/HLS.md.

set hls_dir [file dirname [file normalize [info script]]]
if {[llength $argv] >= 1} {
    set export_dir [file normalize [lindex $argv 0]]
} else {
    set export_dir [file normalize [file join $hls_dir .. runs demo export]]
}
if {[llength $argv] >= 2} {
    set steps [split [lindex $argv 1] ","]
} else {
    set steps {csim csynth cosim export}
}

set header $export_dir/hls/bnnflow_params.h
if {![file exists $header]} {
    puts stderr "run_hls.tcl: $header not found; run `bnnflow export` first (or pass the export folder)"
    exit 1
}

foreach tb_file [list $export_dir/hls/tb/params.bin $export_dir/hls/tb/in_beats.bin $export_dir/hls/tb/out_beats.bin] {
    if {![file exists $tb_file]} {
        puts stderr "run_hls.tcl: $tb_file not found; run `python -m bnnflow.hlsflow $export_dir` first"
        exit 1
    }
}

set part xc7z020clg400-1
set period 10
set cflags "-std=c++14 -I$hls_dir -I$export_dir/hls"
# testbench steps (bnn_tb.cpp): load the export's parameters, then infer its golden images
set tb_argv "load $export_dir/hls/tb/params.bin infer $export_dir/hls/tb/in_beats.bin $export_dir/hls/tb/out_beats.bin hls_out_beats.bin"

open_project -reset bnnflow_hls
set_top bnnflow_top
add_files $hls_dir/bnn_top.cpp -cflags $cflags
add_files -tb $hls_dir/bnn_tb.cpp -cflags $cflags
open_solution -reset -flow_target vivado solution1
set_part $part
create_clock -period $period -name default

if {[lsearch $steps csim] >= 0} {
    csim_design -argv $tb_argv
}
if {[lsearch $steps csynth] >= 0 || [lsearch $steps cosim] >= 0 || [lsearch $steps export] >= 0} {
    csynth_design
}
if {[lsearch $steps cosim] >= 0} {
    cosim_design -rtl verilog -argv $tb_argv
}
if {[lsearch $steps export] >= 0} {
    export_design -format ip_catalog -description "bnnflow network" -vendor bnnflow -library bnnflow -version 1.0
}
exit
