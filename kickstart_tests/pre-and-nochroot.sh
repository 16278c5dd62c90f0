# pre-and-nochroot: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
