use clap::Parser;

fn main() {
    let _cli = aks_patch::cli::Cli::parse();
}
