fn main() -> std::process::ExitCode {
    pixelx::cli::main()
}
