fn main() {
    pixelx::cli::main()
}
