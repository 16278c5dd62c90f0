# network-static: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
validate() {  # kickstart-tests' validate_RESULT, with the reason printed on failure
    result=$(cat "$1/RESULT")
    [ "$result" = SUCCESS ] || { echo "$result"; return 1; }
}
