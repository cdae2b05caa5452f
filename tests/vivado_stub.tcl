# A stand-in for the Vivado Tcl commands vivado/build_bitstream.tcl uses, for
# tests/test_vivado.py on machines without Vivado. Each stub records its call
# (one Tcl list per line in $::stub_log) and returns what Vivado would return
# for the script to go on: cell and pin names, run directories, and the .bit
# and .hwh files that implementation would have written. Only the commands
# listed here exist, so a misspelled command fails the test ("invalid command
# name"). The Python test checks the recorded design against the generated
# tops, the driver's names and the Xilinx IPs' port names.
#
#   tclsh vivado_stub.tcl <log> <build_bitstream.tcl> <params.tcl> [no-board-files]

lassign $argv stub_log script params board_files
set log_fd [open $stub_log w]
proc record {args} {
    puts $::log_fd [list {*}$args]
    flush $::log_fd
}

# -- projects and files
proc create_project {args} { record create_project {*}$args; return [lindex $args end-1] }
proc close_project {args} { record close_project {*}$args }
proc current_project {args} { return project }
proc current_fileset {args} { return sources_1 }
proc add_files {args} { record add_files {*}$args }
proc get_files {args} { return [lindex $args end] }
proc update_compile_order {args} { record update_compile_order {*}$args }
proc set_property {args} { record set_property {*}$args }
proc get_board_parts {args} {
    if {$::board_files eq "no-board-files"} { return "" }
    return [lindex $args end]
}
proc update_ip_catalog {args} { record update_ip_catalog {*}$args }
proc get_ipdefs {args} {
    set prefix [string range [lindex $args end] 0 end-2]
    return [list "${prefix}:1.0" "${prefix}:9.9"]
}

# -- IP packaging
namespace eval ipx {}
proc ipx::package_project {args} { record ipx::package_project {*}$args }
proc ipx::current_core {args} { return core }
proc ipx::get_bus_interfaces {args} { record ipx::get_bus_interfaces {*}$args; return [lindex $args 0] }
proc ipx::get_bus_parameters {args} { return [lindex $args 0] }
proc ipx::associate_bus_interfaces {args} { record ipx::associate_bus_interfaces {*}$args }
proc ipx::create_xgui_files {args} {}
proc ipx::update_checksums {args} {}
proc ipx::check_integrity {args} { record ipx::check_integrity {*}$args }
proc ipx::save_core {args} { record ipx::save_core {*}$args }

# -- block design
proc create_bd_design {args} { record create_bd_design {*}$args }
proc create_bd_cell {args} {
    record create_bd_cell {*}$args
    return [lindex $args end]
}
proc apply_bd_automation {args} { record apply_bd_automation {*}$args }
proc get_bd_pins {args} { record pin [lindex $args end]; return [lindex $args end] }
proc get_bd_intf_pins {args} { record intf_pin [lindex $args end]; return [lindex $args end] }
proc connect_bd_net {args} { record connect_bd_net {*}$args }
proc connect_bd_intf_net {args} { record connect_bd_intf_net {*}$args }
proc assign_bd_address {args} { record assign_bd_address }
proc validate_bd_design {args} { record validate_bd_design }
proc save_bd_design {args} {}

# -- implementation: the run "writes" the files the script then copies
proc generate_target {args} { record generate_target {*}$args }
proc make_wrapper {args} { return $::bnn(build_dir)/project/bnnflow_wrapper.v }
proc get_runs {args} { return [lindex $args end] }
proc get_property {name object} {
    switch -- $name {
        PROGRESS { return "100%" }
        DIRECTORY { return $::bnn(build_dir)/project/bnnflow.runs/$object }
        default { error "stub get_property: unknown property $name" }
    }
}
proc launch_runs {args} {
    record launch_runs {*}$args
    set runs $::bnn(build_dir)/project/bnnflow.runs/impl_1
    set handoff $::bnn(build_dir)/project/bnnflow.gen/sources_1/bd/bnnflow/hw_handoff
    file mkdir $runs $handoff
    set f [open $runs/bnnflow_wrapper.bit w]; puts $f "bit"; close $f
    set f [open $handoff/bnnflow.hwh w]; puts $f "<hwh/>"; close $f
}
proc wait_on_run {args} {}

rename exit real_exit
proc exit {{code 0}} {
    record exit $code
    close $::log_fd
    real_exit $code
}

set argv [list $params]
source $script
close $log_fd
