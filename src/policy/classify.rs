//! Splitting a Query string into statements and classifying each one.
//!
//! The classifier answers one question per statement: what can this
//! statement do when the server runs it? It works on the lexer's tokens,
//! never on raw text, so keywords inside strings, comments and quoted
//! identifiers are never mistaken for commands, and it looks inside
//! everything that runs later or elsewhere: data-modifying CTEs,
//! `EXPLAIN ANALYZE`, `PREPARE ... AS`, `COPY (query)`, `CREATE TABLE AS`,
//! `DO` blocks and function bodies (decoded from whatever string syntax
//! carries them), rule actions, and `EXECUTE` of a prepared statement the
//! session saw being prepared.
//!
//! The answer is a set of [`Class`]es (the operations the statement
//! touches) rather than a single label, because one statement can do
//! several things (`WITH d AS (DELETE ...) INSERT ...`). When the
//! classifier cannot tell, the set contains [`Class::Unknown`]; it never
//! answers [`Class::Read`] for something it did not understand.
//!
//! Statement boundaries are found like `psql` finds them, which agrees with
//! the server's grammar for every valid input: semicolons outside quotes,
//! comments and parentheses end a statement, except inside the
//! `BEGIN ATOMIC ... END` body of `CREATE FUNCTION` / `CREATE PROCEDURE`.
//! Where the two could disagree (invalid SQL), the server rejects the whole
//! Query, and the classifier has still looked at every token.

use std::fmt;
use std::ops::Range;

use super::decode::{ident_name, string_value, Name};
use super::lexer::{LexOptions, Lexer, TokenKind};

/// Query strings longer than this are not analysed; they are one unknown
/// statement. The bound keeps classification time and memory predictable.
pub const CLASSIFY_BYTES_MAX: usize = 4 << 20;
/// Statements classified per Query; the rest of the string becomes one
/// unknown statement.
pub const STATEMENTS_MAX: usize = 4096;
/// Significant tokens kept per statement; a longer statement is unknown.
pub const STATEMENT_TOKENS_MAX: usize = 1 << 20;
/// Parenthesis depth beyond which a statement is unknown.
pub const PAREN_DEPTH_MAX: u16 = 256;
/// How deep statements nest inside one another (`EXPLAIN ANALYZE` of a
/// `PREPARE`, a function body inside a `DO` body, ...) before the
/// classifier gives up with unknown. Bounds recursion.
pub const NESTING_MAX: u32 = 16;

/// What a statement does, as far as policy is concerned. The names (see
/// [`Class::name`]) are the ones rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Class {
    /// SELECT, VALUES, TABLE, SHOW, FETCH, plain EXPLAIN.
    Read,
    /// SELECT ... FOR UPDATE / SHARE: reads and takes row locks.
    LockingRead,
    Insert,
    /// UPDATE with a WHERE clause that constrains rows.
    UpdateWhere,
    /// UPDATE without a WHERE clause, or with a trivially true one.
    UpdateNoWhere,
    DeleteWhere,
    DeleteNoWhere,
    Merge,
    /// CREATE of anything except functions, procedures and roles; also
    /// SELECT INTO and CREATE TABLE AS.
    Create,
    /// CREATE [OR REPLACE] FUNCTION / PROCEDURE.
    CreateFunction,
    Alter,
    Drop,
    Truncate,
    /// COMMENT ON, SECURITY LABEL.
    Comment,
    /// GRANT, REVOKE, ALTER DEFAULT PRIVILEGES, REASSIGN OWNED, DROP OWNED.
    Privilege,
    /// CREATE / ALTER / DROP ROLE, USER, GROUP; SET ROLE; SET SESSION
    /// AUTHORIZATION.
    Role,
    /// Server administration: pg_terminate_backend and friends, server file
    /// access, ALTER SYSTEM, LOAD, CHECKPOINT.
    Admin,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION, ...
    Transaction,
    CopyTo,
    CopyFrom,
    /// COPY ... TO / FROM PROGRAM: runs a shell command on the server.
    CopyProgram,
    /// COPY ... TO / FROM a file on the server.
    CopyFile,
    /// SET, RESET, DISCARD, DEALLOCATE, CLOSE.
    Session,
    /// LISTEN, NOTIFY, UNLISTEN, pg_notify().
    ListenNotify,
    Call,
    /// DO blocks.
    Do,
    /// VACUUM, ANALYZE, CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW.
    Maintenance,
    Lock,
    /// Not understood; never treated as a read.
    Unknown,
}

impl Class {
    /// Every class, in declaration order.
    pub const ALL: [Class; 29] = [
        Class::Read,
        Class::LockingRead,
        Class::Insert,
        Class::UpdateWhere,
        Class::UpdateNoWhere,
        Class::DeleteWhere,
        Class::DeleteNoWhere,
        Class::Merge,
        Class::Create,
        Class::CreateFunction,
        Class::Alter,
        Class::Drop,
        Class::Truncate,
        Class::Comment,
        Class::Privilege,
        Class::Role,
        Class::Admin,
        Class::Transaction,
        Class::CopyTo,
        Class::CopyFrom,
        Class::CopyProgram,
        Class::CopyFile,
        Class::Session,
        Class::ListenNotify,
        Class::Call,
        Class::Do,
        Class::Maintenance,
        Class::Lock,
        Class::Unknown,
    ];

    /// The snake_case name used in configuration and explanations.
    pub fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::LockingRead => "locking_read",
            Class::Insert => "insert",
            Class::UpdateWhere => "update_where",
            Class::UpdateNoWhere => "update_no_where",
            Class::DeleteWhere => "delete_where",
            Class::DeleteNoWhere => "delete_no_where",
            Class::Merge => "merge",
            Class::Create => "create",
            Class::CreateFunction => "create_function",
            Class::Alter => "alter",
            Class::Drop => "drop",
            Class::Truncate => "truncate",
            Class::Comment => "comment",
            Class::Privilege => "privilege",
            Class::Role => "role",
            Class::Admin => "admin",
            Class::Transaction => "transaction",
            Class::CopyTo => "copy_to",
            Class::CopyFrom => "copy_from",
            Class::CopyProgram => "copy_program",
            Class::CopyFile => "copy_file",
            Class::Session => "session",
            Class::ListenNotify => "listen_notify",
            Class::Call => "call",
            Class::Do => "do",
            Class::Maintenance => "maintenance",
            Class::Lock => "lock",
            Class::Unknown => "unknown",
        }
    }

    /// The class with this name, if any.
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// How much damage the class can do, used to pick the class that
    /// represents a statement touching several. Higher is worse.
    pub fn severity(self) -> u8 {
        match self {
            Class::Read => 0,
            Class::CopyTo => 1,
            Class::Transaction => 2,
            Class::Session => 3,
            Class::ListenNotify => 4,
            Class::LockingRead => 5,
            Class::Lock => 6,
            Class::Maintenance => 7,
            Class::Call => 8,
            Class::Comment => 9,
            Class::Create => 10,
            Class::CopyFrom => 12,
            Class::Insert => 11,
            Class::UpdateWhere => 13,
            Class::DeleteWhere => 14,
            Class::Merge => 15,
            Class::CopyFile => 16,
            Class::UpdateNoWhere => 17,
            Class::DeleteNoWhere => 18,
            Class::CreateFunction => 19,
            Class::Do => 20,
            Class::Alter => 21,
            Class::Truncate => 22,
            Class::Drop => 23,
            Class::Admin => 24,
            Class::CopyProgram => 25,
            Class::Privilege => 26,
            Class::Role => 27,
            Class::Unknown => 28,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of classes (a bit set; copying it is free).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClassSet(u64);

impl ClassSet {
    pub const EMPTY: ClassSet = ClassSet(0);

    pub fn of(classes: &[Class]) -> ClassSet {
        let mut set = ClassSet::EMPTY;
        for &c in classes {
            set.insert(c);
        }
        set
    }

    /// Every class except [`Class::Unknown`].
    pub fn all_known() -> ClassSet {
        let mut set = ClassSet::of(&Class::ALL);
        set.remove(Class::Unknown);
        set
    }

    pub fn insert(&mut self, class: Class) {
        self.0 |= 1 << class as u8;
    }

    pub fn remove(&mut self, class: Class) {
        self.0 &= !(1 << class as u8);
    }

    pub fn contains(self, class: Class) -> bool {
        self.0 & (1 << class as u8) != 0
    }

    pub fn union(self, other: ClassSet) -> ClassSet {
        ClassSet(self.0 | other.0)
    }

    pub fn intersects(self, other: ClassSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The classes in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Class> {
        Class::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// The most severe class in the set ([`Class::Unknown`] when empty).
    pub fn most_severe(self) -> Class {
        self.iter()
            .max_by_key(|c| c.severity())
            .unwrap_or(Class::Unknown)
    }
}

impl fmt::Debug for ClassSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for ClassSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for c in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(c.name())?;
        }
        Ok(())
    }
}

/// What the WHERE clause of the statement's UPDATE / DELETE statements
/// amounts to; the worst one when there are several.
///
/// A WHERE clause is *trivial* when it cannot be relied on to select rows:
/// a condition without any column reference (`true`, `1=1`, `'a'='a'`,
/// `NOT false`, `$1`, `now() IS NOT NULL`), a comparison of an expression
/// with itself (`x = x`, `t.x = x` where `t` is the target, `lower(a) =
/// lower(a)`), and any OR with such a branch, or an AND made only of such
/// conjuncts. Everything else counts as real, including conditions that
/// happen to match every row (`id > 0`, `x IS NOT NULL`, an uncorrelated
/// `EXISTS (SELECT 1 FROM t)`): telling those apart needs the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WhereClause {
    /// The statement has no UPDATE or DELETE.
    NotApplicable,
    /// A WHERE clause that constrains rows (or `WHERE CURRENT OF`).
    Present,
    /// A WHERE clause that does not constrain rows (see above).
    Trivial,
    /// No WHERE clause at all.
    Missing,
}

/// Why a statement was classified the way it was. Shown by `explain` and
/// recorded with decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Calls a function with effects beyond reading data.
    CallsFunction(&'static str),
    /// Runs SQL text built at run time (`EXECUTE` in a procedural body,
    /// `query_to_xml`, ...), which cannot be classified in advance.
    DynamicSql,
    /// An UPDATE or DELETE without a WHERE clause.
    WhereMissing(Class),
    /// An UPDATE or DELETE whose WHERE clause is trivially true.
    WhereTrivial(Class),
    /// A data-modifying statement nested in another one (a CTE, a rule
    /// action, `COPY (...)`, an upsert's DO UPDATE).
    NestedModification(Class),
    /// EXPLAIN ANALYZE runs the statement it explains.
    ExplainAnalyze,
    /// PREPARE is classified by the statement it prepares.
    Prepares,
    /// EXECUTE of a prepared statement the session resolved.
    ExecutesPrepared(Class),
    /// EXECUTE of a prepared statement nobody told us about.
    UnresolvedPrepared,
    /// The body of a DO block or function contains this class.
    InBody(Class),
    /// A body in a language other than SQL or PL/pgSQL.
    UnanalyzableLanguage,
    /// A body that could not be decoded (bad escapes, missing body).
    UndecodableBody,
    /// The statement does not start with a command we know.
    UnknownCommand,
    /// A string, identifier or comment runs to the end of the input.
    Unterminated,
    /// A character the server does not accept outside quotes.
    UnexpectedCharacter,
    /// Nested deeper than [`PAREN_DEPTH_MAX`] or [`NESTING_MAX`].
    NestingTooDeep,
    /// More than [`STATEMENT_TOKENS_MAX`] tokens.
    TooManyTokens,
    /// The Query is longer than [`CLASSIFY_BYTES_MAX`].
    InputTooLarge,
    /// More than [`STATEMENTS_MAX`] statements.
    TooManyStatements,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// SELECT ... INTO creates a table.
    SelectInto,
    /// FOR UPDATE / FOR SHARE.
    LockingClause,
    /// COPY runs a program on the server.
    CopyProgram,
    /// COPY reads or writes a file on the server.
    CopyServerFile,
    /// Changes the current role or session user.
    ChangesRole,
    /// Changes how later statements are lexed
    /// (`standard_conforming_strings`, `backslash_quote`).
    ChangesLexing,
    /// ALTER SYSTEM writes the server configuration.
    AlterSystem,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::CallsFunction(name) => write!(f, "calls {name}"),
            Reason::DynamicSql => f.write_str("runs dynamically built SQL"),
            Reason::WhereMissing(c) => write!(f, "{c}: no WHERE clause"),
            Reason::WhereTrivial(c) => write!(f, "{c}: WHERE clause is trivially true"),
            Reason::NestedModification(c) => write!(f, "nested data-modifying statement ({c})"),
            Reason::ExplainAnalyze => f.write_str("EXPLAIN ANALYZE executes the statement"),
            Reason::Prepares => f.write_str("classified by the statement it prepares"),
            Reason::ExecutesPrepared(c) => write!(f, "executes a prepared {c} statement"),
            Reason::UnresolvedPrepared => f.write_str("executes an unknown prepared statement"),
            Reason::InBody(c) => write!(f, "body contains {c}"),
            Reason::UnanalyzableLanguage => {
                f.write_str("body is in a language other than SQL or PL/pgSQL")
            }
            Reason::UndecodableBody => f.write_str("body could not be decoded"),
            Reason::UnknownCommand => f.write_str("unrecognised command"),
            Reason::Unterminated => f.write_str("unterminated string, identifier or comment"),
            Reason::UnexpectedCharacter => f.write_str("character not valid outside quotes"),
            Reason::NestingTooDeep => f.write_str("nested too deeply"),
            Reason::TooManyTokens => f.write_str("statement too long"),
            Reason::InputTooLarge => f.write_str("query too large to classify"),
            Reason::TooManyStatements => f.write_str("too many statements in one query"),
            Reason::InvalidUtf8 => f.write_str("not valid UTF-8"),
            Reason::SelectInto => f.write_str("SELECT INTO creates a table"),
            Reason::LockingClause => f.write_str("locks rows (FOR UPDATE/SHARE)"),
            Reason::CopyProgram => f.write_str("COPY runs a program on the server"),
            Reason::CopyServerFile => f.write_str("COPY accesses a file on the server"),
            Reason::ChangesRole => f.write_str("changes the current role"),
            Reason::ChangesLexing => f.write_str("changes how strings are lexed"),
            Reason::AlterSystem => f.write_str("ALTER SYSTEM changes server configuration"),
        }
    }
}

/// The classification of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifiedStatement {
    /// Byte range of the statement in the Query string: from its first to
    /// its last significant token (no surrounding whitespace or comments,
    /// no terminating semicolon).
    pub range: Range<usize>,
    /// The most severe class in `ops`.
    pub class: Class,
    /// Every class the statement touches. Policy is decided per class.
    pub ops: ClassSet,
    pub where_clause: WhereClause,
    /// For DDL, the kind of object (`"table"`, `"function"`, ...).
    pub object: Option<&'static str>,
    /// Byte ranges of the target relations named by the top-level command
    /// (INSERT INTO, UPDATE, DELETE FROM, MERGE INTO, COPY, TRUNCATE, LOCK,
    /// CREATE/ALTER/DROP TABLE ...), as written.
    pub relations: Vec<Range<usize>>,
    pub reasons: Vec<Reason>,
    /// For `PREPARE name AS ...`: the statement name as the server stores
    /// it (unquoted names folded to lower case). The session records the
    /// classification under this name for later `EXECUTE`s.
    pub prepared_name: Option<String>,
}

impl ClassifiedStatement {
    /// The parts of the classification that carry over to an `EXECUTE`.
    pub fn summary(&self) -> Summary {
        Summary {
            class: self.class,
            ops: self.ops,
            where_clause: self.where_clause,
        }
    }

    /// The statement's text in the Query string it was classified from.
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.range.clone()).unwrap_or("")
    }

    fn unknown(range: Range<usize>, reason: Reason) -> ClassifiedStatement {
        ClassifiedStatement {
            range,
            class: Class::Unknown,
            ops: ClassSet::of(&[Class::Unknown]),
            where_clause: WhereClause::NotApplicable,
            object: None,
            relations: Vec::new(),
            reasons: vec![reason],
            prepared_name: None,
        }
    }
}

/// What a prepared statement does, remembered by the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub class: Class,
    pub ops: ClassSet,
    pub where_clause: WhereClause,
}

/// Resolves prepared statement names for `EXECUTE name`. SQL `PREPARE` and
/// protocol-level Parse share one namespace, so the session should record
/// both (and forget them on DEALLOCATE / Close / DISCARD).
pub trait PreparedStatements {
    /// `name` is as the server stores it (see
    /// [`ClassifiedStatement::prepared_name`]).
    fn lookup(&self, name: &str) -> Option<Summary>;
}

/// A resolver that knows no prepared statements.
pub struct NoPreparedStatements;

impl PreparedStatements for NoPreparedStatements {
    fn lookup(&self, _name: &str) -> Option<Summary> {
        None
    }
}

impl<S: std::hash::BuildHasher> PreparedStatements
    for std::collections::HashMap<String, Summary, S>
{
    fn lookup(&self, name: &str) -> Option<Summary> {
        self.get(name).copied()
    }
}

/// Session state that changes how statements are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassifyOptions {
    pub lex: LexOptions,
}

/// Classifies every statement of `sql` with default options and no
/// prepared statements.
pub fn classify(sql: &str) -> Vec<ClassifiedStatement> {
    classify_with(sql, &ClassifyOptions::default(), &NoPreparedStatements)
}

/// Classifies raw Query bytes; text that is not UTF-8 is one unknown
/// statement (the session should also treat any client_encoding other
/// than UTF8 as unknown, since the server lexes after converting).
pub fn classify_bytes(
    sql: &[u8],
    options: &ClassifyOptions,
    prepared: &dyn PreparedStatements,
) -> Vec<ClassifiedStatement> {
    match std::str::from_utf8(sql) {
        Ok(text) => classify_with(text, options, prepared),
        Err(_) => vec![ClassifiedStatement::unknown(
            0..sql.len(),
            Reason::InvalidUtf8,
        )],
    }
}

/// Classifies every statement of `sql`. An empty list means the Query has
/// no statement at all (only whitespace and comments).
pub fn classify_with(
    sql: &str,
    options: &ClassifyOptions,
    prepared: &dyn PreparedStatements,
) -> Vec<ClassifiedStatement> {
    if sql.len() > CLASSIFY_BYTES_MAX {
        return vec![ClassifiedStatement::unknown(
            0..sql.len(),
            Reason::InputTooLarge,
        )];
    }
    let analyzer = Analyzer { options, prepared };
    let mut splitter = Splitter::new(sql, options.lex);
    let mut toks = Vec::new();
    let mut out = Vec::new();
    while let Some(flags) = splitter.next_statement(&mut toks) {
        if out.len() == STATEMENTS_MAX {
            let start = toks[0].start as usize;
            out.push(ClassifiedStatement::unknown(
                start..sql.len(),
                Reason::TooManyStatements,
            ));
            break;
        }
        out.push(analyzer.statement(sql, &toks, flags));
    }
    out
}

/// The byte ranges of the statements in `sql`, as [`classify_with`] sees
/// them.
pub fn split_statements(sql: &str, options: LexOptions) -> Vec<Range<usize>> {
    let mut splitter = Splitter::new(sql, options);
    let mut toks = Vec::new();
    let mut out = Vec::new();
    while splitter.next_statement(&mut toks).is_some() {
        out.push(toks[0].start as usize..toks[toks.len() - 1].end as usize);
    }
    out
}

// ---------------------------------------------------------------------------
// Splitting

/// A significant token (no whitespace or comments) with its parenthesis
/// depth. Offsets are `u32` because input is bounded by
/// [`CLASSIFY_BYTES_MAX`].
#[derive(Debug, Clone, Copy)]
struct Sig {
    kind: TokenKind,
    start: u32,
    end: u32,
    /// Depth outside any parenthesis the token opens or closes: `(` and
    /// its `)` have the same depth, their contents one more.
    depth: u16,
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    unterminated: bool,
    other: bool,
    too_many_tokens: bool,
    too_deep: bool,
}

struct Splitter<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
}

impl<'a> Splitter<'a> {
    fn new(src: &'a str, options: LexOptions) -> Self {
        Splitter {
            src,
            lexer: Lexer::new(src, options),
        }
    }

    /// Collects the next non-empty statement's tokens into `toks`, or
    /// returns `None` at the end of the input.
    fn next_statement(&mut self, toks: &mut Vec<Sig>) -> Option<Flags> {
        toks.clear();
        let mut flags = Flags::default();
        let mut depth: u16 = 0;
        let mut begin_depth: u32 = 0;
        let mut routine: Option<bool> = None;
        let src = self.src;
        let text = |sig: &Sig| &src[sig.start as usize..sig.end as usize];
        for t in self.lexer.by_ref() {
            if t.kind.is_trivia() {
                continue;
            }
            let mut sig = Sig {
                kind: t.kind,
                start: t.start as u32,
                end: t.end() as u32,
                depth,
            };
            match t.kind {
                TokenKind::Semicolon if depth == 0 && begin_depth == 0 => {
                    if toks.is_empty() && !flags.too_many_tokens {
                        continue;
                    }
                    return Some(flags);
                }
                TokenKind::LParen => {
                    if depth >= PAREN_DEPTH_MAX {
                        flags.too_deep = true;
                    } else {
                        depth += 1;
                    }
                }
                TokenKind::RParen => {
                    depth = depth.saturating_sub(1);
                    sig.depth = depth;
                }
                TokenKind::Other => flags.other = true,
                k if k.is_unterminated() => flags.unterminated = true,
                TokenKind::Ident if depth == 0 => {
                    // psql's rule for CREATE FUNCTION / PROCEDURE bodies in
                    // BEGIN ATOMIC ... END, tightened to require ATOMIC
                    // right after BEGIN (a function may be named "begin").
                    let is = |w: &str| t.text.eq_ignore_ascii_case(w);
                    if is("atomic")
                        && toks.last().is_some_and(|p| {
                            p.kind == TokenKind::Ident
                                && p.depth == 0
                                && text(p).eq_ignore_ascii_case("begin")
                        })
                    {
                        let is_routine = *routine.get_or_insert_with(|| starts_routine(src, toks));
                        if is_routine {
                            begin_depth += 1;
                        }
                    } else if is("case") && begin_depth > 0 {
                        begin_depth += 1;
                    } else if is("end") && begin_depth > 0 {
                        begin_depth -= 1;
                    }
                }
                _ => {}
            }
            if toks.len() < STATEMENT_TOKENS_MAX {
                toks.push(sig);
            } else {
                flags.too_many_tokens = true;
            }
        }
        if toks.is_empty() {
            None
        } else {
            Some(flags)
        }
    }
}

/// Whether the statement in `toks` starts CREATE [OR REPLACE] FUNCTION |
/// PROCEDURE.
fn starts_routine(src: &str, toks: &[Sig]) -> bool {
    let word = |i: usize, w: &str| {
        toks.get(i).is_some_and(|s| {
            s.kind == TokenKind::Ident
                && src[s.start as usize..s.end as usize].eq_ignore_ascii_case(w)
        })
    };
    let routine = |i: usize| word(i, "function") || word(i, "procedure");
    word(0, "create") && (routine(1) || (word(1, "or") && word(2, "replace") && routine(3)))
}

// ---------------------------------------------------------------------------
// Analysis

/// A run of tokens being analysed, with the text they point into.
#[derive(Clone, Copy)]
struct Unit<'a> {
    src: &'a str,
    toks: &'a [Sig],
    /// Procedural bodies read `SELECT INTO` as assignment, treat `EXECUTE`
    /// as dynamic SQL and `BEGIN`/`END`/`DECLARE` as block structure.
    body: bool,
    /// Only the top-level statement records target relation ranges (body
    /// offsets point into decoded text, not into the Query).
    record_relations: bool,
}

impl<'a> Unit<'a> {
    fn len(&self) -> usize {
        self.toks.len()
    }

    fn kind(&self, i: usize) -> Option<TokenKind> {
        self.toks.get(i).map(|s| s.kind)
    }

    fn text(&self, i: usize) -> &'a str {
        match self.toks.get(i) {
            Some(s) => self.src.get(s.start as usize..s.end as usize).unwrap_or(""),
            None => "",
        }
    }

    fn depth(&self, i: usize) -> u16 {
        self.toks.get(i).map_or(0, |s| s.depth)
    }

    /// Whether token `i` is the unquoted keyword `word` (ASCII
    /// case-insensitive; quoted identifiers are never keywords).
    fn kw(&self, i: usize, word: &str) -> bool {
        self.kind(i) == Some(TokenKind::Ident) && self.text(i).eq_ignore_ascii_case(word)
    }

    fn kw_any(&self, i: usize, words: &[&str]) -> bool {
        self.kind(i) == Some(TokenKind::Ident)
            && words.iter().any(|w| self.text(i).eq_ignore_ascii_case(w))
    }

    fn is(&self, i: usize, kind: TokenKind) -> bool {
        self.kind(i) == Some(kind)
    }

    fn slice(&self, range: Range<usize>) -> Unit<'a> {
        let end = range.end.min(self.toks.len());
        let start = range.start.min(end);
        Unit {
            toks: &self.toks[start..end],
            ..*self
        }
    }

    fn range(&self, first: usize, last: usize) -> Range<usize> {
        self.toks[first].start as usize..self.toks[last].end as usize
    }

    /// The `UESCAPE 'c'` character following token `i`, if any, and the
    /// number of tokens it takes.
    fn uescape_after(&self, i: usize, options: &ClassifyOptions) -> (char, usize) {
        if self.kw(i + 1, "uescape") {
            if let Some(kind) = self.kind(i + 2) {
                if let Some(v) = string_value(
                    kind,
                    self.text(i + 2),
                    options.lex.standard_conforming_strings,
                    '\\',
                ) {
                    let mut chars = v.chars();
                    if let (Some(c), None) = (chars.next(), chars.next()) {
                        return (c, 2);
                    }
                }
            }
            // A malformed UESCAPE: the server rejects the statement; we
            // decode with an impossible escape so nothing matches.
            return ('\u{0}', 2);
        }
        ('\\', 0)
    }

    /// The decoded name of identifier token `i` and the index just past it
    /// (and past its UESCAPE clause).
    fn name(&self, i: usize, options: &ClassifyOptions) -> Option<(Name, usize)> {
        let kind = self.kind(i)?;
        if !kind.is_identifier() {
            return None;
        }
        let (escape, extra) = if kind == TokenKind::UnicodeIdent {
            self.uescape_after(i, options)
        } else {
            ('\\', 0)
        };
        let name = ident_name(kind, self.text(i), escape)?;
        Some((name, i + 1 + extra))
    }

    /// The decoded value of string token `i` (with its UESCAPE) or the
    /// decoded name of identifier token `i`: how option values such as
    /// language names may be written.
    fn word_value(&self, i: usize, options: &ClassifyOptions) -> Option<String> {
        let kind = self.kind(i)?;
        if kind.is_string() {
            let (escape, _) = self.uescape_after(i, options);
            return string_value(
                kind,
                self.text(i),
                options.lex.standard_conforming_strings,
                escape,
            )
            .map(|v| v.into_owned());
        }
        self.name(i, options).map(|(n, _)| n.as_str().to_owned())
    }

    /// A qualified name `a.b.c` starting at `i`: the index of its last
    /// token, or `None` if there is no name at `i`.
    fn qualified_name(&self, i: usize) -> Option<usize> {
        if !self.kind(i)?.is_identifier() {
            return None;
        }
        let mut last = i;
        while self.is(last + 1, TokenKind::Dot)
            && self.kind(last + 2).is_some_and(|k| k.is_identifier())
        {
            last += 2;
        }
        Some(last)
    }

    /// The end (exclusive) of the statement or sub-statement starting at
    /// `i`: the first token that closes the enclosing parenthesis, or a
    /// semicolon at the same depth.
    fn statement_end(&self, i: usize) -> usize {
        let base = self.depth(i);
        (i + 1..self.len())
            .find(|&j| {
                let s = self.toks[j];
                s.depth < base || (s.depth == base && s.kind == TokenKind::Semicolon)
            })
            .unwrap_or(self.len())
    }

    /// The index of the `)` that closes the `(` at `open`.
    fn close_paren(&self, open: usize) -> Option<usize> {
        let base = self.depth(open);
        (open + 1..self.len()).find(|&j| {
            let s = self.toks[j];
            s.depth == base && s.kind == TokenKind::RParen
        })
    }
}

/// What has been learnt about a statement so far.
#[derive(Default)]
struct Acc {
    ops: ClassSet,
    reasons: Vec<Reason>,
    where_clause: Option<WhereClause>,
    object: Option<&'static str>,
    relations: Vec<Range<usize>>,
    prepared_name: Option<String>,
}

impl Acc {
    fn add(&mut self, class: Class) {
        self.ops.insert(class);
    }

    fn reason(&mut self, reason: Reason) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    fn unknown(&mut self, reason: Reason) {
        self.add(Class::Unknown);
        self.reason(reason);
    }

    fn object(&mut self, object: Option<&'static str>) {
        if self.object.is_none() {
            self.object = object;
        }
    }

    fn where_clause(&mut self, w: WhereClause) {
        self.where_clause = Some(self.where_clause.map_or(w, |old| old.max(w)));
    }
}

struct Analyzer<'o> {
    options: &'o ClassifyOptions,
    prepared: &'o dyn PreparedStatements,
}

/// Which data-modifying command a token starts.
#[derive(Debug, Clone, Copy)]
enum Dml {
    Insert,
    Update,
    /// `ON CONFLICT ... DO UPDATE SET`: updates only conflicting rows.
    Upsert,
    Delete,
    Merge,
}

impl Analyzer<'_> {
    fn statement(&self, sql: &str, toks: &[Sig], flags: Flags) -> ClassifiedStatement {
        let range = toks[0].start as usize..toks[toks.len() - 1].end as usize;
        let unit = Unit {
            src: sql,
            toks,
            body: false,
            record_relations: true,
        };
        let mut acc = Acc::default();
        if flags.unterminated {
            acc.unknown(Reason::Unterminated);
        }
        if flags.other {
            acc.unknown(Reason::UnexpectedCharacter);
        }
        if flags.too_deep {
            acc.unknown(Reason::NestingTooDeep);
        }
        if flags.too_many_tokens {
            acc.unknown(Reason::TooManyTokens);
        }
        self.unit(unit, &mut acc, 0);
        if acc.ops.is_empty() {
            acc.unknown(Reason::UnknownCommand);
        }
        ClassifiedStatement {
            range,
            class: acc.ops.most_severe(),
            ops: acc.ops,
            where_clause: acc.where_clause.unwrap_or(WhereClause::NotApplicable),
            object: acc.object,
            relations: acc.relations,
            reasons: acc.reasons,
            prepared_name: acc.prepared_name,
        }
    }

    /// A whole statement: what its leading command says, then what any
    /// token in it says (nested data-modifying statements, function calls,
    /// locking clauses, dynamic SQL).
    fn unit(&self, u: Unit<'_>, acc: &mut Acc, nesting: u32) {
        let inert = self.dispatch(u, 0, acc, nesting);
        if !inert {
            self.scan(u, acc);
        }
    }

    /// Classifies the command starting at token `i` of `u` (running to the
    /// end of `u`). Returns true when nothing in it is executed (plain
    /// EXPLAIN), so the caller skips the token scan.
    fn dispatch(&self, u: Unit<'_>, i: usize, acc: &mut Acc, nesting: u32) -> bool {
        if nesting > NESTING_MAX {
            acc.unknown(Reason::NestingTooDeep);
            return false;
        }
        let Some(kind) = u.kind(i) else {
            acc.unknown(Reason::UnknownCommand);
            return false;
        };
        if kind == TokenKind::LParen {
            // A parenthesised query: `(SELECT 1) UNION (SELECT 2)`.
            let mut j = i;
            while u.is(j, TokenKind::LParen) {
                j += 1;
            }
            if u.kw_any(j, &["select", "values", "table", "with"]) {
                self.query(u, j, acc);
            } else {
                acc.unknown(Reason::UnknownCommand);
            }
            return false;
        }
        if kind != TokenKind::Ident {
            acc.unknown(Reason::UnknownCommand);
            return false;
        }
        let verb = u.text(i).to_ascii_lowercase();
        match verb.as_str() {
            "select" | "values" | "table" => self.query(u, i, acc),
            "with" => self.with(u, i, acc),
            "insert" | "update" | "delete" | "merge" => {
                if self.detect_dml(u, i).is_none() {
                    acc.unknown(Reason::UnknownCommand);
                }
            }
            "create" => self.create(u, i, acc, nesting),
            "alter" => self.alter(u, i, acc),
            "drop" => self.drop(u, i, acc),
            "truncate" => {
                acc.add(Class::Truncate);
                acc.object(Some("table"));
                let mut j = i + 1;
                if u.kw(j, "table") {
                    j += 1;
                }
                self.relation_list(u, j, acc);
            }
            "comment" => {
                acc.add(Class::Comment);
                acc.object(object_kind(u, i + 2).map(|(k, _)| k));
            }
            "security" => acc.add(Class::Comment),
            "grant" | "revoke" => acc.add(Class::Privilege),
            "reassign" => acc.add(Class::Privilege),
            "start" | "commit" | "rollback" | "abort" | "savepoint" | "release" => {
                acc.add(Class::Transaction)
            }
            "begin" | "end" if !u.body => acc.add(Class::Transaction),
            "prepare" => self.prepare(u, i, acc, nesting),
            "execute" => self.execute(u, i, acc),
            "deallocate" | "discard" | "close" => acc.add(Class::Session),
            "explain" => return self.explain(u, i, acc, nesting),
            "copy" => self.copy(u, i, acc, nesting),
            "set" => self.set(u, i, acc),
            "reset" => {
                let role = u.kw(i + 1, "role")
                    || (u.kw(i + 1, "session") && u.kw(i + 2, "authorization"))
                    || u.name(i + 1, self.options)
                        .is_some_and(|(n, _)| is_role_setting(&n));
                if role {
                    acc.add(Class::Role);
                    acc.reason(Reason::ChangesRole);
                } else {
                    acc.add(Class::Session);
                }
            }
            "show" | "fetch" | "move" => acc.add(Class::Read),
            "listen" | "notify" | "unlisten" => acc.add(Class::ListenNotify),
            "call" => acc.add(Class::Call),
            "do" => self.do_block(u, i, acc, nesting),
            "vacuum" | "analyze" | "analyse" | "cluster" | "reindex" | "refresh" => {
                acc.add(Class::Maintenance)
            }
            "checkpoint" | "load" => acc.add(Class::Admin),
            "lock" => {
                acc.add(Class::Lock);
                let mut j = i + 1;
                if u.kw(j, "table") {
                    j += 1;
                }
                self.relation_list(u, j, acc);
            }
            "declare" if !u.body => {
                // DECLARE name ... CURSOR ... FOR query
                let base = u.depth(i);
                match (i + 1..u.len()).find(|&j| u.depth(j) == base && u.kw(j, "for")) {
                    Some(f) => {
                        self.dispatch(u, f + 1, acc, nesting + 1);
                    }
                    None => acc.unknown(Reason::UnknownCommand),
                }
            }
            "import" => {
                acc.add(Class::Create);
                acc.object(Some("foreign table"));
            }
            "perform" if u.body => acc.add(Class::Read),
            _ => acc.unknown(Reason::UnknownCommand),
        }
        false
    }

    /// SELECT / VALUES / TABLE at `i`.
    fn query(&self, u: Unit<'_>, i: usize, acc: &mut Acc) {
        acc.add(Class::Read);
        if u.body || !u.kw(i, "select") {
            return;
        }
        // SELECT ... INTO new_table creates a table (outside procedural
        // bodies, where INTO assigns variables).
        let base = u.depth(i);
        let end = u.statement_end(i);
        if (i + 1..end).any(|j| u.depth(j) == base && u.kw(j, "into")) {
            acc.add(Class::Create);
            acc.object(Some("table"));
            acc.reason(Reason::SelectInto);
        }
    }

    /// WITH [RECURSIVE] name AS (...), ... main. The CTE bodies are found
    /// by the token scan; here the main statement decides whether this is
    /// a query.
    fn with(&self, u: Unit<'_>, i: usize, acc: &mut Acc) {
        let base = u.depth(i);
        let end = u.statement_end(i);
        let main = (i + 1..end).find(|&j| {
            u.depth(j) == base
                && u.kw_any(
                    j,
                    &[
                        "select", "values", "table", "insert", "update", "delete", "merge",
                    ],
                )
        });
        match main {
            Some(j) if u.kw_any(j, &["select", "values", "table"]) => self.query(u, j, acc),
            Some(j) => {
                if self.detect_dml(u, j).is_none() {
                    acc.unknown(Reason::UnknownCommand);
                }
            }
            None => {
                // `WITH x AS (...) (SELECT ...)`: a parenthesised main query.
                let paren_select = (i + 1..end).any(|j| {
                    u.depth(j) == base
                        && u.is(j, TokenKind::LParen)
                        && u.kw_any(j + 1, &["select", "values", "table"])
                        && !u.kw(j.wrapping_sub(1), "as")
                        && !u.kw(j.wrapping_sub(1), "materialized")
                });
                if paren_select {
                    acc.add(Class::Read);
                } else {
                    acc.unknown(Reason::UnknownCommand);
                }
            }
        }
    }

    fn create(&self, u: Unit<'_>, i: usize, acc: &mut Acc, nesting: u32) {
        let mut j = i + 1;
        if u.kw(j, "or") && u.kw(j + 1, "replace") {
            j += 2;
        }
        while u.kw_any(
            j,
            &[
                "temp",
                "temporary",
                "local",
                "global",
                "unlogged",
                "unique",
                "default",
                "trusted",
                "procedural",
                "recursive",
                "constraint",
            ],
        ) {
            j += 1;
        }
        let Some((object, after)) = object_kind(u, j) else {
            acc.unknown(Reason::UnknownCommand);
            return;
        };
        acc.object(Some(object));
        match object {
            "function" | "procedure" => {
                acc.add(Class::CreateFunction);
                self.routine_body(u, after, acc, nesting);
            }
            "role" | "user" | "group" => {
                acc.add(Class::Role);
                acc.add(Class::Create);
            }
            _ => {
                acc.add(Class::Create);
                let mut k = after;
                if u.kw(k, "if") && u.kw(k + 1, "not") && u.kw(k + 2, "exists") {
                    k += 3;
                }
                if matches!(
                    object,
                    "table" | "view" | "materialized view" | "foreign table"
                ) {
                    if let Some(last) = u.qualified_name(k) {
                        if u.record_relations {
                            acc.relations.push(u.range(k, last));
                        }
                    }
                    // CREATE TABLE ... AS query, CREATE VIEW ... AS query.
                    let base = u.depth(i);
                    if let Some(a) = (k..u.len()).find(|&a| u.depth(a) == base && u.kw(a, "as")) {
                        self.dispatch(u, a + 1, acc, nesting + 1);
                    }
                }
            }
        }
    }

    /// The body of CREATE FUNCTION / PROCEDURE: `AS 'text'` in some
    /// language, `BEGIN ATOMIC ... END`, or `RETURN expr` (which the token
    /// scan covers).
    fn routine_body(&self, u: Unit<'_>, from: usize, acc: &mut Acc, nesting: u32) {
        let base = u.depth(from.saturating_sub(1));
        let mut language: Option<String> = None;
        let mut body: Option<usize> = None;
        let mut atomic: Option<usize> = None;
        let mut sql_return = false;
        let mut j = from;
        while j < u.len() {
            if u.depth(j) == base {
                if u.kw(j, "language") {
                    language = u
                        .word_value(j + 1, self.options)
                        .map(|l| l.to_ascii_lowercase());
                } else if u.kw(j, "as") && u.kind(j + 1).is_some_and(|k| k.is_string()) {
                    body.get_or_insert(j + 1);
                } else if u.kw(j, "begin") && u.kw(j + 1, "atomic") {
                    atomic = Some(j + 2);
                    break;
                } else if u.kw(j, "return") {
                    sql_return = true;
                }
            }
            j += 1;
        }
        if let Some(start) = atomic {
            self.body_tokens(u.slice(start..u.len()), acc, nesting + 1);
            return;
        }
        match body {
            Some(b) => match language.as_deref() {
                Some("sql" | "plpgsql") => self.body_string(u, b, acc, nesting),
                _ => acc.unknown(Reason::UnanalyzableLanguage),
            },
            None if sql_return => {}
            None => acc.unknown(Reason::UndecodableBody),
        }
    }

    /// Decodes the string token `i` of `u` and analyses it as a body.
    fn body_string(&self, u: Unit<'_>, i: usize, acc: &mut Acc, nesting: u32) {
        let Some(kind) = u.kind(i) else {
            acc.unknown(Reason::UndecodableBody);
            return;
        };
        let (escape, _) = u.uescape_after(i, self.options);
        let Some(text) = string_value(
            kind,
            u.text(i),
            self.options.lex.standard_conforming_strings,
            escape,
        ) else {
            acc.unknown(Reason::UndecodableBody);
            return;
        };
        if nesting + 1 > NESTING_MAX {
            acc.unknown(Reason::NestingTooDeep);
            return;
        }
        let mut toks = Vec::new();
        let mut flags = Flags::default();
        let mut depth: u16 = 0;
        for t in Lexer::new(&text, self.options.lex) {
            if t.kind.is_trivia() {
                continue;
            }
            match t.kind {
                TokenKind::Other => flags.other = true,
                k if k.is_unterminated() => flags.unterminated = true,
                _ => {}
            }
            let mut sig = Sig {
                kind: t.kind,
                start: t.start as u32,
                end: t.end() as u32,
                depth,
            };
            if t.kind == TokenKind::LParen {
                if depth >= PAREN_DEPTH_MAX {
                    flags.too_deep = true;
                } else {
                    depth += 1;
                }
            } else if t.kind == TokenKind::RParen {
                depth = depth.saturating_sub(1);
                sig.depth = depth;
            }
            if toks.len() >= STATEMENT_TOKENS_MAX {
                flags.too_many_tokens = true;
                break;
            }
            toks.push(sig);
        }
        if flags.unterminated || flags.other || flags.too_deep || flags.too_many_tokens {
            acc.unknown(Reason::UndecodableBody);
        }
        let body = Unit {
            src: &text,
            toks: &toks,
            body: true,
            record_relations: false,
        };
        self.body_tokens(body, acc, nesting + 1);
    }

    /// A procedural body (PL/pgSQL or SQL): semicolon-separated chunks, in
    /// which a command may start at the beginning or after block keywords
    /// (`THEN`, `ELSE`, `LOOP`, `BEGIN`, `DECLARE`, `EXCEPTION`, a label).
    /// Every token is scanned as in a top-level statement.
    fn body_tokens(&self, u: Unit<'_>, acc: &mut Acc, nesting: u32) {
        if nesting > NESTING_MAX {
            acc.unknown(Reason::NestingTooDeep);
            return;
        }
        let body = Unit { body: true, ..u };
        let mut inner = Acc::default();
        let mut start = 0;
        while start < body.len() {
            let end = (start..body.len())
                .find(|&j| body.is(j, TokenKind::Semicolon))
                .unwrap_or(body.len());
            let chunk = body.slice(start..end);
            self.scan(chunk, &mut inner);
            for s in 0..chunk.len() {
                let segment_start = s == 0
                    || chunk.kw_any(
                        s - 1,
                        &[
                            "then",
                            "else",
                            "loop",
                            "begin",
                            "declare",
                            "exception",
                            "atomic",
                        ],
                    )
                    || (chunk.is(s - 1, TokenKind::Operator) && chunk.text(s - 1) == ">>");
                if segment_start && chunk.kw_any(s, BODY_VERBS) {
                    self.dispatch(chunk, s, &mut inner, nesting);
                }
            }
            start = end + 1;
        }
        for class in inner.ops.iter() {
            acc.add(class);
            acc.reason(Reason::InBody(class));
        }
        for r in inner.reasons {
            acc.reason(r);
        }
        if let Some(w) = inner.where_clause {
            acc.where_clause(w);
        }
    }

    fn do_block(&self, u: Unit<'_>, i: usize, acc: &mut Acc, nesting: u32) {
        acc.add(Class::Do);
        let mut language: Option<String> = None;
        let mut body: Option<usize> = None;
        let mut j = i + 1;
        while j < u.len() {
            if u.kw(j, "language") {
                language = u
                    .word_value(j + 1, self.options)
                    .map(|l| l.to_ascii_lowercase());
                j += 2;
            } else if u.kind(j).is_some_and(|k| k.is_string()) && body.is_none() {
                body = Some(j);
                j += 1;
            } else if u.kw(j, "uescape") {
                j += 2;
            } else {
                acc.unknown(Reason::UnknownCommand);
                j += 1;
            }
        }
        match (body, language.as_deref().unwrap_or("plpgsql")) {
            (Some(b), "plpgsql" | "sql") => self.body_string(u, b, acc, nesting),
            (Some(_), _) => acc.unknown(Reason::UnanalyzableLanguage),
            (None, _) => acc.unknown(Reason::UndecodableBody),
        }
    }

    fn alter(&self, u: Unit<'_>, i: usize, acc: &mut Acc) {
        if u.kw(i + 1, "system") {
            acc.add(Class::Alter);
            acc.add(Class::Admin);
            acc.object(Some("system"));
            acc.reason(Reason::AlterSystem);
            return;
        }
        if u.kw(i + 1, "default") && u.kw(i + 2, "privileges") {
            acc.add(Class::Privilege);
            return;
        }
        acc.add(Class::Alter);
        let Some((object, mut j)) = object_kind(u, i + 1) else {
            return;
        };
        acc.object(Some(object));
        if matches!(object, "role" | "user" | "group") {
            acc.add(Class::Role);
            return;
        }
        if u.kw(j, "if") && u.kw(j + 1, "exists") {
            j += 2;
        }
        if u.kw(j, "only") {
            j += 1;
        }
        if matches!(
            object,
            "table" | "foreign table" | "view" | "materialized view"
        ) {
            if let Some(last) = u.qualified_name(j) {
                if u.record_relations {
                    acc.relations.push(u.range(j, last));
                }
            }
        }
    }

    fn drop(&self, u: Unit<'_>, i: usize, acc: &mut Acc) {
        acc.add(Class::Drop);
        let Some((object, mut j)) = object_kind(u, i + 1) else {
            return;
        };
        acc.object(Some(object));
        match object {
            "role" | "user" | "group" => acc.add(Class::Role),
            "owned" => acc.add(Class::Privilege),
            _ => {}
        }
        if u.kw(j, "if") && u.kw(j + 1, "exists") {
            j += 2;
        }
        if matches!(
            object,
            "table" | "view" | "materialized view" | "foreign table" | "sequence"
        ) {
            self.relation_list(u, j, acc);
        }
    }

    /// `[ONLY] name [*] [, ...]` at `j`.
    fn relation_list(&self, u: Unit<'_>, mut j: usize, acc: &mut Acc) {
        loop {
            if u.kw(j, "only") {
                j += 1;
            }
            let Some(last) = u.qualified_name(j) else {
                return;
            };
            if u.record_relations {
                acc.relations.push(u.range(j, last));
            }
            j = last + 1;
            if u.is(j, TokenKind::Operator) && u.text(j) == "*" {
                j += 1;
            }
            if !u.is(j, TokenKind::Comma) {
                return;
            }
            j += 1;
        }
    }

    fn prepare(&self, u: Unit<'_>, i: usize, acc: &mut Acc, nesting: u32) {
        if u.kw(i + 1, "transaction") && u.kind(i + 2).is_some_and(|k| k.is_string()) {
            acc.add(Class::Transaction);
            return;
        }
        let Some((name, _)) = u.name(i + 1, self.options) else {
            acc.unknown(Reason::UnknownCommand);
            return;
        };
        let base = u.depth(i);
        match (i + 2..u.len()).find(|&j| u.depth(j) == base && u.kw(j, "as")) {
            Some(a) => {
                acc.prepared_name = Some(name.as_str().to_owned());
                acc.reason(Reason::Prepares);
                self.dispatch(u, a + 1, acc, nesting + 1);
            }
            None => acc.unknown(Reason::UnknownCommand),
        }
    }

    fn execute(&self, u: Unit<'_>, i: usize, acc: &mut Acc) {
        if u.body {
            acc.unknown(Reason::DynamicSql);
            return;
        }
        let resolved = u
            .name(i + 1, self.options)
            .and_then(|(name, _)| self.prepared.lookup(name.as_str()));
        match resolved {
            Some(summary) => {
                acc.ops = acc.ops.union(summary.ops);
                acc.where_clause(summary.where_clause);
                acc.reason(Reason::ExecutesPrepared(summary.class));
            }
            None => acc.unknown(Reason::UnresolvedPrepared),
        }
    }

    /// EXPLAIN [ANALYZE] [VERBOSE] stmt, or EXPLAIN (option [value], ...)
    /// stmt. Without ANALYZE nothing runs; with it, the statement does.
    fn explain(&self, u: Unit<'_>, i: usize, acc: &mut Acc, nesting: u32) -> bool {
        let mut j = i + 1;
        let mut analyze = false;
        if u.is(j, TokenKind::LParen) {
            let Some(close) = u.close_paren(j) else {
                acc.unknown(Reason::UnknownCommand);
                return false;
            };
            let mut k = j + 1;
            while k < close {
                let item_end = (k..close)
                    .find(|&e| u.is(e, TokenKind::Comma) && u.depth(e) == u.depth(k))
                    .unwrap_or(close);
                if u.kw_any(k, &["analyze", "analyse"]) {
                    // The option is on unless its value is clearly false.
                    let value = u
                        .word_value(k + 1, self.options)
                        .map(|v| v.to_ascii_lowercase());
                    let off = k + 2 == item_end
                        && matches!(value.as_deref(), Some("false" | "off" | "0" | "no"));
                    analyze |= !off;
                }
                k = item_end + 1;
            }
            j = close + 1;
        } else {
            while u.kw_any(j, &["analyze", "analyse", "verbose"]) {
                analyze |= !u.kw(j, "verbose");
                j += 1;
            }
        }
        if j >= u.len() {
            acc.unknown(Reason::UnknownCommand);
            return false;
        }
        if analyze {
            acc.reason(Reason::ExplainAnalyze);
            self.dispatch(u, j, acc, nesting + 1);
            false
        } else {
            acc.add(Class::Read);
            true
        }
    }

    fn copy(&self, u: Unit<'_>, i: usize, acc: &mut Acc, nesting: u32) {
        let mut j = i + 1;
        if u.kw(j, "binary") {
            j += 1;
        }
        if u.is(j, TokenKind::LParen) {
            let Some(close) = u.close_paren(j) else {
                acc.unknown(Reason::UnknownCommand);
                return;
            };
            self.dispatch(u.slice(j + 1..close), 0, acc, nesting + 1);
            j = close + 1;
        } else {
            let Some(last) = u.qualified_name(j) else {
                acc.unknown(Reason::UnknownCommand);
                return;
            };
            if u.record_relations {
                acc.relations.push(u.range(j, last));
            }
            j = last + 1;
            if u.is(j, TokenKind::LParen) {
                match u.close_paren(j) {
                    Some(close) => j = close + 1,
                    None => {
                        acc.unknown(Reason::UnknownCommand);
                        return;
                    }
                }
            }
        }
        let from = if u.kw(j, "from") {
            true
        } else if u.kw(j, "to") {
            false
        } else {
            acc.unknown(Reason::UnknownCommand);
            return;
        };
        if from {
            acc.add(Class::CopyFrom);
            acc.add(Class::Insert);
        } else {
            acc.add(Class::CopyTo);
            acc.add(Class::Read);
        }
        if u.kw_any(j + 1, &["stdin", "stdout"]) {
        } else if u.kw(j + 1, "program") {
            acc.add(Class::CopyProgram);
            acc.reason(Reason::CopyProgram);
        } else if u.kind(j + 1).is_some_and(|k| k.is_string()) {
            acc.add(Class::CopyFile);
            acc.reason(Reason::CopyServerFile);
        } else {
            acc.unknown(Reason::UnknownCommand);
        }
    }

    fn set(&self, u: Unit<'_>, i: usize, acc: &mut Acc) {
        let mut j = i + 1;
        if u.kw(j, "session") && u.kw(j + 1, "characteristics") {
            acc.add(Class::Session);
            return;
        }
        if u.kw_any(j, &["session", "local"]) && !u.kw(j + 1, "authorization") {
            j += 1;
        }
        if u.kw(j, "session") && u.kw(j + 1, "authorization") {
            acc.add(Class::Role);
            acc.reason(Reason::ChangesRole);
            return;
        }
        if u.kw_any(j, &["transaction", "constraints"]) {
            acc.add(Class::Transaction);
            return;
        }
        let name = u.name(j, self.options).map(|(n, _)| n);
        let qualified = u.is(j + 1, TokenKind::Dot);
        match name {
            Some(n) if !qualified && is_role_setting(&n) => {
                acc.add(Class::Role);
                acc.reason(Reason::ChangesRole);
            }
            Some(n)
                if !qualified
                    && ["standard_conforming_strings", "backslash_quote"]
                        .iter()
                        .any(|s| n.as_str().eq_ignore_ascii_case(s)) =>
            {
                acc.add(Class::Session);
                acc.reason(Reason::ChangesLexing);
            }
            Some(_) => acc.add(Class::Session),
            None => acc.unknown(Reason::UnknownCommand),
        }
    }

    /// `set_config('name', value, is_local)` whose setting is a plain
    /// string constant is classified like `SET name`: a session setting, or
    /// a role change for `role` and `session_authorization`. Drivers call
    /// it for ordinary settings (asyncpg turns `jit` off around its type
    /// introspection). Returns false, leaving the call to be classified as
    /// an administration function, when the name is computed, escaped or
    /// not a plain setting name.
    fn set_config_literal(&self, u: Unit<'_>, open: usize, acc: &mut Acc) -> bool {
        if !u.is(open + 1, TokenKind::String) || !u.is(open + 2, TokenKind::Comma) {
            return false;
        }
        let Some(setting) = u
            .text(open + 1)
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
        else {
            return false;
        };
        let plain = !setting.is_empty()
            && setting
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !plain {
            return false;
        }
        if setting.eq_ignore_ascii_case("role")
            || setting.eq_ignore_ascii_case("session_authorization")
        {
            acc.add(Class::Role);
            acc.reason(Reason::ChangesRole);
        } else if ["standard_conforming_strings", "backslash_quote"]
            .iter()
            .any(|s| setting.eq_ignore_ascii_case(s))
        {
            acc.add(Class::Session);
            acc.reason(Reason::ChangesLexing);
        } else {
            acc.add(Class::Session);
        }
        true
    }

    /// The token scan: looks at every token of `u` for things that act
    /// wherever they appear.
    fn scan(&self, u: Unit<'_>, acc: &mut Acc) {
        for i in 0..u.len() {
            let kind = u.toks[i].kind;
            if !kind.is_identifier() {
                continue;
            }
            if kind == TokenKind::Ident {
                let text = u.text(i);
                if text.len() == 6 || text.len() == 5 {
                    if let Some(dml) = self.detect_dml(u, i) {
                        self.record_dml(u, i, dml, acc);
                        continue;
                    }
                }
                if text.eq_ignore_ascii_case("for")
                    && (u.kw_any(i + 1, &["update", "share"])
                        || (u.kw(i + 1, "no") && u.kw(i + 2, "key"))
                        || (u.kw(i + 1, "key") && u.kw(i + 2, "share")))
                {
                    acc.add(Class::LockingRead);
                    acc.reason(Reason::LockingClause);
                    continue;
                }
                if u.body && text.eq_ignore_ascii_case("execute") {
                    acc.unknown(Reason::DynamicSql);
                    continue;
                }
            }
            // Function calls: the last name of a (qualified) name followed
            // by `(`.
            if u.is(i + 1, TokenKind::Dot) {
                continue;
            }
            let Some((name, after)) = u.name(i, self.options) else {
                continue;
            };
            if !u.is(after, TokenKind::LParen) {
                continue;
            }
            if name.as_str() == "set_config" && self.set_config_literal(u, after, acc) {
                continue;
            }
            if let Some((class, canonical)) = dangerous_function(name.as_str()) {
                acc.add(class);
                acc.reason(Reason::CallsFunction(canonical));
                if class == Class::Unknown {
                    acc.reason(Reason::DynamicSql);
                }
            }
        }
    }

    /// Whether the keyword at `i` starts a data-modifying command. The
    /// follow-up token is what tells a command from the same word used as
    /// a privilege, trigger event, locking clause or MERGE action.
    fn detect_dml(&self, u: Unit<'_>, i: usize) -> Option<Dml> {
        if u.kw(i, "insert") && u.kw(i + 1, "into") {
            return Some(Dml::Insert);
        }
        if u.kw(i, "delete") && u.kw(i + 1, "from") {
            return Some(Dml::Delete);
        }
        if u.kw(i, "merge") && u.kw(i + 1, "into") {
            return Some(Dml::Merge);
        }
        if !u.kw(i, "update") {
            return None;
        }
        if i > 0
            && (u.kw_any(i - 1, &["for", "key", "on", "of", "or", "before", "after"])
                || u.is(i - 1, TokenKind::Dot))
        {
            return None;
        }
        if u.kw(i + 1, "set") {
            return (i > 0 && u.kw(i - 1, "do")).then_some(Dml::Upsert);
        }
        let next = u.kind(i + 1)?;
        let name_like = match next {
            TokenKind::QuotedIdent | TokenKind::UnicodeIdent => true,
            TokenKind::Ident => !u.kw_any(i + 1, UPDATE_NOT_FOLLOWED_BY),
            _ => false,
        };
        name_like.then_some(Dml::Update)
    }

    fn record_dml(&self, u: Unit<'_>, i: usize, dml: Dml, acc: &mut Acc) {
        let nested = i > 0;
        let class = match dml {
            Dml::Insert => {
                if u.record_relations && !nested {
                    if let Some(last) = u.qualified_name(i + 2) {
                        acc.relations.push(u.range(i + 2, last));
                    }
                }
                Class::Insert
            }
            Dml::Merge => {
                let mut t = i + 2;
                if u.kw(t, "only") {
                    t += 1;
                }
                if u.record_relations && !nested {
                    if let Some(last) = u.qualified_name(t) {
                        acc.relations.push(u.range(t, last));
                    }
                }
                Class::Merge
            }
            Dml::Upsert => {
                acc.where_clause(WhereClause::Present);
                Class::UpdateWhere
            }
            Dml::Update | Dml::Delete => {
                let is_update = matches!(dml, Dml::Update);
                let target = if is_update { i + 1 } else { i + 2 };
                let w = self.where_of(u, i, target, nested, acc);
                acc.where_clause(w);
                match (is_update, w) {
                    (true, WhereClause::Present) => Class::UpdateWhere,
                    (false, WhereClause::Present) => Class::DeleteWhere,
                    (true, _) => Class::UpdateNoWhere,
                    (false, _) => Class::DeleteNoWhere,
                }
            }
        };
        if matches!(class, Class::UpdateNoWhere | Class::DeleteNoWhere) {
            let w = self.where_of_quiet(u, i, dml);
            acc.reason(if w == WhereClause::Trivial {
                Reason::WhereTrivial(class)
            } else {
                Reason::WhereMissing(class)
            });
        }
        if nested {
            acc.reason(Reason::NestedModification(class));
        }
        acc.add(class);
    }

    /// Re-derives the WHERE kind for the reason text without recording
    /// relations again.
    fn where_of_quiet(&self, u: Unit<'_>, i: usize, dml: Dml) -> WhereClause {
        let target = if matches!(dml, Dml::Update) {
            i + 1
        } else {
            i + 2
        };
        let mut scratch = Acc::default();
        self.where_of(u, i, target, true, &mut scratch)
    }

    /// The WHERE clause of the UPDATE / DELETE at `i` whose target name
    /// starts at `target`.
    fn where_of(
        &self,
        u: Unit<'_>,
        i: usize,
        mut target: usize,
        nested: bool,
        acc: &mut Acc,
    ) -> WhereClause {
        let base = u.depth(i);
        let end = u.statement_end(i);
        if u.kw(target, "only") {
            target += 1;
        }
        let mut names: [Option<Name>; 2] = [None, None];
        let mut k = target;
        if let Some(last) = u.qualified_name(target) {
            if u.record_relations && !nested {
                acc.relations.push(u.range(target, last));
            }
            names[0] = u.name(last, self.options).map(|(n, _)| n);
            k = last + 1;
            if u.kw(k, "uescape") {
                k += 2;
            }
            if u.is(k, TokenKind::Operator) && u.text(k) == "*" {
                k += 1;
            }
            if u.kw(k, "as") {
                k += 1;
            }
            if u.kind(k).is_some_and(|kind| kind.is_identifier())
                && !u.kw_any(k, &["set", "using", "where", "returning"])
            {
                names[1] = u.name(k, self.options).map(|(n, _)| n);
            }
        }
        let Some(w) = (k..end).find(|&j| u.depth(j) == base && u.kw(j, "where")) else {
            return WhereClause::Missing;
        };
        if u.kw(w + 1, "current") && u.kw(w + 2, "of") {
            return WhereClause::Present;
        }
        let cond_end = (w + 1..end)
            .find(|&j| u.depth(j) == base && u.kw(j, "returning"))
            .unwrap_or(end);
        if cond_end <= w + 1 {
            return WhereClause::Missing;
        }
        let cond = Cond {
            u,
            names,
            options: self.options,
        };
        if cond.trivial(w + 1, cond_end, base, 0) {
            WhereClause::Trivial
        } else {
            WhereClause::Present
        }
    }
}

/// Words after UPDATE that show it is not an UPDATE command.
const UPDATE_NOT_FOLLOWED_BY: &[&str] = &[
    "on",
    "of",
    "from",
    "where",
    "as",
    "nowait",
    "skip",
    "limit",
    "offset",
    "for",
    "order",
    "group",
    "having",
    "union",
    "intersect",
    "except",
    "returning",
    "then",
    "else",
    "end",
    "when",
    "and",
    "or",
    "is",
    "not",
    "into",
    "using",
    "to",
    "cascade",
    "restrict",
    "no",
];

/// Commands that may start a statement inside a procedural body.
const BODY_VERBS: &[&str] = &[
    "select",
    "values",
    "table",
    "with",
    "insert",
    "update",
    "delete",
    "merge",
    "create",
    "alter",
    "drop",
    "truncate",
    "comment",
    "security",
    "grant",
    "revoke",
    "reassign",
    "start",
    "commit",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "prepare",
    "execute",
    "deallocate",
    "discard",
    "explain",
    "copy",
    "set",
    "reset",
    "show",
    "listen",
    "notify",
    "unlisten",
    "call",
    "do",
    "vacuum",
    "analyze",
    "analyse",
    "cluster",
    "reindex",
    "refresh",
    "checkpoint",
    "load",
    "lock",
    "import",
    "perform",
];

fn is_role_setting(name: &Name) -> bool {
    let n = name.as_str();
    n.eq_ignore_ascii_case("role") || n.eq_ignore_ascii_case("session_authorization")
}

/// Object kinds after CREATE / ALTER / DROP / COMMENT ON, longest first.
const OBJECT_KINDS: &[(&[&str], &str)] = &[
    (&["text", "search"], "text search"),
    (&["foreign", "data", "wrapper"], "foreign data wrapper"),
    (&["materialized", "view"], "materialized view"),
    (&["foreign", "table"], "foreign table"),
    (&["event", "trigger"], "event trigger"),
    (&["access", "method"], "access method"),
    (&["user", "mapping"], "user mapping"),
    (&["operator", "class"], "operator class"),
    (&["operator", "family"], "operator family"),
    (&["large", "object"], "large object"),
    (&["table"], "table"),
    (&["view"], "view"),
    (&["index"], "index"),
    (&["sequence"], "sequence"),
    (&["schema"], "schema"),
    (&["database"], "database"),
    (&["function"], "function"),
    (&["procedure"], "procedure"),
    (&["routine"], "routine"),
    (&["aggregate"], "aggregate"),
    (&["trigger"], "trigger"),
    (&["rule"], "rule"),
    (&["policy"], "policy"),
    (&["type"], "type"),
    (&["domain"], "domain"),
    (&["extension"], "extension"),
    (&["server"], "server"),
    (&["publication"], "publication"),
    (&["subscription"], "subscription"),
    (&["cast"], "cast"),
    (&["operator"], "operator"),
    (&["collation"], "collation"),
    (&["conversion"], "conversion"),
    (&["language"], "language"),
    (&["tablespace"], "tablespace"),
    (&["statistics"], "statistics"),
    (&["transform"], "transform"),
    (&["role"], "role"),
    (&["user"], "user"),
    (&["group"], "group"),
    (&["owned"], "owned"),
    (&["column"], "column"),
    (&["constraint"], "constraint"),
];

fn object_kind(u: Unit<'_>, j: usize) -> Option<(&'static str, usize)> {
    OBJECT_KINDS.iter().find_map(|(words, kind)| {
        words
            .iter()
            .enumerate()
            .all(|(n, w)| u.kw(j + n, w))
            .then(|| (*kind, j + words.len()))
    })
}

/// Functions that do more than read data, with the class they put a
/// statement in. Matched on the decoded last component of the called name,
/// so `pg_catalog."pg_terminate_backend"(...)` matches too.
fn dangerous_function(name: &str) -> Option<(Class, &'static str)> {
    const ADMIN: &[&str] = &[
        "dblink",
        "dblink_connect",
        "dblink_connect_u",
        "dblink_exec",
        "dblink_open",
        "dblink_send_query",
        "lo_creat",
        "lo_create",
        "lo_export",
        "lo_from_bytea",
        "lo_import",
        "lo_put",
        "lo_truncate",
        "lo_truncate64",
        "lo_unlink",
        "lowrite",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_cancel_backend",
        "pg_copy_logical_replication_slot",
        "pg_copy_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_create_physical_replication_slot",
        "pg_create_restore_point",
        "pg_drop_replication_slot",
        "pg_file_rename",
        "pg_file_sync",
        "pg_file_unlink",
        "pg_file_write",
        "pg_import_system_collations",
        "pg_log_backend_memory_contexts",
        "pg_logdir_ls",
        "pg_logical_emit_message",
        "pg_logical_slot_get_binary_changes",
        "pg_logical_slot_get_changes",
        "pg_ls_archive_statusdir",
        "pg_ls_dir",
        "pg_ls_logdir",
        "pg_ls_logicalmapdir",
        "pg_ls_logicalsnapdir",
        "pg_ls_replslotdir",
        "pg_ls_tmpdir",
        "pg_ls_waldir",
        "pg_promote",
        "pg_read_binary_file",
        "pg_read_file",
        "pg_reload_conf",
        "pg_replication_origin_advance",
        "pg_replication_origin_create",
        "pg_replication_origin_drop",
        "pg_replication_origin_session_setup",
        "pg_replication_slot_advance",
        "pg_rotate_logfile",
        "pg_signal_backend",
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_start_backup",
        "pg_stat_file",
        "pg_stat_reset",
        "pg_stat_reset_shared",
        "pg_stat_reset_single_function_counters",
        "pg_stat_reset_single_table_counters",
        "pg_stat_reset_slru",
        "pg_stat_statements_reset",
        "pg_stop_backup",
        "pg_switch_wal",
        "pg_terminate_backend",
        "pg_truncate_visibility_map",
        "pg_wal_replay_pause",
        "pg_wal_replay_resume",
        "set_config",
        "setval",
    ];
    const DYNAMIC: &[&str] = &[
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "query_to_xmlschema",
    ];
    // Every listed name is lower case ASCII; the server folds unquoted
    // names, and a quoted name in another case is a different function.
    if let Ok(k) = ADMIN.binary_search(&name) {
        return Some((Class::Admin, ADMIN[k]));
    }
    if let Some(n) = DYNAMIC.iter().find(|n| **n == name) {
        return Some((Class::Unknown, n));
    }
    if name == "pg_notify" {
        return Some((Class::ListenNotify, "pg_notify"));
    }
    None
}

/// Trivially-true WHERE analysis (see [`WhereClause`]).
struct Cond<'u, 'a> {
    u: Unit<'a>,
    /// The target's name and alias: `t.x` compares equal to `x`.
    names: [Option<Name>; 2],
    options: &'u ClassifyOptions,
}

/// Words that are not column references inside a condition.
const NON_COLUMN_WORDS: &[&str] = &[
    "true",
    "false",
    "null",
    "not",
    "and",
    "or",
    "is",
    "isnull",
    "notnull",
    "distinct",
    "from",
    "between",
    "symmetric",
    "asymmetric",
    "like",
    "ilike",
    "similar",
    "to",
    "escape",
    "in",
    "unknown",
    "case",
    "when",
    "then",
    "else",
    "end",
    "any",
    "all",
    "some",
    "exists",
    "select",
    "where",
    "array",
    "row",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_user",
    "session_user",
    "current_role",
    "user",
    "current_catalog",
    "current_schema",
    "cast",
    "as",
    "at",
    "time",
    "zone",
    "interval",
    "collate",
    "overlaps",
    "values",
];

impl Cond<'_, '_> {
    /// Whether the condition in `a..b` (at paren depth `base`) is
    /// trivially true: some OR branch is.
    fn trivial(&self, a: usize, b: usize, base: u16, depth: u32) -> bool {
        if depth > u32::from(PAREN_DEPTH_MAX) {
            return false;
        }
        let u = &self.u;
        let mut start = a;
        for j in a..=b {
            if j == b || (u.depth(j) == base && u.kw(j, "or")) {
                if self.conjunction_trivial(start, j, base, depth) {
                    return true;
                }
                start = j + 1;
            }
        }
        false
    }

    /// Whether every AND-ed part of `a..b` is trivially true.
    fn conjunction_trivial(&self, a: usize, b: usize, base: u16, depth: u32) -> bool {
        let u = &self.u;
        let mut start = a;
        let mut in_between = false;
        for j in a..=b {
            if j < b && u.depth(j) == base && u.kw(j, "between") {
                in_between = true;
            }
            if j == b || (u.depth(j) == base && u.kw(j, "and")) {
                if j < b && in_between {
                    in_between = false;
                    continue;
                }
                if !self.atom_trivial(start, j, base, depth) {
                    return false;
                }
                start = j + 1;
            }
        }
        true
    }

    fn atom_trivial(&self, mut a: usize, b: usize, base: u16, depth: u32) -> bool {
        let u = &self.u;
        while a < b && u.kw(a, "not") {
            a += 1;
        }
        if a >= b {
            return true;
        }
        if u.is(a, TokenKind::LParen) && u.close_paren(a) == Some(b - 1) {
            return self.trivial(a + 1, b - 1, base + 1, depth + 1);
        }
        if !self.has_column(a, b) {
            return true;
        }
        match self.comparison(a, b, base) {
            Some((left, right)) => self.same(left, right),
            None => false,
        }
    }

    /// Whether `a..b` mentions a column (an identifier that is not a
    /// keyword, function name, type name or typed-literal prefix).
    fn has_column(&self, a: usize, b: usize) -> bool {
        let u = &self.u;
        let mut in_type = false;
        for j in a..b {
            let kind = u.toks[j].kind;
            if kind == TokenKind::DoubleColon || (j > a && u.kw(j - 1, "as") && j > 0) {
                in_type = true;
                if kind == TokenKind::DoubleColon {
                    continue;
                }
            }
            if !kind.is_identifier() {
                if kind != TokenKind::Dot && kind != TokenKind::LParen {
                    in_type = false;
                }
                continue;
            }
            if in_type
                || (kind == TokenKind::Ident && u.kw_any(j, NON_COLUMN_WORDS))
                || u.is(j + 1, TokenKind::LParen)
                || u.kind(j + 1).is_some_and(|k| k.is_string())
            {
                continue;
            }
            return true;
        }
        false
    }

    /// Splits `a..b` at its first top-level comparison operator.
    fn comparison(&self, a: usize, b: usize, base: u16) -> Option<(Range<usize>, Range<usize>)> {
        let u = &self.u;
        for j in a..b {
            if u.depth(j) != base {
                continue;
            }
            let is_op = u.is(j, TokenKind::Operator)
                && matches!(
                    u.text(j),
                    "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "~~" | "!~~" | "~~*" | "!~~*"
                );
            let is_word = u.kw_any(j, &["like", "ilike", "is", "similar"]);
            if !is_op && !is_word {
                continue;
            }
            let left_end = if j > a && u.kw(j - 1, "not") {
                j - 1
            } else {
                j
            };
            let mut r = j + 1;
            while r < b && u.kw_any(r, &["not", "distinct", "from", "to"]) {
                r += 1;
            }
            return Some((a..left_end, r..b));
        }
        None
    }

    /// Whether two token ranges spell the same expression, ignoring
    /// qualification by the target's name or alias and enclosing parens.
    fn same(&self, left: Range<usize>, right: Range<usize>) -> bool {
        let l = self.strip_parens(left);
        let r = self.strip_parens(right);
        let mut i = l.start;
        let mut j = r.start;
        loop {
            i = self.skip_target_qualifier(i, l.end);
            j = self.skip_target_qualifier(j, r.end);
            match (i < l.end, j < r.end) {
                (false, false) => return l.start < l.end,
                (true, true) => {}
                _ => return false,
            }
            if !self.token_eq(i, j) {
                return false;
            }
            i += 1;
            j += 1;
        }
    }

    fn strip_parens(&self, mut r: Range<usize>) -> Range<usize> {
        while r.start + 1 < r.end
            && self.u.is(r.start, TokenKind::LParen)
            && self.u.close_paren(r.start) == Some(r.end - 1)
        {
            r = r.start + 1..r.end - 1;
        }
        r
    }

    fn skip_target_qualifier(&self, i: usize, end: usize) -> usize {
        if i + 2 < end && self.u.is(i + 1, TokenKind::Dot) {
            if let Some((n, _)) = self.u.name(i, self.options) {
                if self.names.iter().flatten().any(|t| *t == n) {
                    return i + 2;
                }
            }
        }
        i
    }

    fn token_eq(&self, i: usize, j: usize) -> bool {
        let u = &self.u;
        let (ki, kj) = (u.toks[i].kind, u.toks[j].kind);
        if ki.is_identifier() && kj.is_identifier() {
            let a = u.name(i, self.options).map(|(n, _)| n);
            let b = u.name(j, self.options).map(|(n, _)| n);
            return a.is_some() && a == b;
        }
        ki == kj && u.text(i) == u.text(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> ClassifiedStatement {
        let v = classify(sql);
        assert_eq!(v.len(), 1, "{sql}: {v:?}");
        v.into_iter().next().unwrap()
    }

    fn class(sql: &str) -> Class {
        one(sql).class
    }

    #[test]
    fn basic_commands() {
        assert_eq!(class("SELECT 1"), Class::Read);
        assert_eq!(class("values (1)"), Class::Read);
        assert_eq!(class("TABLE t"), Class::Read);
        assert_eq!(class("show search_path"), Class::Read);
        assert_eq!(class("INSERT INTO t VALUES (1)"), Class::Insert);
        assert_eq!(class("UPDATE t SET a = 1 WHERE id = 2"), Class::UpdateWhere);
        assert_eq!(class("UPDATE t SET a = 1"), Class::UpdateNoWhere);
        assert_eq!(class("DELETE FROM t WHERE id = 2"), Class::DeleteWhere);
        assert_eq!(class("DELETE FROM t"), Class::DeleteNoWhere);
        assert_eq!(
            class("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"),
            Class::Merge
        );
        assert_eq!(class("CREATE TABLE t (a int)"), Class::Create);
        assert_eq!(class("DROP TABLE t"), Class::Drop);
        assert_eq!(class("ALTER TABLE t ADD COLUMN b int"), Class::Alter);
        assert_eq!(class("TRUNCATE t"), Class::Truncate);
        assert_eq!(class("GRANT SELECT ON t TO bob"), Class::Privilege);
        assert_eq!(class("CREATE ROLE bob"), Class::Role);
        assert_eq!(class("SET ROLE postgres"), Class::Role);
        assert_eq!(class("SET search_path = x"), Class::Session);
        assert_eq!(class("BEGIN"), Class::Transaction);
        assert_eq!(class("LISTEN c"), Class::ListenNotify);
        assert_eq!(class("VACUUM t"), Class::Maintenance);
        assert_eq!(class("LOCK TABLE t"), Class::Lock);
        assert_eq!(class("frobnicate"), Class::Unknown);
        assert_eq!(class("CALL p()"), Class::Call);
        assert_eq!(class("SELECT * FROM t FOR UPDATE"), Class::LockingRead);
    }

    #[test]
    fn where_clauses() {
        for (sql, w) in [
            ("DELETE FROM t WHERE true", WhereClause::Trivial),
            ("DELETE FROM t WHERE 1=1", WhereClause::Trivial),
            ("DELETE FROM t WHERE 'a'='a'", WhereClause::Trivial),
            ("DELETE FROM t WHERE x = x", WhereClause::Trivial),
            ("DELETE FROM t WHERE t.x = x", WhereClause::Trivial),
            ("DELETE FROM t AS a WHERE a.x = \"x\"", WhereClause::Trivial),
            ("DELETE FROM t WHERE (1 = 1)", WhereClause::Trivial),
            ("DELETE FROM t WHERE id = 5 OR 1 = 1", WhereClause::Trivial),
            ("DELETE FROM t WHERE NOT false", WhereClause::Trivial),
            ("DELETE FROM t WHERE 't'::boolean", WhereClause::Trivial),
            ("DELETE FROM t WHERE $1", WhereClause::Trivial),
            ("DELETE FROM t WHERE id = $1", WhereClause::Present),
            ("DELETE FROM t WHERE true AND id = 5", WhereClause::Present),
            (
                "DELETE FROM t WHERE id BETWEEN 1 AND 5",
                WhereClause::Present,
            ),
            (
                "DELETE FROM t USING u WHERE t.id = u.id",
                WhereClause::Present,
            ),
            ("DELETE FROM t WHERE CURRENT OF c", WhereClause::Present),
            ("DELETE FROM t WHERE id IN (SELECT 1)", WhereClause::Present),
            ("DELETE FROM t RETURNING *", WhereClause::Missing),
            (
                "UPDATE t SET a = (SELECT b FROM u WHERE u.id = 1)",
                WhereClause::Missing,
            ),
        ] {
            assert_eq!(one(sql).where_clause, w, "{sql}");
        }
    }

    #[test]
    fn nested_and_bodies() {
        assert_eq!(
            class("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"),
            Class::DeleteNoWhere
        );
        assert_eq!(class("EXPLAIN DELETE FROM t"), Class::Read);
        assert_eq!(class("EXPLAIN ANALYZE DELETE FROM t"), Class::DeleteNoWhere);
        assert_eq!(
            class("EXPLAIN (FORMAT JSON, ANALYZE) DROP TABLE t"),
            Class::Drop
        );
        assert_eq!(class("EXPLAIN (ANALYZE false) DELETE FROM t"), Class::Read);
        assert_eq!(class("PREPARE p AS DELETE FROM t"), Class::DeleteNoWhere);
        assert_eq!(
            one("PREPARE P AS SELECT 1").prepared_name.as_deref(),
            Some("p")
        );
        assert_eq!(class("EXECUTE p"), Class::Unknown);
        assert_eq!(class("DO $$ BEGIN DROP TABLE t; END $$"), Class::Drop);
        assert_eq!(class("DO $$ BEGIN PERFORM 1; END $$"), Class::Do);
        assert_eq!(class("DO $$ BEGIN EXECUTE 'x'; END $$"), Class::Unknown);
        assert_eq!(class("DO LANGUAGE plpython3u 'x'"), Class::Unknown);
        let f = one("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM t'");
        assert_eq!(f.class, Class::CreateFunction);
        assert!(f.ops.contains(Class::DeleteNoWhere));
        assert!(f.reasons.contains(&Reason::InBody(Class::DeleteNoWhere)));
        assert_eq!(
            class("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END"),
            Class::CreateFunction
        );
        assert_eq!(class("SELECT pg_terminate_backend(1)"), Class::Admin);
        assert_eq!(class("COPY t TO PROGRAM 'x'"), Class::CopyProgram);
        assert_eq!(
            class("COPY (DELETE FROM t RETURNING *) TO STDOUT"),
            Class::DeleteNoWhere
        );
        assert_eq!(class("SELECT * INTO n FROM t"), Class::Create);
        assert_eq!(class("CREATE TABLE n AS SELECT * FROM t"), Class::Create);
        assert_eq!(
            class("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1"),
            Class::UpdateWhere
        );
    }

    #[test]
    fn execute_resolves_through_the_hook() {
        let mut prepared = std::collections::HashMap::new();
        let stmt = one("PREPARE killer AS DELETE FROM t");
        prepared.insert(stmt.prepared_name.clone().unwrap(), stmt.summary());
        let v = classify_with("EXECUTE Killer", &ClassifyOptions::default(), &prepared);
        assert_eq!(v[0].class, Class::DeleteNoWhere);
        let v = classify_with("EXECUTE \"Killer\"", &ClassifyOptions::default(), &prepared);
        assert_eq!(v[0].class, Class::Unknown);
    }

    #[test]
    fn splitting() {
        let sql = "SELECT ';'; /* ; */ DELETE FROM t -- ;\n; ;; $$;$$";
        let r = split_statements(sql, LexOptions::default());
        let texts: Vec<_> = r.iter().map(|r| &sql[r.clone()]).collect();
        assert_eq!(texts, vec!["SELECT ';'", "DELETE FROM t", "$$;$$"]);
        let atomic = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END; DROP TABLE t";
        assert_eq!(split_statements(atomic, LexOptions::default()).len(), 2);
        let named_begin = "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; DROP TABLE t";
        assert_eq!(
            split_statements(named_begin, LexOptions::default()).len(),
            2
        );
    }

    #[test]
    fn relations_are_reported() {
        let sql = "UPDATE public.\"Acc\" a SET x = 1 WHERE a.id = 2";
        let s = one(sql);
        assert_eq!(&sql[s.relations[0].clone()], "public.\"Acc\"");
        let sql = "DROP TABLE IF EXISTS a, b.c CASCADE";
        let s = one(sql);
        let names: Vec<_> = s.relations.iter().map(|r| &sql[r.clone()]).collect();
        assert_eq!(names, vec!["a", "b.c"]);
    }
}
