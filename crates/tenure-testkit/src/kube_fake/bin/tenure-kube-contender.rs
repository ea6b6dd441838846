//! `tenure-kube-contender`: see `tenure_testkit::kube_fake::contender`.

fn main() -> std::process::ExitCode {
    tenure_testkit::kube_fake::contender::main()
}
