//! Typed configuration from the environment (ECS task-definition env vars and secrets).
//!
//! Every variable is read here once; bad or missing values stop startup with a one-line
//! error that names the variable.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// A configuration problem, named after the variable that caused it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is required and absent.
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    /// The variable is present but unusable.
    #[error("invalid environment variable {var}={value:?}: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// Everything the API needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// `BIND_ADDR` (default 0.0.0.0): the local stack binds each task to its own loopback address.
    pub bind_addr: IpAddr,
    /// `PORT` (default 8080); 0 picks a free port (tests).
    pub port: u16,
    /// `DATABASE_URL`, or `DB_HOST`/`DB_PORT`/`DB_NAME`/`DB_USER`/`DB_PASSWORD` as ECS injects them
    /// from the RDS-managed secret. TLS: `DB_SSLMODE` (`disable`, `prefer`, `require`,
    /// `verify-ca`, `verify-full`, as libpq; default the URL's `sslmode`, else `prefer`) and
    /// `DB_SSLROOTCERT` (a PEM CA bundle, e.g. the RDS one, for the `verify-*` modes). RDS for
    /// PostgreSQL 15+ refuses plain connections (`rds.force_ssl`): `prefer` and `require` encrypt
    /// without checking the certificate; `verify-full` with the RDS bundle also checks it.
    pub db: PgConnectOptions,
    /// `DB_SECRET_ARN`: the RDS-managed secret (`username`, `password`). When set, the API reads
    /// it at startup and again whenever the database refuses the credentials (a rotation), and
    /// its values replace any user and password given above (`DB_USER` may then be omitted).
    pub db_secret_arn: Option<String>,
    /// `DB_POOL_MAX` (default 10): connections per task; RDS max_connections / max tasks bounds it.
    pub pool_max: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS` (default 1500): how long a request waits for a connection before
    /// answering 503; short so that a database outage fails fast instead of hanging requests.
    pub acquire_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS` (default 2000): server-side bound on any statement. A visit
    /// insert or the summary read takes milliseconds; seconds mean the database is in trouble.
    pub statement_timeout: Duration,
    /// `DB_QUERY_TIMEOUT_MS` (default: the statement timeout + 1000): client-side bound on every
    /// database round trip. The server's `statement_timeout` cannot fire when the server (or
    /// the path to it) has gone silent, and the kernel would keep such a socket for about 15
    /// minutes; past this bound the connection is thrown away and the request answered 503.
    /// Longer than the statement timeout, so that a merely slow statement is cancelled by the
    /// server first (cleanly, nothing committed).
    pub query_timeout: Duration,
    /// `DB_STARTUP_TIMEOUT_S` (default 60): how long startup waits for the database (RDS may
    /// still be booting) before giving up.
    pub db_startup_timeout: Duration,
    /// `HEALTH_DB_TIMEOUT_MS` (default 1000): the health check's database ping bound.
    pub health_db_timeout: Duration,
    /// `DRAIN_IDLE_CLOSE_MS` (default 1000): in drain mode, idle keep-alive connections close
    /// once no request has arrived for this long (the load balancer has stopped routing here).
    pub drain_idle_close: Duration,
    /// `ADMIN_TOKEN`: bearer token for `/admin/*`; unset disables the admin endpoints.
    pub admin_token: Option<String>,
    /// `STRESS_TOKEN`: bearer token for `/api/stress`; unset disables it.
    pub stress_token: Option<String>,
    /// `STRESS_MAX_CONCURRENT` (default: number of CPUs): CPU burns allowed at once.
    pub stress_max_concurrent: usize,
    /// `HEADER_READ_TIMEOUT_MS` (default 10000): a request head must arrive whole within this
    /// long of its first byte, else the connection is closed.
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT_MS` (default 10000): a request body must arrive whole within this long
    /// of its head, else 408. Bodies here are at most a few KiB.
    pub body_read_timeout: Duration,
    /// `IDLE_TIMEOUT_S` (default 75): a keep-alive connection with no request for this long is
    /// closed. Longer than the ALB's 60 s idle timeout, as AWS advises for targets, so that the
    /// load balancer, not the task, closes idle connections (no request races a close):
    /// "Edit attributes for your Application Load Balancer", Connection idle timeout,
    /// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout
    pub idle_timeout: Duration,
    /// `TRUSTED_PROXY_HOPS` (default 1, the ALB): how many `X-Forwarded-For` entries, counted
    /// from the right, were added by proxies we run. The client is the entry just left of them;
    /// anything further left was sent by the client and is not trusted. 0: the peer address.
    pub trusted_proxy_hops: usize,
    /// `SHUTDOWN_GRACE_S` (default 25, under ECS's 30 s stopTimeout): in-flight requests get this
    /// long after SIGTERM.
    pub shutdown_grace: Duration,
    /// `METRICS_INTERVAL_S` (default 10): how often one EMF record goes to stdout.
    pub metrics_interval: Duration,
    /// `METRICS_NAMESPACE` (default VisitsApi).
    pub metrics_namespace: String,
    /// `CLUSTER_NAME` (default: the task metadata's cluster, else "local").
    pub cluster_name: Option<String>,
    /// `SERVICE_NAME` (default visits-api).
    pub service_name: String,
    /// `ECS_CONTAINER_METADATA_URI_V4`: set by the ECS agent (or the local stack's fake).
    pub metadata_uri: Option<String>,
    /// `WRITE_BATCH_MAX` (default 512): rows per group-commit INSERT.
    pub write_batch_max: usize,
    /// `WRITE_CONCURRENCY` (default 2): group-commit batches in flight at once, each on its own
    /// pooled connection, so that one batch's WAL flush does not hold up the next. More means
    /// smaller batches and more database CPU per row. Capped below `DB_POOL_MAX`.
    pub write_concurrency: usize,
    /// `READ_CONCURRENCY` (default 2): coalesced summary reads in flight at once; with two, a
    /// GET arriving mid-read starts its own read without waiting for that one to end.
    pub read_concurrency: usize,
}

/// Reads variables through a lookup function, so tests need not touch the process environment.
struct Env<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn opt(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    fn req(&self, var: &'static str) -> Result<String, ConfigError> {
        self.opt(var).ok_or(ConfigError::Missing(var))
    }

    fn parse<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.opt(var) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                var,
                value: v.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// A number within `min..=max`.
    fn ranged(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let v = self.parse(var, default)?;
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::Invalid {
                var,
                value: v.to_string(),
                reason: format!("must be between {min} and {max}"),
            })
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let statement_timeout =
            Duration::from_millis(env.ranged("DB_STATEMENT_TIMEOUT_MS", 2000, 10, 600_000)?);
        Ok(Config {
            bind_addr: env.parse("BIND_ADDR", IpAddr::from([0, 0, 0, 0]))?,
            port: env.parse("PORT", 8080)?,
            db: db_options(&env)?,
            db_secret_arn: env.opt("DB_SECRET_ARN").filter(|a| !a.trim().is_empty()),
            pool_max: env.ranged("DB_POOL_MAX", 10, 1, 1000)? as u32,
            acquire_timeout: Duration::from_millis(env.ranged(
                "DB_ACQUIRE_TIMEOUT_MS",
                1500,
                10,
                60_000,
            )?),
            statement_timeout,
            query_timeout: Duration::from_millis(env.ranged(
                "DB_QUERY_TIMEOUT_MS",
                statement_timeout.as_millis() as u64 + 1000,
                10,
                600_000,
            )?),
            db_startup_timeout: Duration::from_secs(env.ranged(
                "DB_STARTUP_TIMEOUT_S",
                60,
                0,
                3600,
            )?),
            health_db_timeout: Duration::from_millis(env.ranged(
                "HEALTH_DB_TIMEOUT_MS",
                1000,
                10,
                60_000,
            )?),
            drain_idle_close: Duration::from_millis(env.ranged(
                "DRAIN_IDLE_CLOSE_MS",
                1000,
                0,
                60_000,
            )?),
            admin_token: env.opt("ADMIN_TOKEN"),
            stress_token: env.opt("STRESS_TOKEN"),
            stress_max_concurrent: env.ranged("STRESS_MAX_CONCURRENT", cpus, 1, 256)? as usize,
            header_read_timeout: Duration::from_millis(env.ranged(
                "HEADER_READ_TIMEOUT_MS",
                10_000,
                100,
                600_000,
            )?),
            body_read_timeout: Duration::from_millis(env.ranged(
                "BODY_READ_TIMEOUT_MS",
                10_000,
                100,
                600_000,
            )?),
            idle_timeout: Duration::from_secs(env.ranged("IDLE_TIMEOUT_S", 75, 1, 4000)?),
            trusted_proxy_hops: env.ranged("TRUSTED_PROXY_HOPS", 1, 0, 16)? as usize,
            shutdown_grace: Duration::from_secs(env.ranged("SHUTDOWN_GRACE_S", 25, 0, 3600)?),
            metrics_interval: Duration::from_secs(env.ranged("METRICS_INTERVAL_S", 10, 1, 3600)?),
            metrics_namespace: env
                .opt("METRICS_NAMESPACE")
                .unwrap_or_else(|| "VisitsApi".into()),
            cluster_name: env.opt("CLUSTER_NAME"),
            service_name: env
                .opt("SERVICE_NAME")
                .unwrap_or_else(|| "visits-api".into()),
            metadata_uri: env.opt("ECS_CONTAINER_METADATA_URI_V4"),
            write_batch_max: env.ranged("WRITE_BATCH_MAX", 512, 1, 10_000)? as usize,
            write_concurrency: env.ranged("WRITE_CONCURRENCY", 2, 1, 64)? as usize,
            read_concurrency: env.ranged("READ_CONCURRENCY", 2, 1, 64)? as usize,
        })
    }
}

/// `DATABASE_URL` wins; otherwise the RDS secret's parts (the password is never in a URL, so it
/// needs no escaping).
fn db_options<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<PgConnectOptions, ConfigError> {
    let opts = if let Some(url) = env.opt("DATABASE_URL") {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL",
                value: "<redacted>".into(),
                reason: "must start with postgres:// or postgresql://".into(),
            });
        }
        url.parse::<PgConnectOptions>()
            .map_err(|e| ConfigError::Invalid {
                var: "DATABASE_URL",
                value: "<redacted>".into(),
                reason: e.to_string(),
            })?
    } else {
        let host = env
            .req("DB_HOST")
            .map_err(|_| ConfigError::Missing("DATABASE_URL or DB_HOST"))?;
        PgConnectOptions::new_without_pgpass()
            .host(&host)
            .port(env.parse("DB_PORT", 5432)?)
            .database(&env.req("DB_NAME")?)
            // With DB_SECRET_ARN the secret supplies the user (db_secret.rs).
            .username(&match env.opt("DB_SECRET_ARN") {
                Some(_) => env.opt("DB_USER").unwrap_or_default(),
                None => env.req("DB_USER")?,
            })
            .password(&env.opt("DB_PASSWORD").unwrap_or_default())
    };
    let opts =
        match env.opt("DB_SSLMODE") {
            None => opts,
            Some(mode) => opts.ssl_mode(mode.trim().parse::<PgSslMode>().map_err(|_| {
                ConfigError::Invalid {
                    var: "DB_SSLMODE",
                    value: mode.clone(),
                    reason: "must be disable, allow, prefer, require, verify-ca or verify-full"
                        .into(),
                }
            })?),
        };
    let opts = match env.opt("DB_SSLROOTCERT") {
        None => opts,
        Some(path) if std::path::Path::new(&path).is_file() => opts.ssl_root_cert(path),
        Some(path) => {
            return Err(ConfigError::Invalid {
                var: "DB_SSLROOTCERT",
                value: path,
                reason: "no such file".into(),
            })
        }
    };
    Ok(opts.application_name("visits-api"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_with_database_url() {
        let c = config(&[("DATABASE_URL", "postgres://u:p@localhost:5432/db")]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.shutdown_grace, Duration::from_secs(25));
        assert_eq!(c.metrics_namespace, "VisitsApi");
        assert!(c.admin_token.is_none() && c.stress_token.is_none());
    }

    #[test]
    fn rds_secret_parts() {
        let c = config(&[
            ("DB_HOST", "db.example"),
            ("DB_NAME", "visits"),
            ("DB_USER", "app"),
            ("DB_PASSWORD", "p@ss/word"),
        ])
        .unwrap();
        assert_eq!(c.db.get_host(), "db.example");
        assert_eq!(c.db.get_port(), 5432);
        assert_eq!(c.db.get_database(), Some("visits"));
    }

    #[test]
    fn the_rds_secret_arn_stands_in_for_user_and_password() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1";
        let c = config(&[
            ("DB_HOST", "db.example"),
            ("DB_NAME", "visits"),
            ("DB_SECRET_ARN", arn),
        ])
        .unwrap();
        assert_eq!(c.db_secret_arn.as_deref(), Some(arn));
        let plain = config(&[("DATABASE_URL", "postgres://u:p@localhost/db")]).unwrap();
        assert_eq!(plain.db_secret_arn, None);
    }

    #[test]
    fn errors_name_the_variable() {
        let missing = config(&[]).unwrap_err().to_string();
        assert!(missing.contains("DATABASE_URL or DB_HOST"), "{missing}");
        let no_user = config(&[("DB_HOST", "h"), ("DB_NAME", "n")])
            .unwrap_err()
            .to_string();
        assert!(no_user.contains("DB_USER"), "{no_user}");
        let bad_port = config(&[
            ("DATABASE_URL", "postgres://localhost/db"),
            ("PORT", "eighty"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            bad_port.contains("PORT") && !bad_port.contains('\n'),
            "{bad_port}"
        );
        let out_of_range = config(&[
            ("DATABASE_URL", "postgres://localhost/db"),
            ("DB_POOL_MAX", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(out_of_range.contains("DB_POOL_MAX"), "{out_of_range}");
    }

    #[test]
    fn tls_settings() {
        let url = "postgres://u@localhost/db?sslmode=require";
        let c = config(&[("DATABASE_URL", url)]).unwrap();
        assert!(matches!(c.db.get_ssl_mode(), PgSslMode::Require));
        let c = config(&[("DATABASE_URL", url), ("DB_SSLMODE", "verify-full")]).unwrap();
        assert!(matches!(c.db.get_ssl_mode(), PgSslMode::VerifyFull));
        let c = config(&[("DATABASE_URL", "postgres://u@localhost/db")]).unwrap();
        assert!(matches!(c.db.get_ssl_mode(), PgSslMode::Prefer));
        let bad = config(&[("DATABASE_URL", url), ("DB_SSLMODE", "always")])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("DB_SSLMODE"), "{bad}");
        let missing = config(&[
            ("DATABASE_URL", url),
            ("DB_SSLROOTCERT", "/nonexistent/rds-bundle.pem"),
        ])
        .unwrap_err()
        .to_string();
        assert!(missing.contains("DB_SSLROOTCERT"), "{missing}");
    }

    #[test]
    fn bad_url_is_not_echoed() {
        let e = config(&[("DATABASE_URL", "mysql://secret@x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("DATABASE_URL") && !e.contains("secret"), "{e}");
    }
}
