//! The statement policy engine: a PostgreSQL lexer, a statement classifier
//! and an ordered rule list that turns classifications into decisions.
//!
//! Everything here is sans-IO: it looks at strings the session already
//! holds and returns values, so the session loop, `sluice policy explain`,
//! the tests, the fuzzer and the benches all run the same code.
//!
//! The pieces, in the order a Query goes through them:
//!
//! - [`lexer`]: tokens exactly as the server's scanner produces them.
//! - [`classify`](mod@classify): statements and what each one does ([`Class`]es).
//! - [`config`]: the `[policy]` TOML section and its validation into a
//!   [`CompiledPolicy`].
//! - [`rules`]: [`CompiledPolicy::decide`] and [`CompiledPolicy::explain`].

pub mod classify;
pub mod config;
mod decode;
pub mod fuzz;
pub mod lexer;
pub mod rules;

pub use classify::{
    classify, classify_bytes, classify_with, split_statements, Class, ClassSet,
    ClassifiedStatement, ClassifyOptions, NoPreparedStatements, PreparedStatements, Reason,
    Summary, WhereClause,
};
pub use config::{PolicyConfig, PolicyConfigError, PolicyConfigErrorKind, RuleConfig};
pub use lexer::{LexOptions, Lexer, Token, TokenKind};
pub use rules::{Action, CompiledPolicy, Decision, Fallback};
