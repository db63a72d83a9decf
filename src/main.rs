//! The `sluice` command: serve, check-config, hash-token, gen-token, demo.

use std::{
    io::{IsTerminal, Read},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand};

/// sluice: an enforcement point between AI agents and your databases.
///
/// Agents connect over TLS with their own identity; sluice holds the real
/// upstream credentials, frames every PostgreSQL message, and (in later
/// stages) decides, masks and records each statement.
#[derive(Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGINT or SIGTERM (graceful drain).
    Serve {
        /// Configuration file (TOML); see deploy/sluice.example.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and explain what is wrong, by key path.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Read an agent token on standard input and print its verifier for
    /// the `token_hash` config key (the token itself is never stored).
    HashToken {
        /// PBKDF2 iterations (4096 to 1000000).
        #[arg(long, default_value_t = sluice::auth::token::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Print a fresh random agent token and its verifier.
    GenToken,
    /// Statement policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Approve or deny held statements through the admin listener.
    ///
    /// Uses SLUICE_ADMIN_URL (e.g. https://127.0.0.1:9443), SLUICE_ADMIN_TOKEN
    /// (an approver's token) and SLUICE_ADMIN_CA (the CA of the admin
    /// certificate; default: the system trust store). The demo writes
    /// them to var/demo/admin.env.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Bring up a complete local setup: PostgreSQL with demo data, TLS
    /// certificates, an agent token and sluice in front, until Ctrl-C.
    Demo {
        /// Directory for all demo state.
        #[arg(long, default_value = "var/demo")]
        dir: PathBuf,
        /// Address sluice listens on.
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: String,
        /// Port of the demo PostgreSQL server (loopback only).
        #[arg(long, default_value_t = 55432)]
        pg_port: u16,
        /// Address of the admin listener (approvals, /metrics); default: the
        /// --listen address with the next port.
        #[arg(long)]
        admin_listen: Option<String>,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Pending approvals, oldest first.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One approval with its full statement (pending or recently decided).
    Show { id: String },
    /// Run the held statement once.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Also allow statements of the same class in that session for this
        /// long (e.g. 10m, 1h).
        #[arg(long, value_parser = sluice::admin::cli::parse_duration)]
        window: Option<std::time::Duration>,
    },
    /// Refuse the held statement (the agent gets SQLSTATE 42501).
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Classify SQL and show which rule each statement meets, and the decision.
    Explain {
        /// Configuration file with the [policy] section.
        #[arg(long, short, default_value = "/etc/sluice/sluice.toml")]
        config: PathBuf,
        /// Agent name (its groups come from the configuration).
        #[arg(long)]
        agent: String,
        /// Target name.
        #[arg(long)]
        target: String,
        /// The SQL, as the agent would send it in one Query message.
        sql: String,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_logging();
            let config = match sluice::config::Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("sluice: invalid configuration {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            match sluice::server::serve_until_signal(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluice: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { file } => match sluice::config::Config::load(&file) {
            Ok(config) => {
                // TLS material is loaded too, so a bad key fails here, not at start.
                if let Err(e) = sluice::tls::server_config(&config) {
                    eprintln!("{}: tls: {e}", file.display());
                    return ExitCode::from(2);
                }
                if let Some(admin) = &config.admin {
                    if let Err(e) = sluice::admin::check_tls(admin) {
                        eprintln!("{}: admin: {e}", file.display());
                        return ExitCode::from(2);
                    }
                }
                for target in &config.targets {
                    if let Err(e) = sluice::tls::upstream_config(target) {
                        eprintln!("{}: targets.{}: {e}", file.display(), target.name);
                        return ExitCode::from(2);
                    }
                }
                println!(
                    "{}: OK ({} agents, {} targets, {} workers, listen {}, policy {}, approvals {}, recording {}, masking {})",
                    file.display(),
                    config.agents.len(),
                    config.targets.len(),
                    config.worker_count(),
                    config.listen,
                    if config.policy.is_some() { "on" } else { "off" },
                    match &config.admin {
                        Some(admin) => format!(
                            "on (admin {}, {} approvers{})",
                            admin.admin.listen,
                            admin.approvals.approvers.len(),
                            if admin.approvals.webhook.is_some() { ", webhook" } else { "" }
                        ),
                        None => "off".into(),
                    },
                    match &config.ledger {
                        Some(l) => format!("{:?} into {}", l.durability, l.directory.display()).to_lowercase(),
                        None => "off".into(),
                    },
                    match &config.masking {
                        Some(m) => format!("on ({} detectors, {} column rules, default profile {:?})", m.engine.detectors().len(), m.config.column_rules.len(), m.config.default_profile),
                        None => "off".into(),
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(2)
            }
        },
        Command::HashToken { iterations } => {
            let mut token = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut token) {
                eprintln!("sluice: cannot read the token from standard input: {e}");
                return ExitCode::FAILURE;
            }
            let token = token.trim_end_matches(['\n', '\r']);
            if token.is_empty() {
                eprintln!("sluice: empty token on standard input");
                return ExitCode::from(2);
            }
            if !(sluice::auth::token::MIN_ITERATIONS..=sluice::auth::token::MAX_ITERATIONS)
                .contains(&iterations)
            {
                eprintln!(
                    "sluice: --iterations must be between {} and {}",
                    sluice::auth::token::MIN_ITERATIONS,
                    sluice::auth::token::MAX_ITERATIONS
                );
                return ExitCode::from(2);
            }
            println!("{}", sluice::auth::token::hash_token(token, iterations));
            ExitCode::SUCCESS
        }
        Command::GenToken => {
            let token = sluice::auth::token::generate_token();
            let verifier =
                sluice::auth::token::hash_token(&token, sluice::auth::token::DEFAULT_ITERATIONS);
            println!("token:      {token}");
            println!("token_hash: {verifier}");
            ExitCode::SUCCESS
        }
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    config,
                    agent,
                    target,
                    sql,
                },
        } => {
            let loaded = match sluice::config::Config::load(&config) {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            let Some(policy) = &loaded.policy else {
                eprintln!(
                    "{}: no [policy] section: every statement is forwarded",
                    config.display()
                );
                return ExitCode::from(2);
            };
            let groups: Vec<String> = match loaded.agent(&agent) {
                Some(a) => a.groups.clone(),
                None => {
                    eprintln!("note: no agent named {agent:?} in the configuration; explaining for it anyway");
                    Vec::new()
                }
            };
            if loaded.target(&target).is_none() {
                eprintln!("note: no target named {target:?} in the configuration; explaining for it anyway");
            }
            print!(
                "{}",
                policy.explain(
                    &agent,
                    &groups,
                    &target,
                    &sql,
                    &sluice::policy::ClassifyOptions::default(),
                    &sluice::policy::NoPreparedStatements
                )
            );
            ExitCode::SUCCESS
        }
        Command::Approvals { command } => {
            use sluice::admin::cli::{run, ApprovalsCommand as Cmd};
            let command = match command {
                ApprovalsCommand::List { json } => Cmd::List { json },
                ApprovalsCommand::Show { id } => Cmd::Show { id },
                ApprovalsCommand::Approve { id, reason, window } => {
                    Cmd::Approve { id, reason, window }
                }
                ApprovalsCommand::Deny { id, reason } => Cmd::Deny { id, reason },
            };
            match run(command) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sluice approvals: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Demo {
            dir,
            listen,
            pg_port,
            admin_listen,
        } => {
            init_logging();
            run_demo(dir, listen, pg_port, admin_listen)
        }
    }
}

fn run_demo(dir: PathBuf, listen: String, pg_port: u16, admin_listen: Option<String>) -> ExitCode {
    let listen = match listen.parse() {
        Ok(address) => address,
        Err(e) => {
            eprintln!("sluice demo: --listen {listen:?} is not an IP:port address: {e}");
            return ExitCode::from(2);
        }
    };
    let admin_listen = match admin_listen.map(|a| a.parse()) {
        None => None,
        Some(Ok(address)) => Some(address),
        Some(Err(e)) => {
            eprintln!("sluice demo: --admin-listen is not an IP:port address: {e}");
            return ExitCode::from(2);
        }
    };
    let options = sluice::demo::DemoOptions {
        listen,
        pg_port,
        admin_listen,
    };
    match sluice::demo::run(&dir, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice demo: {e}");
            ExitCode::FAILURE
        }
    }
}
