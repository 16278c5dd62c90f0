# onerror: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
expected_failure() { echo "%post script [0-9]+ failed with status 4"; }
validate() {  # what %onerror left on the disk after the failed install
    result=$(cat "$1/RESULT")
    [ "$result" = SUCCESS ] || { echo "$result"; return 1; }
}
