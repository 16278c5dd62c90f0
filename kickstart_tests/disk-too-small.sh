# disk-too-small: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
expected_failure() { echo "the partitions need [0-9]+ MiB but the disk has [0-9]+ MiB"; }
