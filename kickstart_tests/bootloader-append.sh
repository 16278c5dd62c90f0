# bootloader-append: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
kernel_args() { echo "kstest.installer=bootargs"; }  # reaches the installer's command line, not the installed one
