//! Command-line arguments, their bounds, and the validated plans the runs
//! execute. Parsing never panics: every violation becomes an
//! [`ArgumentError`] naming the argument, and `main` exits with status 2.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{http_url::HttpUrl, pg_url::PgTarget};

/// Worker threads of a load run or a mock backend.
pub const THREADS_MAX: usize = 256;
/// Connections of one load run, over all threads.
pub const CONNECTIONS_MAX: usize = 65_536;
/// Requests in flight on one connection.
pub const PIPELINE_DEPTH_MAX: usize = 1024;
/// Longest run (and longest warmup).
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Highest open-loop rate, requests per second over all connections.
pub const RATE_MAX: f64 = 1e9;
/// Largest script file accepted by `--script`.
pub const SCRIPT_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Statements in one script.
pub const SCRIPT_STATEMENTS_MAX: usize = 10_000;
/// Largest request body `http --body-size` generates.
pub const HTTP_REQUEST_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest response body the mock HTTP backend serves.
pub const HTTP_RESPONSE_BODY_BYTES_MAX: usize = 1024 * 1024 * 1024;
/// Largest value the mock PostgreSQL backend puts in one row.
pub const MOCK_ROW_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgumentError {
    #[error("{argument} must be between {min} and {max}, got {value}")]
    OutOfRange {
        argument: &'static str,
        min: String,
        max: String,
        value: String,
    },
    #[error("invalid --url: {0}")]
    PgUrl(#[from] crate::pg_url::PgUrlError),
    #[error("invalid --url: {0}")]
    HttpUrl(#[from] crate::http_url::HttpUrlError),
    #[error("give the statements with --sql or --script (not both, not neither)")]
    StatementSource,
    #[error("cannot read --script {path}: {reason}")]
    Script { path: PathBuf, reason: String },
    #[error("--script {path} holds no statement")]
    ScriptEmpty { path: PathBuf },
    #[error("--script {path} is larger than {max} bytes")]
    ScriptTooLarge { path: PathBuf, max: u64 },
    #[error("--script {path} holds more than {max} statements")]
    ScriptTooManyStatements { path: PathBuf, max: usize },
    #[error("statement {index} uses ${used} but only {given} --param values are given")]
    MissingParameter {
        index: usize,
        used: usize,
        given: usize,
    },
    #[error("invalid --param {spec:?}: {reason}")]
    Parameter { spec: String, reason: String },
    #[error("--reconnect measures connection set-up; it takes no --pipeline deeper than 1")]
    ReconnectPipeline,
    #[error("invalid --header {header:?}: expected `Name: value` without line breaks")]
    Header { header: String },
    #[error("invalid --method {method:?}: expected an HTTP token such as GET or POST")]
    Method { method: String },
    #[error("give at most one of --body and --body-size")]
    BodySource,
    #[error("https needs --cacert FILE (the CA that signed the server certificate)")]
    HttpsWithoutCa,
    #[error("--cacert is only meaningful with an https URL")]
    CaWithoutHttps,
    #[error(
        "--pin lists {given} CPUs but --threads is {threads}; give one CPU per thread or none"
    )]
    PinCount { given: usize, threads: usize },
}

/// `sluice-loadgen`: PostgreSQL and HTTP load with HDR latency histograms.
#[derive(Parser, Debug)]
#[command(name = "sluice-loadgen", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load a PostgreSQL server (or a proxy in front of one).
    Pg(PgArgs),
    /// Load an HTTP/1.1 server (keep-alive connections).
    Http(HttpArgs),
    /// Run a minimal mock server that answers as fast as it can.
    Backend {
        #[command(subcommand)]
        kind: BackendCommand,
    },
}

/// Arguments shared by every load run.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Worker threads, each with its own io_uring runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Connections in total, spread evenly over the threads.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub connections: usize,
    /// How long to measure (`10s`, `500ms`, `2m`; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load applied before measuring starts; not counted.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: requests per second over all connections, each measured
    /// from its intended start time. Without it the loop is closed.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Pin thread i to the i-th CPU of this list (e.g. `--pin 2,3`).
    #[arg(long, value_delimiter = ',')]
    pub pin: Option<Vec<usize>>,
    /// Time allowed to connect (and authenticate) one connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// After the run, time allowed for requests still in flight to finish
    /// (they count in the latency histogram, not in the throughput).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No live progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueryMode {
    /// One Query message per statement; parameters are substituted as literals.
    Simple,
    /// Parse, Bind, Describe, Execute, Sync of an unnamed statement each time.
    Extended,
    /// Statements are prepared once per connection, then Bind, Describe,
    /// Execute, Sync.
    Prepared,
}

impl QueryMode {
    pub fn name(self) -> &'static str {
        match self {
            QueryMode::Simple => "simple",
            QueryMode::Extended => "extended",
            QueryMode::Prepared => "prepared",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct PgArgs {
    /// postgresql://user:password@host:port/db?sslmode=verify-full&sslrootcert=FILE
    /// (missing parts come from PGHOST, PGPORT, PGUSER, PGPASSWORD,
    /// PGDATABASE, PGSSLMODE, PGSSLROOTCERT).
    #[arg(long)]
    pub url: Option<String>,
    /// The statement to run (`$1`, `$2`... take the --param values).
    #[arg(long)]
    pub sql: Option<String>,
    /// A file of statements, each ending with `;` at the end of a line;
    /// lines starting with `--` are comments. Run in turn on each connection.
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Parameter $N (in order): `int:LOW:HIGH` draws uniformly, `text:VALUE`
    /// (or any other text) is a constant.
    #[arg(long = "param")]
    pub params: Vec<String>,
    #[arg(long, value_enum, default_value_t = QueryMode::Simple)]
    pub mode: QueryMode,
    /// Open a new connection for every request (connect, TLS, authenticate,
    /// run the statement once, terminate): measures set-up cost.
    #[arg(long)]
    pub reconnect: bool,
    /// Largest ErrorResponse or NoticeResponse the client buffers.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub error_message_bytes_max: usize,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// http://host:port/path or https://host:port/path
    #[arg(long)]
    pub url: String,
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long)]
    pub body: Option<String>,
    /// Request body of this many bytes (`x`).
    #[arg(long)]
    pub body_size: Option<usize>,
    /// PEM CA bundle that verifies an https server.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Largest response head (status line and headers) accepted.
    #[arg(long, default_value_t = 64 * 1024)]
    pub response_head_bytes_max: usize,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Subcommand, Debug)]
pub enum BackendCommand {
    /// A PostgreSQL-protocol responder: trust authentication, and every
    /// statement returns the same rows.
    Pg(PgBackendArgs),
    /// An HTTP/1.1 keep-alive responder: every request gets 200 and a body.
    Http(HttpBackendArgs),
}

#[derive(Args, Debug, Clone)]
pub struct PgBackendArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Rows every statement returns.
    #[arg(long, default_value_t = 1)]
    pub rows: u64,
    /// Bytes of the single text column of each row.
    #[arg(long, default_value_t = 32)]
    pub row_bytes: usize,
    #[arg(long, value_delimiter = ',')]
    pub pin: Option<Vec<usize>>,
}

#[derive(Args, Debug, Clone)]
pub struct HttpBackendArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Bytes of every response body.
    #[arg(long, default_value_t = 0)]
    pub body_bytes: usize,
    /// Largest request head accepted (beyond it: 431).
    #[arg(long, default_value_t = 64 * 1024)]
    pub request_head_bytes_max: usize,
    /// Largest request body accepted (beyond it: 413).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub request_body_bytes_max: usize,
    #[arg(long, value_delimiter = ',')]
    pub pin: Option<Vec<usize>>,
}

/// Parses `10s`, `250ms`, `2m`, `1.5s`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s, 250ms or 2m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is not a non-negative duration"));
    }
    let seconds = value * scale;
    if seconds > DURATION_MAX.as_secs_f64() {
        return Err(format!("{text:?} is longer than 24h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    argument: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ArgumentError> {
    if value < min || value > max {
        return Err(ArgumentError::OutOfRange {
            argument,
            min: min.to_string(),
            max: max.to_string(),
            value: value.to_string(),
        });
    }
    Ok(value)
}

fn check_pin(pin: &Option<Vec<usize>>, threads: usize) -> Result<Vec<usize>, ArgumentError> {
    match pin {
        None => Ok(Vec::new()),
        Some(cpus) if cpus.len() == threads => Ok(cpus.clone()),
        Some(cpus) => Err(ArgumentError::PinCount {
            given: cpus.len(),
            threads,
        }),
    }
}

/// Validated settings shared by both protocols.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub pipeline: usize,
    pub cpus: Vec<usize>,
    pub connect_timeout: Duration,
    pub drain: Duration,
    pub json: bool,
    pub quiet: bool,
}

impl LoadArgs {
    pub fn validate(&self) -> Result<LoadSettings, ArgumentError> {
        let threads = check_range("--threads", self.threads, 1, THREADS_MAX)?;
        let connections = check_range("--connections", self.connections, 1, CONNECTIONS_MAX)?;
        let pipeline = check_range("--pipeline", self.pipeline, 1, PIPELINE_DEPTH_MAX)?;
        if self.duration.is_zero() {
            return Err(ArgumentError::OutOfRange {
                argument: "--duration",
                min: "1ms".into(),
                max: "24h".into(),
                value: "0s".into(),
            });
        }
        let rate = match self.rate {
            None => None,
            Some(rate) if rate.is_finite() && rate > 0.0 && rate <= RATE_MAX => Some(rate),
            Some(rate) => {
                return Err(ArgumentError::OutOfRange {
                    argument: "--rate",
                    min: "a positive number".into(),
                    max: RATE_MAX.to_string(),
                    value: rate.to_string(),
                })
            }
        };
        if self.connect_timeout.is_zero() {
            return Err(ArgumentError::OutOfRange {
                argument: "--connect-timeout",
                min: "1ms".into(),
                max: "24h".into(),
                value: "0s".into(),
            });
        }
        Ok(LoadSettings {
            threads,
            // Fewer connections than threads would leave threads idle.
            connections: connections.max(threads),
            duration: self.duration,
            warmup: self.warmup,
            rate,
            pipeline,
            cpus: check_pin(&self.pin, threads)?,
            connect_timeout: self.connect_timeout,
            drain: self.drain,
            json: self.json,
            quiet: self.quiet,
        })
    }
}

/// One parameter generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamSpec {
    /// Uniform over LOW..=HIGH.
    Int {
        low: i64,
        high: i64,
    },
    Text(String),
}

impl ParamSpec {
    pub fn parse(spec: &str) -> Result<ParamSpec, ArgumentError> {
        let error = |reason: &str| ArgumentError::Parameter {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if let Some(range) = spec.strip_prefix("int:") {
            let (low, high) = range
                .split_once(':')
                .ok_or_else(|| error("expected int:LOW:HIGH"))?;
            let low: i64 = low
                .trim()
                .parse()
                .map_err(|_| error("LOW is not an integer"))?;
            let high: i64 = high
                .trim()
                .parse()
                .map_err(|_| error("HIGH is not an integer"))?;
            if low > high {
                return Err(error("LOW is greater than HIGH"));
            }
            return Ok(ParamSpec::Int { low, high });
        }
        let text = spec.strip_prefix("text:").unwrap_or(spec);
        if text.contains('\0') {
            return Err(error("a NUL byte cannot travel in a parameter"));
        }
        Ok(ParamSpec::Text(text.to_string()))
    }
}

/// A validated `sluice-loadgen pg` run.
#[derive(Debug, Clone)]
pub struct PgPlan {
    pub load: LoadSettings,
    pub target: PgTarget,
    pub statements: Vec<crate::pg_client::Statement>,
    pub params: Vec<ParamSpec>,
    pub mode: QueryMode,
    pub reconnect: bool,
    pub error_message_bytes_max: usize,
}

/// The process environment, for the PG* variables.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl PgPlan {
    pub fn from_args(
        arguments: PgArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgPlan, ArgumentError> {
        let load = arguments.load.validate()?;
        let target = PgTarget::resolve(arguments.url.as_deref(), env)?;
        let texts = match (&arguments.sql, &arguments.script) {
            (Some(sql), None) => vec![sql.clone()],
            (None, Some(path)) => read_script(path)?,
            _ => return Err(ArgumentError::StatementSource),
        };
        let params = arguments
            .params
            .iter()
            .map(|spec| ParamSpec::parse(spec))
            .collect::<Result<Vec<_>, _>>()?;
        let statements: Vec<_> = texts
            .iter()
            .map(|text| crate::pg_client::Statement::parse(text))
            .collect();
        for (index, statement) in statements.iter().enumerate() {
            if statement.parameters_used > params.len() {
                return Err(ArgumentError::MissingParameter {
                    index: index + 1,
                    used: statement.parameters_used,
                    given: params.len(),
                });
            }
        }
        if arguments.reconnect && load.pipeline > 1 {
            return Err(ArgumentError::ReconnectPipeline);
        }
        let error_message_bytes_max = check_range(
            "--error-message-bytes-max",
            arguments.error_message_bytes_max,
            1024,
            1024 * 1024 * 1024,
        )?;
        Ok(PgPlan {
            load,
            target,
            statements,
            params,
            mode: arguments.mode,
            reconnect: arguments.reconnect,
            error_message_bytes_max,
        })
    }
}

/// Splits a script into statements: a statement ends with `;` at the end
/// of a line; `--` comment lines and blank lines are skipped.
pub fn split_script(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line.trim_end());
        if trimmed.ends_with(';') {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

fn read_script(path: &PathBuf) -> Result<Vec<String>, ArgumentError> {
    let script_error = |reason: String| ArgumentError::Script {
        path: path.clone(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| script_error(e.to_string()))?;
    if metadata.len() > SCRIPT_BYTES_MAX {
        return Err(ArgumentError::ScriptTooLarge {
            path: path.clone(),
            max: SCRIPT_BYTES_MAX,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| script_error(e.to_string()))?;
    let statements = split_script(&text);
    if statements.is_empty() {
        return Err(ArgumentError::ScriptEmpty { path: path.clone() });
    }
    if statements.len() > SCRIPT_STATEMENTS_MAX {
        return Err(ArgumentError::ScriptTooManyStatements {
            path: path.clone(),
            max: SCRIPT_STATEMENTS_MAX,
        });
    }
    Ok(statements)
}

/// A validated `sluice-loadgen http` run.
#[derive(Debug, Clone)]
pub struct HttpPlan {
    pub load: LoadSettings,
    pub url: HttpUrl,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub cacert: Option<PathBuf>,
    pub response_head_bytes_max: usize,
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl HttpPlan {
    pub fn from_args(arguments: HttpArgs) -> Result<HttpPlan, ArgumentError> {
        let load = arguments.load.validate()?;
        let url = HttpUrl::parse(&arguments.url)?;
        if !is_token(&arguments.method) {
            return Err(ArgumentError::Method {
                method: arguments.method,
            });
        }
        let mut headers = Vec::new();
        for header in &arguments.headers {
            let bad = || ArgumentError::Header {
                header: header.clone(),
            };
            let (name, value) = header.split_once(':').ok_or_else(bad)?;
            let name = name.trim();
            let value = value.trim();
            if !is_token(name) || value.contains(['\r', '\n', '\0']) {
                return Err(bad());
            }
            headers.push((name.to_string(), value.to_string()));
        }
        let body = match (arguments.body, arguments.body_size) {
            (Some(_), Some(_)) => return Err(ArgumentError::BodySource),
            (Some(body), None) => body.into_bytes(),
            (None, Some(size)) => {
                vec![b'x'; check_range("--body-size", size, 0, HTTP_REQUEST_BODY_BYTES_MAX)?]
            }
            (None, None) => Vec::new(),
        };
        match (url.tls, &arguments.cacert) {
            (true, None) => return Err(ArgumentError::HttpsWithoutCa),
            (false, Some(_)) => return Err(ArgumentError::CaWithoutHttps),
            _ => {}
        }
        let response_head_bytes_max = check_range(
            "--response-head-bytes-max",
            arguments.response_head_bytes_max,
            1024,
            16 * 1024 * 1024,
        )?;
        Ok(HttpPlan {
            load,
            url,
            method: arguments.method,
            headers,
            body,
            cacert: arguments.cacert,
            response_head_bytes_max,
        })
    }
}

/// Validated mock PostgreSQL backend settings.
#[derive(Debug, Clone)]
pub struct PgBackendSettings {
    pub listen: SocketAddr,
    pub threads: usize,
    pub rows: u64,
    pub row_bytes: usize,
    pub cpus: Vec<usize>,
}

impl PgBackendArgs {
    pub fn validate(&self) -> Result<PgBackendSettings, ArgumentError> {
        let threads = check_range("--threads", self.threads, 1, THREADS_MAX)?;
        Ok(PgBackendSettings {
            listen: self.listen,
            threads,
            rows: check_range("--rows", self.rows, 0, 1 << 40)?,
            row_bytes: check_range("--row-bytes", self.row_bytes, 0, MOCK_ROW_BYTES_MAX)?,
            cpus: check_pin(&self.pin, threads)?,
        })
    }
}

/// Validated mock HTTP backend settings.
#[derive(Debug, Clone)]
pub struct HttpBackendSettings {
    pub listen: SocketAddr,
    pub threads: usize,
    pub body_bytes: usize,
    pub request_head_bytes_max: usize,
    pub request_body_bytes_max: usize,
    pub cpus: Vec<usize>,
}

impl HttpBackendArgs {
    pub fn validate(&self) -> Result<HttpBackendSettings, ArgumentError> {
        let threads = check_range("--threads", self.threads, 1, THREADS_MAX)?;
        Ok(HttpBackendSettings {
            listen: self.listen,
            threads,
            body_bytes: check_range(
                "--body-bytes",
                self.body_bytes,
                0,
                HTTP_RESPONSE_BODY_BYTES_MAX,
            )?,
            request_head_bytes_max: check_range(
                "--request-head-bytes-max",
                self.request_head_bytes_max,
                1024,
                16 * 1024 * 1024,
            )?,
            request_body_bytes_max: check_range(
                "--request-body-bytes-max",
                self.request_body_bytes_max,
                0,
                1024 * 1024 * 1024,
            )?,
            cpus: check_pin(&self.pin, threads)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn pg(arguments: &[&str]) -> Result<PgPlan, String> {
        let mut all = vec!["sluice-loadgen", "pg"];
        all.extend_from_slice(arguments);
        let cli = Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Pg(a) => PgPlan::from_args(a, &no_env).map_err(|e| e.to_string()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("25h").is_err());
    }

    #[test]
    fn a_complete_pg_command_line_is_accepted() {
        let plan = pg(&[
            "--url",
            "postgresql://u:p@127.0.0.1:5433/db",
            "--sql",
            "select $1::int, $2",
            "--param",
            "int:1:100",
            "--param",
            "text:hello",
            "--mode",
            "prepared",
            "--threads",
            "2",
            "-c",
            "16",
            "--pipeline",
            "4",
            "--rate",
            "1000",
            "--duration",
            "3s",
            "--pin",
            "0,1",
        ])
        .unwrap();
        assert_eq!(plan.load.threads, 2);
        assert_eq!(plan.load.connections, 16);
        assert_eq!(plan.load.pipeline, 4);
        assert_eq!(plan.load.rate, Some(1000.0));
        assert_eq!(plan.load.cpus, vec![0, 1]);
        assert_eq!(plan.mode, QueryMode::Prepared);
        assert_eq!(
            plan.params,
            vec![
                ParamSpec::Int { low: 1, high: 100 },
                ParamSpec::Text("hello".into())
            ]
        );
        assert_eq!(plan.target.port, 5433);
    }

    #[test]
    fn bad_pg_arguments_are_named() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--sql", "select 1", "--threads", "0"],
                "--threads must be between 1",
            ),
            (
                &["--sql", "select 1", "--pipeline", "5000"],
                "--pipeline must be between 1 and 1024",
            ),
            (
                &["--sql", "select 1", "--rate=-5"],
                "--rate must be between",
            ),
            (
                &["--sql", "select 1", "--rate", "NaN"],
                "--rate must be between",
            ),
            (
                &["--sql", "select 1", "--duration", "0s"],
                "--duration must be between",
            ),
            (
                &["--sql", "select 1", "--duration", "soon"],
                "not a duration",
            ),
            (&[], "give the statements with --sql or --script"),
            (
                &["--sql", "select $2", "--param", "1"],
                "statement 1 uses $2 but only 1 --param",
            ),
            (
                &["--sql", "select $1", "--param", "int:5:1"],
                "LOW is greater than HIGH",
            ),
            (
                &["--sql", "select $1", "--param", "int:x:1"],
                "LOW is not an integer",
            ),
            (
                &["--sql", "select 1", "--url", "mysql://h/db"],
                "unsupported scheme",
            ),
            (
                &["--sql", "select 1", "--url", "postgresql://h:99999/db"],
                "port",
            ),
            (
                &["--sql", "select 1", "--threads", "2", "--pin", "1"],
                "--pin lists 1 CPUs but --threads is 2",
            ),
            (
                &["--sql", "select 1", "--reconnect", "--pipeline", "2"],
                "--reconnect",
            ),
            (
                &["--sql", "select 1", "--mode", "fast"],
                "invalid value 'fast'",
            ),
        ];
        for (arguments, expected) in cases {
            let error = pg(arguments).expect_err(&format!("{arguments:?} must be refused"));
            assert!(
                error.contains(expected),
                "{arguments:?}: {error:?} does not contain {expected:?}"
            );
        }
    }

    #[test]
    fn scripts_split_on_semicolons_at_line_ends() {
        let statements = split_script(
            "-- point select\nselect 1;\n\nselect a,\n  b from t where x = $1;\nselect 'tail'",
        );
        assert_eq!(
            statements,
            vec![
                "select 1;".to_string(),
                "select a,\n  b from t where x = $1;".to_string(),
                "select 'tail'".to_string()
            ]
        );
    }

    #[test]
    fn script_files_are_read_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.sql");
        std::fs::write(&path, "select $1;\nselect 2;\n").unwrap();
        let path_text = path.to_str().unwrap();
        let plan = pg(&["--script", path_text, "--param", "int:1:10"]).unwrap();
        assert_eq!(plan.statements.len(), 2);
        std::fs::write(&path, "-- nothing\n").unwrap();
        assert!(pg(&["--script", path_text])
            .unwrap_err()
            .contains("holds no statement"));
        let missing = dir.path().join("missing.sql");
        assert!(pg(&["--script", missing.to_str().unwrap()])
            .unwrap_err()
            .contains("cannot read --script"));
    }

    fn http(arguments: &[&str]) -> Result<HttpPlan, String> {
        let mut all = vec!["sluice-loadgen", "http"];
        all.extend_from_slice(arguments);
        let cli = Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Http(a) => HttpPlan::from_args(a).map_err(|e| e.to_string()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn http_arguments_are_validated() {
        let plan = http(&[
            "--url",
            "http://127.0.0.1:8080/x?y=1",
            "-X",
            "POST",
            "-H",
            "X-Test: yes",
            "--body-size",
            "10",
        ])
        .unwrap();
        assert_eq!(plan.method, "POST");
        assert_eq!(plan.headers, vec![("X-Test".into(), "yes".into())]);
        assert_eq!(plan.body.len(), 10);
        assert!(http(&["--url", "http://h/", "-X", "GE T"])
            .unwrap_err()
            .contains("--method"));
        assert!(http(&["--url", "http://h/", "-H", "NoColon"])
            .unwrap_err()
            .contains("--header"));
        assert!(http(&["--url", "https://h/"])
            .unwrap_err()
            .contains("--cacert"));
        assert!(http(&["--url", "ftp://h/"]).unwrap_err().contains("scheme"));
        assert!(
            http(&["--url", "http://h/", "--body", "a", "--body-size", "1"])
                .unwrap_err()
                .contains("at most one")
        );
        assert!(http(&[]).unwrap_err().contains("--url"));
    }

    #[test]
    fn backend_arguments_are_validated() {
        let cli = Cli::try_parse_from([
            "sluice-loadgen",
            "backend",
            "pg",
            "--listen",
            "127.0.0.1:0",
            "--row-bytes",
            "999999999999",
        ])
        .unwrap();
        let Command::Backend {
            kind: BackendCommand::Pg(arguments),
        } = cli.command
        else {
            unreachable!()
        };
        assert!(arguments
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--row-bytes"));
        assert!(
            Cli::try_parse_from(["sluice-loadgen", "backend", "http", "--listen", "nowhere"])
                .is_err()
        );
    }
}
