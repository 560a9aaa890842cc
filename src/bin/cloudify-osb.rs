#[tokio::main]
async fn main() -> std::process::ExitCode {
    cloudify_osb::cli::main().await
}
