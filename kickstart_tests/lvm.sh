# lvm: kickstart-tests' functions (kernel_args, prepare, validate, expected_failure), each optional
prepare() {  # kickstart-tests' prepare: may rewrite the kickstart; here a 300 MiB volume becomes 256
    sed 's/--size=300/--size=256/' "$1" > "$2/ks-prepared.cfg"
    echo "$2/ks-prepared.cfg"
}
