# part-sizes: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
