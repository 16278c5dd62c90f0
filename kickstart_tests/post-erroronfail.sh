# post-erroronfail: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
expected_failure() { echo "%post script [0-9]+ failed with status 3"; }
