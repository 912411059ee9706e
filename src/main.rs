//! `aks-patch`: parse, set up output and logging, run, map errors to exit codes.

use aks_patch::cli::{Cli, Command, GlobalArgs};
use aks_patch::output::{self, Exit};

fn main() {
    // Before any HTTPS client (ARM, Entra ID, Kubernetes, webhooks) is built: ring is the one
    // TLS crypto provider.
    aks_patch::http::install_crypto_provider();
    let cli = Cli::parse_with_sources();
    let global: GlobalArgs = match &cli.command {
        Command::Scan(a) => a.global.clone(),
        Command::Apply(a) => a.global.clone(),
        Command::Report(a) => a.global.clone(),
        Command::Fleet(f) => f.command.global().clone(),
    };
    // The environment is read here, once; everything below gets it from `settings`.
    let settings = aks_patch::settings::Settings::from_env();
    // The reporter owns the progress bars; log lines clear them around themselves.
    let reporter = output::Reporter::for_output(global.verbosity(), global.output.into());
    output::logging::init(
        global.verbose,
        global.debug,
        global.only_show_errors,
        settings.log_filter.as_deref(),
        settings.no_color,
        &reporter,
    );
    let code = run(cli, &global, settings, reporter);
    std::process::exit(code);
}

fn run(cli: Cli, global: &GlobalArgs, settings: aks_patch::settings::Settings, reporter: output::Reporter) -> i32 {
    // A bad --query is a usage error before anything talks to a server.
    if let Some(q) = &global.query {
        if let Err(e) = output::validate_query(q) {
            let err = anyhow::Error::new(e);
            eprint!("{}", output::render_error(&err));
            return output::exit_code(&err);
        }
    }
    let no_color = settings.no_color;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.code();
        }
    };
    let result = runtime.block_on(aks_patch::commands::run(cli, settings, reporter.clone()));
    reporter.finish_and_clear();
    match result {
        Ok(outcome) => {
            let color = output::color_enabled(no_color);
            match output::render(
                &outcome.value,
                outcome.table.as_ref(),
                global.output.into(),
                global.query.as_deref(),
                color,
            ) {
                Ok(text) => {
                    if let Err(e) = output::print_stdout(&text) {
                        eprintln!("error: cannot write the output: {e}");
                        return Exit::Failure.code();
                    }
                }
                Err(e) => {
                    let err = anyhow::Error::new(e);
                    eprint!("{}", output::render_error(&err));
                    return output::exit_code(&err);
                }
            }
            if let Some(s) = outcome.summary {
                reporter.info(&s);
            }
            outcome.exit.code()
        }
        Err(err) => {
            eprint!("{}", output::render_error(&err));
            output::exit_code(&err)
        }
    }
}
