//! `aks-sim`: run the local AKS emulator and steer it.

use aks_sim::{Fault, Scenario, Sim, SimConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "aks-sim", version, about = "A local AKS emulator: ARM, the Kubernetes API and SSH-able nodes on loopback", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the emulator and serve until stopped (Ctrl-C / SIGTERM). Needs root (sshd, chroots).
    Up {
        /// Where the emulator writes its CA, kubeconfig, SSH keys, `az` stand-in and sim.json.
        #[arg(long)]
        state_dir: PathBuf,
        /// A scenario file (YAML); the built-in default when absent. A fleet scenario (with
        /// `clusters:`) starts every cluster behind one ARM endpoint.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Scale the Linux nodes to this count.
        #[arg(long)]
        nodes: Option<u32>,
        /// Port for ARM (0 = any free port).
        #[arg(long, default_value_t = 0)]
        arm_port: u16,
        /// Port for the Kubernetes API (0 = any free port).
        #[arg(long, default_value_t = 0)]
        kube_port: u16,
    },
    /// Print the shell exports that point aks-patch and kubectl at a running emulator.
    Env {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Show the emulated cluster, its faults and the event log.
    Status {
        #[arg(long)]
        state_dir: PathBuf,
        /// In a fleet: the cluster (by name).
        #[arg(long)]
        cluster: Option<String>,
        /// `json` for the whole status, `table` for a summary.
        #[arg(short, long, default_value = "table")]
        output: String,
    },
    /// Inject a fault into a running emulator.
    Fault {
        #[arg(long)]
        state_dir: PathBuf,
        /// In a fleet: the cluster the fault is for (by name).
        #[arg(long)]
        cluster: Option<String>,
        #[command(subcommand)]
        fault: Fault,
    },
    /// Check a scenario file and print it with defaults filled in.
    Check { scenario: PathBuf },
}

fn main() {
    aks_sim::tls::install_crypto_provider();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AKS_SIM_LOG").unwrap_or_else(|_| "aks_sim=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("caused by: {cause}");
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up {
            state_dir,
            scenario,
            nodes,
            arm_port,
            kube_port,
        } => {
            if let Some(path) = scenario.as_ref().filter(|p| is_fleet_file(p)) {
                anyhow::ensure!(
                    nodes.is_none() && kube_port == 0,
                    "--nodes and --kube-port are for one cluster: a fleet scenario sets each cluster's pools, and its API servers take free ports"
                );
                return up_fleet(&state_dir, path, arm_port).await;
            }
            let mut sc = match &scenario {
                Some(p) => Scenario::load(p)?,
                None => Scenario::default_scenario(),
            };
            if let Some(n) = nodes {
                let (scaled, notes) = sc.scale_linux_nodes(n)?;
                for note in notes {
                    eprintln!("aks-sim: note: {note}");
                }
                sc = scaled;
            }
            let mut cfg = SimConfig::new(&state_dir, sc);
            cfg.arm_port = arm_port;
            cfg.kube_port = kube_port;
            let t0 = std::time::Instant::now();
            let sim = Sim::start(cfg).await?;
            let ep = sim.endpoints().clone();
            eprintln!(
                "aks-sim: cluster {}/{} up in {:.1}s: {} nodes ({}.x), ARM {}, Kubernetes API {}",
                ep.resource_group,
                ep.cluster_name,
                t0.elapsed().as_secs_f64(),
                sim.shared.nodes.len(),
                ep.node_prefix,
                ep.arm_url,
                ep.kube_url
            );
            if let Some(b) = &ep.bastion {
                eprintln!("aks-sim: bastion (jump host) {b}: ssh -J {b} ... or aks-patch --ssh-jump {b}");
            }
            eprintln!(
                "aks-sim: point your shell at it with: eval \"$(aks-sim env --state-dir {})\"",
                sim.state_dir().display()
            );
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("aks-sim: stopping");
            let _ = std::fs::remove_file(sim.state_dir().join("sim.json"));
            sim.shutdown().await;
            Ok(())
        }
        Command::Env { state_dir } => {
            let dir = std::fs::canonicalize(&state_dir)
                .with_context(|| format!("no state directory {}", state_dir.display()))?;
            let ep = aks_sim::read_endpoints(&dir)?;
            for (k, v) in aks_sim::env_for(&dir, &ep) {
                println!("export {k}={}", aks_sim::state_dir::sh_quote(&v));
            }
            Ok(())
        }
        Command::Status {
            state_dir,
            cluster,
            output,
        } => {
            let control_url = control_url(&state_dir, cluster.as_deref())?;
            let status: serde_json::Value = control_get(&control_url, "/status").await?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&status)?),
                "table" => {
                    println!(
                        "{:<34} {:<8} {:<14} {:<8} {:<14} {:<20} BOOT-ID",
                        "NODE", "POOL", "IP", "READY", "SCHEDULABLE", "KERNEL"
                    );
                    for n in status["nodes"].as_array().into_iter().flatten() {
                        println!(
                            "{:<34} {:<8} {:<14} {:<8} {:<14} {:<20} {}",
                            n["name"].as_str().unwrap_or(""),
                            n["pool"].as_str().unwrap_or(""),
                            n["ip"].as_str().unwrap_or(""),
                            n["ready"].as_str().unwrap_or(""),
                            if n["unschedulable"].as_bool().unwrap_or(false) {
                                "no"
                            } else {
                                "yes"
                            },
                            n["kernelVersion"].as_str().unwrap_or(""),
                            n["bootId"].as_str().unwrap_or("")
                        );
                    }
                    println!(
                        "{} events; `-o json` shows them",
                        status["events"].as_array().map(|a| a.len()).unwrap_or(0)
                    );
                }
                other => anyhow::bail!("unknown output format `{other}`: use table or json"),
            }
            Ok(())
        }
        Command::Fault {
            state_dir,
            cluster,
            fault,
        } => {
            let control_url = control_url(&state_dir, cluster.as_deref())?;
            let resp = reqwest::Client::new()
                .post(format!("{control_url}/faults"))
                .json(&fault)
                .send()
                .await
                .context("cannot reach the emulator's control endpoint")?;
            let ok = resp.status().is_success();
            let body: serde_json::Value = resp.json().await?;
            if !ok {
                anyhow::bail!(
                    "the emulator refused the fault: {}",
                    body["error"].as_str().unwrap_or("unknown error")
                );
            }
            println!("{}", serde_json::to_string_pretty(&body["applied"])?);
            Ok(())
        }
        Command::Check { scenario } if is_fleet_file(&scenario) => {
            let sc = aks_sim::FleetScenario::load(&scenario)?;
            print!("{}", serde_yaml_ng::to_string(&sc)?);
            Ok(())
        }
        Command::Check { scenario } => {
            let sc = Scenario::load(&scenario)?;
            print!("{}", serde_yaml_ng::to_string(&sc)?);
            Ok(())
        }
    }
}

/// Whether the scenario file is a fleet's (unreadable files are left to the loader's error).
fn is_fleet_file(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| aks_sim::FleetScenario::is_fleet(&t))
}

/// The control endpoint of the emulator in `state_dir`; in a fleet's, of the cluster named.
fn control_url(state_dir: &std::path::Path, cluster: Option<&str>) -> anyhow::Result<String> {
    match (aks_sim::fleet::read_members(state_dir), cluster) {
        (None, None) => Ok(aks_sim::read_endpoints(state_dir)?.control_url),
        (None, Some(_)) => anyhow::bail!(
            "{} is one cluster's state directory, not a fleet's: leave out --cluster",
            state_dir.display()
        ),
        (Some(members), name) => {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            let Some(name) = name else {
                anyhow::bail!(
                    "{} is a fleet's state directory: name the cluster with --cluster (one of {})",
                    state_dir.display(),
                    names.join(", ")
                );
            };
            members
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(name))
                .map(|m| m.control_url.clone())
                .ok_or_else(|| anyhow::anyhow!("the fleet has no cluster `{name}` (it has {})", names.join(", ")))
        }
    }
}

/// `aks-sim up` with a fleet scenario: every cluster, one ARM endpoint, until stopped.
async fn up_fleet(state_dir: &std::path::Path, path: &std::path::Path, arm_port: u16) -> anyhow::Result<()> {
    let sc = aks_sim::FleetScenario::load(path)?;
    let mut cfg = aks_sim::FleetConfig::new(state_dir, sc);
    cfg.arm_port = arm_port;
    let t0 = std::time::Instant::now();
    let fleet = aks_sim::Fleet::start(cfg).await?;
    eprintln!(
        "aks-sim: fleet of {} clusters up in {:.1}s, ARM {}",
        fleet.clusters.len(),
        t0.elapsed().as_secs_f64(),
        fleet.endpoints().arm_url
    );
    for m in fleet.members() {
        eprintln!(
            "aks-sim:   {}/{}/{}: Kubernetes API {}, nodes {}.x",
            m.subscription_id, m.resource_group, m.name, m.kube_url, m.node_prefix
        );
    }
    eprintln!(
        "aks-sim: point your shell at it with: eval \"$(aks-sim env --state-dir {})\"",
        fleet.state_dir().display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("aks-sim: stopping");
    let _ = std::fs::remove_file(fleet.state_dir().join("sim.json"));
    let _ = std::fs::remove_file(fleet.state_dir().join("fleet.json"));
    fleet.shutdown().await;
    Ok(())
}

async fn control_get(base: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let resp = reqwest::get(format!("{base}{path}"))
        .await
        .context("cannot reach the emulator's control endpoint: is it running?")?;
    Ok(resp.error_for_status()?.json().await?)
}
